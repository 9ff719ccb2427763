package integration_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"

	"github.com/canary-io/canary/contract"
	"github.com/canary-io/canary/e2e/cluster"
	"github.com/canary-io/canary/e2e/controller"
	"github.com/canary-io/canary/e2e/kit"
	"github.com/canary-io/canary/e2e/scale"
	"github.com/canary-io/canary/webhook"
)

var (
	env  *cluster.Cluster
	ctrl *controller.Process
)

// webhookOnly: no canary may appear in these tests.
const webhookOnly = "--enable-stepper=false"

func TestMain(m *testing.M) {
	os.Exit(cluster.RunTests(m, cluster.Options{}, func(c *cluster.Cluster) {
		env = c
		var err error
		if ctrl, err = controller.Build(c); err == nil {
			err = ctrl.Start(webhookOnly)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "start canary-controller:", err)
			os.Exit(1)
		}
	}))
}

// warnings collects the admission warnings a client receives.
type warnings struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warnings) HandleWarningHeader(_ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, text)
}

func (w *warnings) take() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := strings.Join(w.msgs, "\n")
	w.msgs = nil
	return s
}

// client is a client as a user (the admin) and the warnings it received.
func client(t *testing.T) (*kubernetes.Clientset, *warnings) {
	t.Helper()
	w := &warnings{}
	cfg := rest.CopyConfig(env.Admin)
	cfg.WarningHandler = w
	cfg.QPS, cfg.Burst = 1000, 1000 // client-go's default of 5/s would be all the latency measured
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cs, w
}

func controllerClient(t *testing.T) *kubernetes.Clientset {
	t.Helper()
	cs, err := kubernetes.NewForConfig(env.Controller)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// controllerUpdate writes as the controller does: read, change, write
// with that resourceVersion, again on a conflict (the deployment controller
// writes status in between).
func controllerUpdate(t *testing.T, ns string, change func(*appsv1.Deployment)) *appsv1.Deployment {
	t.Helper()
	cc := controllerClient(t)
	var out *appsv1.Deployment
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		d, err := cc.AppsV1().Deployments(ns).Get(t.Context(), "reviews", metav1.GetOptions{})
		if err != nil {
			return err
		}
		change(d)
		out, err = cc.AppsV1().Deployments(ns).Update(t.Context(), d, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatalf("controller update: %v", err)
	}
	return out
}

func namespace(t *testing.T, cs kubernetes.Interface) string {
	t.Helper()
	return kit.Namespace(t, cs, "webhook", nil)
}

// manifest is the user's reviews Deployment as YAML, the way it sits in git.
func manifest(ns, image string, extra ...string) string {
	annotations := []string{`canary.io/enabled: "true"`}
	var spec []string
	for _, e := range extra {
		if rest, ok := strings.CutPrefix(e, "spec:"); ok {
			spec = append(spec, rest)
		} else {
			annotations = append(annotations, e)
		}
	}
	return kit.Reviews(ns, image[strings.LastIndex(image, ":")+1:], image, 3, annotations, spec)
}

// kubectl runs kubectl as a user with stdin; it returns the combined output
// and the error.
func kubectl(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	return kit.TryKubectl(t.Context(), env, stdin, args...)
}

func mustKubectl(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	return kit.Kubectl(t, env, stdin, args...)
}

func get(t *testing.T, cs kubernetes.Interface, ns string) *appsv1.Deployment {
	t.Helper()
	d, err := cs.AppsV1().Deployments(ns).Get(t.Context(), "reviews", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// waitRolledOut waits until every replica runs the Deployment's template.
func waitRolledOut(t *testing.T, cs kubernetes.Interface, ns string) {
	t.Helper()
	var last appsv1.DeploymentStatus
	err := wait.PollUntilContextTimeout(t.Context(), 100*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		d, err := cs.AppsV1().Deployments(ns).Get(ctx, "reviews", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		last = d.Status
		s := d.Status
		return s.ObservedGeneration >= d.Generation && s.UpdatedReplicas == *d.Spec.Replicas &&
			s.Replicas == s.UpdatedReplicas && s.AvailableReplicas == s.UpdatedReplicas, nil
	})
	if err != nil {
		t.Fatalf("reviews not rolled out: %v (status %+v)", err, last)
	}
}

// heldDeployment applies reviews v1, waits for it, then applies v2: the
// second apply must be held.
func heldDeployment(t *testing.T) (ns string, cs *kubernetes.Clientset, w *warnings) {
	t.Helper()
	cs, w = client(t)
	ns = namespace(t, cs)
	mustKubectl(t, manifest(ns, "reviews:v1"), "apply", "-f", "-")
	waitRolledOut(t, cs, ns)
	out := mustKubectl(t, manifest(ns, "reviews:v2"), "apply", "-f", "-")
	if !strings.Contains(out, "is held for canary analysis") || !strings.Contains(out, "kubectl rollout status deployment/reviews -n "+ns) {
		t.Fatalf("kubectl apply of v2 printed no warning naming the hold and the command to follow it:\n%s", out)
	}
	return ns, cs, w
}

func assertHeld(t *testing.T, d *appsv1.Deployment, image string) {
	t.Helper()
	if !d.Spec.Paused {
		t.Errorf("spec.paused is false: the hold was lost")
	}
	if got := d.Spec.Template.Spec.Containers[0].Image; got != image {
		t.Errorf("stored image %q, want %q (exactly what the user applied)", got, image)
	}
	a := d.Annotations
	if a[contract.KeyPhase] != string(contract.PhaseProgressing) {
		t.Errorf("phase %q, want Progressing (annotations %v)", a[contract.KeyPhase], a)
	}
	if a[contract.KeyRevision] != contract.TemplateHash(&d.Spec.Template) {
		t.Errorf("canary.io/revision %q, want the hash of the stored template %q", a[contract.KeyRevision], contract.TemplateHash(&d.Spec.Template))
	}
	if a[contract.KeyStableRevision] == "" || a[contract.KeyStableRevision] == a[contract.KeyRevision] {
		t.Errorf("canary.io/stable-revision %q: want the v1 template's hash", a[contract.KeyStableRevision])
	}
}

func TestImageUpdateIsHeldAndNothingRolls(t *testing.T) {
	cs, w := client(t)
	ns := namespace(t, cs)
	mustKubectl(t, manifest(ns, "reviews:v1"), "apply", "-f", "-")
	waitRolledOut(t, cs, ns)

	d := get(t, cs, ns)
	d.Spec.Template.Spec.Containers[0].Image = "reviews:v2"
	updated, err := cs.AppsV1().Deployments(ns).Update(t.Context(), d, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	assertHeld(t, updated, "reviews:v2")
	if msg := w.take(); !strings.Contains(msg, "is held for canary analysis") {
		t.Errorf("client received warnings %q, want one naming the hold", msg)
	}
	// Nothing rolls: give the deployment controller time to act, then
	// check that no ReplicaSet of v2 appeared and all pods run v1.
	time.Sleep(2 * time.Second)
	rss, err := cs.AppsV1().ReplicaSets(ns).List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, rs := range rss.Items {
		if img := rs.Spec.Template.Spec.Containers[0].Image; img != "reviews:v1" {
			t.Errorf("ReplicaSet %s of %s exists: the held template rolled", rs.Name, img)
		}
	}
}

func TestEveryWritePathKeepsTheHold(t *testing.T) {
	ns, cs, _ := heldDeployment(t)
	type path struct {
		name string
		run  func() (string, error)
	}
	for _, p := range []path{
		{"client-side kubectl apply of the manifest", func() (string, error) {
			return kubectl(t, manifest(ns, "reviews:v2", "team: books"), "apply", "-f", "-")
		}},
		{"server-side apply with force (Argo CD, Flux)", func() (string, error) {
			return kubectl(t, manifest(ns, "reviews:v2", "team: books"), "apply", "--server-side", "--force-conflicts", "--field-manager=argocd", "-f", "-")
		}},
		{"kubectl replace (sends no paused)", func() (string, error) {
			return kubectl(t, manifest(ns, "reviews:v2", `replaced: "yes"`), "replace", "-f", "-")
		}},
		{"a chart that renders paused: false", func() (string, error) {
			return kubectl(t, manifest(ns, "reviews:v2", "chart: v2", "spec:paused: false"), "apply", "-f", "-")
		}},
	} {
		t.Run(p.name, func(t *testing.T) {
			before := get(t, cs, ns).Annotations
			out, err := p.run()
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			d := get(t, cs, ns)
			assertHeld(t, d, "reviews:v2")
			for _, k := range contract.StatusKeys {
				if d.Annotations[k] != before[k] {
					t.Errorf("status annotation %s changed from %q to %q", k, before[k], d.Annotations[k])
				}
			}
		})
	}

	t.Run("kubectl rollout resume by a user is refused", func(t *testing.T) {
		out, err := kubectl(t, "", "rollout", "resume", "deployment/reviews", "-n", ns)
		if err == nil || !strings.Contains(out, "canary.io/promote") || !strings.Contains(out, "canary.io/skip-analysis") {
			t.Fatalf("rollout resume: err %v, output %q: want a refusal naming canary.io/promote and canary.io/skip-analysis", err, out)
		}
		assertHeld(t, get(t, cs, ns), "reviews:v2")
	})

	t.Run("a hand-written status annotation does not stick", func(t *testing.T) {
		out := mustKubectl(t, "", "annotate", "--overwrite", "deployment/reviews", "-n", ns, "canary.io/phase=Succeeded")
		if !strings.Contains(out, "written only by the system") {
			t.Errorf("kubectl annotate printed %q, want a warning", out)
		}
		if got := get(t, cs, ns).Annotations[contract.KeyPhase]; got != "Progressing" {
			t.Fatalf("canary.io/phase = %q after a user wrote it, want Progressing", got)
		}
	})

	t.Run("kubectl scale passes and the hold stays", func(t *testing.T) {
		mustKubectl(t, "", "scale", "deployment/reviews", "-n", ns, "--replicas=5")
		d := get(t, cs, ns)
		if *d.Spec.Replicas != 5 {
			t.Errorf("replicas %d, want 5", *d.Spec.Replicas)
		}
		assertHeld(t, d, "reviews:v2")
	})

	t.Run("the controller unpauses only a revision it promotes", func(t *testing.T) {
		cc := controllerClient(t)
		d := get(t, cc, ns)
		d.Spec.Paused = false
		if _, err := cc.AppsV1().Deployments(ns).Update(t.Context(), d, metav1.UpdateOptions{}); err == nil ||
			!strings.Contains(err.Error(), "may unpause only a revision being promoted") {
			t.Fatalf("controller unpausing a Progressing revision: err %v, want a refusal", err)
		}
		promoted := controllerUpdate(t, ns, func(d *appsv1.Deployment) {
			d.Spec.Paused = false
			d.Annotations[contract.KeyPhase] = string(contract.PhasePromoting)
		})
		if promoted.Spec.Paused || promoted.Annotations[contract.KeyPhase] != "Promoting" {
			t.Fatalf("after the controller's promotion: paused %v, phase %q", promoted.Spec.Paused, promoted.Annotations[contract.KeyPhase])
		}
		waitRolledOut(t, cs, ns)
	})
}

// TestRolloutUndoKeepsTheStatus: kubectl rollout undo replaces the
// Deployment's annotations with the old ReplicaSet's copy; the template it
// brings back is a new template like any other, and is held.
func TestRolloutUndoKeepsTheStatus(t *testing.T) {
	ns, cs, _ := heldDeployment(t)
	// Promote v2 as the controller does, and finish as the stepper would.
	controllerUpdate(t, ns, func(d *appsv1.Deployment) {
		d.Spec.Paused = false
		d.Annotations[contract.KeyPhase] = string(contract.PhasePromoting)
	})
	waitRolledOut(t, cs, ns)
	controllerUpdate(t, ns, func(d *appsv1.Deployment) {
		d.Annotations[contract.KeyPhase] = string(contract.PhaseSucceeded)
		d.Annotations[contract.KeyStableRevision] = d.Annotations[contract.KeyRevision]
	})

	out := mustKubectl(t, "", "rollout", "undo", "deployment/reviews", "-n", ns)
	d := get(t, cs, ns)
	assertHeld(t, d, "reviews:v1")
	if !strings.Contains(out, "is held for canary analysis") {
		t.Errorf("rollout undo printed %q, want the hold's warning", out)
	}
}

func TestInvalidAnnotationIsDeniedWithFieldAndReason(t *testing.T) {
	cs, _ := client(t)
	ns := namespace(t, cs)
	mustKubectl(t, manifest(ns, "reviews:v1"), "apply", "-f", "-")
	out, err := kubectl(t, "", "annotate", "deployment/reviews", "-n", ns, "canary.io/steps=20,abc")
	if err == nil || !strings.Contains(out, `metadata.annotations[canary.io/steps]: Invalid value: "20,abc"`) {
		t.Fatalf("err %v, output %q: want the field path and value", err, out)
	}
	out, err = kubectl(t, manifest(ns, "reviews:v1", `canary.io/enabled: "yes"`), "apply", "-f", "-")
	if err == nil || !strings.Contains(out, "metadata.annotations[canary.io/enabled]") {
		t.Fatalf("enabled: yes: err %v, output %q: want a denial naming the field", err, out)
	}
}

// TestWebhookOutage stops the webhook server: only opted-in Deployments
// are affected, and their template updates are refused, never rolled.
func TestWebhookOutage(t *testing.T) {
	cs, _ := client(t)
	ns := namespace(t, cs)
	mustKubectl(t, manifest(ns, "reviews:v1"), "apply", "-f", "-")
	plain := strings.Replace(strings.Replace(manifest(ns, "plain:v1"), "name: reviews", "name: plain", 1), `canary.io/enabled: "true"`, `team: books`, 1)
	mustKubectl(t, plain, "apply", "-f", "-")

	ctrl.Stop()
	t.Cleanup(func() {
		if err := ctrl.Start(webhookOnly); err != nil {
			t.Errorf("restart canary-controller: %v", err)
		}
	})
	mustKubectl(t, strings.ReplaceAll(plain, "plain:v1", "plain:v2"), "apply", "-f", "-")
	out, err := kubectl(t, manifest(ns, "reviews:v2"), "apply", "-f", "-")
	if err == nil || !strings.Contains(out, "deployments.mutate.canary.io") {
		t.Fatalf("template update of an opted-in Deployment during an outage: err %v, output %q: want a refusal by the webhook", err, out)
	}
	if img := get(t, cs, ns).Spec.Template.Spec.Containers[0].Image; img != "reviews:v1" {
		t.Fatalf("stored image %q during an outage, want reviews:v1", img)
	}
}

// TestAdmissionLatency records what the webhook adds to a Deployment
// update: label updates of an opted-in Deployment (both webhooks called)
// against a Deployment the webhooks never see. Printed, not asserted.
func TestAdmissionLatency(t *testing.T) {
	cs, _ := client(t)
	ns := namespace(t, cs)
	mustKubectl(t, manifest(ns, "reviews:v1"), "apply", "-f", "-")
	plain := strings.Replace(strings.Replace(manifest(ns, "plain:v1"), "name: reviews", "name: plain", 1), `canary.io/enabled: "true"`, `team: books`, 1)
	mustKubectl(t, plain, "apply", "-f", "-")
	const n = 300
	measure := func(name string) []time.Duration {
		var ds []time.Duration
		for i := range n {
			patch := fmt.Sprintf(`{"metadata":{"labels":{"round":"r%d"}}}`, i)
			start := time.Now()
			if _, err := cs.AppsV1().Deployments(ns).Patch(t.Context(), name, "application/merge-patch+json", []byte(patch), metav1.PatchOptions{}); err != nil {
				t.Fatal(err)
			}
			ds = append(ds, time.Since(start))
		}
		slices.Sort(ds)
		return ds
	}
	without, with := measure("plain"), measure("reviews")
	pct := func(ds []time.Duration, p float64) time.Duration { return ds[int(float64(len(ds)-1)*p)] }
	fmt.Printf("BENCH admission latency over %d updates: without webhook median %v p99 %v; with webhook median %v p99 %v; added median %v\n",
		n, pct(without, 0.5), pct(without, 0.99), pct(with, 0.5), pct(with, 0.99), pct(with, 0.5)-pct(without, 0.5))

	body, err := ctrl.Scrape(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(l, "controller_runtime_webhook_latency_seconds") || strings.HasPrefix(l, "canary_webhook_decisions_total") {
			lines = append(lines, l)
		}
	}
	if len(lines) == 0 {
		t.Fatalf("the metrics endpoint serves no webhook latency histogram")
	}
	fmt.Printf("BENCH webhook server handling time (controller-runtime histogram):\n%s\n", strings.Join(lines, "\n"))
}

// unskipped is the controller's count of its status writes that reached
// the webhook (canary_webhook_unskipped_controller_writes_total).
func unskipped(t *testing.T) float64 {
	t.Helper()
	const name = "canary_webhook_unskipped_controller_writes_total"
	samples := controllerSamples(t)
	if !slices.ContainsFunc(samples, func(s *model.Sample) bool { return string(s.Metric[model.MetricNameLabel]) == name }) {
		t.Fatal("the controller serves no " + name)
	}
	return samples.Sum(name, nil)
}

// controllerSamples are the samples the controller's metrics endpoint
// serves now.
func controllerSamples(t *testing.T) scale.Samples {
	t.Helper()
	body, err := ctrl.Scrape(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	samples, err := scale.Parse(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return samples
}

// TestConfigurationNamingAnotherIdentityIsReported: webhook
// configurations whose match conditions name another identity than the
// controller's send it the controller's status writes; it judges them as
// any other write and reports them (metric and log).
func TestConfigurationNamingAnotherIdentityIsReported(t *testing.T) {
	ns, cs, _ := heldDeployment(t)
	other := func(conditions []admissionregistrationv1.MatchCondition) {
		for i := range conditions {
			conditions[i].Expression = strings.ReplaceAll(conditions[i].Expression, strconv.Quote(cluster.ControllerUser), strconv.Quote("someone-else"))
		}
	}
	kit.ChangeWebhooks(t, cs, webhook.ConfigurationName, func(m *admissionregistrationv1.MutatingWebhookConfiguration, v *admissionregistrationv1.ValidatingWebhookConfiguration) {
		for i := range m.Webhooks {
			other(m.Webhooks[i].MatchConditions)
		}
		for i := range v.Webhooks {
			other(v.Webhooks[i].MatchConditions)
		}
	})
	before := unskipped(t)
	controllerUpdate(t, ns, func(d *appsv1.Deployment) { d.Annotations[contract.KeyWeight] = "20" })
	if got := unskipped(t) - before; got < 1 {
		t.Errorf("the controller's status write under configurations naming someone else: %v reported, want at least 1", got)
	}
	if !strings.Contains(ctrl.Log(), "match conditions do not name --controller-identity") {
		t.Errorf("the controller's log does not say the configurations name another identity")
	}
}

// decisions is the controller's count of admission decisions so far
// (canary_webhook_decisions_total, all webhooks and outcomes).
func decisions(t *testing.T) float64 {
	t.Helper()
	return controllerSamples(t).Sum("canary_webhook_decisions_total", nil)
}

// TestControllerStatusWritesSkipTheWebhooks: the apiserver does not call
// the webhooks for the controller's status writes (the match conditions
// of webhook.Configurations), and still calls them, and they still refuse,
// for the controller's writes that change what they judge.
func TestControllerStatusWritesSkipTheWebhooks(t *testing.T) {
	ns, cs, _ := heldDeployment(t)
	before, unskippedBefore := decisions(t), unskipped(t)
	for i := range 3 {
		controllerUpdate(t, ns, func(d *appsv1.Deployment) {
			d.Annotations[contract.KeyWeight] = fmt.Sprint(10 * (i + 1))
			d.Annotations[contract.KeyMessage] = fmt.Sprintf("step %d", i+1)
			d.Annotations[contract.KeyStepStarted] = time.Now().UTC().Format(time.RFC3339)
		})
	}
	if got := get(t, cs, ns).Annotations[contract.KeyWeight]; got != "30" {
		t.Fatalf("canary.io/weight %q after the controller's writes, want 30", got)
	}
	if after := decisions(t); after != before {
		t.Errorf("the controller's status writes reached the webhooks: %v decisions, want none", after-before)
	}
	if got := unskipped(t) - unskippedBefore; got != 0 {
		t.Errorf("%v of the controller's status writes reported as reaching the webhook with the configurations as registered, want 0", got)
	}

	cc := controllerClient(t)
	d := get(t, cc, ns)
	d.Spec.Template.Spec.Containers[0].Image = "reviews:v3"
	if _, err := cc.AppsV1().Deployments(ns).Update(t.Context(), d, metav1.UpdateOptions{}); err == nil ||
		!strings.Contains(err.Error(), "the controller may not change spec.template") {
		t.Fatalf("the controller changing the template: err %v, want the webhook's refusal", err)
	}
	d = get(t, cc, ns)
	d.Spec.Paused = false
	if _, err := cc.AppsV1().Deployments(ns).Update(t.Context(), d, metav1.UpdateOptions{}); err == nil ||
		!strings.Contains(err.Error(), "may unpause only a revision being promoted") {
		t.Fatalf("the controller unpausing a Progressing revision: err %v, want the webhook's refusal", err)
	}
	d = get(t, cc, ns)
	d.Annotations[contract.KeySteps] = "20,abc"
	if _, err := cc.AppsV1().Deployments(ns).Update(t.Context(), d, metav1.UpdateOptions{}); err == nil ||
		!strings.Contains(err.Error(), "metadata.annotations[canary.io/steps]") {
		t.Fatalf("the controller writing an invalid setting: err %v, want the webhook's refusal naming the field", err)
	}
	if got := decisions(t) - before; got < 3 {
		t.Errorf("%v decisions for the controller's three refused writes, want at least 3", got)
	}
}
