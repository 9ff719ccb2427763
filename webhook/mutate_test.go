package webhook

import (
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/canary-io/canary/contract"
	"github.com/canary-io/canary/stepper/plan"
)

var now = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

// deployment is bookinfo's reviews, opted in, fully rolled out at image.
func deployment(image string, mods ...func(*appsv1.Deployment)) *appsv1.Deployment {
	labels := map[string]string{"app": "reviews", "version": "v1"}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{
			Name: "reviews", Namespace: "bookinfo", Generation: 1, ResourceVersion: "100",
			Labels:      map[string]string{"app": "reviews"},
			Annotations: map[string]string{contract.KeyEnabled: "true"},
		},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](3),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "reviews"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "reviews", Image: image,
					Ports: []corev1.ContainerPort{{ContainerPort: 9080}},
				}}},
			},
		},
		Status: appsv1.DeploymentStatus{ObservedGeneration: 1, Replicas: 3, UpdatedReplicas: 3, ReadyReplicas: 3, AvailableReplicas: 3},
	}
	for _, m := range mods {
		m(d)
	}
	return d
}

func annotate(kv ...string) func(*appsv1.Deployment) {
	return func(d *appsv1.Deployment) {
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == "-" {
				delete(d.Annotations, kv[i])
				continue
			}
			d.Annotations[kv[i]] = kv[i+1]
		}
	}
}

func image(img string) func(*appsv1.Deployment) {
	return func(d *appsv1.Deployment) { d.Spec.Template.Spec.Containers[0].Image = img }
}

func paused(p bool) func(*appsv1.Deployment) {
	return func(d *appsv1.Deployment) { d.Spec.Paused = p }
}

// edit returns a copy of d changed by mods: what a client sends.
func edit(d *appsv1.Deployment, mods ...func(*appsv1.Deployment)) *appsv1.Deployment {
	d = d.DeepCopy()
	for _, m := range mods {
		m(d)
	}
	return d
}

// Scenarios: objects as the system would have stored them.
var (
	v1     = deployment("reviews:v1")
	idle   = mustMutateNoT(nil, v1)
	heldV2 = mustMutateNoT(idle, edit(idle, image("reviews:v2")))
	// rolledBackV2 is heldV2 after the stepper rolled it back.
	rolledBackV2 = edit(heldV2, annotate(
		contract.KeyPhase, string(contract.PhaseRolledBack),
		contract.KeyRejectedRevision, contract.TemplateHash(&heldV2.Spec.Template),
		contract.KeyRejection, "at 2026-11-27T11:00:00Z: success rate 80% below 99%",
		contract.KeyMessage, "rolled back: success rate 80% below 99%"))
	promotingV2 = edit(heldV2, paused(false), annotate(contract.KeyPhase, string(contract.PhasePromoting)),
		func(d *appsv1.Deployment) { d.Status.UpdatedReplicas = 1 })
)

func mustMutateNoT(old, new *appsv1.Deployment) *appsv1.Deployment {
	r := Mutate(Request{Old: old, New: new, Now: now.Add(-time.Hour)})
	if r.Denied != "" {
		panic(r.Denied)
	}
	return r.Object
}

func hash(d *appsv1.Deployment) string { return contract.TemplateHash(&d.Spec.Template) }

func TestMutate(t *testing.T) {
	type want struct {
		denied   string            // substring of the denial; empty: allowed
		paused   *bool             // spec.paused of the result
		ann      map[string]string // annotations of the result ("-": absent)
		warning  string            // substring of a warning; "" : none checked
		noChange bool              // the result equals the request
	}
	v2 := edit(heldV2, image("reviews:v2"))
	v3 := edit(v1, image("reviews:v3"))
	tests := []struct {
		name     string
		old, new *appsv1.Deployment
		ctrl     bool
		want     want
	}{
		{
			name: "create opted in: Idle, template stable, manifest's status ignored",
			new:  edit(v1, annotate(contract.KeyPhase, "Succeeded")),
			want: want{paused: ptr.To(false), warning: "ignored your value of canary.io/phase", ann: map[string]string{
				contract.KeyPhase: "Idle", contract.KeyRevision: hash(v1), contract.KeyStableRevision: hash(v1),
			}},
		},
		{
			name: "create not opted in: untouched",
			new:  edit(v1, annotate(contract.KeyEnabled, "-")),
			want: want{noChange: true},
		},
		{
			name: "update not opted in: untouched",
			old:  edit(v1, annotate(contract.KeyEnabled, "-")), new: edit(v1, annotate(contract.KeyEnabled, "-"), image("x")),
			want: want{noChange: true},
		},
		{
			name: "new image: held, Progressing, revisions and counters recorded, settings frozen",
			old:  idle, new: edit(idle, image("reviews:v2"), annotate(contract.KeySteps, "10,50")),
			want: want{paused: ptr.To(true), warning: "kubectl rollout status deployment/reviews -n bookinfo", ann: map[string]string{
				contract.KeyPhase: "Progressing", contract.KeyRevision: hash(v2), contract.KeyStableRevision: hash(v1),
				contract.KeyStep: "1/2", contract.KeyStepsPassed: "0", contract.KeyWeight: "0", contract.KeyFailedChecks: "0/3",
				contract.KeyAnalysisSettings: `{"canary.io/enabled":"true","canary.io/steps":"10,50"}`,
				contract.KeyLastTransition:   now.Format(time.RFC3339),
			}},
		},
		{
			name: "replicas change while held: passes, still held",
			old:  heldV2, new: edit(heldV2, func(d *appsv1.Deployment) { d.Spec.Replicas = ptr.To[int32](5) }),
			want: want{noChange: true},
		},
		{
			name: "same template applied again while in flight: nothing changes",
			old:  heldV2, new: edit(heldV2),
			want: want{noChange: true},
		},
		{
			name: "replace without paused and without status: hold and status restored, with a warning",
			old:  heldV2, new: edit(heldV2, paused(false), annotate(contract.KeyPhase, "-", contract.KeyRevision, "-"), func(d *appsv1.Deployment) {
				d.Labels["team"] = "books"
			}),
			want: want{paused: ptr.To(true), warning: "kept spec.paused: true", ann: map[string]string{
				contract.KeyPhase: "Progressing", contract.KeyRevision: hash(heldV2),
			}},
		},
		{
			name: "only unpausing (kubectl rollout resume): refused, naming the controls",
			old:  heldV2, new: edit(heldV2, paused(false)),
			want: want{denied: "canary.io/promote"},
		},
		{
			name: "a hand-written status annotation does not stick",
			old:  heldV2, new: edit(heldV2, annotate(contract.KeyPhase, "Succeeded", contract.KeyWeight, "100")),
			want: want{paused: ptr.To(true), warning: "ignored your value of canary.io/phase, canary.io/weight", ann: map[string]string{
				contract.KeyPhase: "Progressing", contract.KeyWeight: "0",
			}},
		},
		{
			name: "new template mid-analysis: restarted against the same stable",
			old:  heldV2, new: edit(heldV2, image("reviews:v3")),
			want: want{paused: ptr.To(true), ann: map[string]string{
				contract.KeyPhase: "Progressing", contract.KeyRevision: hash(v3), contract.KeyStableRevision: hash(v1),
				contract.KeyMessage: "analysis restarted: revision " + hash(v3) + " replaced revision " + hash(heldV2) + " under analysis (stable " + hash(v1) + ")",
			}},
		},
		{
			name: "new template mid-step: the step's bookkeeping starts over",
			old: edit(heldV2, annotate(contract.KeyStep, "1/3", contract.KeyWeight, "40", contract.KeyFailedChecks, "1/2",
				contract.KeyStepStarted, "2026-11-27T12:00:00Z", contract.KeyWaitingSince, "2026-11-27T12:00:00Z",
				contract.KeyPreRolloutFailed, "2026-11-27T11:59:00Z", contract.KeyAnalysisStarted, "2026-11-27T11:58:00Z")),
			new: edit(heldV2, image("reviews:v3"), annotate(contract.KeyStep, "1/3", contract.KeyWeight, "40", contract.KeyFailedChecks, "1/2",
				contract.KeyStepStarted, "2026-11-27T12:00:00Z", contract.KeyWaitingSince, "2026-11-27T12:00:00Z",
				contract.KeyPreRolloutFailed, "2026-11-27T11:59:00Z", contract.KeyAnalysisStarted, "2026-11-27T11:58:00Z")),
			want: want{paused: ptr.To(true), ann: map[string]string{
				contract.KeyPhase: "Progressing", contract.KeyRevision: hash(v3), contract.KeyStep: "1/3", contract.KeyStepsPassed: "0", contract.KeyWeight: "0",
				contract.KeyStepStarted: "-", contract.KeyWaitingSince: "-", contract.KeyPreRolloutFailed: "-", contract.KeyAnalysisStarted: "-",
			}},
		},
		{
			name: "stable template applied again in flight: rolled back as asked, nothing rolls",
			old:  heldV2, new: edit(heldV2, image("reviews:v1")),
			want: want{paused: ptr.To(false), ann: map[string]string{
				contract.KeyPhase: "RolledBack", contract.KeyRevision: hash(v1), contract.KeyStableRevision: hash(v1),
				contract.KeyRejectedRevision: "-",
			}},
		},
		{
			name: "stable template applied after a rollback: hold ends, Idle",
			old:  rolledBackV2, new: edit(rolledBackV2, image("reviews:v1")),
			want: want{paused: ptr.To(false), ann: map[string]string{
				contract.KeyPhase: "Idle", contract.KeyRevision: hash(v1), contract.KeyStableRevision: hash(v1),
				contract.KeyRejectedRevision: hash(heldV2),
			}},
		},
		{
			name: "rejected template applied again: held without analysis, saying when and why",
			old:  mustMutateNoT(rolledBackV2, edit(rolledBackV2, image("reviews:v1"))), new: edit(idle, image("reviews:v2")),
			want: want{paused: ptr.To(true), warning: "success rate 80% below 99%", ann: map[string]string{
				contract.KeyPhase: "RolledBack", contract.KeyRevision: hash(heldV2),
			}},
		},
		{
			name: "rejected template applied with a new retry value: analysed again",
			old:  mustMutateNoT(rolledBackV2, edit(rolledBackV2, image("reviews:v1"))), new: edit(idle, image("reviews:v2"), annotate(contract.KeyRetry, "1")),
			want: want{paused: ptr.To(true), ann: map[string]string{
				contract.KeyPhase: "Progressing", contract.KeyRevision: hash(heldV2), contract.KeyActed: `{"canary.io/retry":"1"}`,
			}},
		},
		{
			name: "retry changed on the held rejected revision: analysed again",
			old:  rolledBackV2, new: edit(rolledBackV2, annotate(contract.KeyRetry, "2026-11-27")),
			want: want{paused: ptr.To(true), ann: map[string]string{
				contract.KeyPhase: "Progressing", contract.KeyRevision: hash(heldV2), contract.KeyActed: `{"canary.io/retry":"2026-11-27"}`,
			}},
		},
		{
			name: "retry value already acted on: stays rolled back",
			old:  edit(rolledBackV2, annotate(contract.KeyRetry, "a", contract.KeyActed, `{"canary.io/retry":"a"}`)),
			new:  edit(rolledBackV2, annotate(contract.KeyRetry, "a", contract.KeyActed, `{"canary.io/retry":"a"}`)),
			want: want{noChange: true},
		},
		{
			name: "template update during an ordinary rolling update: refused",
			old:  edit(v1, annotate(contract.KeyPhase, "Idle"), func(d *appsv1.Deployment) { d.Status.UpdatedReplicas = 1 }),
			new:  edit(v1, annotate(contract.KeyPhase, "Idle"), image("reviews:v9")),
			want: want{denied: "retry when the rollout completes"},
		},
		{
			name: "template update while promoting: refused",
			old:  promotingV2, new: edit(promotingV2, image("reviews:v3")),
			want: want{denied: "retry when the rollout completes"},
		},
		{
			name: "skip-analysis set with the new template: rolls out directly, Idle, bypass recorded",
			old:  idle, new: edit(idle, image("reviews:v2"), annotate(contract.KeySkipAnalysis, "true")),
			want: want{paused: ptr.To(false), warning: "without canary analysis (canary.io/skip-analysis), recorded as done by jane@example.com", ann: map[string]string{
				contract.KeyPhase: "Idle", contract.KeyRevision: hash(v2), contract.KeyStableRevision: hash(v2),
				contract.KeyMessage: "canary.io/skip-analysis by jane@example.com: revision " + hash(v2) + " rolled out without analysis (stable was " + hash(v1) + ")",
				// Idle to Idle, but a new revision: a transition whose Event the stepper emits.
				contract.KeyTransitionReason: plan.ReasonAnalysisSkipped,
			}},
		},
		{
			name: "skip-analysis set over a held revision: the new template rolls out, the hold ends",
			old:  heldV2, new: edit(heldV2, image("reviews:v3"), annotate(contract.KeySkipAnalysis, "true")),
			want: want{paused: ptr.To(false), ann: map[string]string{contract.KeyPhase: "Idle", contract.KeyStableRevision: hash(v3)}},
		},
		{
			name: "skip-analysis left on from an earlier update: does not count",
			old:  edit(idle, annotate(contract.KeySkipAnalysis, "true")), new: edit(idle, image("reviews:v2"), annotate(contract.KeySkipAnalysis, "true")),
			want: want{paused: ptr.To(true), ann: map[string]string{contract.KeyPhase: "Progressing"}},
		},
		{
			name: "control values kept in git are consumed when an analysis starts; new ones count",
			old:  edit(idle, annotate(contract.KeyPromote, "old", contract.KeyAbort, "a1")),
			new:  edit(idle, image("reviews:v2"), annotate(contract.KeyPromote, "old", contract.KeyAbort, "a2")),
			want: want{paused: ptr.To(true), ann: map[string]string{contract.KeyActed: `{"canary.io/promote":"old"}`}},
		},
		{
			name: "opting in an existing Deployment: Idle, nothing restarts",
			old:  edit(v1, annotate(contract.KeyEnabled, "-")), new: v1,
			want: want{paused: ptr.To(false), ann: map[string]string{
				contract.KeyPhase: "Idle", contract.KeyRevision: hash(v1), contract.KeyStableRevision: hash(v1),
			}},
		},
		{
			name: "opting in with a new template: held against the old one",
			old:  edit(v1, annotate(contract.KeyEnabled, "-")), new: edit(v1, image("reviews:v2")),
			want: want{paused: ptr.To(true), ann: map[string]string{contract.KeyPhase: "Progressing", contract.KeyStableRevision: hash(v1)}},
		},
		{
			name: "opting out while held: refused",
			old:  heldV2, new: edit(heldV2, annotate(contract.KeyEnabled, "-")),
			want: want{denied: "cannot be turned off while revision"},
		},
		{
			name: "opting out while the canary of an ended analysis still takes traffic: refused",
			old:  edit(rolledBackV2, paused(false), annotate(contract.KeyWeight, "40")),
			new:  edit(rolledBackV2, paused(false), annotate(contract.KeyWeight, "40", contract.KeyEnabled, "-")),
			want: want{denied: "cannot be turned off while the canary takes 40% of the traffic (phase RolledBack): retry once canary.io/weight is 0"},
		},
		{
			name: "opting out once the weight is 0: allowed, the status goes",
			old:  edit(rolledBackV2, paused(false), annotate(contract.KeyWeight, "0")),
			new:  edit(rolledBackV2, paused(false), annotate(contract.KeyWeight, "0", contract.KeyEnabled, "-")),
			want: want{ann: map[string]string{contract.KeyPhase: "-", contract.KeyWeight: "-"}},
		},
		{
			name: "opting out while promoting: refused",
			old:  promotingV2, new: edit(promotingV2, annotate(contract.KeyEnabled, "-")),
			want: want{denied: "retry when the rollout completes"},
		},
		{
			name: "opted in before the webhook existed (no status yet): initialised Idle on the next write",
			old:  v1, new: edit(v1, annotate("team", "books")),
			want: want{paused: ptr.To(false), ann: map[string]string{
				contract.KeyPhase: "Idle", contract.KeyRevision: hash(v1), contract.KeyStableRevision: hash(v1),
			}},
		},
		{
			name: "opting out while Idle: the system's annotations go",
			old:  idle, new: edit(idle, annotate(contract.KeyEnabled, "false")),
			want: want{ann: map[string]string{contract.KeyPhase: "-", contract.KeyRevision: "-", contract.KeyStableRevision: "-"}},
		},
		{
			name: "controller writes status: passes untouched",
			old:  heldV2, new: edit(heldV2, annotate(contract.KeyWeight, "20", contract.KeyStep, "1/3")), ctrl: true,
			want: want{noChange: true},
		},
		{
			name: "controller unpauses a revision it promotes: allowed",
			old:  heldV2, new: edit(heldV2, paused(false), annotate(contract.KeyPhase, "Promoting")), ctrl: true,
			want: want{noChange: true},
		},
		{
			name: "controller unpauses while Progressing: refused",
			old:  heldV2, new: edit(heldV2, paused(false)), ctrl: true,
			want: want{denied: "may unpause only a revision being promoted"},
		},
		{
			name: "controller unpauses a template that is not canary.io/revision: refused",
			old:  heldV2, new: edit(heldV2, paused(false), annotate(contract.KeyPhase, "Promoting", contract.KeyRevision, "other")), ctrl: true,
			want: want{denied: "may unpause only a revision being promoted"},
		},
		{
			name: "controller changes the template: refused",
			old:  heldV2, new: edit(heldV2, image("reviews:v9")), ctrl: true,
			want: want{denied: "may not change spec.template"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Mutate(Request{Old: tt.old, New: tt.new, ByController: tt.ctrl, Now: now, User: "jane@example.com"})
			if tt.want.denied != "" {
				if !strings.Contains(r.Denied, tt.want.denied) {
					t.Fatalf("denied %q, want a denial containing %q", r.Denied, tt.want.denied)
				}
				return
			}
			if r.Denied != "" {
				t.Fatalf("denied: %s", r.Denied)
			}
			if tt.want.noChange && !sameIgnoringTransitionTime(r.Object, tt.new) {
				t.Fatalf("changed the object:\n got annotations %v paused %v\nwant annotations %v paused %v",
					r.Object.Annotations, r.Object.Spec.Paused, tt.new.Annotations, tt.new.Spec.Paused)
			}
			if tt.want.paused != nil && r.Object.Spec.Paused != *tt.want.paused {
				t.Errorf("spec.paused = %v, want %v", r.Object.Spec.Paused, *tt.want.paused)
			}
			for k, v := range tt.want.ann {
				got, ok := r.Object.Annotations[k]
				switch {
				case v == "-" && ok:
					t.Errorf("annotation %s = %q, want it absent", k, got)
				case v != "-" && got != v:
					t.Errorf("annotation %s = %q, want %q", k, got, v)
				}
			}
			if tt.want.warning != "" && !strings.Contains(strings.Join(r.Warnings, "\n"), tt.want.warning) {
				t.Errorf("warnings %q, want one containing %q", r.Warnings, tt.want.warning)
			}
			if r.Object.Spec.Template.Spec.Containers[0].Image != tt.new.Spec.Template.Spec.Containers[0].Image {
				t.Errorf("the template was changed: the stored object must be what the user applied")
			}
		})
	}
}

// TestMutateIsIdempotent runs every scenario's output through Mutate again
// (reinvocation, a second later): it must not change, and Validate must
// accept it.
func TestMutateIsIdempotent(t *testing.T) {
	cases := []struct{ old, new *appsv1.Deployment }{
		{nil, v1},
		{idle, edit(idle, image("reviews:v2"))},
		{heldV2, edit(heldV2, image("reviews:v3"))},
		{heldV2, edit(heldV2, image("reviews:v1"))},
		{heldV2, edit(heldV2, paused(false), annotate("team", "books"))},
		{rolledBackV2, edit(rolledBackV2, image("reviews:v1"))},
		{rolledBackV2, edit(rolledBackV2, annotate(contract.KeyRetry, "x"))},
		{idle, edit(idle, image("reviews:v2"), annotate(contract.KeySkipAnalysis, "true"))},
		{edit(v1, annotate(contract.KeyEnabled, "-")), v1},
	}
	for i, c := range cases {
		first := Mutate(Request{Old: c.old, New: c.new, Now: now})
		if first.Denied != "" {
			t.Fatalf("case %d denied: %s", i, first.Denied)
		}
		second := Mutate(Request{Old: c.old, New: first.Object, Now: now.Add(time.Second)})
		if second.Denied != "" {
			t.Fatalf("case %d: reinvocation denied: %s", i, second.Denied)
		}
		if !apiequalityDeep(first.Object, second.Object) {
			t.Errorf("case %d: reinvocation changed the object:\n first %v\nsecond %v", i, first.Object.Annotations, second.Object.Annotations)
		}
		if errs, reason := Validate(Request{Old: c.old, New: first.Object, Now: now.Add(2 * time.Second)}); len(errs) > 0 || reason != "" {
			t.Errorf("case %d: Validate refused Mutate's output: %v %s", i, errs, reason)
		}
	}
}

func apiequalityDeep(a, b *appsv1.Deployment) bool {
	return apiequality.Semantic.DeepEqual(a, b)
}

// TestShortIntervalWarning: a step interval shorter than two scrapes of
// Prometheus is warned about, with the numbers, when it can matter: on
// create, when interval or window change, when an analysis starts; not on
// every write, not for the controller, not when the scrape is unknown.
func TestShortIntervalWarning(t *testing.T) {
	const scrape = 15 * time.Second
	short := edit(idle, annotate(contract.KeyInterval, "10s"))
	const want = "canary.io: canary.io/interval 10s is shorter than two scrapes of Prometheus (15s): the checks read 1m windows"
	for _, tc := range []struct {
		name     string
		req      Request
		warnings int // of want
	}{
		{"create", Request{New: edit(v1, annotate(contract.KeyInterval, "10s")), ScrapeInterval: scrape}, 1},
		{"interval set", Request{Old: idle, New: short, ScrapeInterval: scrape}, 1},
		{"analysis starts", Request{Old: short, New: edit(short, image("reviews:v2")), ScrapeInterval: scrape}, 1},
		{"replicas only", Request{Old: short, New: edit(short, func(d *appsv1.Deployment) { d.Spec.Replicas = ptr.To[int32](5) }), ScrapeInterval: scrape}, 0},
		{"scrape unknown", Request{Old: idle, New: short}, 0},
		{"interval long enough", Request{Old: idle, New: edit(idle, annotate(contract.KeyInterval, "30s")), ScrapeInterval: scrape}, 0},
		{"the controller writes", Request{Old: idle, New: short, ScrapeInterval: scrape, ByController: true}, 0},
	} {
		tc.req.Now = now
		resp := Mutate(tc.req)
		if resp.Denied != "" {
			t.Fatalf("%s: denied: %s", tc.name, resp.Denied)
		}
		if got := slices.Index(resp.Warnings, want) >= 0; got != (tc.warnings == 1) {
			t.Errorf("%s: warnings %q; want %q: %v", tc.name, resp.Warnings, want, tc.warnings == 1)
		}
	}
	withWindow := Mutate(Request{Old: idle, New: edit(idle, annotate(contract.KeyInterval, "10s", contract.KeyWindow, "2m")), ScrapeInterval: scrape, Now: now})
	if !slices.Contains(withWindow.Warnings, "canary.io: canary.io/interval 10s is shorter than two scrapes of Prometheus (15s): the checks read 2m windows (canary.io/window)") {
		t.Errorf("with canary.io/window 2m: warnings %q", withWindow.Warnings)
	}
}

// TestHeldStateDecodes: the state the webhook writes when it holds a
// template is the stepper's own encoding: plan.Decode reads it back as
// the start of an analysis, and a malformed canary.io/acted left on the
// old object is replaced by one the stepper reads.
func TestHeldStateDecodes(t *testing.T) {
	broken := edit(idle, annotate(contract.KeyActed, "{not json"))
	for name, old := range map[string]*appsv1.Deployment{"idle": idle, "malformed acted": broken} {
		held := Mutate(Request{Old: old, New: edit(old, image("reviews:v2"), annotate(contract.KeyPromote, "now")), Now: now})
		if held.Denied != "" {
			t.Fatalf("%s: denied: %s", name, held.Denied)
		}
		st, err := plan.Decode(held.Object.Annotations)
		if err != nil {
			t.Fatalf("%s: plan.Decode of the held state: %v", name, err)
		}
		want := plan.State{Phase: contract.PhaseProgressing, Revision: hash(held.Object), Stable: hash(idle),
			Acted: map[string]string{}}
		if !st.Equal(want) {
			t.Errorf("%s: decoded %+v, want %+v", name, st, want)
		}
		if got := held.Object.Annotations[contract.KeyStep]; got != "1/3" {
			t.Errorf("%s: canary.io/step %q, want 1/3", name, got)
		}
	}
}

// TestUnjudgedBlueGreenWarning: a blue-green analysis with neither a
// mirror nor a load-testing hook is warned about (its checks would have
// no data); with either, or another strategy, it is not.
func TestUnjudgedBlueGreenWarning(t *testing.T) {
	const want = `canary.io: canary.io/strategy "blue-green" sends the canary no user traffic, and nothing else sends it any (no canary.io/mirror, no pre-rollout or rollout hook in canary.io/webhooks): its checks will have no data (canary.io/no-data "hold")`
	bare := edit(idle, annotate(contract.KeyStrategy, "blue-green"))
	for _, tc := range []struct {
		name string
		req  Request
		warn bool
	}{
		{"blue-green set", Request{Old: idle, New: bare}, true},
		{"analysis starts", Request{Old: bare, New: edit(bare, image("reviews:v2"))}, true},
		{"replicas only", Request{Old: bare, New: edit(bare, func(d *appsv1.Deployment) { d.Spec.Replicas = ptr.To[int32](5) })}, false},
		{"with a mirror", Request{Old: idle, New: edit(bare, annotate(contract.KeyMirror, "20"))}, false},
		{"with a rollout hook", Request{Old: idle, New: edit(bare, annotate(contract.KeyWebhooks, `[{"name": "load", "url": "http://loadtester.test/"}]`))}, false},
		{"the canary strategy", Request{Old: idle, New: edit(idle, annotate(contract.KeySteps, "10,20"))}, false},
	} {
		tc.req.Now = now
		resp := Mutate(tc.req)
		if resp.Denied != "" {
			t.Fatalf("%s: denied: %s", tc.name, resp.Denied)
		}
		if got := slices.Contains(resp.Warnings, want); got != tc.warn {
			t.Errorf("%s: warnings %q; want the warning: %v", tc.name, resp.Warnings, tc.warn)
		}
	}
}
