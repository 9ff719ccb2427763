package plan

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/canary-io/canary/contract"
)

// world is a toy cluster for driving Next pass after pass: it applies the
// actions, makes canary pods ready podStartup after they are asked for,
// completes the promotion's rolling update rolloutTime after the unpause,
// and answers the checks when they are due. It fails the test when an
// action breaks a safety rule (traffic to a canary not ready for the
// propagation delay, a canary deleted while traffic may reach it, a canary
// before the pin).
type world struct {
	t      *testing.T
	spec   Spec
	now    time.Time
	checks func(st State) []CheckResult

	pinned, canary      bool
	desired, ready      int32
	readyAt, readySince time.Time
	routed, mirror      int32
	routedAt            time.Time
	unpausedAt          time.Time
	// processStart is when the stepper's process started (zero: never
	// restarted); it saw the weight unrouted from then on at the earliest.
	processStart time.Time

	weights []int32  // every SetWeight, in order
	routes  []string // every change of weight or mirror, e.g. "0+50%" (weight 0, mirror 50%)
	log     []string // every action and event, with its time
}

const (
	podStartup  = 20 * time.Second
	rolloutTime = 90 * time.Second
)

func newWorld(t *testing.T, spec Spec, start time.Time, checks func(State) []CheckResult) *world {
	return &world{t: t, spec: spec, now: start, checks: checks}
}

func (w *world) observe(st State) Observations {
	if w.canary && w.desired > w.ready && !w.now.Before(w.readyAt) {
		w.ready, w.readySince = w.desired, w.readyAt
	}
	w.ready = min(w.ready, w.desired)
	if w.ready == 0 {
		w.readySince = time.Time{}
	}
	o := Observations{
		Now: w.now, ServicePinned: w.pinned, CanaryObjectsExist: w.canary,
		RoutedWeight: w.routed, RoutedMirror: w.mirror, CanaryReady: w.ready, CanaryReadySince: w.readySince,
	}
	if ChecksDue(w.spec, st, w.now) {
		o.Checks = w.checks(st)
	}
	o.RolloutComplete = !w.unpausedAt.IsZero() && !w.now.Before(w.unpausedAt.Add(rolloutTime))
	o.Held = w.unpausedAt.IsZero()
	if w.routed == 0 && w.mirror == 0 && w.canary {
		o.UnroutedSince = w.routedAt
		if w.processStart.After(o.UnroutedSince) {
			o.UnroutedSince = w.processStart
		}
	}
	return o
}

func (w *world) apply(d Decision) {
	w.applyActions(d.Actions)
	if d.Event != nil {
		w.log = append(w.log, fmt.Sprintf("%s event %s/%s: %s", w.now.Format("15:04:05.000"), d.Event.Type, d.Event.Reason, d.Event.Message))
	}
}

func (w *world) applyActions(actions []Action) {
	for _, a := range actions {
		w.log = append(w.log, fmt.Sprintf("%s %v", w.now.Format("15:04:05.000"), a))
		switch a.Kind {
		case ActionPinService:
			w.pinned = true
		case ActionUnpinService:
			w.pinned = false
		case ActionEnsureCanary:
			if !w.pinned {
				w.t.Errorf("%v: canary created before the Service was pinned", w.now)
			}
			if !w.canary || a.Replicas > w.desired {
				w.readyAt = w.now.Add(podStartup)
			}
			w.canary, w.desired = true, a.Replicas
		case ActionSetWeight:
			if a.Weight > 0 && (w.ready < CanaryReplicas(w.spec.Replicas, a.Weight) || w.now.Before(w.readySince.Add(w.spec.PropagationDelay))) {
				w.t.Errorf("%v: weight %d%% with %d canary pods ready since %v", w.now, a.Weight, w.ready, w.readySince)
			}
			if a.Mirror > w.mirror && (w.ready < CanaryReplicas(w.spec.Replicas, a.Mirror) || w.now.Before(w.readySince.Add(w.spec.PropagationDelay))) {
				w.t.Errorf("%v: mirror %d%% with %d canary pods ready since %v", w.now, a.Mirror, w.ready, w.readySince)
			}
			if a.Weight != w.routed {
				w.weights = append(w.weights, a.Weight)
			}
			if a.Weight != w.routed || a.Mirror != w.mirror {
				w.routes = append(w.routes, fmt.Sprintf("%d+%d%%", a.Weight, a.Mirror))
				w.routed, w.mirror, w.routedAt = a.Weight, a.Mirror, w.now
			}
		case ActionUnpause:
			if w.unpausedAt.IsZero() {
				w.unpausedAt = w.now
			}
		case ActionDeleteCanary:
			if w.routed > 0 || w.mirror > 0 || w.now.Before(w.routedAt.Add(w.spec.PropagationDelay)) {
				w.t.Errorf("%v: canary deleted with %d%% routed and %d%% mirrored to it since %v", w.now, w.routed, w.mirror, w.routedAt)
			}
			w.canary, w.desired, w.ready = false, 0, 0
		}
		if w.pinned && !w.unpausedAt.IsZero() {
			w.t.Errorf("%v: after %v the Service is pinned to the stable ReplicaSet while the rolling update (since %v) drains it: no endpoints", w.now, a, w.unpausedAt)
		}
	}
}

// pass is one call of Next in a simulation.
type pass struct {
	at       time.Time
	in       State
	decision Decision
}

// simulate calls Next until nothing is left to do. between, if not nil,
// turns the state decided by pass i into the state the next pass starts
// from (a restart), and may move the world's clock (downtime).
func simulate(w *world, st State, between func(i int, w *world, st State) State) []pass {
	w.t.Helper()
	var trace []pass
	for i := 0; i < 500; i++ {
		obs := w.observe(st)
		d := Next(w.spec, st, obs)
		checkInvariants(w.t, w.spec, st, obs, d)
		w.apply(d)
		trace = append(trace, pass{at: w.now, in: st, decision: d})
		if d.Requeue == 0 {
			return trace
		}
		w.now = w.now.Add(d.Requeue)
		st = d.Next
		if between != nil {
			st = between(i, w, st)
		}
	}
	w.t.Fatalf("no end after 500 passes:\n%s", strings.Join(w.log, "\n"))
	return nil
}

func alwaysPassing(State) []CheckResult { return passing }

// phases lists the distinct phases a trace went through, in order.
func phases(trace []pass) []contract.Phase {
	var out []contract.Phase
	for _, p := range trace {
		if len(out) == 0 || out[len(out)-1] != p.decision.Next.Phase {
			out = append(out, p.decision.Next.Phase)
		}
	}
	return out
}

func reasons(trace []pass) []string {
	var out []string
	for _, p := range trace {
		if p.decision.Passed != nil {
			out = append(out, p.decision.Passed.Reason)
		}
		if p.decision.Event != nil {
			out = append(out, p.decision.Event.Reason)
		}
	}
	return out
}

func TestSimulatedRollout(t *testing.T) {
	spec := testSpec()
	w := newWorld(t, spec, t0, alwaysPassing)
	trace := simulate(w, started(), nil)
	final := trace[len(trace)-1].decision.Next

	if want := []int32{20, 40, 60, 0}; !slices.Equal(w.weights, want) {
		t.Errorf("weights %v, want %v", w.weights, want)
	}
	wantPhases := []contract.Phase{contract.PhaseProgressing, contract.PhasePromoting, contract.PhaseSucceeded}
	if got := phases(trace); !slices.Equal(got, wantPhases) {
		t.Errorf("phases %v, want %v", got, wantPhases)
	}
	wantReasons := []string{ReasonStepStarted, ReasonStepPassed, ReasonStepStarted, ReasonStepPassed,
		ReasonStepStarted, ReasonPromoting, ReasonSucceeded}
	if got := reasons(trace); !slices.Equal(got, wantReasons) {
		t.Errorf("events %v, want %v", got, wantReasons)
	}
	if final.Stable != "rev2" || final.Step != 3 || final.Weight != 0 || w.canary || w.pinned || w.routed != 0 {
		t.Errorf("end: state %+v, canary %v, pinned %v, routed %d%%", final, w.canary, w.pinned, w.routed)
	}
	// Each step lasted its interval, and not much more: the canary pods
	// for the next step are started as soon as a step passes.
	var started []time.Time
	for _, p := range trace {
		if setsWeight(p.decision.Actions) {
			started = append(started, p.at)
		}
	}
	for i := 1; i < len(started); i++ {
		if gap := started[i].Sub(started[i-1]); gap < spec.Interval || gap > spec.Interval+podStartup+spec.PropagationDelay+2*RecheckAfter {
			t.Errorf("weight changes %v apart", gap)
		}
	}
	if total := final.StepStarted.Sub(t0); total > 6*time.Minute {
		t.Errorf("rollout took %v:\n%s", total, strings.Join(w.log, "\n"))
	}
}

func TestSimulatedRollback(t *testing.T) {
	spec := testSpec()
	failingAt40 := func(st State) []CheckResult {
		if st.Weight == 40 {
			return failing
		}
		return passing
	}
	w := newWorld(t, spec, t0, failingAt40)
	trace := simulate(w, started(), nil)
	final := trace[len(trace)-1].decision.Next

	if want := []int32{20, 40, 0}; !slices.Equal(w.weights, want) {
		t.Errorf("weights %v, want %v", w.weights, want)
	}
	if final.Phase != contract.PhaseRolledBack || final.FailedChecks != 4 || final.Stable != "rev1" {
		t.Errorf("end state %+v", final)
	}
	if w.canary || w.pinned || !w.unpausedAt.IsZero() {
		t.Errorf("end: canary %v, pinned %v, unpaused at %v", w.canary, w.pinned, w.unpausedAt)
	}
	wantReasons := []string{ReasonStepStarted, ReasonStepPassed, ReasonStepStarted,
		ReasonCheckFailed, ReasonCheckFailed, ReasonCheckFailed, ReasonChecksFailed}
	if got := reasons(trace); !slices.Equal(got, wantReasons) {
		t.Errorf("events %v, want %v", got, wantReasons)
	}
	// Traffic left first; the canary went a propagation delay later; the
	// pin went last, once the canary's pods were gone.
	var order []ActionKind
	for _, p := range trace {
		if p.decision.Next.Phase != contract.PhaseRolledBack {
			continue
		}
		for _, a := range withoutWrite(p.decision.Actions) {
			order = append(order, a.Kind)
		}
	}
	wantOrder := []ActionKind{ActionSetWeight, ActionRecordRejected, ActionSetProgressingFailed, ActionDeleteCanary, ActionUnpinService}
	if !slices.Equal(order, wantOrder) {
		t.Errorf("rollback actions %v, want %v", order, wantOrder)
	}
}

// TestSimulatedRestartEveryPass kills the stepper after every pass: each
// pass starts from the State decoded from the annotations the previous one
// wrote. The run is the uninterrupted run, decision for decision, even with
// a clock that is not on whole seconds.
func TestSimulatedRestartEveryPass(t *testing.T) {
	spec := testSpec()
	start := t0.Add(300 * time.Millisecond)
	plain := simulate(newWorld(t, spec, start, alwaysPassing), started(), nil)
	restarted := simulate(newWorld(t, spec, start, alwaysPassing), started(), func(_ int, _ *world, st State) State {
		return reload(t, spec, st)
	})
	if len(plain) != len(restarted) {
		t.Fatalf("%d passes uninterrupted, %d with restarts", len(plain), len(restarted))
	}
	for i := range plain {
		a, b := plain[i], restarted[i]
		if !a.at.Equal(b.at) || diffState(a.decision.Next, b.decision.Next) != "" ||
			!slices.Equal(a.decision.Actions, b.decision.Actions) || a.decision.Requeue != b.decision.Requeue ||
			a.decision.Message != b.decision.Message || eventString(a.decision.Event) != eventString(b.decision.Event) {
			t.Fatalf("pass %d differs:\n uninterrupted %v %+v\n restarted     %v %+v", i, a.at, a.decision, b.at, b.decision)
		}
	}
}

// TestSimulatedRestartMidStep kills the stepper while step 2 runs, keeps it
// down, and starts it again from the annotations: the step keeps its time
// left (down for less than that: it ends when it would have; down for
// longer: its checks run at once), and the rollout finishes as usual.
func TestSimulatedRestartMidStep(t *testing.T) {
	spec := testSpec()
	for _, tc := range []struct {
		name     string
		downtime time.Duration
	}{
		{"down for 20s of the step's 60s", 20 * time.Second},
		{"down for 3m, past the step's end", 3 * time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stepEnd, restartAt time.Time
			var firstAfter *pass
			restartPass := -1
			w := newWorld(t, spec, t0, alwaysPassing)
			trace := simulate(w, started(), func(i int, w *world, st State) State {
				if restartPass < 0 && stepRunning(spec, st) && st.Step == 1 {
					restartPass = i + 1
					stepEnd = st.StepStarted.Add(spec.Interval)
					w.now = w.now.Add(tc.downtime)
					restartAt = w.now
				}
				return reload(t, spec, st)
			})
			if restartPass < 0 || restartPass >= len(trace) {
				t.Fatal("never restarted mid-step")
			}
			firstAfter = &trace[restartPass]
			d := firstAfter.decision
			if restartAt.Before(stepEnd) {
				if d.Requeue != stepEnd.Sub(restartAt) || d.Next.Step != 1 {
					t.Errorf("after the restart: requeue %v, step %d; want the %v left of step 2", d.Requeue, d.Next.Step, stepEnd.Sub(restartAt))
				}
			} else if d.Next.Step != 2 || !strings.HasPrefix(d.Message, "step 2/3 passed:") {
				t.Errorf("after the restart past the step's end: %q, step %d; want step 2's checks judged at once", d.Message, d.Next.Step)
			}
			if want := []int32{20, 40, 60, 0}; !slices.Equal(w.weights, want) {
				t.Errorf("weights %v, want %v", w.weights, want)
			}
			if final := trace[len(trace)-1].decision.Next; final.Phase != contract.PhaseSucceeded || final.Stable != "rev2" {
				t.Errorf("end state %+v", final)
			}
		})
	}
}

// reload is what a restarted stepper reads: the state through the
// annotations.
func reload(t *testing.T, spec Spec, st State) State {
	t.Helper()
	decoded, err := Decode(Encode(spec, st))
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	return decoded
}

// TestStepCountsAgree: over a whole rollout, every message that names the
// step in progress ("step 2/3 running", "step 2/3: waiting for canary
// pods", "step 2/3 check failed", "step 2/3 waiting for data") names the
// step canary.io/step shows in the same write, and "step 2/3 passed"
// comes with canary.io/step at the next step (or 3/3 after the last).
func TestStepCountsAgree(t *testing.T) {
	inProgress := regexp.MustCompile(`^step (\d+/\d+)(?: running|: waiting| check failed| waiting for data|: \d+ of)`)
	passedRe := regexp.MustCompile(`^step (\d+)/(\d+) passed`)
	failOnce := 0
	checks := func(st State) []CheckResult {
		if st.Step == 1 && failOnce == 0 { // one failed round at step 2
			failOnce++
			return failing
		}
		if st.Step == 2 && failOnce == 1 { // one round without data at step 3
			failOnce++
			return missing
		}
		return passing
	}
	w := newWorld(t, testSpec(), t0, checks)
	trace := simulate(w, started(), nil)
	seen := map[string]bool{}
	for _, p := range trace {
		msg, step := p.decision.Message, Encode(w.spec, p.decision.Next)[contract.KeyStep]
		if m := inProgress.FindStringSubmatch(msg); m != nil {
			seen[m[0]] = true
			if m[1] != step {
				t.Errorf("message %q with canary.io/step %q", msg, step)
			}
		}
		if m := passedRe.FindStringSubmatch(msg); m != nil {
			seen["passed"] = true
			k, n := atoi(m[1]), atoi(m[2])
			if want := fmt.Sprintf("%d/%d", min(k+1, n), n); step != want {
				t.Errorf("message %q with canary.io/step %q, want %q", msg, step, want)
			}
		}
	}
	for _, want := range []string{"step 1/3 running", "step 2/3 check failed", "step 3/3 waiting for data", "passed"} {
		if !seen[want] {
			t.Errorf("the rollout never said %q; seen %v", want, seen)
		}
	}
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// TestLostWrites replays promotion and rollback runs in which one pass's
// state write is lost (refused: the reconciler stops there, so the
// actions after it are not done) or the stepper is killed right after it
// (the actions after it are not done, the state is recorded), for every
// pass in turn. Across every run: traffic never reaches the canary
// beyond what the recorded state says, unless that state is an ended
// analysis taking it away; and once a rollback is recorded, the canary's
// weight never rises again.
func TestLostWrites(t *testing.T) {
	failingAt40 := func(st State) []CheckResult {
		if st.Weight == 40 {
			return failing
		}
		return passing
	}
	for _, run := range []struct {
		name   string
		checks func(State) []CheckResult
		want   contract.Phase
	}{{"promotion", alwaysPassing, contract.PhaseSucceeded}, {"rollback", failingAt40, contract.PhaseRolledBack}} {
		for _, mode := range []string{"write lost", "killed after the write"} {
			for fault := 0; ; fault++ {
				w := newWorld(t, testSpec(), t0, run.checks)
				st, faulted, rolledBack := started(), false, false
				var end State
				for i := 0; i < 500; i++ {
					obs := w.observe(st)
					d := Next(w.spec, st, obs)
					write := slices.IndexFunc(d.Actions, func(a Action) bool { return a.Kind == ActionWriteState })
					before := w.routed
					switch {
					case i == fault && mode == "write lost":
						w.applyActions(d.Actions[:write])
						faulted = true
					case i == fault:
						w.applyActions(d.Actions[:write+1])
						st = d.Next
						faulted = true
					default:
						w.apply(d)
						st = d.Next
					}
					if st.Phase == contract.PhaseRolledBack {
						rolledBack = true
					}
					ended := st.Phase == contract.PhaseRolledBack || st.Phase == contract.PhasePromoting || st.Phase == contract.PhaseSucceeded
					if w.routed > st.Weight && !(ended && w.routed <= before) {
						t.Fatalf("%s, %s at pass %d: pass %d left %d%% routed to the canary with %d%% recorded (phase %s)",
							run.name, mode, fault, i, w.routed, st.Weight, st.Phase)
					}
					if rolledBack && w.routed > before {
						t.Fatalf("%s, %s at pass %d: pass %d raised the canary's weight to %d%% after the rollback was recorded",
							run.name, mode, fault, i, w.routed)
					}
					end = st
					if d.Requeue == 0 && i != fault {
						break
					}
					w.now = w.now.Add(max(d.Requeue, time.Second))
				}
				if end.Phase != run.want {
					t.Errorf("%s, %s at pass %d: ended %s, want %s", run.name, mode, fault, end.Phase, run.want)
				}
				if !faulted {
					break // every pass has had its fault
				}
			}
		}
	}
}

// TestSimulatedCrashAfterEveryWrite kills the stepper right after every
// action that changes something (as the end-to-end crash test does with
// CANARY_CRASH_AT=*#1), and a new process has no check results in its
// first pass (its Prometheus reader has read nothing yet). Every restart
// must still move the analysis on: promoted or rolled back, not a
// process after process undoing the last one's write.
func TestSimulatedCrashAfterEveryWrite(t *testing.T) {
	failingAt40 := func(st State) []CheckResult {
		if st.Weight == 40 {
			return failing
		}
		return passing
	}
	type snapshot struct {
		pinned, canary          bool
		desired, routed, mirror int32
		unpaused                bool
	}
	failingSecond := func(st State) []CheckResult {
		if st.Step >= 1 {
			return failing
		}
		return passing
	}
	for _, run := range []struct {
		name   string
		spec   Spec
		checks func(State) []CheckResult
		want   contract.Phase
	}{
		{"promotion", testSpec(), alwaysPassing, contract.PhaseSucceeded},
		{"rollback", testSpec(), failingAt40, contract.PhaseRolledBack},
		{"blue-green promotion", blueGreenSpec(3), alwaysPassing, contract.PhaseSucceeded},
		{"blue-green rollback", blueGreenSpec(3), failingSecond, contract.PhaseRolledBack},
		{"mirrored canary promotion", mirrored(testSpec(), 50), alwaysPassing, contract.PhaseSucceeded},
		{"mirrored canary rollback", mirrored(testSpec(), 50), failingSecond, contract.PhaseRolledBack},
		{"mirrored blue-green promotion", mirrored(blueGreenSpec(3), 100), alwaysPassing, contract.PhaseSucceeded},
	} {
		t.Run(run.name, func(t *testing.T) {
			w := newWorld(t, run.spec, t0, run.checks)
			st, message, fresh, crashes := started(), "", true, 0
			for i := 0; ; i++ {
				if i == 2000 {
					t.Fatalf("no end after 2000 passes and %d crashes (state %+v):\n%s", crashes, st, strings.Join(w.log[max(0, len(w.log)-30):], "\n"))
				}
				obs := w.observe(st)
				if fresh {
					obs.Checks = nil
				}
				fresh = false
				d := Next(w.spec, st, obs)
				crashed := false
				for _, a := range d.Actions {
					before := snapshot{w.pinned, w.canary, w.desired, w.routed, w.mirror, !w.unpausedAt.IsZero()}
					changed := false
					if a.Kind == ActionWriteState {
						changed = !d.Next.Equal(st) || d.Message != "" && d.Message != message
						w.applyActions([]Action{a})
						st = d.Next
						if d.Message != "" {
							message = d.Message
						}
					} else {
						w.applyActions([]Action{a})
						changed = snapshot{w.pinned, w.canary, w.desired, w.routed, w.mirror, !w.unpausedAt.IsZero()} != before
					}
					if changed {
						crashes++
						crashed = true
						break
					}
				}
				if st.Phase == run.want && (d.Requeue == 0 || st.Phase == contract.PhaseRolledBack) && !crashed {
					break
				}
				if !crashed && d.Requeue == 0 {
					t.Fatalf("ended %s, want %s", st.Phase, run.want)
				}
				fresh = crashed
				w.now = w.now.Add(max(min(d.Requeue, time.Second), 100*time.Millisecond))
				if crashed {
					w.processStart = w.now
				}
			}
			if crashes < 5 {
				t.Errorf("only %d crashes: the simulation does not crash after writes", crashes)
			}
			t.Logf("%s after %d crashes", st.Phase, crashes)
		})
	}
}

// abSpec is testSpec as an ab analysis of iterations intervals.
func abSpec(iterations int) Spec { return iterationSpec(contract.StrategyAB, iterations) }

// iterationSpec is testSpec as an analysis of strategy (ab or
// blue-green) of iterations intervals.
func iterationSpec(strategy contract.Strategy, iterations int) Spec {
	s := contract.DefaultSettings()
	s.Strategy, s.Iterations = strategy, iterations
	spec := testSpec()
	spec.Strategy = s.Strategy
	spec.Steps = SpecFrom(s, spec.Replicas, spec.PropagationDelay).Steps
	return spec
}

// TestSimulatedABRollout: an ab analysis routes the matching requests to
// a full-size canary once (weight 100 is the match route), runs its
// iterations, each an interval with its checks, then promotes as a canary
// does; its messages count iterations and name the matching requests.
func TestSimulatedABRollout(t *testing.T) {
	spec := abSpec(4)
	if err := spec.Validate(); err != nil {
		t.Fatal(err)
	}
	w := newWorld(t, spec, t0, alwaysPassing)
	trace := simulate(w, started(), nil)
	final := trace[len(trace)-1].decision.Next
	if want := []int32{100, 0}; !slices.Equal(w.weights, want) {
		t.Errorf("weights %v, want %v (the match route once for every iteration, then none)", w.weights, want)
	}
	if final.Phase != contract.PhaseSucceeded || final.Step != 4 || w.canary || w.pinned {
		t.Errorf("end: state %+v, canary %v, pinned %v", final, w.canary, w.pinned)
	}
	if w.desired != 0 && w.desired != spec.Replicas {
		t.Errorf("the canary was sized %d, want the Deployment's %d", w.desired, spec.Replicas)
	}
	var passed []string
	for _, p := range trace {
		if e := p.decision.Event; e != nil && e.Reason == ReasonStepPassed {
			t.Errorf("%v: iteration passed without the next one starting in the same pass (the canary is full size)", p.at)
		}
		if e := p.decision.Passed; e != nil {
			if p.decision.Event == nil || p.decision.Event.Reason != ReasonStepStarted {
				t.Errorf("%v: iteration passed, then event %+v, want the next one started", p.at, p.decision.Event)
			}
			passed = append(passed, e.Message)
		}
	}
	// The last iteration's pass is the promotion's event, as a canary's
	// last step's.
	if len(passed) != 3 || !strings.HasPrefix(passed[1], "iteration 2/4 passed: ") || !strings.HasSuffix(passed[1], "; the matching requests") {
		t.Errorf("iteration events %q", passed)
	}
	for _, p := range trace {
		if m := p.decision.Message; strings.Contains(m, "weight 100%") {
			t.Errorf("an ab message speaks of a weight: %q", m)
		}
	}
}

// TestSimulatedABRollback: a failing iteration rolls an ab analysis back
// like a canary: the match route goes first, then the canary.
func TestSimulatedABRollback(t *testing.T) {
	spec := abSpec(5)
	w := newWorld(t, spec, t0, func(st State) []CheckResult {
		if st.Step >= 1 {
			return failing
		}
		return passing
	})
	trace := simulate(w, started(), nil)
	final := trace[len(trace)-1].decision.Next
	if final.Phase != contract.PhaseRolledBack || w.canary || w.routed != 0 {
		t.Errorf("end: state %+v, canary %v, routed %d", final, w.canary, w.routed)
	}
	if want := []int32{100, 0}; !slices.Equal(w.weights, want) {
		t.Errorf("weights %v, want %v", w.weights, want)
	}
	last := trace[len(trace)-1]
	for _, p := range trace {
		if e := p.decision.Event; e != nil && e.Reason == ReasonChecksFailed {
			last = p
		}
	}
	if e := last.decision.Event; e == nil || !strings.Contains(e.Message, "at iteration 2/5 (the matching requests)") {
		t.Errorf("the rollback's event %+v does not name the iteration", e)
	}
}

// blueGreenSpec is testSpec as a blue-green analysis of iterations
// intervals.
func blueGreenSpec(iterations int) Spec {
	return iterationSpec(contract.StrategyBlueGreen, iterations)
}

// TestSimulatedBlueGreenRollout: a blue-green analysis runs a full-size
// canary with no user traffic for its iterations, then switches all
// traffic to it at once (one SetWeight, 100), keeps it there while the
// rolling update runs, and sends it back to the Service only once the
// update is done; its messages count iterations and speak of no weight
// steps.
func TestSimulatedBlueGreenRollout(t *testing.T) {
	spec := blueGreenSpec(3)
	if err := spec.Validate(); err != nil {
		t.Fatal(err)
	}
	w := newWorld(t, spec, t0, alwaysPassing)
	trace := simulate(w, started(), nil)
	final := trace[len(trace)-1].decision.Next
	if want := []int32{100, 0}; !slices.Equal(w.weights, want) {
		t.Errorf("weights %v, want %v (one switch, then the Service once rolled out)", w.weights, want)
	}
	if final.Phase != contract.PhaseSucceeded || final.Step != 3 || w.canary || w.pinned {
		t.Errorf("end: state %+v, canary %v, pinned %v", final, w.canary, w.pinned)
	}
	if done := w.unpausedAt.Add(rolloutTime); w.routedAt.Before(done) {
		t.Errorf("the weight left the canary at %v, before the rolling update was done (%v)", w.routedAt, done)
	}
	var switched, iterations []string
	for _, p := range trace {
		if e := p.decision.Event; e != nil && e.Reason == ReasonPromoting {
			switched = append(switched, e.Message)
		}
		if e := p.decision.Event; e != nil && e.Reason == ReasonStepStarted {
			iterations = append(iterations, e.Message)
			if p.decision.Next.Weight != 0 || !slices.Contains(p.decision.Actions, EnsureCanary(spec.Replicas)) {
				t.Errorf("iteration started with weight %d, actions %v: want no user traffic and a full-size canary", p.decision.Next.Weight, p.decision.Actions)
			}
		}
		if m := p.decision.Message; strings.Contains(m, "weight ") {
			t.Errorf("a blue-green message speaks of a weight: %q", m)
		}
	}
	if len(switched) != 1 || !strings.Contains(switched[0], "all traffic switched to the canary") {
		t.Errorf("promotion events %q", switched)
	}
	if len(iterations) != 3 || !strings.HasPrefix(iterations[1], "iteration 2/3 started: no user traffic") {
		t.Errorf("iteration events %q", iterations)
	}
}

// TestSimulatedBlueGreenRollback: a failing iteration rolls a blue-green
// analysis back before any user traffic reached the canary.
func TestSimulatedBlueGreenRollback(t *testing.T) {
	spec := blueGreenSpec(4)
	w := newWorld(t, spec, t0, func(st State) []CheckResult {
		if st.Step >= 2 {
			return failing
		}
		return passing
	})
	trace := simulate(w, started(), nil)
	final := trace[len(trace)-1].decision.Next
	if final.Phase != contract.PhaseRolledBack || w.canary || len(w.weights) != 0 {
		t.Errorf("end: state %+v, canary %v, weights %v", final, w.canary, w.weights)
	}
	last := trace[len(trace)-1]
	for _, p := range trace {
		if e := p.decision.Event; e != nil && e.Reason == ReasonChecksFailed {
			last = p
		}
	}
	if e := last.decision.Event; e == nil || !strings.Contains(e.Message, "at iteration 3/4 (no user traffic)") {
		t.Errorf("the rollback's event %+v does not name the iteration", e)
	}
}

// TestBlueGreenEarlyPromoteDoesNotSwitch: canary.io/promote before the
// full-size canary is ready promotes as a canary does (weight 0, the
// Service unpinned): all traffic to a canary not ready would reach no
// pod.
func TestBlueGreenEarlyPromoteDoesNotSwitch(t *testing.T) {
	spec := blueGreenSpec(3)
	st := started()
	obs := Observations{Now: t0, ServicePinned: true, CanaryObjectsExist: true, CanaryReady: 1, CanaryReadySince: t0.Add(-time.Minute), Promote: "now", Held: true}
	d := Next(spec, st, obs)
	if d.Next.Phase != contract.PhasePromoting || d.Next.Weight != 0 || slices.Contains(d.Actions, SetWeight(100)) {
		t.Errorf("early promote of a blue-green canary with 1 of %d pods ready: %+v, actions %v", spec.Replicas, d.Next, d.Actions)
	}
	obs.CanaryReady = spec.Replicas
	d = Next(spec, st, obs)
	if want := []Action{WriteState()}; d.Next.Weight != 100 || !slices.Equal(d.Actions, want) {
		t.Errorf("promote of a ready blue-green canary: weight %d, actions %v, want %v (the promotion recorded alone)", d.Next.Weight, d.Actions, want)
	}
	// The next pass routes the switch recorded, then unpins, then
	// unpauses.
	obs.Now = t0.Add(time.Second)
	d = Next(spec, d.Next, obs)
	if want := []Action{SetWeight(100), UnpinService(), Unpause()}; !slices.Equal(withoutWrite(d.Actions), want) {
		t.Errorf("the pass after the switch was recorded: actions %v, want %v", d.Actions, want)
	}
}

// TestPromotionContinuesInTheNextPass: the pass that records a promotion
// writes only the record; the next unpins the Service, routes the weight
// recorded (0) and unpauses the Deployment, in the promotion's order (a
// refused unpause leaves the traffic where the promotion puts it).
func TestPromotionContinuesInTheNextPass(t *testing.T) {
	spec := testSpec()
	st := running(2, ago(time.Minute))
	obs := Observations{Now: t0, ServicePinned: true, CanaryObjectsExist: true, Held: true, RoutedWeight: st.Weight, Checks: passing}
	d := Next(spec, st, obs)
	if d.Next.Phase != contract.PhasePromoting || !slices.Equal(d.Actions, []Action{WriteState()}) || d.Requeue != minRequeue {
		t.Fatalf("the promotion: phase %s, actions %v, requeue %v; want Promoting, [WriteState] alone, requeue %v", d.Next.Phase, d.Actions, d.Requeue, minRequeue)
	}
	obs.Now, obs.Checks = t0.Add(100*time.Millisecond), nil
	// The promotion's Event went out after its record: the unpause
	// records that (act), so the state write has nothing to write.
	obs.Transition = Transition{ID: "Promoting/rev2/2026-03-01T12:00:00Z", Reason: ReasonPromoting, Emitted: true}
	d = Next(spec, d.Next, obs)
	if want := []Action{UnpinService(), SetWeight(0), Unpause()}; !slices.Equal(withoutWrite(d.Actions), want) {
		t.Errorf("the next pass: actions %v, want %v", d.Actions, want)
	}
	if d.Evented != "" {
		t.Errorf("the next pass records the Event as evented in its state write (%q): a write the unpause makes anyway", d.Evented)
	}
	// Without an unpause to make (done already), the state write records it.
	obs.Held = false
	if d = Next(spec, d.Next, obs); d.Evented != obs.Transition.ID {
		t.Errorf("no unpause left: Evented %q, want %q", d.Evented, obs.Transition.ID)
	}
}

// mirrored is spec with mirror percent of stable's requests copied to
// the canary, its steps as SpecFrom makes them (a canary's first step at
// weight 0).
func mirrored(spec Spec, mirror int32) Spec {
	spec.Mirror = mirror
	if weighted(spec) {
		spec.Steps = append([]int32{0}, spec.Steps...)
	}
	return spec
}

// TestSimulatedMirroring: the mirror is routed with the steps that carry
// it, on a canary sized and ready for it, and taken off by the next
// step's weight, the switch, or the rollback: a canary analysis mirrors
// in its first step only, at weight 0; blue-green in every iteration, up
// to the switch; ab beside the matching requests. A canary judged bad on
// the mirrored copies rolls back without any user request reaching it.
func TestSimulatedMirroring(t *testing.T) {
	failingFirst := func(State) []CheckResult { return failing }
	for _, c := range []struct {
		name   string
		spec   Spec
		checks func(State) []CheckResult
		want   contract.Phase
		routes []string
	}{
		{"canary", mirrored(testSpec(), 50), alwaysPassing, contract.PhaseSucceeded, []string{"0+50%", "20+0%", "40+0%", "60+0%", "0+0%"}},
		{"canary judged bad on the copies", mirrored(testSpec(), 50), failingFirst, contract.PhaseRolledBack, []string{"0+50%", "0+0%"}},
		{"blue-green", mirrored(blueGreenSpec(3), 100), alwaysPassing, contract.PhaseSucceeded, []string{"0+100%", "100+0%", "0+0%"}},
		{"ab", mirrored(abSpec(2), 30), alwaysPassing, contract.PhaseSucceeded, []string{"100+30%", "0+0%"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := c.spec.Validate(); err != nil {
				t.Fatal(err)
			}
			w := newWorld(t, c.spec, t0, c.checks)
			trace := simulate(w, started(), nil)
			final := trace[len(trace)-1].decision.Next
			if final.Phase != c.want || w.canary {
				t.Errorf("end: state %+v, canary %v", final, w.canary)
			}
			if !slices.Equal(w.routes, c.routes) {
				t.Errorf("routes %q, want %q", w.routes, c.routes)
			}
			if c.spec.Strategy == contract.StrategyCanary && w.desired != 0 {
				t.Errorf("canary left with %d replicas", w.desired)
			}
		})
	}
}

// TestMirroredStepMessages: the messages of a mirrored step say what is
// mirrored.
func TestMirroredStepMessages(t *testing.T) {
	spec := mirrored(testSpec(), 50)
	st := with(started(), func(s *State) { s.StepStarted = t0.Add(-10 * time.Second); s.AnalysisStarted = t0.Add(-time.Minute) })
	obs := Observations{Now: t0, ServicePinned: true, CanaryObjectsExist: true, CanaryReady: 3, CanaryReadySince: t0.Add(-time.Minute), RoutedMirror: 50, Held: true}
	d := Next(spec, st, obs)
	if want := "step 1/4 running at weight 0% with 50% of stable's requests mirrored to the canary"; !strings.HasPrefix(d.Message, want) {
		t.Errorf("message %q, want it to start with %q", d.Message, want)
	}
	if !slices.Contains(d.Actions, EnsureCanary(3)) {
		t.Errorf("actions %v: want the canary sized for the mirror (3 of 5 pods for 50%%)", d.Actions)
	}
	obs.RoutedMirror = 0 // lost: routed again, the step keeps its start
	d = Next(spec, st, obs)
	if !slices.Contains(d.Actions, Route(0, 50)) || !d.Next.StepStarted.Equal(st.StepStarted) {
		t.Errorf("a mirror lost early in the step: actions %v, start %v", d.Actions, d.Next.StepStarted)
	}
}

// TestStickyCanaryRunsFullSize: a sticky canary takes the Deployment's
// size before its first weight (its clients stay on it, so its share
// grows beyond the weight), and the weights still step 20, 40, 60.
func TestStickyCanaryRunsFullSize(t *testing.T) {
	spec := testSpec()
	spec.Sticky = true
	w := newWorld(t, spec, t0, alwaysPassing)
	trace := simulate(w, started(), nil)
	if final := trace[len(trace)-1].decision.Next; final.Phase != contract.PhaseSucceeded {
		t.Fatalf("ended %+v", final)
	}
	if want := []int32{20, 40, 60, 0}; !slices.Equal(w.weights, want) {
		t.Errorf("weights %v, want %v", w.weights, want)
	}
	for _, p := range trace {
		for _, a := range p.decision.Actions {
			if a.Kind == ActionEnsureCanary && a.Replicas != spec.Replicas {
				t.Errorf("%v: a sticky canary sized %d, want the Deployment's %d", p.at, a.Replicas, spec.Replicas)
			}
		}
	}
}

// TestBlueGreenSwitchNeedsTheCanary: the switch moves all traffic only to
// a full-size canary ready for the propagation delay. All iterations
// passed with a canary short of pods, the promotion waits for them
// (bounded by the progress deadline, then promotes without the switch);
// a canary that loses pods during the switch sends the traffic back to
// the Service, recorded first; a rolled-back revision promoted by hand
// never switches (its canary may be going).
func TestBlueGreenSwitchNeedsTheCanary(t *testing.T) {
	spec := blueGreenSpec(2)
	passedAll := with(started(), func(s *State) { s.Step, s.AnalysisStarted = 2, t0.Add(-5*time.Minute) })
	short := Observations{Now: t0, ServicePinned: true, CanaryObjectsExist: true, CanaryReady: 3, CanaryReadySince: t0.Add(-time.Minute), Held: true}

	d := Next(spec, passedAll, short)
	if d.Next.Phase != contract.PhaseProgressing || setsWeight(d.Actions) || !strings.Contains(d.Message, "the switch waits for the canary's pods: 3 of 5 ready") {
		t.Errorf("all passed, canary 3 of 5 ready: %+v, actions %v, message %q", d.Next, d.Actions, d.Message)
	}
	late := d.Next
	short.Now = late.WaitingSince.Add(spec.ProgressDeadline)
	d = Next(spec, late, short)
	if d.Next.Phase != contract.PhasePromoting || d.Next.Weight != 0 || slices.Contains(d.Actions, SetWeight(100)) {
		t.Errorf("past the progress deadline: %+v, actions %v; want a promotion without the switch", d.Next, d.Actions)
	}

	switched := State{Phase: contract.PhasePromoting, Step: 2, Weight: 100, StepStarted: t0.Add(-10 * time.Second),
		WaitingSince: t0.Add(-10 * time.Second), Revision: "rev2", Stable: "rev1"}
	lost := Observations{Now: t0, CanaryObjectsExist: true, CanaryReady: 4, CanaryReadySince: t0.Add(-time.Minute), RoutedWeight: 100}
	d = Next(spec, switched, lost)
	if d.Next.Weight != 0 || d.Actions[0] != WriteState() || !slices.Contains(d.Actions, SetWeight(0)) ||
		d.Event == nil || d.Event.Reason != ReasonSwitchEnded {
		t.Errorf("the switch's canary at 4 of 5 pods: %+v, actions %v, event %+v; want weight 0 recorded, then routed", d.Next, d.Actions, d.Event)
	}
	lost.CanaryReady = 5
	if d = Next(spec, switched, lost); d.Next.Weight != 100 || setsWeight(d.Actions) {
		t.Errorf("the switch's canary ready: %+v, actions %v; want the switch kept", d.Next, d.Actions)
	}

	rejected := State{Phase: contract.PhaseRolledBack, Step: 1, Revision: "rev2", Stable: "rev1"}
	ready := Observations{Now: t0, CanaryObjectsExist: true, CanaryReady: 5, CanaryReadySince: t0.Add(-time.Minute), Promote: "p1", ServicePinned: true, Held: true}
	if d = Next(spec, rejected, ready); d.Next.Phase != contract.PhasePromoting || d.Next.Weight != 0 {
		t.Errorf("a rolled-back blue-green revision promoted by hand: %+v, actions %v; want no switch", d.Next, d.Actions)
	}
}

// TestMirroredCanaryKeepsItsSize: after the mirrored step passed, the
// canary keeps the pods the mirror needs until the next step's weight
// replaces it.
func TestMirroredCanaryKeepsItsSize(t *testing.T) {
	spec := mirrored(testSpec(), 60) // 3 of 5 pods for the mirror; 1 for weight 20
	st := with(started(), func(s *State) { s.Step, s.AnalysisStarted, s.WaitingSince = 1, t0.Add(-2*time.Minute), t0 })
	// A pod restarted a second ago: step 2 waits for the propagation delay.
	obs := Observations{Now: t0, ServicePinned: true, CanaryObjectsExist: true, CanaryReady: 3, CanaryReadySince: t0.Add(-time.Second), RoutedMirror: 60, Held: true}
	d := Next(spec, st, obs)
	if !slices.Contains(d.Actions, EnsureCanary(3)) {
		t.Errorf("step 2 prepared with the mirror still routed: actions %v, want the canary kept at 3 pods", d.Actions)
	}
}
