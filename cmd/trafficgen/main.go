// Command trafficgen is a traffic generator that stands in for Envoy: it
// poses as the sidecar of a pod of the mesh (bookinfo's productpage),
// follows istiod's configuration over xDS, routes simulated requests to a
// Service by it, and exports Istio's request metrics for Prometheus. A
// smaller stream of requests bypasses the mesh, to the Service's ready
// endpoints. It works against any cluster and istiod it can reach; see
// package trafficgen for what it simulates.
//
//	trafficgen --kubeconfig .local/kubeconfig --istiod 127.0.0.1:15010 \
//	  --namespace bookinfo --source-pod productpage --host reviews --port 9080 \
//	  --bad-images reviews:v4=0.10 --metrics-address 127.0.0.1:15090 \
//	  --profile jason=0.3,header:end-user=jason --clients 50
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/canary-io/canary/trafficgen"
)

// options are the command's flags.
type options struct {
	kubeconfig     string
	istiod         string
	namespace      string
	sourcePod      string
	host           string
	port           uint
	path           string
	bypassService  string
	rps            float64
	bypassRPS      float64
	duration       time.Duration
	requests       int64
	badImages      string
	latency        string
	badLatency     string
	metricsAddress string
	seed           uint64
	clusterID      string
	istioVersion   string
	profiles       profileFlags
	clients        int
}

// profileFlags collects the repeated --profile flags.
type profileFlags []trafficgen.Profile

func (p *profileFlags) String() string { return fmt.Sprint(len(*p), " profiles") }

func (p *profileFlags) Set(s string) error {
	profile, err := trafficgen.ParseProfile(s)
	if err != nil {
		return err
	}
	*p = append(*p, profile)
	return nil
}

func main() {
	var o options
	flag.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or in-cluster)")
	flag.StringVar(&o.istiod, "istiod", "istiod.istio-system.svc:15010", "istiod's plaintext xDS address (host:port)")
	flag.StringVar(&o.namespace, "namespace", "default", "namespace of the source pod and of the Service")
	flag.StringVar(&o.sourcePod, "source-pod", "productpage", "pod to pose as the sidecar of: its name, or a prefix (the first running pod whose name starts with it)")
	flag.StringVar(&o.host, "host", "reviews", "Service the traffic goes to (a name in --namespace, or a host name)")
	flag.UintVar(&o.port, "port", 9080, "the Service's port")
	flag.StringVar(&o.path, "path", "/", "request path, query included (picks the route of a plain request)")
	flag.StringVar(&o.bypassService, "bypass-service", "", "Service whose ready endpoints the bypassing traffic reaches (default: --host)")
	flag.Float64Var(&o.rps, "rps", 50, "requests per second through the mesh")
	flag.Float64Var(&o.bypassRPS, "bypass-rps", 5, "requests per second bypassing the mesh (0: none)")
	flag.DurationVar(&o.duration, "duration", 0, "stop after this long (0: until interrupted)")
	flag.Int64Var(&o.requests, "requests", 0, "stop after this many requests through the mesh (0: no limit)")
	flag.StringVar(&o.badImages, "bad-images", "", "images that answer badly and their share of 5xx, IMAGE=SHARE[,...] (e.g. reviews:v4=0.10); IMAGE matches the last path element of a pod's image")
	flag.StringVar(&o.latency, "latency", "5ms-30ms", "response time of good images, MIN-MAX")
	flag.StringVar(&o.badLatency, "bad-latency", "100ms-400ms", "response time of bad images, MIN-MAX")
	flag.StringVar(&o.metricsAddress, "metrics-address", "127.0.0.1:15090", "address serving Istio's metrics at /metrics")
	flag.Uint64Var(&o.seed, "seed", 0, "seed of the random choices (0: random)")
	flag.StringVar(&o.clusterID, "cluster-id", "Kubernetes", "istiod's cluster id, announced in the sidecar's metadata")
	flag.StringVar(&o.istioVersion, "istio-version", "1.29.0", "Istio version the sidecar announces")
	flag.Var(&o.profiles, "profile", "a share of the mesh requests with headers, cookies or query parameters, NAME=SHARE[,header:K=V][,cookie:K=V][,query:K=V][,path:P][,method:M] (repeatable; e.g. jason=0.3,header:end-user=jason)")
	flag.IntVar(&o.clients, "clients", 0, "simulated clients sending the mesh requests in turn, each keeping the cookies it is given (0: one client that keeps none)")
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	log := zap.New(zap.UseFlagOptions(&zapOpts))
	klog.SetLogger(log)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(logr.NewContext(ctx, log), o); err != nil {
		log.Error(err, "trafficgen failed")
		os.Exit(1)
	}
}

// run wires the generator's parts and runs them until ctx ends or the
// traffic is done.
func run(ctx context.Context, o options) error {
	log := logr.FromContextOrDiscard(ctx)
	behaviour, err := parseBehaviour(o)
	if err != nil {
		return err
	}
	if o.port == 0 || o.port > 65535 {
		return fmt.Errorf("--port %d: want 1..65535", o.port)
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = o.kubeconfig
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return fmt.Errorf("load kubeconfig: %w", err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("kubernetes client: %w", err)
	}

	source, err := trafficgen.FindSourceProxy(ctx, cs, o.namespace, o.sourcePod)
	if err != nil {
		return err
	}
	log.Info("posing as a sidecar", "node", source.NodeID(), "workload", source.Workload)
	inv, err := trafficgen.NewInventory(cs, o.namespace)
	if err != nil {
		return err
	}
	if err := inv.Start(ctx); err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	metrics, err := trafficgen.NewMetrics(reg, source)
	if err != nil {
		return err
	}
	xds := trafficgen.NewXDSClient(trafficgen.XDSConfig{
		Address: o.istiod, Proxy: source, Port: uint32(o.port), Path: o.path,
		ClusterID: o.clusterID, IstioVersion: o.istioVersion,
	})
	service, host := hostNames(o.host, o.namespace, uint32(o.port))
	if o.bypassService == "" {
		o.bypassService = service
	}
	gen := trafficgen.NewGenerator(trafficgen.Config{
		Host: host, Namespace: o.namespace, BypassService: o.bypassService,
		RPS: o.rps, BypassRPS: o.bypassRPS, Duration: o.duration, MaxRequests: o.requests,
		Behaviour: behaviour, Seed: o.seed,
		Path: o.path, Profiles: o.profiles, Clients: o.clients,
	}, xds, inv, metrics)

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return xds.Run(gctx) })
	g.Go(func() error {
		return trafficgen.ServeMetrics(gctx, o.metricsAddress, reg, func(a net.Addr) {
			log.Info("serving metrics", "address", "http://"+a.String()+"/metrics")
		})
	})
	g.Go(func() error {
		if err := gen.Run(gctx); err != nil {
			return err
		}
		// Traffic done: stop the rest.
		return errDone
	})
	err = g.Wait()
	s := gen.Stats()
	log.Info("traffic sent", "mesh", s.Mesh.Requests, "emptyDestination", s.Mesh.EmptyDestination,
		"noCluster", s.Mesh.NoCluster, "connectFailure", s.Mesh.ConnectFailure, "mesh5xx", s.Mesh.Errors5xx,
		"bypass", s.Bypass.Requests, "bypassByWorkload", s.Bypass.ByWorkload,
		"directResponse", s.Mesh.DirectResponse, "byRoute", routeCounts(s.Mesh.ByRoute), "mirrored", mirrorCounts(s.Mesh.Mirrored))
	if errors.Is(err, errDone) {
		return nil
	}
	return err
}

// routeCounts are the requests each route took.
func routeCounts(by map[string]trafficgen.ServedStats) map[string]int64 {
	out := make(map[string]int64, len(by))
	for name, s := range by {
		out[name] = s.Requests
	}
	return out
}

// mirrorCounts are the mirrored copies sent to each cluster.
func mirrorCounts(by map[string]trafficgen.MirrorStats) map[string]int64 {
	out := make(map[string]int64, len(by))
	for name, s := range by {
		out[name] = s.Requests
	}
	return out
}

// errDone ends the other goroutines once the traffic is done.
var errDone = errors.New("traffic done")

// parseBehaviour reads the pods' behaviour from the flags.
func parseBehaviour(o options) (trafficgen.Behaviour, error) {
	b := trafficgen.DefaultBehaviour()
	var err error
	if b.BadImages, err = trafficgen.ParseBadImages(o.badImages); err != nil {
		return b, fmt.Errorf("--bad-images: %w", err)
	}
	if b.Healthy, err = trafficgen.ParseLatency(o.latency); err != nil {
		return b, fmt.Errorf("--latency: %w", err)
	}
	if b.Bad, err = trafficgen.ParseLatency(o.badLatency); err != nil {
		return b, fmt.Errorf("--bad-latency: %w", err)
	}
	return b, nil
}

// hostNames returns the Service's short name and the virtual host's name
// for --host: "reviews" in namespace ns is Service "reviews" and host
// "reviews.ns.svc.cluster.local:9080"; a host name with dots is kept (its
// port added).
func hostNames(host, namespace string, port uint32) (service, vhost string) {
	name, _, _ := strings.Cut(host, ".")
	if !strings.Contains(host, ".") {
		return host, trafficgen.VirtualHostName(host, namespace, port)
	}
	if strings.Contains(host, ":") {
		return name, host
	}
	return name, fmt.Sprintf("%s:%d", host, port)
}
