package trafficgen

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/utils/clock"
)

// Routes is the sidecar's configuration as it stands; an *XDSClient.
type Routes interface {
	// Snapshot returns the current configuration.
	Snapshot() *Snapshot
}

// Pods tells which pod an address is and which endpoints of a Service are
// ready; an *Inventory.
type Pods interface {
	// PodByIP returns the pod with an IP.
	PodByIP(ip string) (PodInfo, bool)
	// ReadyEndpoints returns the ready endpoints of a Service.
	ReadyEndpoints(service string) []SliceEndpoint
}

// VirtualHostName is istiod's name of a Service port's virtual host:
// "reviews.default.svc.cluster.local:9080".
func VirtualHostName(service, namespace string, port uint32) string {
	return fmt.Sprintf("%s.%s.svc.cluster.local:%d", service, namespace, port)
}

// Config configures a Generator.
type Config struct {
	// Host is the virtual host the mesh traffic goes to: its name
	// (VirtualHostName) or one of its domains.
	Host string
	// Namespace and BypassService name the Service whose ready endpoints
	// the bypassing traffic reaches.
	Namespace, BypassService string
	// RPS is the rate of requests through the mesh (default 50).
	RPS float64
	// BypassRPS is the rate of requests bypassing the mesh (0: none).
	BypassRPS float64
	// Duration bounds the run (0: until ctx ends).
	Duration time.Duration
	// MaxRequests bounds the requests through the mesh (0: no bound).
	MaxRequests int64
	// Behaviour is how the pods answer.
	Behaviour Behaviour
	// Seed seeds the random choices (0: a random seed).
	Seed uint64
	// Clock paces the requests (default the real clock).
	Clock clock.WithTicker
	// Tick is how often due requests are sent (default 20ms).
	Tick time.Duration
	// OnRequest, if set, sees every request, synchronously, in order
	// (mirrored copies in their request's Mirrors).
	OnRequest func(Record)
	// Path is the mesh requests' path, query included (default: the
	// xDS client's path, Snapshot.Path, else "/").
	Path string
	// Profiles are kinds of mesh requests (headers, cookies, query
	// parameters), each with its share; the rest are plain requests.
	Profiles []Profile
	// Clients is the number of simulated clients, each with its own
	// cookie jar, that send the mesh requests in turn (0: one client
	// without a jar, which never sends a cookie it was given).
	Clients int
}

// Generator sends simulated requests through the mesh, routed by the
// sidecar's configuration, and around it to the Service's ready
// endpoints, and records them in Stats and Metrics.
type Generator struct {
	cfg     Config
	routes  Routes
	pods    Pods
	metrics *Metrics
	rnd     *rand.Rand

	// jars are the clients' cookie jars; next is the client of the next
	// mesh request. Only Run's goroutine uses them.
	jars []CookieJar
	next int

	mu    sync.Mutex
	stats Stats
}

// NewGenerator returns a generator; metrics may be nil.
func NewGenerator(cfg Config, routes Routes, pods Pods, metrics *Metrics) *Generator {
	if cfg.RPS == 0 {
		cfg.RPS = 50
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Tick == 0 {
		cfg.Tick = 20 * time.Millisecond
	}
	seed := cfg.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	return &Generator{
		cfg: cfg, routes: routes, pods: pods, metrics: metrics,
		rnd:  rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		jars: make([]CookieJar, max(cfg.Clients, 0)),
	}
}

// Stats returns the counts so far.
func (g *Generator) Stats() Stats {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.stats.clone()
}

// Run sends requests until ctx ends, Duration has passed or MaxRequests
// went through the mesh; it returns nil then. Sending starts once the
// sidecar knows the host (as an application starts once its sidecar is
// ready); Duration counts from there.
func (g *Generator) Run(ctx context.Context) error {
	log := logr.FromContextOrDiscard(ctx).WithValues("host", g.cfg.Host)
	ticker := g.cfg.Clock.NewTicker(g.cfg.Tick)
	defer ticker.Stop()
	var (
		start              time.Time
		started            bool
		sentMesh, sentPass int64
	)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C():
		}
		now := g.cfg.Clock.Now()
		if !started {
			if _, ok := g.routes.Snapshot().Destination(g.cfg.Host); !ok {
				continue
			}
			started, start = true, now
			log.Info("route known, sending traffic", "rps", g.cfg.RPS, "bypassRPS", g.cfg.BypassRPS)
		}
		elapsed := now.Sub(start)
		done := g.cfg.Duration > 0 && elapsed >= g.cfg.Duration
		if done {
			elapsed = g.cfg.Duration
		}
		for due := int64(elapsed.Seconds() * g.cfg.RPS); sentMesh < due; sentMesh++ {
			if g.cfg.MaxRequests > 0 && sentMesh >= g.cfg.MaxRequests {
				done = true
				break
			}
			g.record(g.meshRequest(now))
		}
		for due := int64(elapsed.Seconds() * g.cfg.BypassRPS); sentPass < due; sentPass++ {
			g.record(g.bypassRequest(now))
		}
		if done || g.cfg.MaxRequests > 0 && sentMesh >= g.cfg.MaxRequests {
			log.Info("traffic done", "meshRequests", sentMesh, "bypassRequests", sentPass)
			return nil
		}
	}
}

// meshRequest routes one request by the current snapshot, as its
// client sends it, and has the chosen pods answer it and its mirrored
// copies; the client keeps the cookies of the response.
func (g *Generator) meshRequest(now time.Time) Record {
	snap := g.routes.Snapshot()
	r := Record{Time: now, Via: ViaMesh, Authority: g.cfg.Host}
	var jar *CookieJar
	if len(g.jars) > 0 {
		r.Client = g.next + 1
		jar = &g.jars[g.next]
		g.next = (g.next + 1) % len(g.jars)
	}
	path := g.cfg.Path
	if path == "" && snap != nil {
		path = snap.Path
	}
	if path == "" {
		path = "/"
	}
	profile := pickProfile(g.cfg.Profiles, g.rnd)
	if profile != nil {
		r.Profile = profile.Name
	}
	var cookies string
	if jar != nil {
		cookies = jar.Header(path, now)
	}
	req := buildRequest(profile, g.cfg.Host, path, cookies)
	out, ok := snap.RouteRequest(g.cfg.Host, req, g.rnd)
	if !ok {
		r.Failure, r.Code = FailNoRoute, FailNoRoute.Code()
		return r
	}
	if jar != nil {
		jar.Update(out.ResponseHeaders.Values("Set-Cookie"), req.Path, now)
	}
	r.Matched, r.Route = out.Matched, out.Route
	g.answer(&r, out.Pick)
	for _, sh := range out.Shadows {
		c := Record{Time: now, Via: ViaMirror, Authority: sh.Authority, Route: out.Route, Matched: true, Profile: r.Profile, Client: r.Client}
		g.answer(&c, sh.Pick)
		if c.Failure != FailNone {
			// Nobody answers a copy that failed: no response.
			c.Code = 0
		}
		r.Mirrors = append(r.Mirrors, c)
	}
	return r
}

// answer fills a record with the router's pick and the answer of the
// pod it reached.
func (g *Generator) answer(r *Record, pick Pick) {
	r.Cluster, r.Failure = pick.Cluster, pick.Failure
	if pick.Cluster != "" {
		r.Service = serviceOfCluster(pick.Cluster)
	}
	if pick.Failure != FailNone {
		r.Code = pick.Status
		if r.Code == 0 {
			r.Code = pick.Failure.Code()
		}
		return
	}
	pod, ok := g.pods.PodByIP(pick.Endpoint.Address)
	if !ok {
		r.Failure, r.Code = FailUpstreamConnect, FailUpstreamConnect.Code()
		return
	}
	r.Pod = pod
	a := g.cfg.Behaviour.Answer(pod.Image, g.rnd)
	r.Code, r.Latency = a.Code, a.Latency
}

// bypassRequest sends one request to a ready endpoint of the Service,
// drawn uniformly as kube-proxy does. With none ready, or with an address
// that is no pod, the connection fails: no response (Code 0), with
// Failure FailNoHealthyUpstream or FailUpstreamConnect.
func (g *Generator) bypassRequest(now time.Time) Record {
	r := Record{Time: now, Via: ViaBypass, Service: g.cfg.BypassService + "." + g.cfg.Namespace + ".svc.cluster.local"}
	eps := g.pods.ReadyEndpoints(g.cfg.BypassService)
	if len(eps) == 0 {
		r.Failure = FailNoHealthyUpstream
		return r
	}
	ep := eps[g.rnd.IntN(len(eps))]
	pod, ok := g.pods.PodByIP(ep.Address)
	if !ok {
		r.Failure = FailUpstreamConnect
		return r
	}
	r.Pod = pod
	a := g.cfg.Behaviour.Answer(pod.Image, g.rnd)
	r.Code, r.Latency = a.Code, a.Latency
	return r
}

// record counts a request in Stats and Metrics and hands it to OnRequest.
func (g *Generator) record(r Record) {
	g.mu.Lock()
	g.stats.add(r)
	g.mu.Unlock()
	if g.metrics != nil && r.Code != 0 {
		g.metrics.Observe(r)
	}
	if g.cfg.OnRequest != nil {
		g.cfg.OnRequest(r)
	}
}
