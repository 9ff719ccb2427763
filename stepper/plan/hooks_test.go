package plan

import (
	"strings"
	"testing"
	"time"

	"github.com/canary-io/canary/contract"
)

// withPreRollout is a spec modifier: the analysis has pre-rollout hooks.
func withPreRollout(s *Spec) { s.PreRollout = true }

func TestNextHooks(t *testing.T) {
	loadTestFailed := `hook "load-test" (answered 500 Internal Server Error: "exit status 1")`
	ready := func(o *Observations) { o.CanaryReady, o.CanaryReadySince = 1, ago(time.Minute) }
	preRollout := func(failure string) func(*Observations) {
		return func(o *Observations) {
			ready(o)
			o.PreRollout = []CheckResult{HookResult("smoke", ""), HookResult("load-test", failure)}
		}
	}
	firstFailed := with(scaling(0, ago(2*time.Minute)), func(s *State) { s.FailedChecks, s.PreRolloutFailed = 1, ago(30*time.Second) })
	runTransitions(t, []transition{{
		name:    "pre-rollout: canary ready, the hooks' answers not in yet: nothing moves",
		spec:    withPreRollout,
		state:   scaling(0, ago(time.Minute)),
		obs:     ready,
		actions: []Action{EnsureCanary(1)},
		requeue: RecheckAfter,
		message: "step 1/3: the canary is ready; waiting for the pre-rollout hooks to answer before any traffic moves",
	}, {
		name:    "pre-rollout hooks passed: the first step's weight moves in the same pass",
		spec:    withPreRollout,
		state:   scaling(0, ago(time.Minute)),
		obs:     preRollout(""),
		next:    func(s *State) { s.Weight, s.StepStarted, s.WaitingSince = 20, t0, time.Time{} },
		actions: []Action{EnsureCanary(1), SetWeight(20)},
		requeue: time.Minute,
		message: "step 1/3 running at weight 20%; checks at 2026-03-01T12:01:00Z",
		event:   "Normal/StepStarted",
	}, {
		name:    "pre-rollout hook failed: a failed check, no traffic, called again an interval later",
		spec:    withPreRollout,
		state:   scaling(0, ago(time.Minute)),
		obs:     preRollout(`answered 500 Internal Server Error: "exit status 1"`),
		next:    func(s *State) { s.FailedChecks, s.PreRolloutFailed, s.WaitingSince = 1, t0, t0 },
		actions: []Action{EnsureCanary(1)},
		requeue: time.Minute,
		message: "pre-rollout " + loadTestFailed + " failed (1 of 3 failed checks tolerated); no traffic moved, the hooks are called again at 2026-03-01T12:01:00Z",
		event:   "Warning/CheckFailed",
	}, {
		name:    "pre-rollout failed before: not called again until the interval is over",
		spec:    withPreRollout,
		state:   firstFailed,
		obs:     ready,
		actions: []Action{EnsureCanary(1)},
		requeue: 30 * time.Second,
	}, {
		name:  "pre-rollout passes on the retry: the failure is forgotten, the failed check is not",
		spec:  withPreRollout,
		state: firstFailed,
		obs:   func(o *Observations) { preRollout("")(o); o.Now = t0.Add(30 * time.Second) },
		next: func(s *State) {
			s.Weight, s.StepStarted, s.WaitingSince, s.PreRolloutFailed = 20, t0.Add(30*time.Second), time.Time{}, time.Time{}
		},
		actions: []Action{EnsureCanary(1), SetWeight(20)},
		requeue: time.Minute,
		message: "step 1/3 running at weight 20%; checks at 2026-03-01T12:01:30Z",
		event:   "Normal/StepStarted",
	}, {
		name:  "pre-rollout failed over the threshold: rolled back before any traffic moved",
		spec:  withPreRollout,
		state: with(firstFailed, func(s *State) { s.FailedChecks = 3 }),
		obs:   preRollout(`answered 500 Internal Server Error: "exit status 1"`),
		next: func(s *State) {
			s.Phase, s.FailedChecks, s.WaitingSince = contract.PhaseRolledBack, 4, time.Time{}
		},
		actions: []Action{DeleteCanary(),
			RecordRejected("rev2", "pre-rollout "+loadTestFailed+" failed before step 1/3 took traffic; 4 failed checks exceed the threshold of 3"),
			SetProgressingFailed("rolled back: pre-rollout " + loadTestFailed + " failed before step 1/3 took traffic; 4 failed checks exceed the threshold of 3")},
		requeue: RecheckAfter,
		message: "rolled back: pre-rollout " + loadTestFailed + " failed before step 1/3 took traffic; 4 failed checks exceed the threshold of 3",
		event:   "Warning/ChecksFailed",
	}, {
		name:    "pre-rollout hooks run once: later steps move without them",
		spec:    withPreRollout,
		state:   scaling(1, ago(time.Minute)),
		obs:     func(o *Observations) { o.CanaryReady, o.CanaryReadySince = 2, ago(time.Minute) },
		next:    func(s *State) { s.Weight, s.StepStarted, s.WaitingSince = 40, t0, time.Time{} },
		actions: []Action{EnsureCanary(2), SetWeight(40)},
		requeue: time.Minute,
		message: "step 2/3 running at weight 40%; checks at 2026-03-01T12:01:00Z",
		event:   "Normal/StepStarted",
	}, {
		name:  "a failing rollout hook fails the step's checks like a failing metric",
		state: running(1, ago(time.Minute)),
		obs: func(o *Observations) {
			o.Checks = append(append([]CheckResult(nil), passing...), HookResult("load-test", `answered 500 Internal Server Error: "exit status 1"`))
		},
		next:    func(s *State) { s.FailedChecks, s.StepStarted = 1, t0 },
		actions: []Action{EnsureCanary(2)},
		requeue: time.Minute,
		message: "step 2/3 check failed (1 of 3 tolerated): " + loadTestFailed + "; the step runs again at weight 40%",
		event:   "Warning/CheckFailed",
	}, {
		name:    "a rollback hook that answers with success rolls back at once",
		state:   running(1, ago(20*time.Second)),
		obs:     func(o *Observations) { o.RollbackHook = `rollback hook "rollback" answered 200 OK` },
		next:    rolledBack,
		actions: rollbackActions(`rollback hook "rollback" answered 200 OK at step 2/3 (weight 40%)`),
		requeue: 10 * time.Second,
		message: `rolled back: rollback hook "rollback" answered 200 OK at step 2/3 (weight 40%)`,
		event:   "Warning/RollbackHook",
	}, {
		name:  "the gate's answer is in the message while it is closed",
		state: allPassed(ago(time.Minute)),
		obs: func(o *Observations) {
			o.GateOpen, o.Gate = ptr(false), `hook "approval" answered 403 Forbidden: "Forbidden"`
		},
		actions: []Action{EnsureCanary(3)},
		requeue: RecheckAfter,
		message: `all 3 steps passed; waiting for the confirm-promotion gate (hook "approval" answered 403 Forbidden: "Forbidden"), rolling back at 2026-03-01T12:09:00Z if it stays closed`,
	}})
}

func TestPreRolloutPassedEventNamesTheHooks(t *testing.T) {
	spec := testSpec(withPreRollout)
	obs := Observations{Now: t0, ServicePinned: true, CanaryObjectsExist: true, CanaryReady: 1, CanaryReadySince: ago(time.Minute),
		PreRollout: []CheckResult{HookResult("smoke", "")}}
	d := Next(spec, scaling(0, ago(time.Minute)), obs)
	want := `pre-rollout hook "smoke" passed; step 1/3 started: weight 20% with 1 of 1 canary pods ready`
	if d.Event == nil || d.Event.Message != want {
		t.Errorf("event = %+v, want message %q", d.Event, want)
	}
}

func TestPreRolloutDue(t *testing.T) {
	ready := Observations{Now: t0, CanaryReady: 1, CanaryReadySince: ago(time.Minute)}
	for _, tc := range []struct {
		name  string
		spec  Spec
		state State
		obs   Observations
		want  bool
	}{
		{"canary ready before the first step", testSpec(withPreRollout), scaling(0, ago(time.Minute)), ready, true},
		{"no pre-rollout hooks", testSpec(), scaling(0, ago(time.Minute)), ready, false},
		{"canary not ready", testSpec(withPreRollout), scaling(0, ago(time.Minute)), Observations{Now: t0}, false},
		{"canary ready for less than the propagation delay", testSpec(withPreRollout), scaling(0, ago(time.Minute)),
			Observations{Now: t0, CanaryReady: 1, CanaryReadySince: ago(5 * time.Second)}, false},
		{"paused", testSpec(withPreRollout), with(scaling(0, ago(time.Minute)), func(s *State) { s.Phase = contract.PhasePaused }), ready, false},
		{"first step running", testSpec(withPreRollout), running(0, ago(time.Second)), ready, false},
		{"second step being prepared", testSpec(withPreRollout), scaling(1, ago(time.Minute)),
			Observations{Now: t0, CanaryReady: 2, CanaryReadySince: ago(time.Minute)}, false},
		{"failed 59s ago, interval 1m", testSpec(withPreRollout),
			with(scaling(0, ago(time.Minute)), func(s *State) { s.PreRolloutFailed = ago(59 * time.Second) }), ready, false},
		{"failed 1m ago, interval 1m", testSpec(withPreRollout),
			with(scaling(0, ago(time.Minute)), func(s *State) { s.PreRolloutFailed = ago(time.Minute) }), ready, true},
		{"promoting", testSpec(withPreRollout), promotingSince(ago(time.Minute)), ready, false},
		{"the VirtualService lost the first step's weight: due again", testSpec(withPreRollout), running(0, ago(time.Second)),
			Observations{Now: t0, CanaryReady: 1, CanaryReadySince: ago(time.Minute), RoutedWeight: -1}, true},
		{"pause set, not yet Paused: not judged", testSpec(withPreRollout), scaling(0, ago(time.Minute)),
			Observations{Now: t0, CanaryReady: 1, CanaryReadySince: ago(time.Minute), Pause: true}, false},
		{"someone else's weights: not judged", testSpec(withPreRollout), scaling(0, ago(time.Minute)),
			Observations{Now: t0, CanaryReady: 1, CanaryReadySince: ago(time.Minute), RoutingChangedBySomeoneElse: "x"}, false},
		{"a new abort value: not judged", testSpec(withPreRollout), scaling(0, ago(time.Minute)),
			Observations{Now: t0, CanaryReady: 1, CanaryReadySince: ago(time.Minute), Abort: "now"}, false},
		{"a conflict: not judged", testSpec(withPreRollout), scaling(0, ago(time.Minute)),
			Observations{Now: t0, CanaryReady: 1, CanaryReadySince: ago(time.Minute), Conflict: "x"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			switch tc.obs.RoutedWeight {
			case -1:
				tc.obs.RoutedWeight = 0 // the case's point: the route lost the weight
			default:
				tc.obs.RoutedWeight = tc.state.Weight // the VirtualService carries the recorded weight
			}
			if got := PreRolloutDue(tc.spec, tc.state, tc.obs); got != tc.want {
				t.Errorf("PreRolloutDue = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestHookResultString(t *testing.T) {
	for _, tc := range []struct {
		c    CheckResult
		want string
	}{
		{HookResult("load-test", ""), `hook "load-test" passed`},
		{HookResult("load-test", "timed out after 10s"), `hook "load-test" (timed out after 10s)`},
	} {
		if got := tc.c.String(); got != tc.want {
			t.Errorf("String = %q, want %q", got, tc.want)
		}
		if tc.c.Passed() != strings.HasSuffix(tc.want, "passed") {
			t.Errorf("%s: Passed = %v", tc.want, tc.c.Passed())
		}
	}
}

func TestSpecFromNoticesPreRolloutHooks(t *testing.T) {
	s := contract.Settings{Webhooks: []contract.Webhook{{Name: "g", Type: contract.HookConfirmPromotion}}}
	if SpecFrom(s, 1, 0).PreRollout {
		t.Error("PreRollout set without a pre-rollout hook")
	}
	s.Webhooks = append(s.Webhooks, contract.Webhook{Name: "p", Type: contract.HookPreRollout})
	if !SpecFrom(s, 1, 0).PreRollout {
		t.Error("PreRollout not set with a pre-rollout hook")
	}
}

func TestJudged(t *testing.T) {
	run := running(1, ago(time.Minute))
	for _, tc := range []struct {
		name  string
		state State
		obs   Observations
		want  bool
	}{
		{"a running step", run, Observations{}, true},
		{"paused, pause still set: the checks still run", with(run, func(s *State) { s.Phase = contract.PhasePaused }), Observations{Pause: true}, true},
		{"pause being set", run, Observations{Pause: true}, false},
		{"pause being removed", with(run, func(s *State) { s.Phase = contract.PhasePaused }), Observations{}, false},
		{"a new promote value", run, Observations{Promote: "p"}, false},
		{"a promote value acted on", with(run, func(s *State) { s.Acted = map[string]string{contract.KeyPromote: "p"} }), Observations{Promote: "p"}, true},
		{"a new abort value", run, Observations{Abort: "a"}, false},
		{"a conflict", run, Observations{Conflict: "x"}, false},
		{"the comparison's verdict", run, Observations{ComparisonFailed: "x"}, false},
		{"a rollback hook's request", run, Observations{RollbackHook: "x"}, false},
		{"someone else's weights", run, Observations{RoutingChangedBySomeoneElse: "x"}, false},
		{"promoting", promotingSince(ago(time.Minute)), Observations{}, false},
	} {
		if got := Judged(tc.state, tc.obs); got != tc.want {
			t.Errorf("%s: Judged = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestLastStepPassedBeforeTheGateAnswers: the gate's answer arrives on a
// later pass; the pass that judges the last step's checks still tells
// that the step passed, with its numbers, and waits for the gate.
func TestLastStepPassedBeforeTheGateAnswers(t *testing.T) {
	spec := testSpec()
	spec.ConfirmPromotion = true
	st := running(len(spec.Steps)-1, t0.Add(-spec.Interval))
	d := Next(spec, st, Observations{Now: t0, CanaryReady: 3, CanaryReadySince: t0.Add(-time.Hour), RoutedWeight: st.Weight,
		ServicePinned: true, Checks: []CheckResult{{Name: "success rate", HasData: true, Canary: 100, Min: pct(99)}}})
	if d.Next.Phase != contract.PhaseProgressing || d.Next.Step != len(spec.Steps) {
		t.Fatalf("phase %s step %d, want Progressing with every step passed", d.Next.Phase, d.Next.Step)
	}
	if !strings.Contains(d.Message, "step 3/3 passed") || !strings.Contains(d.Message, "asking the confirm-promotion gate") {
		t.Errorf("message %q, want the step's numbers and the gate being asked", d.Message)
	}
	if d.Event == nil || d.Event.Reason != ReasonStepPassed {
		t.Errorf("event %v, want StepPassed", d.Event)
	}
}
