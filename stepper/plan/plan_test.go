package plan

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/canary-io/canary/contract"
)

// t0 is the injected clock of every table test: Observations.Now.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// ago is t0 minus d.
func ago(d time.Duration) time.Time { return t0.Add(-d) }

// testSpec: steps 20,40,60 (canary pods needed with 5 replicas: 1, 2, 3),
// interval 1m, threshold 3, no-data hold, deadline 10m, delay 10s.
func testSpec(mods ...func(*Spec)) Spec {
	s := Spec{
		Steps:            []int32{20, 40, 60},
		Interval:         time.Minute,
		Threshold:        3,
		NoData:           contract.NoDataHold,
		ProgressDeadline: 10 * time.Minute,
		Replicas:         5,
		PropagationDelay: 10 * time.Second,
	}
	for _, m := range mods {
		m(&s)
	}
	return s
}

// started is the state the webhook writes when it holds a template:
// Progressing, step 0/3, weight 0, nothing else.
func started() State {
	return State{Phase: contract.PhaseProgressing, Revision: "rev2", Stable: "rev1"}
}

// scaling is the state between steps: step passed so far, the weight of
// the last passed step, waiting for the canary since waiting.
func scaling(step int, waiting time.Time) State {
	s := started()
	s.Step = step
	if step > 0 {
		s.Weight = testSpec().Steps[step-1]
	}
	s.WaitingSince = waiting
	return s
}

// running is the state of a running step that started at since.
func running(step int, since time.Time) State {
	s := started()
	s.Step = step
	s.Weight = testSpec().Steps[step]
	s.StepStarted = since
	return s
}

// allPassed is the state after the last step passed, waiting for the gate.
func allPassed(waiting time.Time) State {
	s := started()
	s.Step = 3
	s.Weight = 60
	s.WaitingSince = waiting
	return s
}

// with returns s changed by mods (a copy: Acted is cloned).
func with(s State, mods ...func(*State)) State {
	s.Acted = maps.Clone(s.Acted)
	for _, m := range mods {
		m(&s)
	}
	return s
}

func pct(v float64) *float64 { return &v }

func successRate(canary, stable float64) CheckResult {
	return CheckResult{Name: CheckSuccessRate, Unit: UnitPercent, Canary: canary, HasData: true,
		Stable: stable, StableHasData: true, Min: pct(99)}
}

func latency(canary, stable float64) CheckResult {
	return CheckResult{Name: CheckLatency, Unit: UnitMilliseconds, Canary: canary, HasData: true,
		Stable: stable, StableHasData: true, Max: pct(500)}
}

func noData(c CheckResult, detail string) CheckResult {
	c.HasData, c.StableHasData, c.Detail = false, false, detail
	return c
}

var (
	passing = []CheckResult{successRate(99.8, 99.9), latency(212, 198)}
	failing = []CheckResult{successRate(80, 99.9), latency(212, 198)}
	missing = []CheckResult{noData(successRate(0, 0), ""), latency(212, 198)}
)

const passedDetails = "success rate 99.8% (min 99%, stable 99.9%), p99 212ms (max 500ms, stable 198ms)"

// transition is one row of a table test of Next. The observations start
// from: Now t0, the Service pinned, canary objects present, the
// VirtualService carrying state.Weight; obs changes them. next changes a
// copy of state into the expected next state.
type transition struct {
	name    string
	spec    func(*Spec)
	state   State
	obs     func(*Observations)
	next    func(*State)
	actions []Action
	requeue time.Duration
	message string
	event   string // "Type/Reason", "" for no event
	// passed is Decision.Passed as "Type/Reason": a step that passed in
	// the pass that starts the next.
	passed string
}

func runTransitions(t *testing.T, cases []transition) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			spec := testSpec()
			if tc.spec != nil {
				tc.spec(&spec)
			}
			obs := Observations{Now: t0, ServicePinned: true, CanaryObjectsExist: true, RoutedWeight: tc.state.Weight}
			if tc.obs != nil {
				tc.obs(&obs)
			}
			input := with(tc.state)
			got := Next(spec, tc.state, obs)

			if diff := diffState(tc.state, input); diff != "" {
				t.Errorf("Next modified its state argument: %s", diff)
			}
			want := with(tc.state)
			if tc.next != nil {
				tc.next(&want)
			}
			if diff := diffState(got.Next, want); diff != "" {
				t.Errorf("next state: %s", diff)
			}
			// The tables list the effects; checkInvariants checks where
			// the state write stands among them.
			if effects := withoutWrite(got.Actions); !slices.Equal(effects, tc.actions) {
				t.Errorf("actions:\n got %v\nwant %v", effects, tc.actions)
			}
			if got.Requeue != tc.requeue {
				t.Errorf("requeue = %v, want %v", got.Requeue, tc.requeue)
			}
			if got.Message != tc.message {
				t.Errorf("message:\n got %q\nwant %q", got.Message, tc.message)
			}
			if e := eventString(got.Event); e != tc.event {
				t.Errorf("event = %q, want %q", e, tc.event)
			}
			if e := eventString(got.Passed); e != tc.passed {
				t.Errorf("passed event = %q, want %q", e, tc.passed)
			}
			checkInvariants(t, spec, tc.state, obs, got)
		})
	}
}

// withoutWrite is actions without the state write.
func withoutWrite(actions []Action) []Action {
	return slices.DeleteFunc(slices.Clone(actions), func(a Action) bool { return a.Kind == ActionWriteState })
}

// checkInvariants asserts what holds for every decision.
func checkInvariants(t *testing.T, spec Spec, in State, obs Observations, d Decision) {
	t.Helper()
	// Write-ahead: one state write, before anything that follows from the
	// decision. Before it only the upkeep: the pin, the canary sized, a
	// weight lowered to what was recorded before this pass.
	write := slices.IndexFunc(d.Actions, func(a Action) bool { return a.Kind == ActionWriteState })
	if write < 0 || len(withoutWrite(d.Actions)) != len(d.Actions)-1 {
		t.Errorf("want exactly one WriteState: %v", d.Actions)
	} else {
		for _, a := range d.Actions[:write] {
			switch {
			case a.Kind == ActionPinService, a.Kind == ActionEnsureCanary, a.Kind == ActionDeleteGeneratedVirtualService:
			case a.Kind == ActionUnpinService && d.Next.Phase == contract.PhasePromoting:
				// Before the unpause the state write carries.
			case a.Kind == ActionSetWeight && a.Weight < obs.RoutedWeight && a.Weight <= in.Weight && d.Next.Phase == in.Phase:
			default:
				t.Errorf("%v before the state write (%s → %s): %v", a, in.Phase, d.Next.Phase, d.Actions)
			}
		}
	}
	if d.Next.Phase != in.Phase && d.Event == nil {
		t.Errorf("phase %s → %s without an Event", in.Phase, d.Next.Phase)
	}
	switch d.Next.Phase {
	case contract.PhaseProgressing, contract.PhasePaused, contract.PhasePromoting:
		if d.Requeue <= 0 {
			t.Errorf("in flight (%s) without a requeue", d.Next.Phase)
		}
	}
	if slices.Contains(d.Actions, Unpause()) {
		promoteNew := obs.Promote != "" && obs.Promote != in.Acted[contract.KeyPromote]
		if d.Next.Phase != contract.PhasePromoting || (d.Next.Step != len(spec.Steps) && !promoteNew && in.Phase != contract.PhasePromoting) {
			t.Errorf("unpaused at step %d/%d without all steps passed or a new promote value", d.Next.Step, len(spec.Steps))
		}
	}
	if i := slices.Index(d.Actions, PinService()); i >= 0 {
		for _, a := range d.Actions[:i] {
			if a.Kind == ActionEnsureCanary {
				t.Errorf("EnsureCanary before PinService: %v", d.Actions)
			}
		}
	}
	if slices.Contains(d.Actions, DeleteCanary()) && (setsWeight(d.Actions) || obs.RoutedWeight > 0) {
		t.Errorf("canary deleted while traffic may still reach it: %v, routed %d%%", d.Actions, obs.RoutedWeight)
	}
}

func eventString(e *Event) string {
	if e == nil {
		return ""
	}
	return string(e.Type) + "/" + e.Reason
}

// diffState compares states field by field, times with Equal.
func diffState(got, want State) string {
	var diffs []string
	add := func(field string, g, w any) { diffs = append(diffs, fmt.Sprintf("%s = %v, want %v", field, g, w)) }
	if got.Phase != want.Phase {
		add("Phase", got.Phase, want.Phase)
	}
	if got.Step != want.Step {
		add("Step", got.Step, want.Step)
	}
	if got.Weight != want.Weight {
		add("Weight", got.Weight, want.Weight)
	}
	if got.FailedChecks != want.FailedChecks {
		add("FailedChecks", got.FailedChecks, want.FailedChecks)
	}
	if !got.StepStarted.Equal(want.StepStarted) {
		add("StepStarted", got.StepStarted, want.StepStarted)
	}
	if !got.WaitingSince.Equal(want.WaitingSince) {
		add("WaitingSince", got.WaitingSince, want.WaitingSince)
	}
	if !got.PreRolloutFailed.Equal(want.PreRolloutFailed) {
		add("PreRolloutFailed", got.PreRolloutFailed, want.PreRolloutFailed)
	}
	if !got.RolledOut.Equal(want.RolledOut) {
		add("RolledOut", got.RolledOut, want.RolledOut)
	}
	if !maps.Equal(got.Acted, want.Acted) {
		add("Acted", got.Acted, want.Acted)
	}
	if got.Revision != want.Revision {
		add("Revision", got.Revision, want.Revision)
	}
	if got.Stable != want.Stable {
		add("Stable", got.Stable, want.Stable)
	}
	return strings.Join(diffs, "; ")
}

// rolledBack is the next-state change of a rollback that moved the weight
// off the canary at t0.
func rolledBack(s *State) {
	s.Phase = contract.PhaseRolledBack
	s.Weight = 0
	s.StepStarted = t0
	s.WaitingSince = time.Time{}
}

// rollbackActions are the actions of a rollback that moved the weight.
func rollbackActions(why string) []Action {
	return []Action{SetWeight(0), RecordRejected("rev2", why), SetProgressingFailed("rolled back: " + why)}
}

func TestNextScaling(t *testing.T) {
	podsNotReady40 := "canary pods not ready for step 2/3 (weight 40%): 1 of 2 ready after 10m (progress deadline)"
	podsNotReady20 := "canary pods not ready for step 1/3 (weight 20%): 0 of 1 ready after 10m (progress deadline)"
	runTransitions(t, []transition{{
		name:    "analysis starts: the Service is pinned before the first canary pod",
		state:   started(),
		obs:     func(o *Observations) { o.ServicePinned, o.CanaryObjectsExist = false, false },
		next:    func(s *State) { s.WaitingSince = t0 },
		actions: []Action{PinService(), EnsureCanary(1)},
		requeue: RecheckAfter,
		message: "step 1/3: waiting for canary pods: 0 of 1 ready for weight 20%; rolling back at 2026-03-01T12:10:00Z if they are not",
	}, {
		name:    "canary pods not ready yet",
		state:   scaling(1, ago(2*time.Minute)),
		obs:     func(o *Observations) { o.CanaryReady, o.CanaryReadySince = 1, ago(time.Minute) },
		actions: []Action{EnsureCanary(2)},
		requeue: RecheckAfter,
		message: "step 2/3: waiting for canary pods: 1 of 2 ready for weight 40%; rolling back at 2026-03-01T12:08:00Z if they are not",
	}, {
		name:    "canary pods not ready, deadline in 2s: look again then",
		state:   scaling(1, ago(10*time.Minute-2*time.Second)),
		actions: []Action{EnsureCanary(2)},
		requeue: 2 * time.Second,
		message: "step 2/3: waiting for canary pods: 0 of 2 ready for weight 40%; rolling back at 2026-03-01T12:00:02Z if they are not",
	}, {
		name:    "canary pods ready for less than the propagation delay",
		state:   scaling(1, ago(time.Minute)),
		obs:     func(o *Observations) { o.CanaryReady, o.CanaryReadySince = 2, ago(4*time.Second) },
		actions: []Action{EnsureCanary(2)},
		requeue: 6 * time.Second,
		message: "step 2/3: 2 of 2 canary pods ready; the weight moves to 40% at 2026-03-01T12:00:06Z, after the propagation delay (10s)",
	}, {
		name:    "canary pods ready, the weight moves within ShortWait: the message before stands, unwritten",
		state:   scaling(1, ago(time.Minute)),
		obs:     func(o *Observations) { o.CanaryReady, o.CanaryReadySince = 2, ago(10*time.Second-ShortWait) },
		actions: []Action{EnsureCanary(2)},
		requeue: ShortWait,
	}, {
		// A pass woken just before the moment (the canary Deployment's
		// status, say) looks again at the moment, not a second later.
		name:    "canary pods ready, the weight moves in 300ms: look again then",
		state:   scaling(1, ago(time.Minute)),
		obs:     func(o *Observations) { o.CanaryReady, o.CanaryReadySince = 2, ago(10*time.Second-300*time.Millisecond) },
		actions: []Action{EnsureCanary(2)},
		requeue: 300 * time.Millisecond,
	}, {
		name:  "the same after a failure: the message replaces the failure's",
		state: scaling(1, ago(time.Minute)),
		obs: func(o *Observations) {
			o.CanaryReady, o.CanaryReadySince = 2, ago(10*time.Second-ShortWait)
			o.Failing, o.FailingSince = "ensure canary: refused", ago(time.Minute)
		},
		actions: []Action{EnsureCanary(2)},
		requeue: ShortWait,
		message: "step 2/3: 2 of 2 canary pods ready; the weight moves to 40% at 2026-03-01T12:00:05Z, after the propagation delay (10s)",
	}, {
		name:    "canary pods ready for the propagation delay: the weight moves",
		state:   scaling(1, ago(time.Minute)),
		obs:     func(o *Observations) { o.CanaryReady, o.CanaryReadySince = 2, ago(10*time.Second) },
		next:    func(s *State) { s.Weight, s.StepStarted, s.WaitingSince = 40, t0, time.Time{} },
		actions: []Action{EnsureCanary(2), SetWeight(40)},
		requeue: time.Minute,
		message: "step 2/3 running at weight 40%; checks at 2026-03-01T12:01:00Z",
		event:   "Normal/StepStarted",
	}, {
		name:  "the weight moves at a fractional second: the step starts on the next whole second",
		state: scaling(0, ago(time.Minute)),
		obs: func(o *Observations) {
			o.Now = t0.Add(200 * time.Millisecond)
			o.CanaryReady, o.CanaryReadySince = 1, ago(time.Minute)
		},
		next:    func(s *State) { s.Weight, s.StepStarted, s.WaitingSince = 20, t0.Add(time.Second), time.Time{} },
		actions: []Action{EnsureCanary(1), SetWeight(20)},
		requeue: time.Minute + 800*time.Millisecond,
		message: "step 1/3 running at weight 20%; checks at 2026-03-01T12:01:01Z",
		event:   "Normal/StepStarted",
	}, {
		name:    "canary pods not ready at the progress deadline: rolled back, weight to stable first",
		state:   scaling(1, ago(10*time.Minute)),
		obs:     func(o *Observations) { o.CanaryReady, o.CanaryReadySince = 1, ago(time.Minute) },
		next:    rolledBack,
		actions: rollbackActions(podsNotReady40),
		requeue: 10 * time.Second,
		message: "rolled back: " + podsNotReady40,
		event:   "Warning/ProgressDeadlineExceeded",
	}, {
		name:  "canary pods never ready for the first step: no traffic moved, canary deleted at once",
		state: scaling(0, ago(10*time.Minute)),
		next: func(s *State) {
			s.Phase, s.WaitingSince = contract.PhaseRolledBack, time.Time{}
		},
		actions: []Action{DeleteCanary(), RecordRejected("rev2", podsNotReady20), SetProgressingFailed("rolled back: " + podsNotReady20)},
		requeue: RecheckAfter,
		message: "rolled back: " + podsNotReady20,
		event:   "Warning/ProgressDeadlineExceeded",
	}})
}

func TestNextRunning(t *testing.T) {
	refused := "EnsureCanary(2) for deployment bookinfo/reviews: deployments.apps \"reviews-canary\" is forbidden: ValidatingAdmissionPolicy 'no-canaries' denied request"
	runTransitions(t, []transition{{
		name:    "its actions failing for less than the progress deadline: decided as usual",
		state:   running(1, ago(20*time.Second)),
		obs:     func(o *Observations) { o.Failing, o.FailingSince = refused, ago(9*time.Minute) },
		actions: []Action{EnsureCanary(2)},
		requeue: 40 * time.Second,
		message: "step 2/3 running at weight 40%; checks at 2026-03-01T12:00:40Z",
	}, {
		name:    "its actions failing for the progress deadline: rolled back, saying what failed",
		state:   running(1, ago(20*time.Second)),
		obs:     func(o *Observations) { o.Failing, o.FailingSince = refused, ago(10*time.Minute) },
		next:    rolledBack,
		actions: rollbackActions("the stepper could not act for 10m (progress deadline) at step 2/3 (weight 40%): " + refused),
		requeue: 10 * time.Second,
		message: "rolled back: the stepper could not act for 10m (progress deadline) at step 2/3 (weight 40%): " + refused,
		event:   "Warning/ProgressDeadlineExceeded",
	}, {
		name:    "step running: look again at its end",
		state:   running(0, ago(20*time.Second)),
		actions: []Action{EnsureCanary(1)},
		requeue: 40 * time.Second,
		message: "step 1/3 running at weight 20%; checks at 2026-03-01T12:00:40Z",
	}, {
		name:    "an HPA scaled the Deployment: the canary follows",
		spec:    func(s *Spec) { s.Replicas = 10 },
		state:   running(1, ago(20*time.Second)),
		actions: []Action{EnsureCanary(4)},
		requeue: 40 * time.Second,
		message: "step 2/3 running at weight 40%; checks at 2026-03-01T12:00:40Z",
	}, {
		name:    "checks due, their results not in yet: look again shortly, the message stands",
		state:   running(0, ago(time.Minute)),
		actions: []Action{EnsureCanary(1)},
		requeue: RecheckAfter,
		message: "step 1/3 running at weight 20%; checks at 2026-03-01T12:00:00Z",
	}, {
		name:    "checks due for ChecksLate without their results: the message says so",
		state:   running(0, ago(time.Minute+ChecksLate)),
		actions: []Action{EnsureCanary(1)},
		requeue: RecheckAfter,
		message: "step 1/3: checks due since 2026-03-01T11:59:55Z; waiting for their results",
	}, {
		name:    "checks passed: the next step is prepared",
		state:   running(1, ago(time.Minute)),
		obs:     func(o *Observations) { o.Checks = passing },
		next:    func(s *State) { s.Step, s.StepStarted, s.WaitingSince = 2, time.Time{}, t0 },
		actions: []Action{EnsureCanary(3)},
		requeue: RecheckAfter,
		message: "step 2/3 passed: " + passedDetails + "; weight 40%",
		event:   "Normal/StepPassed",
	}, {
		name:  "checks passed, the canary ready for the next step since the propagation delay: it starts in the same pass",
		state: running(1, ago(time.Minute)),
		obs: func(o *Observations) {
			o.Checks, o.CanaryReady, o.CanaryReadySince = passing, 3, ago(10*time.Second)
		},
		next:    func(s *State) { s.Step, s.Weight, s.StepStarted = 2, 60, t0 },
		actions: []Action{EnsureCanary(3), SetWeight(60)},
		requeue: time.Minute,
		message: "step 3/3 running at weight 60%; checks at 2026-03-01T12:01:00Z",
		event:   "Normal/StepStarted",
		passed:  "Normal/StepPassed",
	}, {
		name:  "checks passed, the canary ready for the next step for less than the propagation delay: prepared",
		state: running(1, ago(time.Minute)),
		obs: func(o *Observations) {
			o.Checks, o.CanaryReady, o.CanaryReadySince = passing, 3, ago(9*time.Second)
		},
		next:    func(s *State) { s.Step, s.StepStarted, s.WaitingSince = 2, time.Time{}, t0 },
		actions: []Action{EnsureCanary(3)},
		requeue: RecheckAfter,
		message: "step 2/3 passed: " + passedDetails + "; weight 40%",
		event:   "Normal/StepPassed",
	}, {
		name:  "last step passed, no gate: promoting",
		state: running(2, ago(time.Minute)),
		obs:   func(o *Observations) { o.Checks = passing },
		next: func(s *State) {
			s.Phase, s.Step, s.Weight, s.StepStarted, s.WaitingSince = contract.PhasePromoting, 3, 0, t0, t0
		},
		requeue: minRequeue, // promoting continues the promotion at once
		message: "step 3/3 passed: " + passedDetails + "; weight 60%; promoting revision rev2: all traffic to the Deployment's Service, rolling update started (progress deadline 2026-03-01T12:10:00Z)",
		event:   "Normal/Promoting",
	}, {
		name:    "last step passed, confirm-promotion gate closed: wait for it",
		state:   running(2, ago(time.Minute)),
		obs:     func(o *Observations) { o.Checks, o.GateOpen = passing, ptr(false) },
		next:    func(s *State) { s.Step, s.StepStarted, s.WaitingSince = 3, time.Time{}, t0 },
		actions: []Action{EnsureCanary(3)},
		requeue: RecheckAfter,
		message: "step 3/3 passed: " + passedDetails + "; weight 60%; waiting for the confirm-promotion gate, rolling back at 2026-03-01T12:10:00Z if it stays closed",
		event:   "Normal/StepPassed",
	}, {
		name:    "gate still closed",
		state:   allPassed(ago(time.Minute)),
		obs:     func(o *Observations) { o.GateOpen = ptr(false) },
		actions: []Action{EnsureCanary(3)},
		requeue: RecheckAfter,
		message: "all 3 steps passed; waiting for the confirm-promotion gate, rolling back at 2026-03-01T12:09:00Z if it stays closed",
	}, {
		name:  "gate opens: promoting",
		state: allPassed(ago(time.Minute)),
		obs:   func(o *Observations) { o.GateOpen = ptr(true) },
		next: func(s *State) {
			s.Phase, s.Weight, s.StepStarted, s.WaitingSince = contract.PhasePromoting, 0, t0, t0
		},
		requeue: minRequeue, // promoting continues the promotion at once
		message: "all 3 steps passed; the confirm-promotion gate is open; promoting revision rev2: all traffic to the Deployment's Service, rolling update started (progress deadline 2026-03-01T12:10:00Z)",
		event:   "Normal/Promoting",
	}, {
		name:    "gate closed at the progress deadline: rolled back",
		state:   allPassed(ago(10 * time.Minute)),
		obs:     func(o *Observations) { o.GateOpen = ptr(false) },
		next:    rolledBack,
		actions: rollbackActions("the confirm-promotion gate stayed closed for 10m (progress deadline) after all 3 steps passed"),
		requeue: 10 * time.Second,
		message: "rolled back: the confirm-promotion gate stayed closed for 10m (progress deadline) after all 3 steps passed",
		event:   "Warning/ProgressDeadlineExceeded",
	}})
}

func ptr(b bool) *bool { return &b }

func TestNextChecks(t *testing.T) {
	failedAt40 := "success rate 80.0% (min 99%, stable 99.9%) failed at step 2/3 (weight 40%); 4 failed checks exceed the threshold of 3"
	noDataAt40 := "no data arrived for 10m (progress deadline) at step 2/3 (weight 40%): success rate no data (min 99%)"
	runTransitions(t, []transition{{
		name:    "check failed within the threshold: the step runs again",
		state:   running(1, ago(time.Minute)),
		obs:     func(o *Observations) { o.Checks = failing },
		next:    func(s *State) { s.FailedChecks, s.StepStarted = 1, t0 },
		actions: []Action{EnsureCanary(2)},
		requeue: time.Minute,
		message: "step 2/3 check failed (1 of 3 tolerated): success rate 80.0% (min 99%, stable 99.9%); the step runs again at weight 40%",
		event:   "Warning/CheckFailed",
	}, {
		name:    "check failed, reaching the threshold: still tolerated",
		state:   with(running(1, ago(time.Minute)), func(s *State) { s.FailedChecks = 2 }),
		obs:     func(o *Observations) { o.Checks = failing },
		next:    func(s *State) { s.FailedChecks, s.StepStarted = 3, t0 },
		actions: []Action{EnsureCanary(2)},
		requeue: time.Minute,
		message: "step 2/3 check failed (3 of 3 tolerated): success rate 80.0% (min 99%, stable 99.9%); the step runs again at weight 40%",
		event:   "Warning/CheckFailed",
	}, {
		name:    "check failed beyond the threshold: rolled back",
		state:   with(running(1, ago(time.Minute)), func(s *State) { s.FailedChecks = 3 }),
		obs:     func(o *Observations) { o.Checks = failing },
		next:    func(s *State) { rolledBack(s); s.FailedChecks = 4 },
		actions: rollbackActions(failedAt40),
		requeue: 10 * time.Second,
		message: "rolled back: " + failedAt40,
		event:   "Warning/ChecksFailed",
	}, {
		name:    "threshold 0: the first failure rolls back",
		spec:    func(s *Spec) { s.Threshold = 0 },
		state:   running(0, ago(time.Minute)),
		obs:     func(o *Observations) { o.Checks = failing },
		next:    func(s *State) { rolledBack(s); s.FailedChecks = 1 },
		actions: rollbackActions("success rate 80.0% (min 99%, stable 99.9%) failed at step 1/3 (weight 20%); 1 failed checks exceed the threshold of 0"),
		requeue: 10 * time.Second,
		message: "rolled back: success rate 80.0% (min 99%, stable 99.9%) failed at step 1/3 (weight 20%); 1 failed checks exceed the threshold of 0",
		event:   "Warning/ChecksFailed",
	}, {
		name:    "a failed check outweighs one without data",
		state:   running(1, ago(time.Minute)),
		obs:     func(o *Observations) { o.Checks = []CheckResult{successRate(80, 99.9), noData(latency(0, 0), "")} },
		next:    func(s *State) { s.FailedChecks, s.StepStarted = 1, t0 },
		actions: []Action{EnsureCanary(2)},
		requeue: time.Minute,
		message: "step 2/3 check failed (1 of 3 tolerated): success rate 80.0% (min 99%, stable 99.9%); the step runs again at weight 40%",
		event:   "Warning/CheckFailed",
	}, {
		name:    "no data, policy hold: wait for it",
		state:   running(1, ago(time.Minute)),
		obs:     func(o *Observations) { o.Checks = missing },
		next:    func(s *State) { s.WaitingSince = t0 },
		actions: []Action{EnsureCanary(2)},
		requeue: RecheckAfter,
		message: "step 2/3 waiting for data: success rate no data (min 99%); rolling back at 2026-03-01T12:10:00Z if none arrives",
	}, {
		name:    "no data, policy hold, still waiting: the deadline stays where it was",
		state:   with(running(1, ago(5*time.Minute)), func(s *State) { s.WaitingSince = ago(4 * time.Minute) }),
		obs:     func(o *Observations) { o.Checks = missing },
		actions: []Action{EnsureCanary(2)},
		requeue: RecheckAfter,
		message: "step 2/3 waiting for data: success rate no data (min 99%); rolling back at 2026-03-01T12:06:00Z if none arrives",
	}, {
		name:    "no data at the progress deadline: rolled back",
		state:   with(running(1, ago(11*time.Minute)), func(s *State) { s.WaitingSince = ago(10 * time.Minute) }),
		obs:     func(o *Observations) { o.Checks = missing },
		next:    rolledBack,
		actions: rollbackActions(noDataAt40),
		requeue: 10 * time.Second,
		message: "rolled back: " + noDataAt40,
		event:   "Warning/ProgressDeadlineExceeded",
	}, {
		name:    "data arrives after a wait: the step passes",
		state:   with(running(1, ago(4*time.Minute)), func(s *State) { s.WaitingSince = ago(3 * time.Minute) }),
		obs:     func(o *Observations) { o.Checks = passing },
		next:    func(s *State) { s.Step, s.StepStarted, s.WaitingSince = 2, time.Time{}, t0 },
		actions: []Action{EnsureCanary(3)},
		requeue: RecheckAfter,
		message: "step 2/3 passed: " + passedDetails + "; weight 40%",
		event:   "Normal/StepPassed",
	}, {
		name:  "no data, policy fail: a failed check",
		spec:  func(s *Spec) { s.NoData = contract.NoDataFail },
		state: running(1, ago(time.Minute)),
		obs: func(o *Observations) {
			o.Checks = []CheckResult{noData(successRate(0, 0), "query timed out after 10s"), latency(212, 198)}
		},
		next:    func(s *State) { s.FailedChecks, s.StepStarted = 1, t0 },
		actions: []Action{EnsureCanary(2)},
		requeue: time.Minute,
		message: "step 2/3 check failed (1 of 3 tolerated): success rate no data: query timed out after 10s (min 99%); the step runs again at weight 40%",
		event:   "Warning/CheckFailed",
	}, {
		name:    "no data, policy pass: passed",
		spec:    func(s *Spec) { s.NoData = contract.NoDataPass },
		state:   running(1, ago(time.Minute)),
		obs:     func(o *Observations) { o.Checks = missing },
		next:    func(s *State) { s.Step, s.StepStarted, s.WaitingSince = 2, time.Time{}, t0 },
		actions: []Action{EnsureCanary(3)},
		requeue: RecheckAfter,
		message: "step 2/3 passed: success rate no data (min 99%), p99 212ms (max 500ms, stable 198ms); weight 40%",
		event:   "Normal/StepPassed",
	}})
}

// TestAnalysisStartRecorded: the first pass of an analysis in flight
// records its start, to the second, the value the gatherer used for its
// windows; later passes keep it.
func TestAnalysisStartRecorded(t *testing.T) {
	now := t0.Add(700 * time.Millisecond)
	d := Next(testSpec(), started(), Observations{Now: now})
	if want := t0.Truncate(time.Second); !d.Next.AnalysisStarted.Equal(want) || !AnalysisStart(started(), now).Equal(want) {
		t.Errorf("recorded %v (AnalysisStart %v), want %v", d.Next.AnalysisStarted, AnalysisStart(started(), now), want)
	}
	later := Next(testSpec(), d.Next, Observations{Now: now.Add(time.Minute)})
	if !later.Next.AnalysisStarted.Equal(d.Next.AnalysisStarted) {
		t.Errorf("a later pass moved the start to %v", later.Next.AnalysisStarted)
	}
}

// TestLookAgain: an analysis in flight is looked at again within the
// comparison period while the canary takes traffic, and within the
// rollback hooks' poll; nothing else is shortened.
func TestLookAgain(t *testing.T) {
	for _, c := range []struct {
		name      string
		spec      func(*Spec)
		phase     contract.Phase
		weight    int32
		requeue   time.Duration
		wantAfter time.Duration
	}{
		{"comparison, canary routed", func(s *Spec) { s.ComparisonPeriod = 5 * time.Second }, contract.PhaseProgressing, 20, 50 * time.Second, 5 * time.Second},
		{"comparison, nothing routed", func(s *Spec) { s.ComparisonPeriod = 5 * time.Second }, contract.PhaseProgressing, 0, 50 * time.Second, 50 * time.Second},
		{"rollback hooks, paused", func(s *Spec) { s.RollbackHookPoll = 5 * time.Second }, contract.PhasePaused, 0, time.Minute, 5 * time.Second},
		{"shorter already", func(s *Spec) { s.ComparisonPeriod = 5 * time.Second }, contract.PhaseProgressing, 20, time.Second, time.Second},
		{"ended: untouched", func(s *Spec) { s.ComparisonPeriod, s.RollbackHookPoll = 5*time.Second, 5*time.Second }, contract.PhaseRolledBack, 20, time.Minute, time.Minute},
		{"nothing to do: untouched", func(s *Spec) { s.RollbackHookPoll = 5 * time.Second }, contract.PhaseProgressing, 20, 0, 0},
	} {
		spec := testSpec()
		c.spec(&spec)
		d := lookAgain(spec, Decision{Next: State{Phase: c.phase, Weight: c.weight}, Requeue: c.requeue})
		if d.Requeue != c.wantAfter {
			t.Errorf("%s: requeue %v, want %v", c.name, d.Requeue, c.wantAfter)
		}
	}
}

// TestAnnounce: the Event of every recorded transition is emitted at
// least once: the webhook's (it cannot emit Events), and the stepper's own
// when it stopped between the state write and the Event; once emitted by
// this process it is only recorded; once recorded, never again.
func TestAnnounce(t *testing.T) {
	rolledBack := State{Phase: contract.PhaseRolledBack, Revision: "rev2", Stable: "rev1", Weight: 0}
	for _, c := range []struct {
		name        string
		state       State
		transition  Transition
		wantEvent   *Event
		wantEvented string
	}{
		{"the webhook's revert, never evented", rolledBack,
			Transition{ID: "RolledBack/rev1/t1", Reason: ReasonRevertedByUser, Message: "rolled back: the stable template …"},
			&Event{Type: EventWarning, Reason: ReasonRevertedByUser, Message: "rolled back: the stable template …"}, "RolledBack/rev1/t1"},
		{"the stepper's rollback, stopped before its Event", rolledBack,
			Transition{ID: "RolledBack/rev2/t2", Reason: ReasonChecksFailed, Message: "rolled back: success rate 80%"},
			&Event{Type: EventWarning, Reason: ReasonChecksFailed, Message: "rolled back: success rate 80%"}, "RolledBack/rev2/t2"},
		{"a template held", started(),
			Transition{ID: "Progressing/rev2/t3", Reason: ReasonHeld, Message: "revision rev2 held"},
			&Event{Type: EventNormal, Reason: ReasonHeld, Message: "revision rev2 held"}, "Progressing/rev2/t3"},
		{"emitted by this process, not recorded yet: recorded only", rolledBack,
			Transition{ID: "RolledBack/rev2/t2", Reason: ReasonChecksFailed, Emitted: true}, nil, "RolledBack/rev2/t2"},
		{"recorded: nothing", rolledBack,
			Transition{ID: "RolledBack/rev2/t2", Reason: ReasonChecksFailed, Evented: true}, nil, ""},
		{"no reason recorded (an older controller's): recorded only", rolledBack,
			Transition{ID: "RolledBack/rev2/t2"}, nil, "RolledBack/rev2/t2"},
		{"no transition", State{}, Transition{}, nil, ""},
	} {
		d := Next(testSpec(), c.state, Observations{Now: t0, Transition: c.transition, Rejection: "x", ProgressingFailed: true})
		if fmt.Sprint(d.Announce) != fmt.Sprint(c.wantEvent) || d.Evented != c.wantEvented {
			t.Errorf("%s: Announce %+v Evented %q, want %+v %q", c.name, d.Announce, d.Evented, c.wantEvent, c.wantEvented)
		}
	}
}

// TestGeneratedVirtualServiceReplaced: a generated VirtualService that the
// user's own replaced goes first thing in any pass, whatever is decided.
func TestGeneratedVirtualServiceReplaced(t *testing.T) {
	for _, st := range []State{started(), {Phase: contract.PhaseIdle}, {Phase: contract.PhaseRolledBack, Revision: "rev2", Stable: "rev1"}} {
		d := Next(testSpec(), st, Observations{Now: t0, GeneratedVirtualServiceReplaced: true})
		if len(d.Actions) == 0 || d.Actions[0] != DeleteGeneratedVirtualService() {
			t.Errorf("phase %s: actions %v, want DeleteGeneratedVirtualService first", st.Phase, d.Actions)
		}
	}
	if d := Next(testSpec(), State{Phase: contract.PhaseIdle}, Observations{Now: t0}); slices.Contains(d.Actions, DeleteGeneratedVirtualService()) {
		t.Errorf("deleted with nothing replaced: %v", d.Actions)
	}
}

// TestMovesAt: the moment an analysis next moves on its own, which the
// reconciler's queue serves before upkeep.
func TestMovesAt(t *testing.T) {
	paused := running(0, ago(10*time.Second))
	paused.Phase = contract.PhasePaused
	promoting := started()
	promoting.Phase, promoting.Step = contract.PhasePromoting, 3
	for _, c := range []struct {
		name   string
		st     State
		obs    Observations
		want   time.Time
		wantOK bool
	}{
		{"running step: its end", running(1, ago(10*time.Second)), Observations{}, t0.Add(50 * time.Second), true},
		{"weight prepared, one pod ready 3s ago: ready + propagation delay", scaling(0, ago(30*time.Second)),
			Observations{CanaryReady: 1, CanaryReadySince: ago(3 * time.Second)}, t0.Add(7 * time.Second), true},
		{"weight prepared, pods not ready: nothing timed", scaling(1, ago(30*time.Second)),
			Observations{CanaryReady: 1, CanaryReadySince: ago(3 * time.Second)}, time.Time{}, false},
		{"paused: nothing timed", paused, Observations{}, time.Time{}, false},
		{"promoting: nothing timed", promoting, Observations{}, time.Time{}, false},
	} {
		c.obs.Now = t0
		at, ok := MovesAt(testSpec(), c.st, c.obs)
		if ok != c.wantOK || !at.Equal(c.want) {
			t.Errorf("%s: %v, %v; want %v, %v", c.name, at, ok, c.want, c.wantOK)
		}
	}
}
