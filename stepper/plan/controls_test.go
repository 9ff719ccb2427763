package plan

import (
	"testing"
	"time"

	"github.com/canary-io/canary/contract"
)

func paused(s State) State {
	return with(s, func(s *State) { s.Phase = contract.PhasePaused })
}

func TestNextPause(t *testing.T) {
	failedAt40 := "success rate 80.0% (min 99%, stable 99.9%) failed at step 2/3 (weight 40%); 4 failed checks exceed the threshold of 3"
	runTransitions(t, []transition{{
		name:    "pause set while a step runs: Paused",
		state:   running(1, ago(20*time.Second)),
		obs:     func(o *Observations) { o.Pause = true },
		next:    func(s *State) { s.Phase = contract.PhasePaused },
		actions: []Action{EnsureCanary(2)},
		requeue: 40 * time.Second,
		message: "paused at step 2/3 (weight 40%) by canary.io/pause: the weight holds; checks still run and can roll back",
		event:   "Normal/Paused",
	}, {
		name:    "pause set while waiting for pods: the deadline stops",
		state:   scaling(1, ago(9*time.Minute)),
		obs:     func(o *Observations) { o.Pause = true },
		next:    func(s *State) { s.Phase, s.WaitingSince = contract.PhasePaused, time.Time{} },
		actions: []Action{EnsureCanary(2)},
		requeue: time.Minute,
		message: "paused at step 2/3 (weight 20%) by canary.io/pause: the weight holds; checks still run and can roll back",
		event:   "Normal/Paused",
	}, {
		name:    "pause removed while a step runs: Progressing, the step's time left unchanged",
		state:   paused(running(1, ago(20*time.Second))),
		next:    func(s *State) { s.Phase = contract.PhaseProgressing },
		actions: []Action{EnsureCanary(2)},
		requeue: 40 * time.Second,
		message: "resumed at step 2/3 (weight 40%): canary.io/pause removed",
		event:   "Normal/Resumed",
	}, {
		name:    "pause removed between steps: the wait for pods starts again",
		state:   paused(scaling(2, time.Time{})),
		next:    func(s *State) { s.Phase, s.WaitingSince = contract.PhaseProgressing, t0 },
		actions: []Action{EnsureCanary(3)},
		requeue: RecheckAfter,
		message: "resumed at step 3/3 (weight 40%): canary.io/pause removed",
		event:   "Normal/Resumed",
	}, {
		name:    "paused between steps: ready pods do not move the weight",
		state:   paused(scaling(2, time.Time{})),
		obs:     func(o *Observations) { o.Pause, o.CanaryReady, o.CanaryReadySince = true, 3, ago(time.Minute) },
		actions: []Action{EnsureCanary(3)},
		requeue: time.Minute,
		message: "paused before step 3/3: the weight holds at 40% until canary.io/pause is removed",
	}, {
		name:    "paused, step running",
		state:   paused(running(1, ago(20*time.Second))),
		obs:     func(o *Observations) { o.Pause = true },
		actions: []Action{EnsureCanary(2)},
		requeue: 40 * time.Second,
		message: "paused at step 2/3 (weight 40%) by canary.io/pause; checks still run, next at 2026-03-01T12:00:40Z",
	}, {
		name:    "paused, checks passed: no step advances, the step runs again",
		state:   paused(running(1, ago(time.Minute))),
		obs:     func(o *Observations) { o.Pause, o.Checks = true, passing },
		next:    func(s *State) { s.StepStarted = t0 },
		actions: []Action{EnsureCanary(2)},
		requeue: time.Minute,
		message: "paused at step 2/3 (weight 40%) by canary.io/pause: checks passed: " + passedDetails + "; the weight holds until canary.io/pause is removed",
	}, {
		name:    "paused, check failed within the threshold: counted",
		state:   paused(running(1, ago(time.Minute))),
		obs:     func(o *Observations) { o.Pause, o.Checks = true, failing },
		next:    func(s *State) { s.FailedChecks, s.StepStarted = 1, t0 },
		actions: []Action{EnsureCanary(2)},
		requeue: time.Minute,
		message: "step 2/3 check failed (1 of 3 tolerated): success rate 80.0% (min 99%, stable 99.9%); the step runs again at weight 40%",
		event:   "Warning/CheckFailed",
	}, {
		name:    "paused, check failed beyond the threshold: rolled back",
		state:   with(paused(running(1, ago(time.Minute))), func(s *State) { s.FailedChecks = 3 }),
		obs:     func(o *Observations) { o.Pause, o.Checks = true, failing },
		next:    func(s *State) { rolledBack(s); s.FailedChecks = 4 },
		actions: rollbackActions(failedAt40),
		requeue: 10 * time.Second,
		message: "rolled back: " + failedAt40,
		event:   "Warning/ChecksFailed",
	}, {
		name:    "paused, no data: no deadline, the step runs again",
		state:   paused(running(1, ago(time.Hour))),
		obs:     func(o *Observations) { o.Pause, o.Checks = true, missing },
		next:    func(s *State) { s.StepStarted = t0 },
		actions: []Action{EnsureCanary(2)},
		requeue: time.Minute,
		message: "paused at step 2/3 (weight 40%) by canary.io/pause: no data: success rate no data (min 99%); the step runs again",
	}, {
		name:    "paused after all steps passed: promotion waits, gate or not",
		state:   paused(allPassed(time.Time{})),
		obs:     func(o *Observations) { o.Pause, o.GateOpen = true, ptr(true) },
		actions: []Action{EnsureCanary(3)},
		requeue: time.Minute,
		message: "paused after all 3 steps passed: promotion waits until canary.io/pause is removed",
	}})
}

func TestNextControls(t *testing.T) {
	promoting := func(s *State) {
		s.Phase, s.Weight, s.StepStarted, s.WaitingSince = contract.PhasePromoting, 0, t0, t0
	}
	abortAt40 := `canary.io/abort "a1" at step 2/3 (weight 40%)`
	abortAt20 := `canary.io/abort "a1" at step 1/3 (weight 0%)`
	runTransitions(t, []transition{{
		name:    "new promote value: Promoting now, value recorded",
		state:   running(0, ago(20*time.Second)),
		obs:     func(o *Observations) { o.Promote = "p1" },
		next:    func(s *State) { promoting(s); s.Acted = map[string]string{contract.KeyPromote: "p1"} },
		requeue: minRequeue, // promoting continues the promotion at once
		message: `canary.io/promote "p1" at step 1/3 (weight 20%); promoting revision rev2: all traffic to the Deployment's Service, rolling update started (progress deadline 2026-03-01T12:10:00Z)`,
		event:   "Normal/PromoteRequested",
	}, {
		name:    "new promote value while paused: Promoting",
		state:   paused(scaling(1, time.Time{})),
		obs:     func(o *Observations) { o.Pause, o.Promote = true, "p1" },
		next:    func(s *State) { promoting(s); s.Acted = map[string]string{contract.KeyPromote: "p1"} },
		requeue: minRequeue, // promoting continues the promotion at once
		message: `canary.io/promote "p1" at step 2/3 (weight 20%); promoting revision rev2: all traffic to the Deployment's Service, rolling update started (progress deadline 2026-03-01T12:10:00Z)`,
		event:   "Normal/PromoteRequested",
	}, {
		name:    "promote value already acted on (kept in git): nothing happens",
		state:   with(running(0, ago(20*time.Second)), func(s *State) { s.Acted = map[string]string{contract.KeyPromote: "p1"} }),
		obs:     func(o *Observations) { o.Promote = "p1" },
		actions: []Action{EnsureCanary(1)},
		requeue: 40 * time.Second,
		message: "step 1/3 running at weight 20%; checks at 2026-03-01T12:00:40Z",
	}, {
		name:    "new abort value: rolled back now, value recorded",
		state:   running(1, ago(20*time.Second)),
		obs:     func(o *Observations) { o.Abort = "a1" },
		next:    func(s *State) { rolledBack(s); s.Acted = map[string]string{contract.KeyAbort: "a1"} },
		actions: rollbackActions(abortAt40),
		requeue: 10 * time.Second,
		message: "rolled back: " + abortAt40,
		event:   "Warning/Aborted",
	}, {
		name:    "new abort value while waiting for the gate: rolled back",
		state:   allPassed(ago(time.Minute)),
		obs:     func(o *Observations) { o.Abort, o.GateOpen = "a1", ptr(false) },
		next:    func(s *State) { rolledBack(s); s.Acted = map[string]string{contract.KeyAbort: "a1"} },
		actions: rollbackActions(`canary.io/abort "a1" after step 3/3 (weight 60%)`),
		requeue: 10 * time.Second,
		message: `rolled back: canary.io/abort "a1" after step 3/3 (weight 60%)`,
		event:   "Warning/Aborted",
	}, {
		name:  "new abort and promote values together: abort wins, both consumed",
		state: with(running(1, ago(20*time.Second)), func(s *State) { s.Acted = map[string]string{contract.KeyRetry: "r1"} }),
		obs:   func(o *Observations) { o.Abort, o.Promote = "a1", "p1" },
		next: func(s *State) {
			rolledBack(s)
			s.Acted = map[string]string{contract.KeyAbort: "a1", contract.KeyPromote: "p1", contract.KeyRetry: "r1"}
		},
		actions: rollbackActions(abortAt40),
		requeue: 10 * time.Second,
		message: "rolled back: " + abortAt40,
		event:   "Warning/Aborted",
	}, {
		name:  "new abort value before any traffic: canary deleted at once",
		state: scaling(0, ago(time.Minute)),
		obs:   func(o *Observations) { o.Abort = "a1" },
		next: func(s *State) {
			s.Phase, s.WaitingSince = contract.PhaseRolledBack, time.Time{}
			s.Acted = map[string]string{contract.KeyAbort: "a1"}
		},
		actions: []Action{DeleteCanary(), RecordRejected("rev2", abortAt20), SetProgressingFailed("rolled back: " + abortAt20)},
		requeue: RecheckAfter,
		message: "rolled back: " + abortAt20,
		event:   "Warning/Aborted",
	}})
}

func TestNextHolds(t *testing.T) {
	conflict := "Service web-canary exists and is not owned by Deployment web"
	conflictAt1 := "the analysis stopped at step 1/3 (weight 0%): " + conflict
	conflictAt2 := "the analysis stopped at step 2/3 (weight 40%): " + conflict
	worse := "the canary is worse than stable at step 1/3 (weight 20%): error rate 4.1% against stable's 0.2% (confidence 99%, tolerance 20%)"
	someoneElse := "VirtualService web sends 50% to web-canary, not the 20% the stepper wrote"
	runTransitions(t, []transition{{
		name:  "conflict before any traffic moved: stopped, revision recorded for canary.io/retry",
		state: with(started(), func(s *State) { s.WaitingSince = ago(10 * time.Second) }),
		obs: func(o *Observations) {
			o.Conflict, o.ServicePinned, o.CanaryObjectsExist = conflict, false, false
		},
		next:    func(s *State) { s.Phase, s.WaitingSince = contract.PhaseRolledBack, time.Time{} },
		actions: []Action{RecordRejected("rev2", conflictAt1), SetProgressingFailed("rolled back: " + conflictAt1)},
		requeue: RecheckAfter,
		message: "rolled back: " + conflictAt1,
		event:   "Warning/Conflict",
	}, {
		name:    "conflict after traffic moved: weight to stable first",
		state:   running(1, ago(20*time.Second)),
		obs:     func(o *Observations) { o.Conflict = conflict },
		next:    rolledBack,
		actions: rollbackActions(conflictAt2),
		requeue: 10 * time.Second,
		message: "rolled back: " + conflictAt2,
		event:   "Warning/Conflict",
	}, {
		name:  "canary worse than stable: rolled back whatever the step",
		state: running(0, ago(20*time.Second)),
		obs: func(o *Observations) {
			o.ComparisonFailed = "error rate 4.1% against stable's 0.2% (confidence 99%, tolerance 20%)"
		},
		next:    rolledBack,
		actions: rollbackActions(worse),
		requeue: 10 * time.Second,
		message: "rolled back: " + worse,
		event:   "Warning/CanaryWorse",
	}, {
		name:  "weights changed by someone else: hold, the weight does not move",
		state: scaling(1, ago(time.Minute)),
		obs: func(o *Observations) {
			o.RoutingChangedBySomeoneElse, o.RoutedWeight = someoneElse, 50
			o.CanaryReady, o.CanaryReadySince = 2, ago(time.Minute)
		},
		actions: []Action{EnsureCanary(2)},
		requeue: RecheckAfter,
		message: "holding at step 2/3 (weight 20%): " + someoneElse + "; the stepper leaves the weights alone until the canary's weight is 20% again, or canary.io/abort or canary.io/promote is set",
	}, {
		name:  "weights changed by someone else: failing checks are not judged",
		state: running(0, ago(time.Minute)),
		obs: func(o *Observations) {
			o.RoutingChangedBySomeoneElse, o.RoutedWeight, o.Checks = someoneElse, 50, failing
		},
		actions: []Action{EnsureCanary(1)},
		requeue: RecheckAfter,
		message: "holding at step 1/3 (weight 20%): " + someoneElse + "; the stepper leaves the weights alone until the canary's weight is 20% again, or canary.io/abort or canary.io/promote is set",
	}, {
		name:    "the Service's pin was removed mid-analysis: pinned again",
		state:   running(0, ago(20*time.Second)),
		obs:     func(o *Observations) { o.ServicePinned = false },
		actions: []Action{PinService(), EnsureCanary(1)},
		requeue: 40 * time.Second,
		message: "step 1/3 running at weight 20%; checks at 2026-03-01T12:00:40Z",
	}, {
		name:    "analysis restarted by a new template: traffic leaves the old canary first",
		state:   started(),
		obs:     func(o *Observations) { o.RoutedWeight = 40 },
		next:    func(s *State) { s.WaitingSince = t0 },
		actions: []Action{SetWeight(0), EnsureCanary(1)},
		requeue: RecheckAfter,
		message: "step 1/3: waiting for canary pods: 0 of 1 ready for weight 20%; rolling back at 2026-03-01T12:10:00Z if they are not",
	}, {
		name:  "our weight write landed but the status write was lost: written once more, not undone",
		state: scaling(1, ago(time.Minute)),
		obs: func(o *Observations) {
			o.RoutedWeight, o.CanaryReady, o.CanaryReadySince = 40, 2, ago(time.Minute)
		},
		next:    func(s *State) { s.Weight, s.StepStarted, s.WaitingSince = 40, t0, time.Time{} },
		actions: []Action{EnsureCanary(2), SetWeight(40)},
		requeue: time.Minute,
		message: "step 2/3 running at weight 40%; checks at 2026-03-01T12:01:00Z",
		event:   "Normal/StepStarted",
	}, {
		name:    "the VirtualService lost the canary's weight: the step starts again from scaling",
		state:   running(1, ago(20*time.Second)),
		obs:     func(o *Observations) { o.RoutedWeight = 0 },
		next:    func(s *State) { s.Weight, s.StepStarted, s.WaitingSince = 0, time.Time{}, t0 },
		actions: []Action{EnsureCanary(2)},
		requeue: RecheckAfter,
		message: "step 2/3: waiting for canary pods: 0 of 2 ready for weight 40%; rolling back at 2026-03-01T12:10:00Z if they are not",
	}, {
		name:    "invalid settings: hold, nothing moves",
		spec:    func(s *Spec) { s.Steps = nil },
		state:   allPassed(ago(time.Minute)),
		requeue: RecheckAfter,
		message: "cannot decide: invalid analysis settings: no steps",
	}, {
		name:    "step beyond the steps: hold, nothing moves",
		state:   with(allPassed(ago(time.Minute)), func(s *State) { s.Step = 5 }),
		requeue: RecheckAfter,
		message: "cannot decide: step 5 is outside the 3 steps of the analysis",
	}})
}

func TestSpecValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Spec)
		want string
	}{
		{"valid", func(*Spec) {}, ""},
		{"no steps", func(s *Spec) { s.Steps = nil }, "no steps"},
		{"not ascending", func(s *Spec) { s.Steps = []int32{40, 20} }, "steps [40 20] are not strictly ascending weights from 1 to 99"},
		{"100%", func(s *Spec) { s.Steps = []int32{100} }, "steps [100] are not strictly ascending weights from 1 to 99"},
		{"no interval", func(s *Spec) { s.Interval = 0 }, "interval 0s is not positive"},
		{"negative threshold", func(s *Spec) { s.Threshold = -1 }, "threshold -1 is negative"},
		{"no-data policy", func(s *Spec) { s.NoData = "maybe" }, `no-data policy "maybe" is unknown`},
		{"no deadline", func(s *Spec) { s.ProgressDeadline = 0 }, "progress deadline 0s is not positive"},
		{"negative delay", func(s *Spec) { s.PropagationDelay = -time.Second }, "propagation delay -1s is negative"},
		{"negative replicas", func(s *Spec) { s.Replicas = -1 }, "replicas -1 is negative"},
	} {
		err := testSpec(tc.mod).Validate()
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tc.want {
			t.Errorf("%s: Validate() = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestSpecFrom(t *testing.T) {
	settings := contract.DefaultSettings()
	got := SpecFrom(settings, 7, 5*time.Second)
	want := testSpec(func(s *Spec) { s.Replicas, s.PropagationDelay = 7, 5*time.Second })
	if got.Validate() != nil || got.Interval != want.Interval || got.Threshold != want.Threshold ||
		got.NoData != want.NoData || got.ProgressDeadline != want.ProgressDeadline ||
		got.Replicas != 7 || got.PropagationDelay != 5*time.Second || len(got.Steps) != 3 {
		t.Errorf("SpecFrom(defaults) = %+v, want %+v", got, want)
	}
	got.Steps[0] = 1
	if settings.Steps[0] != 20 {
		t.Error("SpecFrom shares the settings' steps")
	}
}
