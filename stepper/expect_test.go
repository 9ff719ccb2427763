package stepper

import (
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"

	"github.com/canary-io/canary/contract"
	"github.com/canary-io/canary/stepper/plan"
)

// TestExpectChecks: the pass that records a running step tells the Reader
// when its checks fall due; anything else (a step not started yet, a
// pause, rollout hooks the checks wait for, checks already due) forgets
// what it was told.
func TestExpectChecks(t *testing.T) {
	// The step's checks fall due half a minute from now: no expectation
	// is read while the test looks at it.
	now := time.Now().UTC()
	started := now.Truncate(time.Second).Add(-10 * time.Second)
	spec := plan.Spec{Steps: []int32{20, 40, 60}, Interval: 40 * time.Second, Threshold: 1, NoData: contract.NoDataHold,
		ProgressDeadline: 10 * time.Minute, Replicas: 5, PropagationDelay: 2 * time.Second}
	running := plan.State{Phase: contract.PhaseProgressing, Revision: "rev2", Stable: "rev1", AnalysisStarted: started.Add(-time.Minute),
		Step: 1, Weight: 40, StepStarted: started}
	withHooks := contract.DefaultSettings()
	withHooks.Interval = spec.Interval
	withHooks.Webhooks = []contract.Webhook{{Name: "load", Type: contract.HookRollout, URL: "http://loadtester/"}}
	for _, tc := range []struct {
		name     string
		next     func(plan.State) plan.State
		settings *contract.Settings
		want     time.Time // zero: nothing expected
	}{
		{name: "step running", next: func(s plan.State) plan.State { return s }, want: started.Add(40 * time.Second)},
		{name: "step not started (the weight is prepared)", next: func(s plan.State) plan.State {
			s.Step, s.StepStarted = 2, time.Time{}
			return s
		}},
		{name: "paused", next: func(s plan.State) plan.State { s.Phase = contract.PhasePaused; return s }},
		{name: "rollout hooks", next: func(s plan.State) plan.State { return s }, settings: &withHooks},
		{name: "due already", next: func(s plan.State) plan.State { s.StepStarted = started.Add(-40 * time.Second); return s }},
		{name: "rolled back", next: func(s plan.State) plan.State { s.Phase = contract.PhaseRolledBack; return s }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rd := &Reader{QueryTimeout: time.Second, Clock: clock.RealClock{},
				Querier: func(string) (Querier, error) { return &checkProm{}, nil }}
			startReader(t, rd)
			r := &Reconciler{Reader: rd, Prometheus: "http://prometheus:9090"}
			settings := contract.DefaultSettings()
			settings.Interval = spec.Interval
			if tc.settings != nil {
				settings = *tc.settings
			}
			w := &world{deployment: &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "reviews", Namespace: "shop"}},
				settings: settings, spec: spec, state: running, obs: plan.Observations{Now: now}, scrape: 5 * time.Second,
				analysisStarted: running.AnalysisStarted}
			// What an earlier pass told the Reader, to be kept or forgotten.
			rd.Expect("shop/reviews", "earlier", checkRun{}, r.Prometheus, now.Add(time.Hour))
			next := tc.next(running)
			r.expectChecks(t.Context(), w, next)
			rd.mu.Lock()
			defer rd.mu.Unlock()
			e := rd.expected["shop/reviews"]
			switch {
			case tc.want.IsZero() && e != nil:
				t.Errorf("expected %+v, want nothing", e)
			case tc.want.IsZero():
			case e == nil:
				t.Fatalf("nothing expected, want the checks at %v", tc.want)
			case !e.at.Equal(tc.want) || e.round != checksRound(next) || e.run.window != 40*time.Second || e.run.canary != "reviews-canary":
				t.Errorf("expected %+v at %v, want round %q at %v, window 40s", e, e.at, checksRound(next), tc.want)
			}
		})
	}
}
