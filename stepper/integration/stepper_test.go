package integration

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	istionetv1 "istio.io/client-go/pkg/apis/networking/v1"
	istioclient "istio.io/client-go/pkg/clientset/versioned"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/canary-io/canary/contract"
	"github.com/canary-io/canary/e2e/cluster"
	"github.com/canary-io/canary/e2e/controller"
	"github.com/canary-io/canary/e2e/kit"
	"github.com/canary-io/canary/stepper"
)

var (
	env  *cluster.Cluster
	prom *kit.PromStandIn
)

// TestMain starts the cluster, the Prometheus stand-in and the controller
// once for the package. A test that works only in a namespace of its own
// (kit.Namespace, its stand-in values set with prom.Set, its own hook
// server) calls t.Parallel: such tests run two at a time once the serial
// ones have finished. A test stays serial if it kills, restarts or adds a
// controller process, reloads the real Prometheus, changes what other
// namespaces would see, or asserts a bound of a second or so that a
// concurrent test's load could break.
func TestMain(m *testing.M) {
	os.Exit(cluster.RunTests(m, cluster.Options{}, func(c *cluster.Cluster) {
		env = c
		var err error
		if prom, err = kit.StartPromStandIn(); err != nil {
			fmt.Fprintln(os.Stderr, "prometheus stand-in:", err)
			os.Exit(1)
		}
		if err := startController(c, prom.URL); err != nil {
			fmt.Fprintln(os.Stderr, "start canary-controller:", err)
			os.Exit(1)
		}
	}))
}

// ctrlProc is the canary-controller under test; stepperFlags are the
// flags it always runs with.
var (
	ctrlProc     *controller.Process
	stepperFlags []string
)

func startController(c *cluster.Cluster, promURL string) error {
	var err error
	if ctrlProc, err = controller.Build(c); err != nil {
		return err
	}
	// The stand-in has no targets API: its "scrapes" are instant.
	stepperFlags = []string{"--prometheus-url=" + promURL, "--propagation-delay=500ms", "--scrape-interval=1s", "--canary-removal-delay=1s"}
	return ctrlProc.Start(stepperFlags...)
}

func clients(t *testing.T) (*kubernetes.Clientset, *istioclient.Clientset) {
	t.Helper()
	return kit.Clients(t, env)
}

// setup creates a namespace with the reviews Service and Deployment v1
// (opted in, short steps), rolled out and Idle.
func setup(t *testing.T, settings ...string) (string, *kubernetes.Clientset, *istioclient.Clientset) {
	t.Helper()
	cs, ic := clients(t)
	ns := kit.Namespace(t, cs, "stepper", nil)
	kubectl(t, fmt.Sprintf(`apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: %s, labels: {app: reviews}}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 9080}]
`, ns), "apply", "-f", "-")
	kubectl(t, manifest(ns, "v1", settings...), "apply", "-f", "-")
	// Idle, and seen by the stepper (it records the Enabled Event as
	// emitted): a test's next apply does not replace a transition the
	// stepper has not seen yet (the first test may start before its caches).
	waitFor(t, cs, ns, 60*time.Second, "v1 rolled out, Idle and evented", func(d *appsv1.Deployment) bool {
		return d.Annotations[contract.KeyPhase] == "Idle" && d.Status.AvailableReplicas == 3 && d.Status.UpdatedReplicas == 3 &&
			d.Annotations[contract.KeyEventedTransition] != ""
	})
	return ns, cs, ic
}

// manifest renders reviews at version with settings: steps 20,40,60
// (unless settings set them, or a strategy: canary.io/steps is for the
// canary strategy only), interval 2s, progress deadline 60s unless settings say otherwise.
func manifest(ns, version string, settings ...string) string {
	annotations := []string{`canary.io/enabled: "true"`, `canary.io/interval: "2s"`, `canary.io/progress-deadline: "60s"`}
	if !slices.ContainsFunc(settings, func(s string) bool {
		return strings.HasPrefix(s, contract.KeyStrategy+":") || strings.HasPrefix(s, contract.KeySteps+":")
	}) {
		annotations = append(annotations, `canary.io/steps: "20,40,60"`)
	}
	annotations = append(annotations, settings...)
	return kit.Reviews(ns, version, "reviews:"+version, 3, annotations, nil)
}

func kubectl(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	return kit.Kubectl(t, env, stdin, args...)
}

// waitFor polls the reviews Deployment until cond holds, and returns it.
func waitFor(t *testing.T, cs kubernetes.Interface, ns string, timeout time.Duration, what string, cond func(*appsv1.Deployment) bool) *appsv1.Deployment {
	t.Helper()
	return kit.WaitDeployment(t, cs, ns, "reviews", timeout, what, cond)
}

// watchWeights records every distinct canary.io/weight the Deployment
// shows until stop is closed.
func watchWeights(t *testing.T, cs kubernetes.Interface, ns string) func() []string {
	ctx, cancel := context.WithCancel(t.Context())
	var mu sync.Mutex
	var seen []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			d, err := cs.AppsV1().Deployments(ns).Get(ctx, "reviews", metav1.GetOptions{})
			if err == nil {
				w := d.Annotations[contract.KeyWeight]
				mu.Lock()
				if len(seen) == 0 || seen[len(seen)-1] != w {
					seen = append(seen, w)
				}
				mu.Unlock()
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	return func() []string {
		cancel()
		<-done
		mu.Lock()
		defer mu.Unlock()
		return seen
	}
}

// movedWeights are the weights of seen that put traffic on the canary.
func movedWeights(seen []string) []string {
	var moved []string
	for _, w := range seen {
		if w != "0" && w != "" {
			moved = append(moved, w)
		}
	}
	return moved
}

// watchVersions records every version of the Deployment reviews the
// apiserver serves from now until the returned function is called.
func watchVersions(t *testing.T, cs kubernetes.Interface, ns string) func() []appsv1.Deployment {
	w, err := cs.AppsV1().Deployments(ns).Watch(t.Context(), metav1.ListOptions{FieldSelector: "metadata.name=reviews"})
	if err != nil {
		t.Fatal(err)
	}
	var seen []appsv1.Deployment
	done := make(chan struct{})
	go func() {
		defer close(done)
		for e := range w.ResultChan() {
			if d, ok := e.Object.(*appsv1.Deployment); ok {
				seen = append(seen, *d)
			}
		}
	}()
	return func() []appsv1.Deployment {
		w.Stop()
		<-done
		return seen
	}
}

func TestFullPromotion(t *testing.T) {
	t.Parallel()
	ns, cs, ic := setup(t)
	prom.Set(ns, map[string]float64{"canary/success": 100, "stable/success": 99.9, "canary/p99": 120, "stable/p99": 110})
	weights := watchWeights(t, cs, ns)
	versions := watchVersions(t, cs, ns)
	start := time.Now()
	kubectl(t, manifest(ns, "v2"), "apply", "-f", "-")
	// Watch-driven: the canary appears at once, not at a timer's tick.
	err := wait.PollUntilContextTimeout(t.Context(), 20*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := cs.AppsV1().Deployments(ns).Get(ctx, stepper.CanaryName("reviews"), metav1.GetOptions{})
		return err == nil, nil
	})
	if err != nil {
		t.Fatalf("no canary Deployment within 30s of the apply")
	}
	fmt.Printf("BENCH reaction: reviews-canary created %v after the apply\n", time.Since(start).Round(10*time.Millisecond))

	// The controller's metrics serve the rollout as it goes.
	// The controller sets them once the apiserver has answered its write,
	// which a reader may see a moment before.
	waitFor(t, cs, ns, 60*time.Second, "weight 40", func(d *appsv1.Deployment) bool { return d.Annotations[contract.KeyWeight] == "40" })
	kit.Eventually(t, 2*time.Second, "the metrics at weight 40", func(context.Context) error {
		if m := scrape(t); !strings.Contains(m, fmt.Sprintf(`canary_weight{deployment="reviews",namespace=%q} 40`, ns)) ||
			!strings.Contains(m, fmt.Sprintf(`canary_phase{deployment="reviews",namespace=%q,phase="Progressing"} 1`, ns)) {
			return fmt.Errorf("mid-rollout, the metrics endpoint does not report weight 40 and phase Progressing:\n%s", grep(m, ns))
		}
		return nil
	})

	// During the analysis the user's Service is pinned to the stable pods.
	svcPinned := false
	d := waitFor(t, cs, ns, 90*time.Second, "v2 promoted", func(d *appsv1.Deployment) bool {
		if d.Annotations[contract.KeyPhase] == "Progressing" && !svcPinned {
			svc, err := cs.CoreV1().Services(ns).Get(t.Context(), "reviews", metav1.GetOptions{})
			if err == nil {
				_, svcPinned = svc.Spec.Selector[appsv1.DefaultDeploymentUniqueLabelKey]
			}
		}
		return d.Annotations[contract.KeyPhase] == "Succeeded"
	})
	fmt.Printf("BENCH full promotion (steps 20,40,60, interval 2s): %v from apply to Succeeded\n", time.Since(start).Round(100*time.Millisecond))
	seen := weights()
	// The write that unpauses the Deployment for the promotion also
	// records the Promoting Event as emitted (it went out after the state
	// write before it): the next pass has nothing to write for it.
	// Nor is it written before the unpause, by a pass of its own: the
	// unpause, in the pass that promotes, retries over the deployment
	// controller's status writes rather than leaving it to the next pass.
	unpaused := false
	for _, v := range versions() {
		a := v.Annotations
		id := a[contract.KeyPhase] + "/" + a[contract.KeyRevision] + "/" + a[contract.KeyLastTransition]
		if a[contract.KeyPhase] != string(contract.PhasePromoting) {
			continue
		}
		if v.Spec.Paused {
			if a[contract.KeyEventedTransition] == id {
				t.Errorf("version %s records the promotion's Event before the Deployment is unpaused: a write of its own", v.ResourceVersion)
			}
			continue
		}
		if a[contract.KeyEventedTransition] != id {
			t.Errorf("the Deployment unpaused for the promotion records evented transition %q, want %q", a[contract.KeyEventedTransition], id)
		}
		unpaused = true
		break
	}
	if !unpaused {
		t.Errorf("no version of the Deployment in phase Promoting and unpaused was seen")
	}
	moved := movedWeights(seen)
	if !slices.Equal(moved, []string{"20", "40", "60"}) {
		t.Errorf("weights seen %v, want 20, 40, 60 in order", seen)
	}
	if !svcPinned {
		t.Errorf("the user's Service was never pinned to the stable pods during the analysis")
	}
	if d.Spec.Paused || d.Spec.Template.Spec.Containers[0].Image != "reviews:v2" {
		t.Errorf("after promotion: paused %v, image %s", d.Spec.Paused, d.Spec.Template.Spec.Containers[0].Image)
	}
	if d.Annotations[contract.KeyStableRevision] != d.Annotations[contract.KeyRevision] {
		t.Errorf("stable-revision %s, want the promoted revision %s", d.Annotations[contract.KeyStableRevision], d.Annotations[contract.KeyRevision])
	}
	waitFor(t, cs, ns, 30*time.Second, "v2 rolled out", func(d *appsv1.Deployment) bool {
		return d.Status.UpdatedReplicas == 3 && d.Status.AvailableReplicas == 3 && d.Status.Replicas == 3
	})
	// The canary objects are gone and the Service unpinned.
	if _, err := cs.AppsV1().Deployments(ns).Get(t.Context(), stepper.CanaryName("reviews"), metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("reviews-canary still exists after promotion (err %v)", err)
	}
	if _, err := cs.CoreV1().Services(ns).Get(t.Context(), stepper.CanaryName("reviews"), metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("Service reviews-canary still exists after promotion (err %v)", err)
	}
	svc, err := cs.CoreV1().Services(ns).Get(t.Context(), "reviews", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, pinned := svc.Spec.Selector[appsv1.DefaultDeploymentUniqueLabelKey]; pinned {
		t.Errorf("the user's Service is still pinned after promotion: %v", svc.Spec.Selector)
	}
	vs, err := ic.NetworkingV1().VirtualServices(ns).Get(t.Context(), "reviews", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the generated VirtualService: %v", err)
	}
	if r := vs.Spec.Http[0].Route; len(r) != 1 || r[0].Destination.Host != "reviews" || r[0].Weight != 100 {
		t.Errorf("VirtualService after promotion routes %v, want all traffic to reviews", r)
	}
	wants := []string{
		fmt.Sprintf(`canary_phase{deployment="reviews",namespace=%q,phase="Succeeded"} 1`, ns),
		fmt.Sprintf(`canary_rollouts_total{namespace=%q,outcome="Succeeded",reason="Succeeded"} 1`, ns),
		fmt.Sprintf(`canary_check_value{arm="canary",check="success rate",deployment="reviews",namespace=%q} 100`, ns),
		fmt.Sprintf(`canary_check_value{arm="stable",check="p99",deployment="reviews",namespace=%q} 110`, ns),
		fmt.Sprintf(`canary_step_duration_seconds_count{namespace=%q} 3`, ns),
		fmt.Sprintf(`canary_rollout_duration_seconds_count{namespace=%q,outcome="Succeeded"} 1`, ns),
		fmt.Sprintf(`canary_failed_checks{deployment="reviews",namespace=%q} 0`, ns),
	}
	// The metrics follow the recorded state within a moment.
	kit.Eventually(t, 5*time.Second, "the metrics after the promotion", func(context.Context) error {
		m := scrape(t)
		for _, want := range wants {
			if !strings.Contains(m, want) {
				return fmt.Errorf("the metrics endpoint lacks %s; it has:\n%s", want, grep(m, ns))
			}
		}
		return nil
	})
	// An Event at every transition.
	events, err := cs.EventsV1().Events(ns).List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	reasons := map[string]int{}
	for _, e := range events.Items {
		if e.Regarding.Kind == "Deployment" && e.Regarding.Name == "reviews" {
			reasons[e.Reason]++
		}
	}
	for _, want := range []string{"Enabled", "Held", "Promoting", "Succeeded"} {
		if reasons[want] == 0 {
			t.Errorf("no %s Event on the Deployment (reasons: %v)", want, reasons)
		}
	}
	// Three steps started; two passed on their own Event (the third's pass
	// is the promotion's), the second's in the same pass as the third's
	// start: its canary had the pods already (2 of 3 replicas at 40% and
	// at 60%).
	if reasons["StepStarted"] != 3 || reasons["StepPassed"] != 2 {
		t.Errorf("%d StepStarted and %d StepPassed Events, want 3 and 2 (reasons: %v)", reasons["StepStarted"], reasons["StepPassed"], reasons)
	}
}

func TestRollbackOnFailingSuccessRate(t *testing.T) {
	t.Parallel()
	ns, cs, _ := setup(t, `canary.io/threshold: "1"`)
	prom.Set(ns, map[string]float64{"canary/success": 80, "stable/success": 99.9, "canary/p99": 120, "stable/p99": 110})
	kubectl(t, manifest(ns, "v2", `canary.io/threshold: "1"`), "apply", "-f", "-")
	d := waitFor(t, cs, ns, 90*time.Second, "v2 rolled back", func(d *appsv1.Deployment) bool {
		return d.Annotations[contract.KeyPhase] == "RolledBack"
	})
	msg := d.Annotations[contract.KeyMessage]
	if !strings.Contains(msg, "success rate 80") {
		t.Errorf("message %q does not name the failing check and its value", msg)
	}
	if d.Annotations[contract.KeyRejectedRevision] != d.Annotations[contract.KeyRevision] {
		t.Errorf("rejected-revision %q, want %q", d.Annotations[contract.KeyRejectedRevision], d.Annotations[contract.KeyRevision])
	}
	if !d.Spec.Paused {
		t.Errorf("the Deployment was unpaused by a rollback")
	}
	// kubectl rollout status fails.
	waitFor(t, cs, ns, 30*time.Second, "Progressing=False", func(d *appsv1.Deployment) bool {
		for _, c := range d.Status.Conditions {
			if c.Type == appsv1.DeploymentProgressing && c.Status == corev1.ConditionFalse && c.Reason == "ProgressDeadlineExceeded" {
				return true
			}
		}
		return false
	})
	cmd := env.Kubectl(t.Context(), "rollout", "status", "deployment/reviews", "-n", ns, "--timeout=20s")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Errorf("kubectl rollout status exited 0 after a rollback:\n%s", out)
	}
	// The stable pods serve: every pod runs v1.
	pods, err := cs.CoreV1().Pods(ns).List(t.Context(), metav1.ListOptions{LabelSelector: "app=reviews,!" + stepper.LabelCanary})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods.Items {
		if img := p.Spec.Containers[0].Image; img != "reviews:v1" && p.DeletionTimestamp == nil {
			t.Errorf("pod %s runs %s after the rollback", p.Name, img)
		}
	}
}

const serviceManifest = `apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: %s, labels: {app: reviews}}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 9080}]
`

// TestServicePinSurvivesEveryWrite runs an analysis that stays at its
// first step (a long interval), writes the user's Service manifest every
// way a user or GitOps tool does, and checks the pin each time; then an
// abort rolls back and removes the pin.
func TestServicePinSurvivesEveryWrite(t *testing.T) {
	t.Parallel()
	ns, cs, _ := setup(t, `canary.io/interval: "10m"`)
	prom.Set(ns, kit.Healthy)
	kubectl(t, manifest(ns, "v2", `canary.io/interval: "10m"`), "apply", "-f", "-")
	waitFor(t, cs, ns, 60*time.Second, "first step running", func(d *appsv1.Deployment) bool {
		return d.Annotations[contract.KeyWeight] == "20"
	})
	pin := func() string {
		svc, err := cs.CoreV1().Services(ns).Get(t.Context(), "reviews", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return svc.Spec.Selector[appsv1.DefaultDeploymentUniqueLabelKey]
	}
	hash := pin()
	if hash == "" {
		t.Fatalf("the Service is not pinned during the analysis")
	}
	for _, write := range []struct {
		name string
		args []string
	}{
		{"client-side apply", []string{"apply", "-f", "-"}},
		{"replace", []string{"replace", "-f", "-"}},
		{"server-side apply with force", []string{"apply", "--server-side", "--force-conflicts", "--field-manager=flux", "-f", "-"}},
	} {
		out := kubectl(t, fmt.Sprintf(serviceManifest, ns), write.args...)
		if got := pin(); got != hash {
			t.Errorf("after %s the pin is %q, want %q", write.name, got, hash)
		}
		if write.name != "client-side apply" && !strings.Contains(out, "pins it to the stable pods") {
			t.Errorf("%s printed no warning about the kept pin:\n%s", write.name, out)
		}
	}

	kubectl(t, "", "annotate", "deployment/reviews", "-n", ns, "canary.io/abort=first")
	waitFor(t, cs, ns, 60*time.Second, "aborted", func(d *appsv1.Deployment) bool {
		return d.Annotations[contract.KeyPhase] == "RolledBack"
	})
	err := wait.PollUntilContextTimeout(t.Context(), 100*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		return pin() == "", nil
	})
	if err != nil {
		t.Fatalf("the Service is still pinned after the rollback")
	}
}

// TestUserVirtualServiceAndDestinationRule steers a VirtualService of the
// user's, with a header-matched route and a fault injection that must
// survive untouched, and carries the user's DestinationRule's traffic
// policy to the canary.
func TestUserVirtualServiceAndDestinationRule(t *testing.T) {
	t.Parallel()
	settings := []string{`canary.io/interval: "10m"`, `canary.io/virtualservice: "reviews-routes"`}
	cs, ic := clients(t)
	ns := kit.Namespace(t, cs, "stepper", nil)
	kubectl(t, fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews-routes, namespace: %[1]s}
spec:
  hosts: [reviews]
  http:
  - match: [{headers: {end-user: {exact: jason}}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - fault: {abort: {percentage: {value: 1}, httpStatus: 500}}
    route: [{destination: {host: reviews}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: %[1]s}
spec:
  host: reviews
  trafficPolicy:
    connectionPool: {tcp: {maxConnections: 100}}
    outlierDetection: {consecutive5xxErrors: 7, interval: 5m}
`, ns), "apply", "-f", "-")
	kubectl(t, fmt.Sprintf(serviceManifest, ns), "apply", "-f", "-")
	kubectl(t, manifest(ns, "v1", settings...), "apply", "-f", "-")
	prom.Set(ns, kit.Healthy)
	waitFor(t, cs, ns, 60*time.Second, "v1 Idle", func(d *appsv1.Deployment) bool {
		return d.Annotations[contract.KeyPhase] == "Idle" && d.Status.AvailableReplicas == 3
	})
	kubectl(t, manifest(ns, "v2", settings...), "apply", "-f", "-")
	waitFor(t, cs, ns, 60*time.Second, "first step running", func(d *appsv1.Deployment) bool {
		return d.Annotations[contract.KeyWeight] == "20"
	})

	// The weight is recorded before the VirtualService is written: wait
	// for the split.
	var vs *istionetv1.VirtualService
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		var err error
		vs, err = ic.NetworkingV1().VirtualServices(ns).Get(t.Context(), "reviews-routes", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(vs.Spec.Http) == 2 && len(vs.Spec.Http[1].Route) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the user's VirtualService is not split within 30s: %v", vs.Spec.Http)
		}
	}
	if len(vs.Spec.Http) != 2 {
		t.Fatalf("routes: %v", vs.Spec.Http)
	}
	jason := vs.Spec.Http[0]
	if len(jason.Match) != 1 || jason.Match[0].Headers["end-user"].GetExact() != "jason" ||
		len(jason.Route) != 1 || jason.Route[0].Destination.Subset != "v2" {
		t.Errorf("the header-matched route changed: %v", jason)
	}
	def := vs.Spec.Http[1]
	if def.Fault == nil || def.Fault.Abort.GetHttpStatus() != 500 || def.Fault.Abort.Percentage.GetValue() != 1 {
		t.Errorf("the fault injection changed: %v", def.Fault)
	}
	if len(def.Route) != 2 || def.Route[0].Destination.Host != "reviews" || def.Route[0].Weight != 80 ||
		def.Route[1].Destination.Host != "reviews-canary" || def.Route[1].Weight != 20 {
		t.Errorf("the default route is not split 80/20: %v", def.Route)
	}
	if _, err := ic.NetworkingV1().VirtualServices(ns).Get(t.Context(), "reviews", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("a VirtualService was generated although the user named their own (err %v)", err)
	}
	dr, err := ic.NetworkingV1().DestinationRules(ns).Get(t.Context(), "reviews-canary", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("DestinationRule reviews-canary: %v", err)
	}
	if dr.Spec.Host != "reviews-canary" || dr.Spec.TrafficPolicy.GetConnectionPool().GetTcp().GetMaxConnections() != 100 ||
		dr.Spec.TrafficPolicy.GetOutlierDetection().GetConsecutive_5XxErrors().GetValue() != 7 {
		t.Errorf("the canary's DestinationRule does not carry the user's traffic policy: host %s, policy %v", dr.Spec.Host, dr.Spec.TrafficPolicy)
	}
}

// phaseOf waits for a phase and returns the Deployment.
func phaseOf(t *testing.T, cs kubernetes.Interface, ns string, phase contract.Phase, timeout time.Duration) *appsv1.Deployment {
	t.Helper()
	return waitFor(t, cs, ns, timeout, "phase "+string(phase), func(d *appsv1.Deployment) bool {
		return d.Annotations[contract.KeyPhase] == string(phase)
	})
}

func TestNoDataHoldsThenRollsBackAtTheDeadline(t *testing.T) {
	t.Parallel()
	settings := []string{`canary.io/progress-deadline: "6s"`}
	ns, cs, _ := setup(t, settings...)
	// No values for this namespace: every query is empty.
	kubectl(t, manifest(ns, "v2", settings...), "apply", "-f", "-")
	waitFor(t, cs, ns, 30*time.Second, "waiting for data", func(d *appsv1.Deployment) bool {
		return strings.Contains(d.Annotations[contract.KeyMessage], "waiting for data")
	})
	d := phaseOf(t, cs, ns, contract.PhaseRolledBack, 60*time.Second)
	if msg := d.Annotations[contract.KeyMessage]; !strings.Contains(msg, "no data arrived for 6s") {
		t.Errorf("message %q does not say that no data arrived before the deadline", msg)
	}
}

func TestNoDataFailCountsAsAFailedCheck(t *testing.T) {
	t.Parallel()
	settings := []string{`canary.io/no-data: "fail"`, `canary.io/threshold: "1"`}
	ns, cs, _ := setup(t, settings...)
	kubectl(t, manifest(ns, "v2", settings...), "apply", "-f", "-")
	d := phaseOf(t, cs, ns, contract.PhaseRolledBack, 60*time.Second)
	if msg := d.Annotations[contract.KeyMessage]; !strings.Contains(msg, "no data") || !strings.Contains(msg, "exceed the threshold of 1") {
		t.Errorf("message %q: want failed checks without data exceeding the threshold", msg)
	}
}

func TestNewTemplateMidAnalysisRestartsIt(t *testing.T) {
	t.Parallel()
	settings := []string{`canary.io/interval: "10m"`}
	ns, cs, _ := setup(t, settings...)
	prom.Set(ns, kit.Healthy)
	kubectl(t, manifest(ns, "v2", settings...), "apply", "-f", "-")
	v2 := waitFor(t, cs, ns, 60*time.Second, "v2 at 20%", func(d *appsv1.Deployment) bool { return d.Annotations[contract.KeyWeight] == "20" })
	kubectl(t, manifest(ns, "v3", settings...), "apply", "-f", "-")
	v3 := waitFor(t, cs, ns, 60*time.Second, "v3 at 20%", func(d *appsv1.Deployment) bool {
		return d.Annotations[contract.KeyRevision] != v2.Annotations[contract.KeyRevision] && d.Annotations[contract.KeyWeight] == "20"
	})
	if v3.Annotations[contract.KeyStableRevision] != v2.Annotations[contract.KeyStableRevision] {
		t.Errorf("stable revision changed from %s to %s on restart", v2.Annotations[contract.KeyStableRevision], v3.Annotations[contract.KeyStableRevision])
	}
	canary, err := cs.AppsV1().Deployments(ns).Get(t.Context(), stepper.CanaryName("reviews"), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if img := canary.Spec.Template.Spec.Containers[0].Image; img != "reviews:v3" {
		t.Errorf("the canary runs %s after the restart, want reviews:v3", img)
	}
}

func TestStableTemplateReappliedRollsBack(t *testing.T) {
	t.Parallel()
	settings := []string{`canary.io/interval: "10m"`}
	ns, cs, ic := setup(t, settings...)
	prom.Set(ns, kit.Healthy)
	kubectl(t, manifest(ns, "v2", settings...), "apply", "-f", "-")
	waitFor(t, cs, ns, 60*time.Second, "v2 at 20%", func(d *appsv1.Deployment) bool { return d.Annotations[contract.KeyWeight] == "20" })
	kubectl(t, manifest(ns, "v1", settings...), "apply", "-f", "-") // git revert
	d := phaseOf(t, cs, ns, contract.PhaseRolledBack, 30*time.Second)
	if d.Spec.Paused || d.Spec.Template.Spec.Containers[0].Image != "reviews:v1" {
		t.Errorf("after the revert: paused %v, image %s", d.Spec.Paused, d.Spec.Template.Spec.Containers[0].Image)
	}
	err := wait.PollUntilContextTimeout(t.Context(), 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := cs.AppsV1().Deployments(ns).Get(ctx, stepper.CanaryName("reviews"), metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	if err != nil {
		t.Fatalf("the canary was not removed after the revert")
	}
	vs, err := ic.NetworkingV1().VirtualServices(ns).Get(t.Context(), "reviews", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if r := vs.Spec.Http[0].Route; len(r) != 1 || r[0].Destination.Host != "reviews" {
		t.Errorf("after the revert the VirtualService routes %v", r)
	}
}

func TestControlsActOncePerValue(t *testing.T) {
	t.Parallel()
	settings := []string{`canary.io/interval: "10m"`}
	ns, cs, _ := setup(t, settings...)
	prom.Set(ns, kit.Healthy)
	kubectl(t, manifest(ns, "v2", settings...), "apply", "-f", "-")
	waitFor(t, cs, ns, 60*time.Second, "v2 at 20%", func(d *appsv1.Deployment) bool { return d.Annotations[contract.KeyWeight] == "20" })

	kubectl(t, "", "annotate", "deployment/reviews", "-n", ns, "canary.io/pause=true")
	phaseOf(t, cs, ns, contract.PhasePaused, 30*time.Second)
	kubectl(t, "", "annotate", "deployment/reviews", "-n", ns, "canary.io/pause-")
	phaseOf(t, cs, ns, contract.PhaseProgressing, 30*time.Second)

	// promote: rolls v2 out now, though its interval is 10 minutes.
	kubectl(t, "", "annotate", "deployment/reviews", "-n", ns, "canary.io/promote=p1")
	phaseOf(t, cs, ns, contract.PhaseSucceeded, 60*time.Second)

	// The same promote value, kept in git, does not promote v3.
	kubectl(t, manifest(ns, "v3", append(settings, `canary.io/promote: "p1"`)...), "apply", "-f", "-")
	waitFor(t, cs, ns, 60*time.Second, "v3 at 20%", func(d *appsv1.Deployment) bool {
		return d.Annotations[contract.KeyWeight] == "20" && d.Spec.Template.Spec.Containers[0].Image == "reviews:v3"
	})
	time.Sleep(2 * time.Second)
	if p := get(t, cs, ns).Annotations[contract.KeyPhase]; p != "Progressing" {
		t.Fatalf("phase %s after re-applying the acted promote value, want Progressing", p)
	}

	// abort: rolls v3 back; retry analyses it again, once.
	kubectl(t, "", "annotate", "--overwrite", "deployment/reviews", "-n", ns, "canary.io/abort=a1")
	d := phaseOf(t, cs, ns, contract.PhaseRolledBack, 30*time.Second)
	if !strings.Contains(d.Annotations[contract.KeyMessage], `canary.io/abort "a1"`) {
		t.Errorf("rollback message %q does not name the abort", d.Annotations[contract.KeyMessage])
	}
	kubectl(t, "", "annotate", "--overwrite", "deployment/reviews", "-n", ns, "canary.io/retry=r1")
	waitFor(t, cs, ns, 60*time.Second, "v3 analysed again", func(d *appsv1.Deployment) bool {
		return d.Annotations[contract.KeyPhase] == "Progressing" && d.Annotations[contract.KeyWeight] == "20"
	})
}

func TestNameCollisionStopsTheAnalysis(t *testing.T) {
	t.Parallel()
	ns, cs, _ := setup(t)
	kubectl(t, fmt.Sprintf(`apiVersion: v1
kind: Service
metadata: {name: reviews-canary, namespace: %s}
spec:
  selector: {app: something-else}
  ports: [{port: 80}]
`, ns), "apply", "-f", "-")
	kubectl(t, manifest(ns, "v2"), "apply", "-f", "-")
	d := phaseOf(t, cs, ns, contract.PhaseRolledBack, 30*time.Second)
	if msg := d.Annotations[contract.KeyMessage]; !strings.Contains(msg, "Service reviews-canary exists and belongs to someone else") {
		t.Errorf("message %q does not name the collision", msg)
	}
	if d.Annotations[contract.KeyWeight] != "0" {
		t.Errorf("weight %s: traffic moved despite the collision", d.Annotations[contract.KeyWeight])
	}
	svc, err := cs.CoreV1().Services(ns).Get(t.Context(), "reviews-canary", metav1.GetOptions{})
	if err != nil || svc.Spec.Selector["app"] != "something-else" {
		t.Errorf("the other owner's Service was touched: %v %v", svc, err)
	}
}

// TestStepperKilledMidStepResumes kills the controller in the middle of a
// step and starts it again: the rollout resumes at that step and finishes,
// with the weights still in order.
func TestStepperKilledMidStepResumes(t *testing.T) {
	settings := []string{`canary.io/interval: "4s"`}
	ns, cs, _ := setup(t, settings...)
	prom.Set(ns, kit.Healthy)
	weights := watchWeights(t, cs, ns)
	kubectl(t, manifest(ns, "v2", settings...), "apply", "-f", "-")
	waitFor(t, cs, ns, 60*time.Second, "at 40%", func(d *appsv1.Deployment) bool { return d.Annotations[contract.KeyWeight] == "40" })
	time.Sleep(time.Second)
	ctrlProc.Kill()
	time.Sleep(2 * time.Second)
	if err := ctrlProc.Start(stepperFlags...); err != nil {
		t.Fatal(err)
	}
	phaseOf(t, cs, ns, contract.PhaseSucceeded, 90*time.Second)
	moved := movedWeights(weights())
	if !slices.Equal(moved, []string{"20", "40", "60"}) {
		t.Errorf("weights seen %v, want 20, 40, 60 in order across the restart", moved)
	}
}

func get(t *testing.T, cs kubernetes.Interface, ns string) *appsv1.Deployment {
	t.Helper()
	d, err := cs.AppsV1().Deployments(ns).Get(t.Context(), "reviews", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestSlowPrometheusDelaysOnlyItsOwnDeployment: one Deployment's own
// query (a custom metric) hangs; another's rollout, whose built-in checks
// are read in the same batches, goes on at its own pace.
func TestSlowPrometheusDelaysOnlyItsOwnDeployment(t *testing.T) {
	t.Parallel()
	slowMetric := `canary.io/metrics: '[{"name": "queue", "query": "sum(slow_queue{namespace=\"{{namespace}}\"})", "max": 5}]'`
	slowNS, cs, _ := setup(t, slowMetric)
	fastNS, _, _ := setup(t)
	prom.SlowQueries("slow_queue", time.Hour)
	prom.Set(slowNS, kit.Healthy)
	prom.Set(fastNS, kit.Healthy)
	kubectl(t, manifest(slowNS, "v2", slowMetric), "apply", "-f", "-")
	waitFor(t, cs, slowNS, 60*time.Second, "slow analysis at its checks", func(d *appsv1.Deployment) bool {
		return d.Annotations[contract.KeyWeight] == "20"
	})
	start := time.Now()
	kubectl(t, manifest(fastNS, "v2"), "apply", "-f", "-")
	phaseOf(t, cs, fastNS, contract.PhaseSucceeded, 60*time.Second)
	fmt.Printf("BENCH isolation: a rollout beside a hanging Prometheus query took %v\n", time.Since(start).Round(100*time.Millisecond))
	d := waitFor(t, cs, slowNS, 30*time.Second, "the slow Deployment waiting for data", func(d *appsv1.Deployment) bool {
		return strings.Contains(d.Annotations[contract.KeyMessage], "waiting for data")
	})
	if p := d.Annotations[contract.KeyPhase]; p != "Progressing" {
		t.Errorf("the slow Deployment is %s, want still Progressing", p)
	}
}

// TestSecondOptedInDeploymentOnTheServiceIsAConflict: two opted-in
// Deployments behind one Service would steer it against each other.
func TestSecondOptedInDeploymentOnTheServiceIsAConflict(t *testing.T) {
	t.Parallel()
	ns, cs, _ := setup(t)
	kubectl(t, strings.ReplaceAll(strings.Replace(manifest(ns, "v1"), "name: reviews\n", "name: reviews-two\n", 1), "version: v1", "version: two"), "apply", "-f", "-")
	kubectl(t, manifest(ns, "v2"), "apply", "-f", "-")
	d := phaseOf(t, cs, ns, contract.PhaseRolledBack, 30*time.Second)
	if msg := d.Annotations[contract.KeyMessage]; !strings.Contains(msg, "one opted-in Deployment per Service") {
		t.Errorf("message %q does not name the second Deployment", msg)
	}
}

// TestWeightsChangedBySomeoneElseHold: the stepper does not fight a
// person who edits the weights; it holds and says so.
func TestWeightsChangedBySomeoneElseHold(t *testing.T) {
	t.Parallel()
	settings := []string{`canary.io/interval: "10m"`}
	ns, cs, ic := setup(t, settings...)
	prom.Set(ns, kit.Healthy)
	kubectl(t, manifest(ns, "v2", settings...), "apply", "-f", "-")
	waitFor(t, cs, ns, 60*time.Second, "v2 at 20%", func(d *appsv1.Deployment) bool { return d.Annotations[contract.KeyWeight] == "20" })
	// The weight is recorded before the VirtualService is written: wait
	// for the VirtualService too.
	var vs *istionetv1.VirtualService
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		var err error
		if vs, err = ic.NetworkingV1().VirtualServices(ns).Get(t.Context(), "reviews", metav1.GetOptions{}); err == nil &&
			len(vs.Spec.Http) > 0 && len(vs.Spec.Http[0].Route) == 2 && vs.Spec.Http[0].Route[1].Weight == 20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the VirtualService is not at 20%% within 30s: %v", vs)
		}
	}
	vs.Spec.Http[0].Route[0].Weight, vs.Spec.Http[0].Route[1].Weight = 50, 50
	if _, err := ic.NetworkingV1().VirtualServices(ns).Update(t.Context(), vs, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	d := waitFor(t, cs, ns, 30*time.Second, "holding", func(d *appsv1.Deployment) bool {
		return strings.HasPrefix(d.Annotations[contract.KeyMessage], "holding")
	})
	if !strings.Contains(d.Annotations[contract.KeyMessage], "50%") {
		t.Errorf("message %q does not give the weight found", d.Annotations[contract.KeyMessage])
	}
	time.Sleep(2 * time.Second)
	vs, err := ic.NetworkingV1().VirtualServices(ns).Get(t.Context(), "reviews", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if vs.Spec.Http[0].Route[1].Weight != 50 {
		t.Errorf("the stepper fought the change: canary weight %d", vs.Spec.Http[0].Route[1].Weight)
	}
}

// TestTwoReplicasOneSteps runs two replicas with leader election (the
// webhook served by a third, webhook-only process, as a Service would
// spread it over the replicas): one steps; killed, the other takes over
// and finishes the rollout.
func TestTwoReplicasOneSteps(t *testing.T) {
	// The suite's controller serves only the webhook during this test.
	ctrlProc.Kill()
	ctrlProc.Args = []string{ctrlProc.RegisterFlag(), "--enable-stepper=false"}
	if err := ctrlProc.Start(stepperFlags...); err != nil {
		t.Fatal(err)
	}
	var replicas []*controller.Process
	t.Cleanup(func() {
		for _, r := range replicas {
			r.Kill()
		}
		ctrlProc.Kill()
		ctrlProc.Args = nil
		if err := ctrlProc.Start(stepperFlags...); err != nil {
			t.Errorf("restore the controller: %v", err)
		}
	})
	for i := range 2 {
		r, err := ctrlProc.Replica(fmt.Sprintf("replica-%d.log", i), "--leader-elect=true", "--leader-election-namespace=default")
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Start(stepperFlags...); err != nil {
			t.Fatal(err)
		}
		replicas = append(replicas, r)
	}
	leader := func() int {
		for i, r := range replicas {
			if r.Running() && strings.Contains(r.Log(), "Successfully acquired lease") {
				return i
			}
		}
		return -1
	}
	settings := []string{`canary.io/interval: "3s"`}
	ns, cs, _ := setup(t, settings...)
	prom.Set(ns, kit.Healthy)
	kubectl(t, manifest(ns, "v2", settings...), "apply", "-f", "-")
	waitFor(t, cs, ns, 60*time.Second, "v2 at 20%", func(d *appsv1.Deployment) bool { return d.Annotations[contract.KeyWeight] == "20" })
	first := leader()
	if first < 0 {
		t.Fatalf("no replica acquired the lease")
	}
	for i, r := range replicas {
		if i != first && strings.Contains(r.Log(), `"msg":"stepped"`) {
			t.Errorf("replica %d stepped without the lease", i)
		}
	}
	start := time.Now()
	replicas[first].Kill()
	phaseOf(t, cs, ns, contract.PhaseSucceeded, 120*time.Second)
	other := replicas[1-first].Log()
	if !strings.Contains(other, "Successfully acquired lease") || !strings.Contains(other, `"msg":"stepped"`) {
		t.Errorf("replica %d did not take over and step", 1-first)
	}
	fmt.Printf("BENCH leader failover: the rollout finished %v after the leader was killed\n", time.Since(start).Round(100*time.Millisecond))
}

// scrape reads the controller's metrics endpoint.
func scrape(t *testing.T) string {
	t.Helper()
	body, err := ctrlProc.Scrape(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// grep keeps the canary_ lines about a namespace, for failure messages.
func grep(metrics, ns string) string {
	var out []string
	for _, l := range strings.Split(metrics, "\n") {
		if strings.HasPrefix(l, "canary_") && strings.Contains(l, ns) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestSkipAnalysisRollsOutDirectlyAndSaysSo: the emergency path rolls the
// template out as plain Kubernetes would, and the bypass is recorded in
// the message and in an Event.
func TestSkipAnalysisRollsOutDirectlyAndSaysSo(t *testing.T) {
	t.Parallel()
	ns, cs, _ := setup(t)
	kubectl(t, manifest(ns, "v2", `canary.io/skip-analysis: "true"`), "apply", "-f", "-")
	d := waitFor(t, cs, ns, 60*time.Second, "v2 rolled out", func(d *appsv1.Deployment) bool {
		return d.Spec.Template.Spec.Containers[0].Image == "reviews:v2" && d.Status.UpdatedReplicas == 3 && d.Status.Replicas == 3 && d.Status.AvailableReplicas == 3
	})
	// Who took the emergency path: the admin's kubectl here.
	if p, msg := d.Annotations[contract.KeyPhase], d.Annotations[contract.KeyMessage]; p != "Idle" || !strings.Contains(msg, "canary.io/skip-analysis by "+cluster.AdminUser+": revision") {
		t.Errorf("phase %s, message %q: want Idle with the bypass and who made it (%s)", p, msg, cluster.AdminUser)
	}
	counted := fmt.Sprintf(`canary_analysis_skipped_total{deployment="reviews",namespace=%q} 1`, ns)
	kit.Eventually(t, 30*time.Second, "the bypass counted", func(context.Context) error {
		if m := scrape(t); !strings.Contains(m, counted) {
			return fmt.Errorf("the metrics lack %s:\n%s", counted, grep(m, ns))
		}
		return nil
	})
	err := wait.PollUntilContextTimeout(t.Context(), 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		events, err := cs.EventsV1().Events(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		for _, e := range events.Items {
			if e.Reason == "AnalysisSkipped" && e.Type == "Warning" && strings.Contains(e.Note, "skip-analysis") {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Errorf("no AnalysisSkipped Warning Event recording the bypass")
	}
	if _, err := cs.AppsV1().Deployments(ns).Get(t.Context(), stepper.CanaryName("reviews"), metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("a canary was created for a skipped analysis (err %v)", err)
	}
}

// TestGeneratedVirtualServiceGoesWhenTheUserNamesTheirs: an analysis with
// the generated VirtualService, then one whose settings name the user's
// own: the generated one is deleted (two VirtualServices must not route
// one host) and the user's is steered.
func TestGeneratedVirtualServiceGoesWhenTheUserNamesTheirs(t *testing.T) {
	t.Parallel()
	ns, cs, ic := setup(t)
	prom.Set(ns, kit.Healthy)
	kubectl(t, manifest(ns, "v2"), "apply", "-f", "-")
	phaseOf(t, cs, ns, contract.PhaseSucceeded, 60*time.Second)
	if _, err := ic.NetworkingV1().VirtualServices(ns).Get(t.Context(), "reviews", metav1.GetOptions{}); err != nil {
		t.Fatalf("the generated VirtualService: %v", err)
	}
	kubectl(t, fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews-routes, namespace: %s}
spec:
  hosts: [reviews]
  http:
  - route: [{destination: {host: reviews}}]
`, ns), "apply", "-f", "-")
	settings := []string{`canary.io/interval: "10m"`, `canary.io/virtualservice: "reviews-routes"`}
	kubectl(t, manifest(ns, "v3", settings...), "apply", "-f", "-")
	waitFor(t, cs, ns, 60*time.Second, "first step running", func(d *appsv1.Deployment) bool {
		return d.Annotations[contract.KeyWeight] == "20"
	})
	if _, err := ic.NetworkingV1().VirtualServices(ns).Get(t.Context(), "reviews", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the generated VirtualService is still there beside the user's (err %v)", err)
	}
	vs, err := ic.NetworkingV1().VirtualServices(ns).Get(t.Context(), "reviews-routes", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if r := vs.Spec.Http[0].Route; len(r) != 2 || r[1].Destination.Host != "reviews-canary" || r[1].Weight != 20 {
		t.Errorf("the user's VirtualService is not steered: %v", r)
	}
}
