package plan

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/canary-io/canary/contract"
)

// RecheckAfter is how soon Next asks to look again while it waits for
// something that has no due time of its own: canary pods becoming ready,
// data arriving, a gate opening, the rolling update, the canary's pods
// going away. Watches usually wake the reconciler sooner.
const RecheckAfter = 5 * time.Second

// ShortWait is the longest wait for the propagation delay whose message
// is not written: the message before it stands for those few seconds, and
// the step's start, which follows, is the write that tells. With the
// default delay (2s) the wait is always this short, and an analysis saves
// a Deployment write per step that scales its canary up. While a failure
// is recorded the message is given all the same: it replaces the
// failure's once the pass does all it decided.
const ShortWait = 5 * time.Second

// ChecksLate is how long the checks may be due without their results
// before the message says that the step waits for them: they are read in
// the background and usually come within a second, and saying so for
// that moment would cost every step a write of the Deployment.
const ChecksLate = 5 * time.Second

// minRequeue is the requeue Next returns for a due moment already reached
// (looked at again promptly rather than never, and never in a tight
// loop); a moment ahead is requeued exactly (until).
const minRequeue = time.Second

// Spec is what is fixed for one analysis: the settings frozen when the
// template was held, and the two values the reconciler supplies.
type Spec struct {
	// Steps are the canary weights in percent, strictly ascending, 1..99.
	Steps []int32
	// Interval is how long each step lasts before its checks run.
	Interval time.Duration
	// Threshold is the number of failed checks tolerated; the next one rolls
	// back.
	Threshold int
	// NoData says what a check without data means.
	NoData contract.NoDataPolicy
	// ProgressDeadline bounds every wait: canary pods becoming ready, data
	// arriving, the confirm-promotion gate, the promotion's rolling update.
	ProgressDeadline time.Duration
	// Replicas is the Deployment's desired replicas now (an HPA may change
	// it between passes); the canary's size follows it.
	Replicas int32
	// PropagationDelay is how long new endpoints or route weights must have
	// been in place before traffic may rely on them (Envoy configuration
	// propagation).
	PropagationDelay time.Duration
	// RemovalDelay is how long the canary's pods stay after the weight
	// left them (a rollback, a promotion), so that every proxy has the new
	// routes before they go: requests in flight and proxies slow to get
	// the update still reach a pod. The longer of it and PropagationDelay
	// applies.
	RemovalDelay time.Duration
	// PreRollout says the analysis has pre-rollout hooks: they must pass
	// before the first step's weight moves.
	PreRollout bool
	// Strategy is how the analysis sends traffic to the canary. With
	// contract.StrategyAB every step (an iteration) routes weight 100:
	// the requests matching canary.io/match go to the canary, the rest to
	// stable; the router reads the weight so. With
	// contract.StrategyBlueGreen every step (an iteration) routes weight
	// 0: no user traffic, the canary takes the hooks' load tests; the
	// promotion switches all traffic to it (weight 100) until the rolling
	// update is done. Both run a full-size canary.
	Strategy contract.Strategy
	// Mirror is the percentage of stable's requests copied to the canary
	// while it is analysed (canary.io/mirror; 0: none): during every
	// iteration of an ab or blue-green analysis, and during the steps of
	// weight 0 of a canary one (the first, added by SpecFrom). See
	// MirrorFor.
	Mirror int32
	// Sticky says the route keeps a client on the canary once it served
	// it (canary.io/sticky): clients accumulate on the canary, whose share
	// of requests then grows beyond its weight, so it runs at full size.
	Sticky bool
	// ConfirmPromotion says the analysis has confirm-promotion hooks: no
	// promotion after the last step without their answer
	// (Observations.GateOpen).
	ConfirmPromotion bool
	// ComparisonPeriod, when positive, is how often the continuous
	// comparison reads the counters while the canary takes traffic: no
	// requeue of an analysis in flight with weight on the canary is
	// longer. Zero when the comparison is off.
	ComparisonPeriod time.Duration
	// RollbackHookPoll, when positive, is how often the rollback hooks are
	// asked while an analysis is in flight: no requeue of one is longer.
	// Zero when there are none.
	RollbackHookPoll time.Duration
}

// SpecFrom builds the Spec of an analysis from its frozen settings, the
// Deployment's desired replicas and the controller's propagation delay.
func SpecFrom(s contract.Settings, replicas int32, propagationDelay time.Duration) Spec {
	steps := slices.Clone(s.Steps)
	if s.Mirror > 0 {
		steps = append([]int32{0}, steps...) // the mirrored step
	}
	switch s.Strategy {
	case contract.StrategyAB:
		steps = slices.Repeat([]int32{100}, s.Iterations)
	case contract.StrategyBlueGreen:
		steps = slices.Repeat([]int32{0}, s.Iterations)
	}
	return Spec{
		Strategy:         s.Strategy,
		Mirror:           s.Mirror,
		Sticky:           s.Sticky != "",
		Steps:            steps,
		Interval:         s.Interval,
		Threshold:        s.Threshold,
		NoData:           s.NoData,
		ProgressDeadline: s.ProgressDeadline,
		Replicas:         replicas,
		PropagationDelay: propagationDelay,
		PreRollout:       len(contract.OfType(s.Webhooks, contract.HookPreRollout)) > 0,
		ConfirmPromotion: len(contract.OfType(s.Webhooks, contract.HookConfirmPromotion)) > 0,
	}
}

// Validate reports why Next cannot run an analysis with s, or nil. Next
// checks it for the in-flight phases and holds (no actions) when it fails,
// so that a broken Spec can never advance or promote anything.
func (s Spec) Validate() error {
	if len(s.Steps) == 0 {
		return errors.New("no steps")
	}
	for i, w := range s.Steps {
		switch {
		case s.Strategy == contract.StrategyAB && w != 100:
			return fmt.Errorf("steps %v of an ab analysis are not all 100 (the matching requests)", s.Steps)
		case s.Strategy == contract.StrategyBlueGreen && w != 0:
			return fmt.Errorf("steps %v of a blue-green analysis are not all 0 (no user traffic)", s.Steps)
		case s.Strategy == contract.StrategyAB || s.Strategy == contract.StrategyBlueGreen:
		case i == 0 && w == 0 && s.Mirror > 0 && len(s.Steps) > 1: // the mirrored step
		case w < 1 || w > 99 || (i > 0 && w <= s.Steps[i-1]):
			return fmt.Errorf("steps %v are not strictly ascending weights from 1 to 99", s.Steps)
		}
	}
	switch {
	case s.Mirror < 0 || s.Mirror > 100:
		return fmt.Errorf("mirror %d%% is not a percentage", s.Mirror)
	case s.Interval <= 0:
		return fmt.Errorf("interval %v is not positive", s.Interval)
	case s.Threshold < 0:
		return fmt.Errorf("threshold %d is negative", s.Threshold)
	case s.NoData != contract.NoDataHold && s.NoData != contract.NoDataFail && s.NoData != contract.NoDataPass:
		return fmt.Errorf("no-data policy %q is unknown", s.NoData)
	case s.ProgressDeadline <= 0:
		return fmt.Errorf("progress deadline %v is not positive", s.ProgressDeadline)
	case s.PropagationDelay < 0:
		return fmt.Errorf("propagation delay %v is negative", s.PropagationDelay)
	case s.RemovalDelay < 0:
		return fmt.Errorf("removal delay %v is negative", s.RemovalDelay)
	case s.Replicas < 0:
		return fmt.Errorf("replicas %d is negative", s.Replicas)
	}
	return nil
}

// State is what the stepper remembers between passes, persisted in the
// Deployment's annotations by [Encode] and read back by [Decode].
type State struct {
	// Phase is canary.io/phase.
	Phase contract.Phase
	// Step is the number of steps passed so far; while an analysis is in
	// flight, Steps[Step] is the step being run or prepared.
	Step int
	// Weight is the canary's traffic weight in effect, in percent.
	Weight int32
	// FailedChecks counts the failed check runs of this analysis.
	FailedChecks int
	// StepStarted is when Weight took effect: the start of the running
	// step, or, once the weight is back at 0 (promotion, rollback,
	// cleanup), when it left the canary. Zero between steps.
	StepStarted time.Time
	// WaitingSince is the start of the current wait that the progress
	// deadline bounds (canary pods not ready, no data, a closed gate, the
	// promotion's rolling update); zero when there is none.
	WaitingSince time.Time
	// PreRolloutFailed is when the pre-rollout hooks last failed; they are
	// called again an Interval later. Zero when they have not failed in
	// this analysis.
	PreRolloutFailed time.Time
	// Acted holds the last value of each once-per-value control the system
	// acted on, by annotation key (contract.KeyPromote, KeyAbort, and the
	// webhook's KeyRetry, which Next keeps as it is).
	Acted map[string]string
	// AnalysisStarted is when the analysis of Revision began, as the
	// stepper first saw it in flight (canary.io/analysis-started): the
	// checks' windows and the comparison never reach back before it. Zero
	// until the first pass of the analysis records it (see AnalysisStart).
	AnalysisStarted time.Time
	// RolledOut is when the promotion's rolling update was first seen
	// complete (canary.io/rolled-out), zero before: from then on the
	// promotion no longer waits for it. The Deployment's status lags each
	// of the stepper's own annotation writes (they raise its generation),
	// so a completion judged again on every pass would flip with them,
	// and every flip is another write.
	RolledOut time.Time
	// Revision is the template hash under test (canary.io/revision).
	Revision string
	// Stable is the template hash serving users (canary.io/stable-revision).
	Stable string
}

// Equal reports whether s and o are the same state (times compared with
// time.Time.Equal, a nil Acted equal to an empty one). The reconciler
// writes the annotations only when the next state is not Equal to the one
// it read, or the Decision carries a message.
func (s State) Equal(o State) bool {
	return s.Phase == o.Phase && s.Step == o.Step && s.Weight == o.Weight &&
		s.FailedChecks == o.FailedChecks && s.StepStarted.Equal(o.StepStarted) &&
		s.WaitingSince.Equal(o.WaitingSince) && s.PreRolloutFailed.Equal(o.PreRolloutFailed) && maps.Equal(s.Acted, o.Acted) &&
		s.AnalysisStarted.Equal(o.AnalysisStarted) && s.RolledOut.Equal(o.RolledOut) &&
		s.Revision == o.Revision && s.Stable == o.Stable
}

// Observations are what the gatherer saw in this pass. They must be
// complete: a failed read ends the pass before Next is called, rather than
// arriving here as a zero value.
type Observations struct {
	// Now is the time of the pass.
	Now time.Time
	// CanaryReady counts the ready pods of <deployment>-canary that run
	// State.Revision.
	CanaryReady int32
	// CanaryReadySince is when the most recently ready of those pods became
	// ready (a restarted pod resets it): from then on at least CanaryReady
	// pods have been ready. Zero when none is.
	CanaryReadySince time.Time
	// RoutedWeight is the canary's weight in the VirtualService(s) now.
	RoutedWeight int32
	// RoutedMirror is the percentage of the Service's requests the route
	// copies to the canary now (0: none).
	RoutedMirror int32
	// RoutingChangedBySomeoneElse, when not empty, says how the
	// VirtualService's weights differ from what the stepper last wrote.
	// The gatherer compares them with a record the stepper writes in the
	// same update as the weights (not with State.Weight), so the stepper's
	// own write whose status update was lost is not mistaken for someone
	// else's. Next holds rather than fight: no weight changes, no step
	// advances, no canary deleted, until the weights are back.
	RoutingChangedBySomeoneElse string
	// Checks are the results of the end-of-step checks, nil when they were
	// not run in this pass. Run them when [ChecksDue]; a query that fails or
	// times out is a result without data (HasData false, Detail saying why).
	// The rollout hooks are checks too, called at the same moment: a hook
	// that fails is a failed check ([HookResult]).
	Checks []CheckResult
	// PreRollout are the results of the pre-rollout hooks ([HookResult]),
	// nil when they were not called in this pass. Call them when
	// [PreRolloutDue].
	PreRollout []CheckResult
	// RollbackHook, when not empty, says which rollback hook asked for a
	// rollback and how (it answered with success): the analysis rolls back
	// at once. The gatherer calls the rollback hooks on the passes of an
	// analysis in flight.
	RollbackHook string
	// ComparisonFailed, when not empty, is the sentence with the numbers of
	// the continuous canary-vs-stable comparison (canary.io/confidence) that
	// found the canary worse than stable: it rolls back at once, whatever
	// the step.
	ComparisonFailed string
	// Pause is the level of canary.io/pause ("true").
	Pause bool
	// Promote is the current value of canary.io/promote.
	Promote string
	// Abort is the current value of canary.io/abort.
	Abort string
	// GateOpen is the answer of the confirm-promotion hooks, asked whenever
	// [GateDue]: nil means there is no such hook, and lets a revision whose
	// steps all passed be promoted. All of them must answer with success
	// for the gate to be open.
	GateOpen *bool
	// Gate says how the confirm-promotion hooks answered, for the message,
	// e.g. `hook "approval" answered 403 Forbidden: "Forbidden"`.
	Gate string
	// RolloutComplete reports, while Promoting, that the Deployment's
	// rolling update to State.Revision finished: all replicas updated,
	// available, and no old pods left.
	RolloutComplete bool
	// Conflict, when not empty, is why the analysis cannot own its objects:
	// a name taken by an object of another owner, a user VirtualService for
	// the host not named in canary.io/virtualservice, a second opted-in
	// Deployment on the Service, a name over 63 characters.
	Conflict string
	// ServicePinned reports that the user's Service selector carries the
	// stable ReplicaSet's pod-template-hash.
	ServicePinned bool
	// UnroutedSince is when this process first saw, in a row, no weight
	// routed to the canary (RoutedWeight 0); zero while some is, or when
	// not tracked. The canary of an ended analysis is removed only a
	// removal delay after it (see canaryFree).
	UnroutedSince time.Time
	// Held reports that the Deployment is paused: its new template held
	// from rolling out (the promotion unpauses it).
	Held bool
	// Failing is why the passes of this analysis have kept failing to do
	// what they decided since FailingSince (zero: the last pass did all it
	// decided). Past the progress deadline the analysis rolls back.
	Failing      string
	FailingSince time.Time
	// ProgressingFailed reports that the Deployment's Progressing condition
	// is False (reason ProgressDeadlineExceeded), as a rollback sets it.
	ProgressingFailed bool
	// Rejection is why canary.io/rejected-revision was rolled back (the
	// bookkeeping canary.io/rejection without its time), "" when none is
	// recorded.
	Rejection string
	// GeneratedVirtualServiceReplaced reports that the VirtualService the
	// stepper generated is still there although canary.io/virtualservice
	// now names the user's own, which the analysis steers.
	GeneratedVirtualServiceReplaced bool
	// Transition is the last phase change recorded on the Deployment,
	// whoever made it: its Event is emitted at least once.
	Transition Transition
	// CanaryObjectsExist reports that any canary object is left:
	// <deployment>-canary or any of its pods (terminating ones too),
	// Service <service>-canary, DestinationRule <service>-canary.
	CanaryObjectsExist bool
}

// Transition is a phase change recorded on the Deployment.
type Transition struct {
	// ID names it: phase, revision and canary.io/last-transition; empty
	// when none is recorded.
	ID string
	// Reason is its Event's reason as whoever made it recorded it
	// (canary.io/transition-reason), Message the message then.
	Reason, Message string
	// Evented reports that the Deployment records its Event as emitted
	// (canary.io/evented-transition); Emitted that this stepper emitted it
	// and has yet to record that.
	Evented, Emitted bool
}

// Decision is what Next decided for one pass.
//
// The reconciler applies Actions in order and stops at the first error
// (the next pass decides again from what was recorded). Among them is one
// ActionWriteState: the update of the Deployment that carries Encode(Next)
// and Message, plus the RecordRejected action; the Events (Announce,
// Passed, Event) are emitted once it succeeded. Unpause is a write of its
// own, after the Service's unpin (a Service pinned to the stable
// ReplicaSet while the rolling update drains it would have no endpoints;
// the webhook lets the controller unpause only a Deployment in phase
// Promoting), and records the promotion's Event as emitted. The state
// write comes before every action that follows from the decision (write-ahead), so that a
// stepper killed between two writes, or a refused write, never leaves
// traffic where nothing recorded it: a rollback is recorded before the
// weight leaves the canary, a step before its weight is raised.
// SetProgressingFailed writes the Deployment's status after it.
// canary.io/last-transition is the reconciler's to set when Next.Phase
// differs from the phase it read.
type Decision struct {
	// Next is the state to persist.
	Next State
	// Actions are what the reconciler must do, in order.
	Actions []Action
	// Requeue is the longest the reconciler may wait before the next pass:
	// the next due moment (a step's end, a propagation delay's end, a
	// deadline) or RecheckAfter. Zero only when nothing is left to do.
	Requeue time.Duration
	// Message is canary.io/message: one sentence with the measured numbers.
	// Empty means leave the current message as it is.
	Message string
	// Event is the Kubernetes Event for this pass, nil for none. Every phase
	// change has one.
	Event *Event
	// Passed is the Event of a step that passed in this pass when the
	// same pass starts the next step (Event is then that start's): it is
	// emitted after Announce, before Event. Nil otherwise.
	Passed *Event
	// Announce is the Event of a transition recorded earlier whose Event
	// was never emitted: one the webhook made, or the stepper's own when
	// it was stopped between the write and the Event. It is emitted after
	// the state write, before Event.
	Announce *Event
	// Evented is the transition (Transition.ID) the state write records as
	// evented, "" for none: the Event of a transition is thus emitted at
	// least once, and once more only when the stepper restarts between
	// emitting it and recording it.
	Evented string
}

// Next decides one pass of the stepper for one Deployment. It is pure: the
// same arguments always give the same Decision, and it never modifies them.
// Its actions hold exactly one WriteState, before every action that
// follows from the decision (see ActionWriteState).
func Next(spec Spec, state State, obs Observations) Decision {
	return replaceGenerated(obs, writeAhead(announce(obs, lookAgain(spec, next(spec, state, obs)))))
}

// replaceGenerated deletes, first thing, a generated VirtualService that
// the user's own replaced, whatever else the pass decides.
func replaceGenerated(obs Observations, d Decision) Decision {
	if obs.GeneratedVirtualServiceReplaced {
		d.Actions = append([]Action{DeleteGeneratedVirtualService()}, d.Actions...)
	}
	return d
}

// announce emits the Event of the recorded transition if nobody has, and
// records it as evented.
func announce(obs Observations, d Decision) Decision {
	t := obs.Transition
	if t.ID == "" || t.Evented {
		return d
	}
	if !t.Emitted && t.Reason != "" {
		d.Announce = EventFor(t.Reason, t.Message)
	} else if t.Emitted && slices.Contains(d.Actions, Unpause()) {
		// The unpause, a write of its own, records it (the promotion's,
		// continued in the pass after its record): the state write has
		// nothing to write for it.
		return d
	}
	d.Evented = t.ID
	return d
}

// lookAgain bounds the requeue of an analysis in flight by what must be
// looked at on a period of its own: the continuous comparison while the
// canary takes traffic, the rollback hooks' requests.
//
// Example: a step with 50s left, comparison period 5s, weight 20 →
// requeue 5s; the same at weight 0 (the comparison has nothing to read) →
// 50s.
func lookAgain(spec Spec, d Decision) Decision {
	if !inFlightPhase(d.Next.Phase) || d.Requeue <= 0 {
		return d
	}
	if p := spec.ComparisonPeriod; p > 0 && TakesTraffic(spec, d.Next) {
		d.Requeue = min(d.Requeue, p)
	}
	if p := spec.RollbackHookPoll; p > 0 {
		d.Requeue = min(d.Requeue, p)
	}
	return d
}

// writeAhead puts the state write first, unless the decision placed it
// (after its upkeep: see withUpkeep).
func writeAhead(d Decision) Decision {
	if slices.ContainsFunc(d.Actions, func(a Action) bool { return a.Kind == ActionWriteState }) {
		return d
	}
	d.Actions = append([]Action{WriteState()}, d.Actions...)
	return d
}

// next is Next before the state write is placed.
func next(spec Spec, state State, obs Observations) Decision {
	switch state.Phase {
	case contract.PhaseProgressing, contract.PhasePaused, contract.PhasePromoting:
		if err := validFor(spec, state); err != nil {
			return Decision{
				Next:    state,
				Requeue: RecheckAfter,
				Message: "cannot decide: " + err.Error(),
			}
		}
		if state.Phase == contract.PhasePromoting {
			return promoting(spec, state, obs)
		}
		state.AnalysisStarted = AnalysisStart(state, obs.Now) // recorded by the first pass
		return inFlight(spec, state, obs)
	case contract.PhaseRolledBack:
		if shouldPromoteRejected(state, obs) {
			return promote(spec, state, obs, ReasonPromoteRequested,
				fmt.Sprintf("canary.io/promote %q overrides the rollback of revision %s", obs.Promote, state.Revision))
		}
		return converge(cleanUp(spec, state, obs, false), obs)
	default:
		// Idle, Succeeded, or no phase at all (a Deployment not or no longer
		// opted in): only leftovers to remove.
		return cleanUp(spec, state, obs, true)
	}
}

// AnalysisStart is the start of the analysis in flight: the one recorded,
// or, in the pass that records it, now to the second (the gatherer's
// windows and the decision's record agree).
//
// Example: nothing recorded, now 12:00:00.7 → 12:00:00.
func AnalysisStart(state State, now time.Time) time.Time {
	if !state.AnalysisStarted.IsZero() {
		return state.AnalysisStarted
	}
	return now.UTC().Truncate(time.Second)
}

// converge re-asserts, on every pass of a rolled-back analysis, what its
// transition wrote outside the annotations: the Deployment's Progressing
// condition False, so that kubectl rollout status and GitOps tools see the
// failure even when that write was lost (the controller killed after the
// state write, the status write refused).
func converge(d Decision, obs Observations) Decision {
	if obs.ProgressingFailed || obs.Rejection == "" {
		return d
	}
	d.Actions = append(d.Actions, SetProgressingFailed("rolled back: "+obs.Rejection))
	if d.Requeue == 0 {
		d.Requeue = RecheckAfter // to see that it holds
	}
	return d
}

// validFor checks spec, and state against it, for the phases that use them.
func validFor(spec Spec, state State) error {
	if err := spec.Validate(); err != nil {
		return fmt.Errorf("invalid analysis settings: %w", err)
	}
	if state.Step < 0 || state.Step > len(spec.Steps) {
		return fmt.Errorf("step %d is outside the %d steps of the analysis", state.Step, len(spec.Steps))
	}
	return nil
}

// ChecksDue reports whether the end-of-step checks are due: an analysis in
// flight, a step running, and its interval over. The gatherer queries
// Prometheus only then; Next, given no Checks while they are due, waits
// RecheckAfter for them.
//
// Example: interval 1m, StepStarted 12:00:00 → not due at 12:00:59, due
// from 12:01:00 until the checks are judged (which moves StepStarted on or
// clears it).
func ChecksDue(spec Spec, state State, now time.Time) bool {
	return inFlightPhase(state.Phase) && stepRunning(spec, state) &&
		!now.Before(state.StepStarted.Add(spec.Interval))
}

// MovesAt is when an analysis in state st next moves on its own, when it
// waits for a moment: the running step's checks fall due, or the weight
// being prepared may be routed (its canary pods ready for the propagation
// delay). false: it waits for nothing timed (a pause, pods not ready yet,
// the promotion's rollout), or it is not Progressing.
//
// Example: step 1 of 20,40,60 started 12:00:00, interval 40s → 12:00:40;
// weight 20 prepared, its one canary pod ready since 12:00:03, propagation
// delay 2s → 12:00:05.
func MovesAt(spec Spec, st State, obs Observations) (time.Time, bool) {
	switch {
	case st.Phase != contract.PhaseProgressing:
		return time.Time{}, false
	case stepRunning(spec, st):
		return st.StepStarted.Add(spec.Interval), true
	case st.StepStarted.IsZero() && st.Step < len(spec.Steps):
		return routable(spec, obs, spec.Steps[st.Step])
	}
	return time.Time{}, false
}

// GateDue reports whether the gatherer should ask the confirm-promotion
// hooks: all steps passed and the analysis waits for the gate, or the last
// step's checks are due (so that a pass promotes without another round).
func GateDue(spec Spec, state State, now time.Time) bool {
	if state.Phase != contract.PhaseProgressing {
		return false
	}
	n := len(spec.Steps)
	return state.Step == n || (state.Step == n-1 && ChecksDue(spec, state, now))
}

// PreRolloutDue reports whether the gatherer should call the pre-rollout
// hooks: the analysis has some, runs (not paused), has not moved any
// traffic yet (or the VirtualService lost the weight: see
// followLowerRouting), its canary is ready to take the first step's weight
// (the pods the step needs ready for the propagation delay), and this
// pass will judge them ([Judged]); after a failure, not before an interval
// has passed. obs needs everything but the hooks' answers.
//
// Example: interval 1m, hooks failed at 12:00:00 → not due at 12:00:59,
// due from 12:01:00.
func PreRolloutDue(spec Spec, state State, obs Observations) bool {
	st := followLowerRouting(spec, state, obs)
	return spec.PreRollout && st.Phase == contract.PhaseProgressing && Judged(st, obs) && awaitsPreRollout(spec, st) &&
		canaryRoutable(spec, st, obs) && !obs.Now.Before(preRolloutRetry(spec, st))
}

// Judged reports whether Next, in this pass, judges the analysis' hooks
// and gate at all: none of what comes first in an in-flight pass (a new
// abort or promote value, a conflict, the comparison's verdict, a rollback
// hook's request, pausing or resuming, someone else's weights) decides it
// instead. The gatherer calls hooks with side effects (a load test) only
// then; obs needs everything but the hooks' answers.
func Judged(state State, obs Observations) bool {
	return inFlightPhase(state.Phase) &&
		!isNewControl(state, contract.KeyAbort, obs.Abort) && !isNewControl(state, contract.KeyPromote, obs.Promote) &&
		obs.Conflict == "" && obs.ComparisonFailed == "" && obs.RollbackHook == "" &&
		!shouldTogglePause(state, obs) && obs.RoutingChangedBySomeoneElse == ""
}

// awaitsPreRollout reports whether the pre-rollout hooks stand between
// the analysis and its first step: they exist and no traffic has moved.
// After they pass, the same pass moves the weight.
func awaitsPreRollout(spec Spec, st State) bool {
	return spec.PreRollout && st.Step == 0 && st.Weight == 0 && st.StepStarted.IsZero() && len(spec.Steps) > 0
}

// preRolloutRetry is when the pre-rollout hooks may be called again: an
// interval after they last failed, or at once.
func preRolloutRetry(spec Spec, st State) time.Time {
	if st.PreRolloutFailed.IsZero() {
		return time.Time{}
	}
	return st.PreRolloutFailed.Add(spec.Interval)
}

// canaryRoutable reports whether the canary has the ready pods the step
// being prepared needs, ready for the propagation delay.
func canaryRoutable(spec Spec, st State, obs Observations) bool {
	need := spec.canaryReplicas(targetWeight(spec, st))
	return obs.CanaryReady >= need && !obs.CanaryReadySince.IsZero() &&
		!obs.Now.Before(obs.CanaryReadySince.Add(spec.PropagationDelay))
}

// CanaryReplicas is the number of ready canary pods needed before the
// weight moves to weight percent: the canary's share of the Deployment's
// replicas, rounded up, and at least 1.
//
// Worked example: replicas 5, weight 40 → ceil(2.0) = 2; replicas 3,
// weight 20 → ceil(0.6) = 1; replicas 10, weight 25 → ceil(2.5) = 3;
// replicas 0 (scaled to zero), weight 60 → 1.
func CanaryReplicas(replicas, weight int32) int32 {
	n := (int64(replicas)*int64(weight) + 99) / 100
	if n < 1 {
		return 1
	}
	return int32(n)
}

// canaryReplicas is CanaryReplicas for this analysis: the canary of an
// ab or blue-green analysis is full size whatever the weight (it takes
// all the matching requests, or all traffic at the switch), and so is a
// sticky one once it takes traffic; one that takes mirrored copies is
// sized for the larger of the weight and the mirror.
func (s Spec) canaryReplicas(weight int32) int32 {
	if s.Strategy == contract.StrategyAB || s.Strategy == contract.StrategyBlueGreen || (s.Sticky && weight > 0) {
		weight = 100
	}
	return CanaryReplicas(s.Replicas, max(weight, s.mirrorAt(weight)))
}

// mirrorAt is the mirror of a step at weight w: Spec.Mirror for every
// iteration of ab (weight 100: the matching requests) and blue-green
// (weight 0), and for a canary step of weight 0; none otherwise (a
// blue-green switch, a canary step with user traffic).
func (s Spec) mirrorAt(w int32) int32 {
	switch {
	case s.Mirror <= 0:
		return 0
	case s.Strategy == contract.StrategyAB:
		return s.Mirror
	case w == 0:
		return s.Mirror
	}
	return 0
}

// TakesTraffic reports whether an analysis in state st sends the canary
// requests: a weight, or mirrored copies (MirrorFor).
func TakesTraffic(spec Spec, st State) bool {
	return st.Weight > 0 || MirrorFor(spec, st) > 0
}

// Routed reports whether the route sends the canary anything now: a
// weight or mirrored copies.
func (o Observations) Routed() bool {
	return o.RoutedWeight > 0 || o.RoutedMirror > 0
}

// MirrorFor is the mirror an analysis in state st routes: that of its
// weight once its first step started (and until the next step's weight
// replaces it), none before, and none once it ended.
//
// Example: mirror 50, steps 0,20,40 → step 1 (weight 0) not started: 0;
// running: 50; passed, step 2 (weight 20) prepared: 50; running: 0.
func MirrorFor(spec Spec, st State) int32 {
	if !inFlightPhase(st.Phase) || (st.Step == 0 && st.StepStarted.IsZero()) {
		return 0
	}
	if weighted(spec) && (st.Step > 1 || st.Step == 1 && !st.StepStarted.IsZero()) {
		// A canary mirrors in its first step only (and while the next
		// one is prepared): a weight back at 0 later mirrors nothing.
		return 0
	}
	return spec.mirrorAt(st.Weight)
}

// inFlightPhase reports whether an analysis is running (not yet decided).
func inFlightPhase(p contract.Phase) bool {
	return p == contract.PhaseProgressing || p == contract.PhasePaused
}

// stepRunning reports whether the current step's weight is in effect, so
// its interval runs.
func stepRunning(spec Spec, st State) bool {
	return !st.StepStarted.IsZero() && st.Step < len(spec.Steps) && st.Weight == spec.Steps[st.Step]
}

// targetWeight is the weight the canary is sized for: the step being run
// or prepared, or the weight in effect once all steps passed.
func targetWeight(spec Spec, st State) int32 {
	if st.Step < len(spec.Steps) {
		return spec.Steps[st.Step]
	}
	return st.Weight
}

// removalDelay is how long after the weight left the canary its pods
// may go: the longer of RemovalDelay and PropagationDelay.
func removalDelay(spec Spec) time.Duration {
	return max(spec.RemovalDelay, spec.PropagationDelay)
}

// stamp is t rounded up to the whole second, in UTC: the precision of the
// RFC 3339 annotations, so that a State re-decoded after a restart is the
// State decided, and rounding up keeps every wait at least as long as
// asked.
//
// Example: 12:00:00.2 → 12:00:01; 12:00:01 → 12:00:01.
func stamp(t time.Time) time.Time {
	s := t.UTC().Truncate(time.Second)
	if s.Before(t) {
		s = s.Add(time.Second)
	}
	return s
}

// until is the requeue delay from now to t: exactly while t is ahead, so
// that a pass that comes just before a due moment (woken by an event: a
// canary pod's readiness, a status change) does not push the moment's
// pass back by up to minRequeue; minRequeue once t is reached (looked at
// again promptly, never in a tight loop).
//
// Example: now 12:00:00, t 12:00:40 → 40s; t 12:00:00.3 → 300ms; t
// 11:59:00 → 1s.
func until(now, t time.Time) time.Duration {
	if t.After(now) {
		return t.Sub(now)
	}
	return minRequeue
}

// clock renders a due moment for a message.
func clock(t time.Time) string {
	return t.UTC().Format(time.RFC3339)
}

// StepShown is the step in progress, 1-based, as canary.io/step, every
// message, the plugin and the metrics count it: the step being run or
// prepared once passed steps have passed, and n once all n passed.
//
// Example, 3 steps: 0 passed → 1 (the first step is prepared or runs);
// 2 passed → 3; 3 passed → 3.
func StepShown(passed, n int) int {
	return min(passed+1, n)
}

// stepLabel names the step being run or prepared, e.g. "step 2/3", or
// "iteration 2/10" of an ab analysis.
func stepLabel(spec Spec, st State) string {
	return fmt.Sprintf("%s %d/%d", stepUnit(spec), StepShown(st.Step, len(spec.Steps)), len(spec.Steps))
}

func stepUnit(spec Spec) string {
	if weighted(spec) {
		return "step"
	}
	return "iteration"
}

// weighted reports whether the analysis moves weights step by step (the
// canary strategy), rather than running iterations.
func weighted(spec Spec) bool {
	return spec.Strategy != contract.StrategyAB && spec.Strategy != contract.StrategyBlueGreen
}

// routing says, for messages, what weight w sends to the canary:
// "weight 40%"; of an ab analysis, "the matching requests" (any weight
// above 0) or "no requests"; of a blue-green analysis, "all traffic"
// (100) or "no user traffic".
func routing(spec Spec, w int32) string {
	if note := mirrorNote(spec, w); note != "" {
		return routingOnly(spec, w) + ", " + note
	}
	return routingOnly(spec, w)
}

// mirrorNote says, for messages, what a step at weight w mirrors:
// "50% of stable's requests mirrored", or "" for none.
func mirrorNote(spec Spec, w int32) string {
	if m := spec.mirrorAt(w); m > 0 {
		return fmt.Sprintf("%d%% of stable's requests mirrored", m)
	}
	return ""
}

// routingOnly is routing without the mirror.
func routingOnly(spec Spec, w int32) string {
	switch {
	case weighted(spec):
		return fmt.Sprintf("weight %d%%", w)
	case spec.Strategy == contract.StrategyBlueGreen && w == 100:
		return "all traffic"
	case spec.Strategy == contract.StrategyBlueGreen:
		return "no user traffic"
	case w > 0:
		return "the matching requests"
	}
	return "no requests"
}

// phrase is, for messages, canary formatted with the weight w, or, of an
// ab or blue-green analysis, ab formatted with routing(spec, w).
//
// Example: phrase(spec, 40, "the weight moves to %d%%", "%s go to the
// canary") → "the weight moves to 40%", or "the matching requests go to
// the canary".
func phrase(spec Spec, w int32, canary, ab string) string {
	if !weighted(spec) {
		return fmt.Sprintf(ab, routing(spec, w))
	}
	return fmt.Sprintf(canary, w)
}

// routedAt says how a step runs, for messages: "at weight 40%", or of an
// ab analysis "with the matching requests on the canary", of a
// blue-green one "with no user traffic on the canary".
func routedAt(spec Spec, w int32) string {
	note := mirrorNote(spec, w)
	switch {
	case weighted(spec) && note != "":
		return "at " + routingOnly(spec, w) + " with " + note + " to the canary"
	case weighted(spec):
		return "at " + routingOnly(spec, w)
	case note != "":
		return "with " + routingOnly(spec, w) + " on the canary and " + note + " to it"
	}
	return "with " + routingOnly(spec, w) + " on the canary"
}

// position says where an analysis stands, for messages: "at step 2/3
// (weight 40%)", or "after step 3/3 (weight 60%)" once all steps passed.
func position(spec Spec, st State) string {
	if st.Step >= len(spec.Steps) {
		return fmt.Sprintf("after %s %d/%d (%s)", stepUnit(spec), len(spec.Steps), len(spec.Steps), routing(spec, st.Weight))
	}
	return fmt.Sprintf("at %s (%s)", stepLabel(spec, st), routing(spec, st.Weight))
}
