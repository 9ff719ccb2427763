package canaryctl

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/canary-io/canary/contract"
)

func TestHistoryOf(t *testing.T) {
	held := func(rev, stable string, ago time.Duration) corev1.Event {
		return event("web", "Held", "revision "+rev+" held for canary analysis against stable revision "+stable, ago)
	}
	at := func(ago time.Duration) *time.Time { t := now.Add(-ago); return &t }
	other := event("web", "CanaryWorse", "rolled back: another object's", 5*time.Minute)
	other.InvolvedObject.UID = "uid-of-an-earlier-web"
	for _, tc := range []struct {
		name   string
		idle   bool // no analysis in the annotations
		events []corev1.Event
		want   []Analysis
	}{
		{
			name: "promoted, then rolled back, then running",
			events: []corev1.Event{
				// Out of order: the history sorts them.
				event("web", "CanaryWorse", "rolled back: canary worse than stable: error rate 0.31 vs 0.00", 20*time.Minute),
				held("aaa111", "000000", 50*time.Minute),
				event("web", "StepPassed", "step 1/3 passed", 48*time.Minute),
				event("web", "Succeeded", "revision aaa111 promoted", 45*time.Minute),
				held("bbb222", "aaa111", 25*time.Minute),
				held("7f9c4d", "5b6a21", 2*time.Minute),
				event("web", "StepStarted", "step 1/3 started: weight 20%", 90*time.Second),
				other,
			},
			want: []Analysis{
				{Revision: "aaa111", Stable: "000000", Started: at(50 * time.Minute), Ended: at(45 * time.Minute), Outcome: OutcomeSucceeded, Reason: "Succeeded", Message: "revision aaa111 promoted"},
				{Revision: "bbb222", Stable: "aaa111", Started: at(25 * time.Minute), Ended: at(20 * time.Minute), Outcome: OutcomeRolledBack, Reason: "CanaryWorse", Message: "rolled back: canary worse than stable: error rate 0.31 vs 0.00"},
				{Revision: "7f9c4d", Stable: "5b6a21", Started: at(2 * time.Minute), Outcome: "Progressing", Reason: "StepStarted", Message: "step 1/3 started: weight 20%"},
			},
		},
		{
			name: "replaced mid-analysis, a rejected revision, a skipped one",
			idle: true,
			events: []corev1.Event{
				held("aaa111", "000000", 30*time.Minute),
				event("web", "Held", "analysis restarted: revision bbb222 replaced revision aaa111 under analysis (stable 000000)", 28*time.Minute),
				event("web", "Aborted", "rolled back: aborted by canary.io/abort", 27*time.Minute),
				event("web", "HeldRejected", "revision bbb222 was rolled back: held without analysis until canary.io/retry changes", 26*time.Minute),
				event("web", "AnalysisSkipped", "revision ccc333 rolls out without analysis (canary.io/skip-analysis)", 10*time.Minute),
			},
			want: []Analysis{
				{Revision: "aaa111", Stable: "000000", Started: at(30 * time.Minute), Ended: at(28 * time.Minute), Outcome: OutcomeReplaced, Reason: "Held", Message: "analysis restarted: revision bbb222 replaced revision aaa111 under analysis (stable 000000)"},
				{Revision: "bbb222", Stable: "000000", Started: at(28 * time.Minute), Ended: at(27 * time.Minute), Outcome: OutcomeRolledBack, Reason: "Aborted", Message: "rolled back: aborted by canary.io/abort"},
				{Revision: "bbb222", Started: at(26 * time.Minute), Ended: at(26 * time.Minute), Outcome: OutcomeRejected, Reason: "HeldRejected", Message: "revision bbb222 was rolled back: held without analysis until canary.io/retry changes"},
				{Revision: "ccc333", Started: at(10 * time.Minute), Ended: at(10 * time.Minute), Outcome: OutcomeSkipped, Reason: "AnalysisSkipped", Message: "revision ccc333 rolls out without analysis (canary.io/skip-analysis)"},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := progressing("shop", "web")
			if tc.idle {
				d = deployment("shop", "web", contract.KeyPhase, string(contract.PhaseIdle))
			}
			got := HistoryOf(d, tc.events)
			if len(got) != len(tc.want) {
				t.Fatalf("%d analyses, want %d:\n%s", len(got), len(tc.want), RenderHistory(got, true, now))
			}
			for i := range got {
				if !sameAnalysis(got[i], tc.want[i]) {
					t.Errorf("analysis %d:\n got  %s\n want %s", i, show(got[i]), show(tc.want[i]))
				}
			}
		})
	}
}

// The Events have expired: the annotations still tell the last analysis.
func TestHistoryFromAnnotationsAlone(t *testing.T) {
	d := progressing("shop", "web", contract.KeyPhase, "RolledBack", contract.KeyMessage, "rolled back: 2 of 3 checks failed",
		contract.KeyLastTransition, now.Add(-3*time.Hour).Format(time.RFC3339))
	got := HistoryOf(d, nil)
	end := now.Add(-3 * time.Hour)
	want := Analysis{Revision: "7f9c4d", Stable: "5b6a21", Ended: &end, Outcome: "RolledBack", Message: "rolled back: 2 of 3 checks failed"}
	if len(got) != 1 || !sameAnalysis(got[0], want) {
		t.Fatalf("got %v, want %s", got, show(want))
	}
	// The end of an analysis whose start expired: its revision from the
	// annotations.
	got = HistoryOf(d, []corev1.Event{event("web", "ChecksFailed", "rolled back: 2 of 3 checks failed", 3*time.Hour)})
	want.Reason = "ChecksFailed"
	if len(got) != 1 || !sameAnalysis(got[0], want) {
		t.Fatalf("got %v, want %s", got, show(want))
	}
	table := RenderHistory(got, false, now)
	for _, s := range []string{"REVISION", "7f9c4d", "5b6a21", "RolledBack", "ChecksFailed"} {
		if !strings.Contains(table, s) {
			t.Errorf("the table lacks %q:\n%s", s, table)
		}
	}
	if d := deployment("shop", "web"); len(HistoryOf(d, nil)) != 0 {
		t.Error("a Deployment never analysed has a history")
	}
}

func sameAnalysis(a, b Analysis) bool {
	eq := func(x, y *time.Time) bool { return (x == nil) == (y == nil) && (x == nil || x.Equal(*y)) }
	return a.Revision == b.Revision && a.Stable == b.Stable && a.Outcome == b.Outcome && a.Reason == b.Reason &&
		a.Message == b.Message && eq(a.Started, b.Started) && eq(a.Ended, b.Ended)
}

func show(a Analysis) string { return RenderHistory([]Analysis{a}, true, now) }
