package scenario

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/kubernetes"

	"github.com/canary-io/canary/e2e/cluster"
	"github.com/canary-io/canary/stepper"
	"github.com/canary-io/canary/trafficgen"
)

// meshRate is the requests per second productpage's stand-in sends
// through the mesh.
const meshRate = 50

// Traffic is the generator standing in for productpage's sidecar, fed by
// the cluster's istiod, with its metrics scraped by the cluster's
// Prometheus, and what it recorded of the requests it sent.
type Traffic struct {
	gen *trafficgen.Generator
	// what a second generator (a load test) needs
	ns        string
	behaviour trafficgen.Behaviour
	xds       trafficgen.Routes
	inv       trafficgen.Pods
	metrics   *trafficgen.Metrics

	mu     sync.Mutex
	bypass []trafficgen.Record // requests that bypassed the mesh
	failed map[string]int64    // 5xx served, by destination workload
	// lastMesh is when the last mesh request reached each workload;
	// meshCount how many did.
	lastMesh  map[string]time.Time
	meshCount map[string]int64
	// unrouted counts the mesh requests the source answered itself (no
	// healthy endpoint for the route: Envoy's 503 UH or NR), lastUnrouted
	// when the last one was sent.
	unrouted     int64
	lastUnrouted time.Time
	// served are the mesh requests' profile ("" plain), answering
	// workload and time, in order.
	served []served
	// routed are the canary's weights in the routes istiod pushed to the
	// generator, each change once, in order.
	routed []routedWeight
}

// routedWeight is the canary's share (percent) of the route a plain
// request to reviews takes, as the sidecar's configuration says, from a
// moment on.
type routedWeight struct {
	at     time.Time
	weight int
}

// watchRoutes records, every 100 ms until ctx ends, the canary's share
// of the route to host in the configuration istiod pushed.
func (t *Traffic) watchRoutes(ctx context.Context, host string) {
	for ctx.Err() == nil {
		if d, ok := t.xds.Snapshot().Destination(host); ok {
			var all, canary uint32
			for _, c := range d.Clusters {
				all += c.Weight
				if strings.Contains(c.Name, "|"+stepper.CanaryName("reviews")+".") {
					canary += c.Weight
				}
			}
			if all > 0 {
				w := int((canary*100 + all/2) / all)
				t.mu.Lock()
				if n := len(t.routed); n == 0 || t.routed[n-1].weight != w {
					t.routed = append(t.routed, routedWeight{at: time.Now(), weight: w})
				}
				t.mu.Unlock()
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// RoutedWeights are the canary's weights in the routes istiod pushed
// from since on (the one in force then first), each change once.
func (t *Traffic) RoutedWeights(since time.Time) []int {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []int
	for i, r := range t.routed {
		if r.at.Before(since) && i+1 < len(t.routed) && !t.routed[i+1].at.After(since) {
			continue
		}
		out = append(out, r.weight)
	}
	return out
}

// served is one mesh request: its profile ("" for a plain one), the
// workload that answered it ("" for none) and when it was sent.
type served struct {
	profile, workload string
	at                time.Time
	client            int
	// mirrors are the workloads its copies reached ("" for none), and
	// mirrorFailed how many of them failed (5xx or no answer).
	mirrors      []string
	mirrorFailed int
}

// StickyBreaks follows the simulated clients through the mesh requests
// sent in [from, to): onCanary counts the clients that canary answered
// at least once, broken the clients that stable answered after the
// canary had (a sticky canary must leave none).
func (t *Traffic) StickyBreaks(from, to time.Time, canary, stable string) (onCanary int, broken []int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	reached := map[int]bool{}
	wasBroken := map[int]bool{}
	for _, r := range t.served {
		if r.at.Before(from) || !r.at.Before(to) || r.client == 0 {
			continue
		}
		switch {
		case r.workload == canary:
			reached[r.client] = true
		case r.workload == stable && reached[r.client] && !wasBroken[r.client]:
			wasBroken[r.client] = true
			broken = append(broken, r.client)
		}
	}
	return len(reached), broken
}

// Mirrored counts, by the workload that received them ("" for none), the
// mirrored copies of the mesh requests sent in [from, to), and how many
// of the copies failed (5xx or no answer) by workload.
func (t *Traffic) Mirrored(from, to time.Time) (copies, failed map[string]int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	copies, failed = map[string]int64{}, map[string]int64{}
	for _, r := range t.served {
		if r.at.Before(from) || !r.at.Before(to) {
			continue
		}
		for _, w := range r.mirrors {
			copies[w]++
		}
		if r.mirrorFailed > 0 && len(r.mirrors) > 0 {
			failed[r.mirrors[0]] += int64(r.mirrorFailed)
		}
	}
	return copies, failed
}

// Served counts, by request profile ("" for plain requests) and then by
// the workload that answered ("" for none), the mesh requests sent in
// [from, to).
func (t *Traffic) Served(from, to time.Time) map[string]map[string]int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := map[string]map[string]int64{}
	for _, r := range t.served {
		if r.at.Before(from) || !r.at.Before(to) {
			continue
		}
		if out[r.profile] == nil {
			out[r.profile] = map[string]int64{}
		}
		out[r.profile][r.workload]++
	}
	return out
}

// StartTraffic starts the xDS client, the inventory, the metrics endpoint
// (added to Prometheus' targets) and the generator; they run until ctx
// ends. The bad images answer as their BadImage says.
func StartTraffic(ctx context.Context, c *cluster.Cluster, cs kubernetes.Interface, ns string, bad []trafficgen.BadImage) (*Traffic, error) {
	return StartTrafficWith(ctx, c, cs, ns, TrafficOptions{Bad: bad})
}

// TrafficOptions shape the traffic StartTrafficWith sends.
type TrafficOptions struct {
	// Bad are the images that answer badly.
	Bad []trafficgen.BadImage
	// Profiles are request profiles (headers, cookies, query parameters),
	// each with its share of the mesh requests: Served tells who answered
	// each profile.
	Profiles []trafficgen.Profile
	// Clients, when positive, is the number of simulated clients, each
	// with its own cookies (StickyBreaks follows them).
	Clients int
}

// StartTrafficWith is StartTraffic with options.
func StartTrafficWith(ctx context.Context, c *cluster.Cluster, cs kubernetes.Interface, ns string, o TrafficOptions) (*Traffic, error) {
	source, err := trafficgen.FindSourceProxy(ctx, cs, ns, "productpage")
	if err != nil {
		return nil, err
	}
	inv, err := trafficgen.NewInventory(cs, ns)
	if err != nil {
		return nil, err
	}
	if err := inv.Start(ctx); err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	metrics, err := trafficgen.NewMetrics(reg, source)
	if err != nil {
		return nil, err
	}
	xds := trafficgen.NewXDSClient(trafficgen.XDSConfig{Address: c.IstiodGRPCAddr, Proxy: source, Port: 9080})
	go func() { _ = xds.Run(ctx) }()
	addr := make(chan net.Addr, 1)
	go func() { _ = trafficgen.ServeMetrics(ctx, "127.0.0.1:0", reg, func(a net.Addr) { addr <- a }) }()
	select {
	case a := <-addr:
		// A job of its own per namespace: stories that run at the same
		// time each keep their generator scraped.
		job := "bookinfo-sidecars-" + ns
		if err := c.AddScrapeTarget(job, []string{a.String()}, nil); err != nil {
			return nil, err
		}
		go func() { <-ctx.Done(); _ = c.RemoveScrapeTarget(job) }()
	case <-time.After(10 * time.Second):
		return nil, fmt.Errorf("the traffic generator's metrics endpoint did not start")
	}
	host := trafficgen.VirtualHostName("reviews", ns, 9080)
	ready := func(s *trafficgen.Snapshot) bool {
		if s == nil {
			return false
		}
		_, ok := s.Destination(host)
		return ok
	}
	if _, err := xds.WaitFor(ctx, ready); err != nil {
		return nil, fmt.Errorf("istiod's routes for %s: %w", host, err)
	}
	behaviour := trafficgen.DefaultBehaviour()
	behaviour.BadImages = o.Bad
	t := &Traffic{failed: map[string]int64{}, lastMesh: map[string]time.Time{}, meshCount: map[string]int64{}, ns: ns, behaviour: behaviour, xds: xds, inv: inv, metrics: metrics}
	t.gen = trafficgen.NewGenerator(trafficgen.Config{
		Host: host, Namespace: ns, BypassService: "reviews",
		RPS: meshRate, BypassRPS: 5, Behaviour: behaviour, Seed: 1,
		OnRequest: t.record, Profiles: o.Profiles, Clients: o.Clients,
	}, xds, inv, metrics)
	go func() { _ = t.gen.Run(ctx) }()
	go t.watchRoutes(ctx, host)
	return t, nil
}

func (t *Traffic) record(r trafficgen.Record) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if r.Via == trafficgen.ViaBypass {
		t.bypass = append(t.bypass, r)
	}
	if r.Code >= 500 && r.Pod.Workload != "" {
		t.failed[r.Pod.Workload]++
	}
	if r.Via != trafficgen.ViaBypass && r.Pod.Workload != "" {
		t.lastMesh[r.Pod.Workload] = r.Time
		t.meshCount[r.Pod.Workload]++
	}
	if r.Via != trafficgen.ViaBypass {
		s := served{profile: r.Profile, workload: r.Pod.Workload, at: r.Time, client: r.Client}
		for _, m := range r.Mirrors {
			s.mirrors = append(s.mirrors, m.Pod.Workload)
			if m.Code == 0 || m.Code >= 500 {
				s.mirrorFailed++
			}
		}
		t.served = append(t.served, s)
	}
	if r.Via != trafficgen.ViaBypass && r.Failure != trafficgen.FailNone {
		t.unrouted++
		t.lastUnrouted = r.Time
	}
}

// LastMesh is when the last mesh request reached the workload, and how
// many did in all.
func (t *Traffic) LastMesh(workload string) (time.Time, int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.lastMesh[workload], t.meshCount[workload]
}

// Unrouted is how many mesh requests found no healthy endpoint for their
// route, and when the last one was sent.
func (t *Traffic) Unrouted() (int64, time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.unrouted, t.lastUnrouted
}

// FailedBy is how many 5xx a workload has served so far.
func (t *Traffic) FailedBy(workload string) int64 { return t.failedBy(workload) }

// bypassSince returns the bypassing requests recorded since a time.
func (t *Traffic) bypassSince(since time.Time) []trafficgen.Record {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []trafficgen.Record
	for _, r := range t.bypass {
		if !r.Time.Before(since) {
			out = append(out, r)
		}
	}
	return out
}

// failedBy is how many 5xx a workload has served so far.
func (t *Traffic) failedBy(workload string) int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.failed[workload]
}
