package stepper

import (
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/canary-io/canary/contract"
)

// TestChangedMeanwhile: a conflict retry writes the decision over a fresh
// version only when nothing but the status, the resourceVersion and the
// managed fields changed.
func TestChangedMeanwhile(t *testing.T) {
	read := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{
		Name: "reviews", ResourceVersion: "1", Generation: 2,
		Labels: map[string]string{"app": "reviews"}, Annotations: map[string]string{"canary.io/enabled": "true"},
	}}
	for _, c := range []struct {
		name    string
		change  func(*appsv1.Deployment)
		changed bool
	}{
		{"status and resourceVersion only", func(d *appsv1.Deployment) { d.ResourceVersion = "2"; d.Status.ReadyReplicas = 3 }, false},
		{"type information (a cached copy has none)", func(d *appsv1.Deployment) {
			d.TypeMeta = metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"}
		}, false},
		{"managed fields", func(d *appsv1.Deployment) {
			d.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "kube-controller-manager"}}
		}, false},
		{"a label", func(d *appsv1.Deployment) { d.Labels["team"] = "books" }, true},
		{"an annotation", func(d *appsv1.Deployment) { d.Annotations["canary.io/abort"] = "1" }, true},
		{"a finalizer", func(d *appsv1.Deployment) { d.Finalizers = []string{"example.com/keep"} }, true},
		{"the spec", func(d *appsv1.Deployment) { d.Spec.Paused = true }, true},
	} {
		fresh := read.DeepCopy()
		c.change(fresh)
		if got := changedMeanwhile(read, fresh); got != c.changed {
			t.Errorf("%s: changedMeanwhile %v, want %v", c.name, got, c.changed)
		}
	}
}

func TestOnlyTheNoteDiffers(t *testing.T) {
	const running = "step 1/3 running at weight 10%; checks at 12:00:40"
	for _, tc := range []struct {
		name, recorded, message string
		want                    bool
	}{
		{"same, no note", running, running, true},
		{"a note recorded", running + "; canary error rate 0.0% vs stable 0.1%: not worse so far (p = 1, needs 0.01) after 120 canary requests in 30s", running, true},
		{"a slow-request note", running + "; canary slow-request rate (over 500ms) 0.0% vs stable 0.0%: no data yet", running, true},
		{"comparison unavailable", running + "; continuous comparison unavailable: query timed out", running, true},
		{"no stable traffic yet", running + "; continuous comparison: no stable traffic to compare with yet, the threshold checks decide alone", running, true},
		{"another message", "step 1/3: checks due since 12:00:40; waiting for their results", running, false},
		{"the message continued otherwise", running + "; asking the confirm-promotion gate", running, false},
		{"canary pods, not a note", running + "; canary pods not ready", running, false},
		{"nothing recorded", "", running, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := onlyTheNoteDiffers(tc.recorded, tc.message); got != tc.want {
				t.Errorf("onlyTheNoteDiffers(%q, %q) = %v, want %v", tc.recorded, tc.message, got, tc.want)
			}
		})
	}
}

// TestFailureMessage: an analysis in flight that cannot act says when it
// rolls back; a promotion, which is never rolled back, says it retries;
// an analysis that has ended keeps the message that says why.
func TestFailureMessage(t *testing.T) {
	deadline := time.Date(2026, 12, 3, 21, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		phase        contract.Phase
		promoteAsked bool
		want         string
	}{
		{contract.PhaseProgressing, false, "cannot act: refused; rolling back at 2026-12-03T21:00:00Z if it keeps failing"},
		{contract.PhasePaused, false, "cannot act: refused; rolling back at 2026-12-03T21:00:00Z if it keeps failing"},
		{contract.PhasePromoting, false, "cannot act: refused; the promotion retries until it can (a promotion is not rolled back)"},
		// A new canary.io/promote not recorded yet: every pass promotes
		// again, before the deadline is looked at.
		{contract.PhaseProgressing, true, "cannot act: refused; the promotion canary.io/promote asked for retries until it can (it is not rolled back at the progress deadline)"},
		{contract.PhasePaused, true, "cannot act: refused; the promotion canary.io/promote asked for retries until it can (it is not rolled back at the progress deadline)"},
		{contract.PhasePromoting, true, "cannot act: refused; the promotion retries until it can (a promotion is not rolled back)"},
		// Ended by this pass: the message that says why stays.
		{contract.PhaseRolledBack, false, ""},
		{contract.PhaseSucceeded, false, ""},
	} {
		if got := failureMessage(tc.phase, tc.promoteAsked, "refused", deadline); got != tc.want {
			t.Errorf("%s (promote asked %v): %q, want %q", tc.phase, tc.promoteAsked, got, tc.want)
		}
	}
}
