package faults_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	istioclient "istio.io/client-go/pkg/clientset/versioned"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/canary-io/canary/contract"
	"github.com/canary-io/canary/e2e/bookinfo"
	"github.com/canary-io/canary/e2e/cluster"
	"github.com/canary-io/canary/e2e/controller"
	"github.com/canary-io/canary/e2e/kit"
	"github.com/canary-io/canary/e2e/scenario"
	"github.com/canary-io/canary/stepper"
	"github.com/canary-io/canary/trafficgen"
)

// ns is where the suite's bookinfo runs.
const ns = "faults"

// interval is each step's length in the suite: short, so that the crash
// matrix stays within make test's budget.
const interval = 3 * time.Second

var (
	env     *cluster.Cluster
	ctrl    *controller.Process
	traffic *scenario.Traffic
	prom    *promProxy
	// flags are the controller's flags in every test.
	flags []string
	// stable is the version of reviews serving users between tests.
	stable = "v1"
	// versions counts the versions applied, to give each a new image.
	versions int
)

// badShare is the share of requests a bad version answers with 503.
const badShare = 0.5

// maxVersions bounds the bad images the traffic generator knows.
const maxVersions = 40

// TestMain sets the suite up once (setUp). A test that works on the
// suite's reviews in namespace ns (the package's stable and versions, the
// shared traffic generator), restarts the controller, or changes
// Prometheus, its proxy or its scrape interval stays serial; only a test
// in a namespace of its own that changes nothing shared calls t.Parallel.
func TestMain(m *testing.M) {
	os.Exit(cluster.RunTests(m, cluster.Options{Istiod: true, ScrapeInterval: time.Second}, func(c *cluster.Cluster) {
		env = c
		if err := setUp(context.Background(), c); err != nil {
			fmt.Fprintln(os.Stderr, "fault suite set-up:", err)
			os.Exit(1)
		}
	}))
}

// setUp starts the controller (built with the crash points) behind a
// Prometheus proxy the tests can break, deploys bookinfo with reviews v1,
// and starts productpage's stand-in sidecar.
func setUp(ctx context.Context, c *cluster.Cluster) error {
	var err error
	if prom, err = startPromProxy(c.PrometheusURL); err != nil {
		return err
	}
	if ctrl, err = controller.BuildWithTags(c, "faultinject"); err != nil {
		return err
	}
	flags = []string{"--prometheus-url=" + prom.URL, "--propagation-delay=1s", "--canary-removal-delay=2s",
		"--scrape-interval-refresh=2s", "--query-timeout=2s"}
	if err := ctrl.Start(flags...); err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(c.Admin)
	if err != nil {
		return err
	}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name: ns, Labels: map[string]string{"istio-injection": "enabled"},
	}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	if out, err := kit.TryKubectl(ctx, c, bookinfo.App, "-n", ns, "apply", "-f", "-"); err != nil {
		return fmt.Errorf("deploy bookinfo: %v\n%s", err, out)
	}
	if out, err := kit.TryKubectl(ctx, c, reviews(stable), "-n", ns, "apply", "-f", "-"); err != nil {
		return fmt.Errorf("deploy reviews: %v\n%s", err, out)
	}
	var bad []trafficgen.BadImage
	for i := range maxVersions {
		bad = append(bad, trafficgen.BadImage{Image: bookinfo.Image(fmt.Sprintf("bad%d", i)), ErrorShare: badShare})
	}
	if traffic, err = scenario.StartTraffic(ctx, c, cs, ns, bad); err != nil {
		return err
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		d, err := cs.AppsV1().Deployments(ns).Get(ctx, "reviews", metav1.GetOptions{})
		if err == nil && d.Annotations[contract.KeyPhase] == string(contract.PhaseIdle) && d.Status.AvailableReplicas == 3 && d.Status.UpdatedReplicas == 3 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("reviews v1 not rolled out and Idle within 2 minutes")
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// userAnnotation and userLabel are the user's own metadata on reviews:
// every fault must leave them as applied (I4).
const (
	userAnnotation = "team.example.com/owner"
	userLabel      = "team.example.com/tier"
)

// reviews is the user's reviews Deployment at version: two steps of
// interval, one failed check tolerated, a 30 s progress deadline.
func reviews(version string, settings ...string) string {
	extra := `    canary.io/steps: "25,50"` + "\n"
	if slices.ContainsFunc(settings, func(s string) bool { return strings.HasPrefix(s, contract.KeyStrategy+":") }) {
		extra = "" // canary.io/steps is for the canary strategy only
	}
	for _, s := range settings {
		extra += "    " + s + "\n"
	}
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: reviews
  labels: {app: reviews, %s: backend}
  annotations:
    %s: checkout
    canary.io/enabled: "true"
%s    canary.io/interval: "%s"
    canary.io/threshold: "1"
    canary.io/progress-deadline: "30s"
spec:
  replicas: 3
  selector: {matchLabels: {app: reviews}}
  template:
    metadata: {labels: {app: reviews, version: "%s"}}
    spec:
      serviceAccountName: bookinfo-reviews
      containers:
      - name: reviews
        image: %s
        ports: [{containerPort: 9080}]
`, userLabel, userAnnotation, extra, interval, version, bookinfo.Image(version))
}

// nextVersion names a new version of reviews: good ones answer well, bad
// ones fail badShare of requests.
func nextVersion(t *testing.T, good bool) string {
	t.Helper()
	versions++
	t.Cleanup(func() { settleAfterFailure(t) })
	if versions >= maxVersions {
		t.Fatalf("more than %d versions: raise maxVersions", maxVersions)
	}
	if good {
		return fmt.Sprintf("good%d", versions)
	}
	return fmt.Sprintf("bad%d", versions)
}

// settleAfterFailure lets a failed test's analysis run to its end, so
// that the failure is reported once and not again by every test after it,
// whose apply the webhook would deny while reviews is still rolling out.
func settleAfterFailure(t *testing.T) {
	if !t.Failed() {
		return
	}
	prom.set(promOK)
	cs, _ := clients(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for ctx.Err() == nil {
		d, err := cs.AppsV1().Deployments(ns).Get(ctx, "reviews", metav1.GetOptions{})
		if err == nil {
			switch contract.Phase(d.Annotations[contract.KeyPhase]) {
			case contract.PhaseProgressing, contract.PhasePromoting:
			default:
				return
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Log("after the failure, reviews' analysis did not end within 2m")
}

func clients(t *testing.T) (*kubernetes.Clientset, *istioclient.Clientset) {
	t.Helper()
	return kit.Clients(t, env)
}

func kubectl(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	return kit.Kubectl(t, env, stdin, append([]string{"-n", ns}, args...)...)
}

// applyUntilFirstStep applies reviews at version and waits until its first
// step's weight (25) is recorded.
func applyUntilFirstStep(t *testing.T, cs kubernetes.Interface, version string) {
	t.Helper()
	kubectl(t, reviews(version), "apply", "-f", "-")
	kit.WaitDeployment(t, cs, ns, "reviews", time.Minute, "step 1 running", func(d *appsv1.Deployment) bool {
		return d.Annotations[contract.KeyWeight] == "25"
	})
}

// restartController stops the controller (if running) and starts it with
// the suite's flags plus extra, and no crash point.
func restartController(t *testing.T, extra ...string) {
	t.Helper()
	ctrl.Stop()
	ctrl.Env = nil
	if err := ctrl.Start(append(append([]string{}, flags...), extra...)...); err != nil {
		t.Fatal(err)
	}
}

// backToStable makes the stable version serve again after a rollback (the
// user applies it again: the hold ends) and waits until reviews is Idle
// and rolled out, with no canary left.
func backToStable(t *testing.T) {
	t.Helper()
	cs, _ := clients(t)
	kubectl(t, reviews(stable), "apply", "-f", "-")
	kit.WaitDeployment(t, cs, ns, "reviews", time.Minute, "stable applied again: Idle and rolled out", func(d *appsv1.Deployment) bool {
		return d.Annotations[contract.KeyPhase] == string(contract.PhaseIdle) && !d.Spec.Paused &&
			d.Status.UpdatedReplicas == 3 && d.Status.AvailableReplicas == 3 && d.Status.Replicas == 3
	})
	waitNoCanary(t, cs)
}

// waitNoCanary waits until reviews-canary and its pods are gone.
func waitNoCanary(t *testing.T, cs kubernetes.Interface) {
	t.Helper()
	kit.Eventually(t, time.Minute, "the canary's objects gone", func(ctx context.Context) error {
		if _, err := cs.AppsV1().Deployments(ns).Get(ctx, stepper.CanaryName("reviews"), metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("reviews-canary still exists (err %v)", err)
		}
		pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: stepper.LabelCanary + "=true"})
		if err != nil {
			return err
		}
		if len(pods.Items) > 0 {
			return fmt.Errorf("%d canary pods left", len(pods.Items))
		}
		return nil
	})
}

// sample is one look at what users get.
type sample struct {
	at            time.Time
	phase         contract.Phase
	recorded      string // canary.io/weight
	routed        int32  // the canary's weight in the VirtualService or the HTTPRoute reviews
	readyStable   int    // ready endpoints of the user's Service
	rejected      string // canary.io/rejected-revision
	revision      string
	vsFound       bool
	endpointsRead bool
	selector      string // the Service's selector
	pods          string // the pods' template hashes and readiness
}

// monitor samples reviews every 100 ms during an analysis, across every
// controller crash, and checks the invariants users rely on.
type monitor struct {
	cs   kubernetes.Interface
	ic   istioclient.Interface
	rc   client.Client // HTTPRoutes
	stop context.CancelFunc
	done chan struct{}

	mu      sync.Mutex
	samples []sample
}

func startMonitor(t *testing.T) *monitor {
	t.Helper()
	cs, ic := clients(t)
	ctx, cancel := context.WithCancel(context.Background())
	m := &monitor{cs: cs, ic: ic, rc: kit.RouteClient(t, env), stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(m.done)
		for ctx.Err() == nil {
			s := m.look(ctx)
			m.mu.Lock()
			m.samples = append(m.samples, s)
			m.mu.Unlock()
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(func() { m.end() })
	return m
}

func (m *monitor) look(ctx context.Context) sample {
	s := sample{at: time.Now(), readyStable: -1}
	if d, err := m.cs.AppsV1().Deployments(ns).Get(ctx, "reviews", metav1.GetOptions{}); err == nil {
		s.phase = contract.Phase(d.Annotations[contract.KeyPhase])
		s.recorded = d.Annotations[contract.KeyWeight]
		s.rejected = d.Annotations[contract.KeyRejectedRevision]
		s.revision = d.Annotations[contract.KeyRevision]
	}
	if vs, err := m.ic.NetworkingV1().VirtualServices(ns).Get(ctx, "reviews", metav1.GetOptions{}); err == nil {
		s.vsFound = true
		for _, route := range vs.Spec.Http {
			for _, dst := range route.Route {
				if strings.HasPrefix(dst.Destination.GetHost(), stepper.CanaryName("reviews")) {
					s.routed = max(s.routed, dst.Weight)
				}
			}
		}
	}
	var rt gwv1.HTTPRoute
	if err := m.rc.Get(ctx, types.NamespacedName{Namespace: ns, Name: "reviews"}, &rt); err == nil {
		s.vsFound = true
		s.routed = max(s.routed, canaryShare(&rt))
	}
	if svc, err := m.cs.CoreV1().Services(ns).Get(ctx, "reviews", metav1.GetOptions{}); err == nil {
		s.selector = fmt.Sprint(svc.Spec.Selector)
	}
	if pods, err := m.cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=reviews"}); err == nil {
		var b strings.Builder
		for _, p := range pods.Items {
			ready := false
			for _, c := range p.Status.Conditions {
				ready = ready || (c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue)
			}
			fmt.Fprintf(&b, "%s(ready %v, deleting %v) ", p.Labels[appsv1.DefaultDeploymentUniqueLabelKey], ready, p.DeletionTimestamp != nil)
		}
		s.pods = b.String()
	}
	if slices, err := m.cs.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=reviews"}); err == nil {
		s.endpointsRead = true
		s.readyStable = 0
		for _, sl := range slices.Items {
			for _, e := range sl.Endpoints {
				if e.Conditions.Ready == nil || *e.Conditions.Ready {
					s.readyStable++
				}
			}
		}
	}
	return s
}

// end stops the sampling and returns the samples.
func (m *monitor) end() []sample {
	m.stop()
	<-m.done
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.samples
}

// verdict checks the samples of one analysis of revision against the
// invariants and returns what broke:
//
//   - I1: once the rollback of the revision is recorded, the canary's
//     routed weight never rises again (it only falls, to 0), and no mesh
//     request reaches the canary later than lag after it reached 0;
//   - I2: the user's Service always has ready endpoints;
//   - routed only when recorded: a routed canary weight w > 0 appears only
//     once the Deployment has recorded w (write-ahead), seen in the same
//     sample or the next.
func verdict(samples []sample, lag time.Duration) []string {
	var broken []string
	var rolledBackAt, zeroAt time.Time
	var peak int32 = -1
	lastRouted := int32(0)
	var emptySince time.Time
	for i, s := range samples {
		empty := s.endpointsRead && s.readyStable == 0
		if empty && emptySince.IsZero() {
			emptySince = s.at
			broken = append(broken, fmt.Sprintf("I2: the Service reviews had no ready endpoint from %s (selector %s; pods %s)",
				s.at.Format("15:04:05.000"), s.selector, s.pods))
		}
		if !empty && !emptySince.IsZero() {
			broken[len(broken)-1] += fmt.Sprintf(" until %s", s.at.Format("15:04:05.000"))
			emptySince = time.Time{}
		}
		if s.phase == contract.PhaseRolledBack && rolledBackAt.IsZero() {
			rolledBackAt, peak = s.at, s.routed
		}
		if !rolledBackAt.IsZero() {
			if s.routed > peak {
				broken = append(broken, fmt.Sprintf("I1: the canary's weight rose to %d%% at %s, after the rollback was recorded at %s",
					s.routed, s.at.Format("15:04:05.000"), rolledBackAt.Format("15:04:05.000")))
			}
			peak = min(peak, s.routed)
			if s.routed == 0 && zeroAt.IsZero() {
				zeroAt = s.at
			}
		}
		if s.routed > 0 && s.routed != lastRouted {
			ok := s.recorded == fmt.Sprint(s.routed) || (i+1 < len(samples) && samples[i+1].recorded == fmt.Sprint(s.routed))
			// A rollback lowers the weight after recording 0: a lower
			// weight routed is never traffic the record does not allow.
			if !ok && s.routed > lastRouted {
				broken = append(broken, fmt.Sprintf("the canary was routed %d%% at %s while the Deployment recorded %q: a weight raised before it was recorded",
					s.routed, s.at.Format("15:04:05.000"), s.recorded))
			}
		}
		lastRouted = s.routed
	}
	if !zeroAt.IsZero() {
		if last, _ := traffic.LastMesh(stepper.CanaryName("reviews")); last.After(zeroAt.Add(lag)) {
			broken = append(broken, fmt.Sprintf("I1: a mesh request reached the canary at %s, %s after its weight was 0",
				last.Format("15:04:05.000"), last.Sub(zeroAt).Round(time.Millisecond)))
		}
	} else if !rolledBackAt.IsZero() {
		broken = append(broken, "I1: the canary's weight never reached 0 after the rollback")
	}
	return broken
}

// meshLag is how long after the weight reached 0 in the VirtualService a
// mesh request may still reach the canary: istiod's push and the
// generator's next request.
const meshLag = 3 * time.Second

// checkUserObjects checks I4: the user's own metadata and template on
// reviews are as applied, and the Service's spec as bookinfo has it.
func checkUserObjects(t *testing.T, cs kubernetes.Interface, image string) *appsv1.Deployment {
	t.Helper()
	d, err := cs.AppsV1().Deployments(ns).Get(t.Context(), "reviews", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if d.Annotations[userAnnotation] != "checkout" || d.Labels[userLabel] != "backend" {
		t.Errorf("I4: the user's annotation %q and label %q are %q and %q, want checkout and backend",
			userAnnotation, userLabel, d.Annotations[userAnnotation], d.Labels[userLabel])
	}
	if got := d.Spec.Template.Spec.Containers[0].Image; got != image {
		t.Errorf("I4: the template's image is %s, want the one applied, %s", got, image)
	}
	svc, err := cs.CoreV1().Services(ns).Get(t.Context(), "reviews", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 9080 || svc.Spec.Selector["app"] != "reviews" {
		t.Errorf("I4: the Service's spec changed: ports %v, selector %v", svc.Spec.Ports, svc.Spec.Selector)
	}
	return d
}

// checkEnded checks I3 for an analysis that ended in phase want: no canary
// left, the Service unpinned, no weight routed to the canary, and the
// Progressing condition as kubectl rollout status and GitOps tools read
// it.
func checkEnded(t *testing.T, cs kubernetes.Interface, ic istioclient.Interface, want contract.Phase) *appsv1.Deployment {
	t.Helper()
	waitNoCanary(t, cs)
	kit.Eventually(t, 30*time.Second, "the Service unpinned and nothing routed to the canary", func(ctx context.Context) error {
		svc, err := cs.CoreV1().Services(ns).Get(ctx, "reviews", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if h, ok := svc.Spec.Selector[appsv1.DefaultDeploymentUniqueLabelKey]; ok {
			return fmt.Errorf("the Service is still pinned to %s", h)
		}
		var rt gwv1.HTTPRoute
		if err := kit.RouteClient(t, env).Get(ctx, types.NamespacedName{Namespace: ns, Name: "reviews"}, &rt); err == nil {
			if share := canaryShare(&rt); share > 0 {
				return fmt.Errorf("the HTTPRoute routes %d%% to the canary", share)
			}
		} else if !apierrors.IsNotFound(err) {
			return err
		}
		vs, err := ic.NetworkingV1().VirtualServices(ns).Get(ctx, "reviews", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		} else if err != nil {
			return err
		}
		for _, r := range vs.Spec.Http {
			for _, dst := range r.Route {
				if strings.HasPrefix(dst.Destination.GetHost(), stepper.CanaryName("reviews")) && dst.Weight > 0 {
					return fmt.Errorf("the VirtualService routes %d%% to the canary", dst.Weight)
				}
			}
		}
		return nil
	})
	d, err := cs.AppsV1().Deployments(ns).Get(t.Context(), "reviews", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := contract.Phase(d.Annotations[contract.KeyPhase]); got != want {
		t.Fatalf("I3: phase %s (%s), want %s", got, d.Annotations[contract.KeyMessage], want)
	}
	failed := false
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentProgressing && c.Status == corev1.ConditionFalse && c.Reason == "ProgressDeadlineExceeded" {
			failed = true
		}
	}
	if failed != (want == contract.PhaseRolledBack) {
		t.Errorf("I3: Progressing=False(ProgressDeadlineExceeded) is %v in phase %s", failed, want)
	}
	return d
}

// canaryShare is the largest share (percent) of a rule of the HTTPRoute
// that goes to the canary.
func canaryShare(rt *gwv1.HTTPRoute) int32 {
	var share int32
	for _, rule := range rt.Spec.Rules {
		var all, canary int64
		for _, r := range rule.BackendRefs {
			w := int64(1)
			if r.Weight != nil {
				w = int64(*r.Weight)
			}
			all += w
			if string(r.Name) == stepper.CanaryName("reviews") {
				canary += w
			}
		}
		if all > 0 {
			share = max(share, int32(canary*100/all))
		}
	}
	return share
}
