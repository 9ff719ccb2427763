package integration_test

import (
	"context"
	"fmt"
	"math"
	"net"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/testr"
	"github.com/prometheus/client_golang/prometheus"
	istioclient "istio.io/client-go/pkg/clientset/versioned"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/canary-io/canary/e2e/kit"
	"github.com/canary-io/canary/trafficgen"
)

// rig is a generator running in the test's process against the cluster.
type rig struct {
	ns       string
	xds      *trafficgen.XDSClient
	gen      *trafficgen.Generator
	host     string
	stable   string // the reviews cluster
	canary   string // the reviews-canary cluster
	scrapeAt string
}

// TestGeneratorFollowsIstiod runs the generator as the sidecar of a
// productpage pod against istiod and checks that the routing it follows
// is istiod's: the VirtualService's weights and the clusters' endpoints
// with their health, a weight change within seconds, an empty destination
// counted as 503s, and the metrics scraped by Prometheus.
func TestGeneratorFollowsIstiod(t *testing.T) {
	cs, ic := clients(t)
	ctx := t.Context()
	r := start(t, cs, ic)

	// The route's two clusters with the VirtualService's weights, and
	// their endpoints, all healthy.
	snap, err := r.xds.WaitFor(waitCtx(t, 30*time.Second), func(s *trafficgen.Snapshot) bool {
		d, ok := s.Destination(r.host)
		return ok && weightsAre(d, map[string]uint32{r.stable: 80, r.canary: 20}) &&
			healthyEndpoints(d, r.stable) == 3 && healthyEndpoints(d, r.canary) == 1
	})
	if err != nil {
		d, _ := snap.Destination(r.host)
		t.Fatalf("route to %s: want weights 80/20 and 3+1 healthy endpoints, have %+v: %v", r.host, d, err)
	}

	// Traffic splits about 80/20.
	before := r.gen.Stats()
	kit.Eventually(t, 60*time.Second, "1500 requests through the mesh", func(context.Context) error {
		if n := r.gen.Stats().Mesh.Requests - before.Mesh.Requests; n < 1500 {
			return fmt.Errorf("%d requests", n)
		}
		return nil
	})
	after := r.gen.Stats()
	canaryShare := share(before, after, r.canary)
	t.Logf("canary share of %d requests: %.3f", after.Mesh.Requests-before.Mesh.Requests, canaryShare)
	if math.Abs(canaryShare-0.20) > 0.05 {
		t.Errorf("canary share %.3f, want 0.20 ± 0.05", canaryShare)
	}
	// Counted from the moment every destination was ready: the generator
	// starts once the route is known, which may be before the canary's
	// endpoints arrive.
	failedInSidecar := func(m trafficgen.MeshStats) int64 {
		return m.EmptyDestination + m.NoCluster + m.NoRoute + m.ConnectFailure
	}
	if n := failedInSidecar(after.Mesh) - failedInSidecar(before.Mesh); n != 0 {
		t.Errorf("%d requests failed in the sidecar with every destination ready, want none: before %+v, after %+v", n, before.Mesh, after.Mesh)
	}

	// A weight change reaches the client within seconds.
	took := setWeights(t, ic, r, 100, 0)
	fmt.Printf("BENCH trafficgen: VirtualService write to weights 100/0 in the client: %v\n", took)
	before = r.gen.Stats()
	waitMoreRequests(t, r.gen, before, 500)
	after = r.gen.Stats()
	if n := after.Mesh.ByCluster[r.canary].Requests - before.Mesh.ByCluster[r.canary].Requests; n != 0 {
		t.Errorf("%d requests to the canary after its weight went to 0", n)
	}

	// Scaling the canary to zero while it has weight: 503s, counted as
	// requests to an empty destination.
	took = setWeights(t, ic, r, 80, 20)
	fmt.Printf("BENCH trafficgen: VirtualService write to weights 80/20 in the client: %v\n", took)
	written := time.Now()
	patch := []byte(`{"spec":{"replicas":0}}`)
	if _, err := cs.AppsV1().Deployments(r.ns).Patch(ctx, "reviews-canary", types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	snap, err = r.xds.WaitFor(waitCtx(t, 30*time.Second), func(s *trafficgen.Snapshot) bool {
		d, ok := s.Destination(r.host)
		return ok && weightsAre(d, map[string]uint32{r.stable: 80, r.canary: 20}) && healthyEndpoints(d, r.canary) == 0
	})
	if err != nil {
		t.Fatalf("canary endpoints after scaling to 0: %v", err)
	}
	fmt.Printf("BENCH trafficgen: scale to 0 to an empty canary cluster in the client: %v\n", snap.UpdatedAt.Sub(written).Round(time.Millisecond))
	before = r.gen.Stats()
	waitMoreRequests(t, r.gen, before, 1000)
	after = r.gen.Stats()
	empty := after.Mesh.EmptyDestination - before.Mesh.EmptyDestination
	canaryEmpty := after.Mesh.ByCluster[r.canary].EmptyDestination - before.Mesh.ByCluster[r.canary].EmptyDestination
	canary5xx := after.Mesh.ByCluster[r.canary].Errors5xx - before.Mesh.ByCluster[r.canary].Errors5xx
	t.Logf("after scaling the canary to 0: %d of %d requests to an empty destination", empty, after.Mesh.Requests-before.Mesh.Requests)
	if empty == 0 || canaryEmpty != empty || canary5xx < canaryEmpty {
		t.Errorf("want 503s counted as requests to the empty canary destination: %d to an empty destination, %d of them the canary's, canary 5xx %d",
			empty, canaryEmpty, canary5xx)
	}

	// The canary's pods, deleted, answered during their grace period:
	// no request met a pod that was gone.
	if m := after.Mesh; m.ConnectFailure != 0 || m.ByWorkload["unknown"] != 0 {
		t.Errorf("requests to pods that were gone: %+v", m)
	}

	// The traffic that bypasses the mesh reached only the pods the
	// reviews Service selects.
	if b := r.gen.Stats().Bypass; b.Requests == 0 || len(b.ByWorkload) != 1 || b.ByWorkload["reviews"] == 0 || len(b.ByPod) != 3 {
		t.Errorf("bypass traffic: want requests reaching only the 3 pods of reviews, have %+v", b)
	}

	// Prometheus scrapes Istio's metrics, canary series included.
	for _, q := range []string{
		fmt.Sprintf(`istio_requests_total{reporter="destination",destination_workload="reviews-canary",destination_workload_namespace=%q,destination_version="v2",response_code="200"}`, r.ns),
		fmt.Sprintf(`istio_request_duration_milliseconds_bucket{reporter="destination",destination_workload="reviews",destination_workload_namespace=%q,le=~"25(\\.0)?"}`, r.ns),
		fmt.Sprintf(`istio_requests_total{reporter="source",response_flags="UH",response_code="503",destination_service_name="reviews-canary",source_workload="productpage-v1",source_workload_namespace=%q}`, r.ns),
		fmt.Sprintf(`istio_requests_total{reporter="destination",connection_security_policy="none",destination_workload="reviews",destination_workload_namespace=%q}`, r.ns),
	} {
		kit.Eventually(t, 30*time.Second, "Prometheus has "+q, func(ctx context.Context) error {
			n, err := promQuery(ctx, q)
			if err == nil && n == 0 {
				err = fmt.Errorf("no series")
			}
			return err
		})
	}
	fmt.Printf("BENCH trafficgen: totals %+v\n", r.gen.Stats())
}

// start creates bookinfo's productpage and reviews with a canary and a
// VirtualService at 80/20, and starts the generator as productpage's
// sidecar, its metrics scraped by Prometheus.
func start(t *testing.T, cs kubernetes.Interface, ic istioclient.Interface) *rig {
	t.Helper()
	ctx := t.Context()
	ns := namespace(t, cs)
	objs := []struct {
		name     string
		replicas int32
		labels   map[string]string
		image    string
	}{
		{"productpage-v1", 1, map[string]string{"app": "productpage", "version": "v1"}, "example.com/bookinfo/productpage:v1"},
		{"reviews", 3, map[string]string{"app": "reviews", "version": "v1"}, "example.com/bookinfo/reviews:v1"},
		{"reviews-canary", 1, map[string]string{"app": "reviews", "version": "v2", "canary": "true"}, "example.com/bookinfo/reviews:v2"},
	}
	for _, o := range objs {
		if _, err := cs.AppsV1().Deployments(ns).Create(ctx, deployment(ns, o.name, o.replicas, o.labels, o.image), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for name, sel := range map[string]map[string]string{
		"productpage":    {"app": "productpage"},
		"reviews":        {"app": "reviews", "version": "v1"},
		"reviews-canary": {"app": "reviews", "canary": "true"},
	} {
		if _, err := cs.CoreV1().Services(ns).Create(ctx, service(ns, name, sel), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ic.NetworkingV1().VirtualServices(ns).Create(ctx, virtualService(ns, 80, 20), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		waitAvailable(t, cs, ns, o.name, o.replicas)
	}

	// t.Context() ends before the cleanups run, which wait for the
	// goroutines to return.
	runCtx := logr.NewContext(ctx, testr.NewWithOptions(t, testr.Options{Verbosity: 0}))
	done := make(chan struct{}, 3)
	t.Cleanup(func() {
		for range 3 {
			<-done
		}
	})
	run := func(name string, f func(context.Context) error) {
		go func() {
			defer func() { done <- struct{}{} }()
			if err := f(runCtx); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}()
	}

	src, err := trafficgen.FindSourceProxy(ctx, cs, ns, "productpage")
	if err != nil {
		t.Fatal(err)
	}
	inv, err := trafficgen.NewInventory(cs, ns)
	if err != nil {
		t.Fatal(err)
	}
	if err := inv.Start(runCtx); err != nil {
		t.Fatal(err)
	}
	r := &rig{
		ns:     ns,
		host:   trafficgen.VirtualHostName("reviews", ns, 9080),
		stable: "outbound|9080||reviews." + ns + ".svc.cluster.local",
		canary: "outbound|9080||reviews-canary." + ns + ".svc.cluster.local",
	}
	r.xds = trafficgen.NewXDSClient(trafficgen.XDSConfig{Address: env.IstiodGRPCAddr, Proxy: src, Port: 9080})
	run("xds client", r.xds.Run)

	reg := prometheus.NewRegistry()
	metrics, err := trafficgen.NewMetrics(reg, src)
	if err != nil {
		t.Fatal(err)
	}
	addr := make(chan net.Addr, 1)
	run("metrics", func(ctx context.Context) error {
		return trafficgen.ServeMetrics(ctx, "127.0.0.1:0", reg, func(a net.Addr) { addr <- a })
	})
	r.scrapeAt = (<-addr).String()
	if err := env.AddScrapeTarget("trafficgen", []string{r.scrapeAt}, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.RemoveScrapeTarget("trafficgen") })

	r.gen = trafficgen.NewGenerator(trafficgen.Config{
		Host: r.host, Namespace: ns, BypassService: "reviews",
		RPS: 250, BypassRPS: 20, Seed: 1,
		Behaviour: trafficgen.DefaultBehaviour(),
	}, r.xds, inv, metrics)
	run("generator", r.gen.Run)
	return r
}

// setWeights writes the VirtualService's weights and returns how long the
// client took to see them.
func setWeights(t *testing.T, ic istioclient.Interface, r *rig, stable, canary int32) time.Duration {
	t.Helper()
	vs, err := ic.NetworkingV1().VirtualServices(r.ns).Get(t.Context(), "reviews", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	vs.Spec.Http[0].Route[0].Weight, vs.Spec.Http[0].Route[1].Weight = stable, canary
	written := time.Now()
	if _, err := ic.NetworkingV1().VirtualServices(r.ns).Update(t.Context(), vs, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	want := map[string]uint32{r.stable: uint32(stable), r.canary: uint32(canary)}
	snap, err := r.xds.WaitFor(waitCtx(t, 10*time.Second), func(s *trafficgen.Snapshot) bool {
		d, ok := s.Destination(r.host)
		return ok && weightsAre(d, want)
	})
	if err != nil {
		d, _ := snap.Destination(r.host)
		t.Fatalf("weights %d/%d not in the client within 10s: have %v: %v", stable, canary, d.Weights(), err)
	}
	return snap.UpdatedAt.Sub(written).Round(time.Millisecond)
}

// weightsAre compares a destination's weights, a zero weight being the
// same as an absent cluster (istiod leaves zero-weight clusters out).
func weightsAre(d trafficgen.Destination, want map[string]uint32) bool {
	have := d.Weights()
	for name, w := range want {
		if have[name] != w {
			return false
		}
	}
	for name, w := range have {
		if want[name] != w {
			return false
		}
	}
	return true
}

// healthyEndpoints counts the HEALTHY endpoints of a cluster of the
// destination, -1 when the cluster is not there or not warm.
func healthyEndpoints(d trafficgen.Destination, cluster string) int {
	for _, c := range d.Clusters {
		if c.Name != cluster {
			continue
		}
		if !c.Known || !c.Warm {
			return -1
		}
		n := 0
		for _, e := range c.Endpoints {
			if e.Health == trafficgen.HealthHealthy {
				n++
			}
		}
		return n
	}
	return -1
}

// share is the canary cluster's share of the mesh requests between two
// Stats.
func share(before, after trafficgen.Stats, cluster string) float64 {
	n := after.Mesh.Requests - before.Mesh.Requests
	c := after.Mesh.ByCluster[cluster].Requests - before.Mesh.ByCluster[cluster].Requests
	return float64(c) / float64(n)
}

// waitMoreRequests waits until n more requests went through the mesh.
func waitMoreRequests(t *testing.T, g *trafficgen.Generator, since trafficgen.Stats, n int64) {
	t.Helper()
	kit.Eventually(t, 60*time.Second, fmt.Sprintf("%d more requests", n), func(context.Context) error {
		if got := g.Stats().Mesh.Requests - since.Mesh.Requests; got < n {
			return fmt.Errorf("%d requests", got)
		}
		return nil
	})
}

// waitCtx is the test's context with a timeout.
func waitCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}
