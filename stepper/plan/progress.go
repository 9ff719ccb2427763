package plan

import (
	"fmt"
	"time"

	"github.com/canary-io/canary/contract"
)

// inFlight decides a pass of an analysis in Progressing or Paused. The
// order is the order of precedence: what ends the analysis (the user's
// controls, a conflict, the comparison) before what holds it (pause,
// someone else's weights) before the steps.
func inFlight(spec Spec, st State, obs Observations) Decision {
	if d, ok := onControls(spec, st, obs); ok {
		return d
	}
	if obs.Conflict != "" {
		return rollBack(spec, st, obs, ReasonConflict,
			fmt.Sprintf("the analysis stopped %s: %s", position(spec, st), obs.Conflict))
	}
	if obs.ComparisonFailed != "" {
		return rollBack(spec, st, obs, ReasonCanaryWorse,
			fmt.Sprintf("the canary is worse than stable %s: %s", position(spec, st), obs.ComparisonFailed))
	}
	if obs.RollbackHook != "" {
		return rollBack(spec, st, obs, ReasonRollbackHook,
			fmt.Sprintf("%s %s", obs.RollbackHook, position(spec, st)))
	}
	if !obs.FailingSince.IsZero() && !obs.Now.Before(obs.FailingSince.Add(spec.ProgressDeadline)) {
		// What the analysis decided has kept failing: bounded like any wait.
		return rollBack(spec, st, obs, ReasonProgressDeadlineExceeded,
			fmt.Sprintf("the stepper could not act for %s (progress deadline) %s: %s",
				contract.PromDuration(spec.ProgressDeadline), position(spec, st), obs.Failing))
	}
	if d, ok := resumeStart(spec, st, obs); ok {
		return withUpkeep(spec, obs, d)
	}
	st = followLowerRouting(spec, st, obs)
	var d Decision
	switch {
	case shouldTogglePause(st, obs):
		d = togglePause(spec, st, obs)
	case obs.RoutingChangedBySomeoneElse != "":
		d = holdForRouting(spec, st, obs)
	case st.Step >= len(spec.Steps):
		d = awaitPromotion(spec, st, obs, "")
	case stepRunning(spec, st):
		d = runStep(spec, st, obs)
	default:
		d = scaleUp(spec, st, obs)
	}
	if !inFlightPhase(d.Next.Phase) {
		return d // promoted or rolled back: the transition chose its actions
	}
	return withUpkeep(spec, obs, d)
}

// onControls acts on a new canary.io/abort or canary.io/promote value.
// Abort wins when both are new: rolling back is the safe one.
func onControls(spec Spec, st State, obs Observations) (Decision, bool) {
	switch {
	case isNewControl(st, contract.KeyAbort, obs.Abort):
		return rollBack(spec, st, obs, ReasonAborted,
			fmt.Sprintf("canary.io/abort %q %s", obs.Abort, position(spec, st))), true
	case isNewControl(st, contract.KeyPromote, obs.Promote):
		return promote(spec, st, obs, ReasonPromoteRequested,
			fmt.Sprintf("canary.io/promote %q %s", obs.Promote, position(spec, st))), true
	}
	return Decision{}, false
}

// isNewControl reports whether a once-per-value control carries a value the
// system has not acted on.
func isNewControl(st State, key, value string) bool {
	return value != "" && value != st.Acted[key]
}

// consumeControls records the current promote and abort values as acted
// on, so that none of them fires later: called at every transition that
// ends an analysis.
func consumeControls(st State, obs Observations) State {
	acted := make(map[string]string, len(st.Acted)+2)
	for k, v := range st.Acted {
		acted[k] = v
	}
	if obs.Promote != "" {
		acted[contract.KeyPromote] = obs.Promote
	}
	if obs.Abort != "" {
		acted[contract.KeyAbort] = obs.Abort
	}
	if len(acted) == 0 {
		acted = nil
	}
	st.Acted = acted
	return st
}

// routable reports whether the canary has the pods weight w needs, all
// ready, and from when w may be routed to it: once they have been ready
// for the propagation delay, so that every proxy knows them.
func routable(spec Spec, obs Observations, w int32) (at time.Time, ready bool) {
	if obs.CanaryReady < spec.canaryReplicas(w) || obs.CanaryReadySince.IsZero() {
		return time.Time{}, false
	}
	return obs.CanaryReadySince.Add(spec.PropagationDelay), true
}

// resumeStart finishes a step's start that was recorded but not routed:
// the process that recorded it was stopped before it moved the weight
// (record before acting). While the step is young (less than half its
// interval gone) and the canary is still ready for the weight, the
// weight moves now and the step keeps its recorded start; started again
// instead (followLowerRouting), every restart would record a new start
// and never route it when restarts come faster than its writes.
func resumeStart(spec Spec, st State, obs Observations) (Decision, bool) {
	if st.Phase != contract.PhaseProgressing || shouldTogglePause(st, obs) || obs.RoutingChangedBySomeoneElse != "" ||
		!routedShort(spec, st, obs) || !stepRunning(spec, st) || !obs.Now.Before(st.StepStarted.Add(spec.Interval/2)) {
		return Decision{}, false
	}
	if at, ready := routable(spec, obs, st.Weight); !ready || obs.Now.Before(at) {
		return Decision{}, false
	}
	return Decision{Next: st, Actions: []Action{Route(st.Weight, MirrorFor(spec, st))},
		Requeue: until(obs.Now, st.StepStarted.Add(spec.Interval)), Message: runningMessage(spec, st)}, true
}

// followLowerRouting takes the VirtualService's weight as the weight in
// effect when it is lower than recorded and nobody else changed it (the
// VirtualService was recreated): the step then starts again from scaling,
// so the weight only rises again through the readiness checks. A running
// step whose mirror is missing starts again the same way.
func followLowerRouting(spec Spec, st State, obs Observations) State {
	if obs.RoutingChangedBySomeoneElse != "" {
		return st
	}
	if obs.RoutedWeight < st.Weight {
		st.Weight = max(obs.RoutedWeight, 0)
		st.StepStarted = time.Time{}
	}
	if stepRunning(spec, st) && obs.RoutedMirror < MirrorFor(spec, st) {
		st.StepStarted = time.Time{}
	}
	return st
}

// routedShort reports whether the route carries less than st records:
// a lower weight, or a smaller mirror.
func routedShort(spec Spec, st State, obs Observations) bool {
	return obs.RoutedWeight < st.Weight || obs.RoutedMirror < MirrorFor(spec, st)
}

// withUpkeep puts around an in-flight decision's state write what must
// hold on every pass. Before it: the Service pinned before any canary pod
// exists (and again if someone removed the pin), and the weight not above
// what is recorded (a write of ours whose status update was lost, or an
// analysis restarted by a new template). After it, since it follows from
// the decision: the canary sized for the step being run or prepared (the
// Deployment's replicas may change under an HPA). Sized before the
// record, a process killed in between would leave the canary sized for a
// step the cluster does not know of, and the next process would size it
// back: every restart's first write would undo the last one's instead of
// moving the analysis on.
func withUpkeep(spec Spec, obs Observations, d Decision) Decision {
	var upkeep []Action
	if !obs.ServicePinned {
		upkeep = append(upkeep, PinService())
	}
	if mirror := MirrorFor(spec, d.Next); obs.RoutingChangedBySomeoneElse == "" && !setsWeight(d.Actions) &&
		(obs.RoutedWeight > d.Next.Weight || obs.RoutedMirror > mirror) {
		// Lowered only: a mirror that is not routed yet waits for the
		// step's start, with its readiness checks.
		upkeep = append(upkeep, Route(d.Next.Weight, min(mirror, obs.RoutedMirror)))
	}
	// The decision is recorded before anything that follows from it.
	size := max(spec.canaryReplicas(targetWeight(spec, d.Next)), CanaryReplicas(spec.Replicas, MirrorFor(spec, d.Next)))
	upkeep = append(upkeep, WriteState(), EnsureCanary(size))
	d.Actions = append(upkeep, d.Actions...)
	return d
}

// shouldTogglePause reports whether canary.io/pause disagrees with the
// phase.
func shouldTogglePause(st State, obs Observations) bool {
	return obs.Pause != (st.Phase == contract.PhasePaused)
}

// togglePause moves between Progressing and Paused. Pausing drops the
// current deadline-bounded wait; resuming starts it again, so that the
// time the user held does not count against the progress deadline.
func togglePause(spec Spec, st State, obs Observations) Decision {
	if obs.Pause {
		st.Phase = contract.PhasePaused
		st.WaitingSince = time.Time{}
		msg := fmt.Sprintf("paused %s by canary.io/pause: the weight holds; checks still run and can roll back", position(spec, st))
		return Decision{Next: st, Requeue: pausedRequeue(spec, st, obs.Now), Message: msg, Event: normal(ReasonPaused, msg)}
	}
	st.Phase = contract.PhaseProgressing
	st.WaitingSince = time.Time{}
	requeue := RecheckAfter
	if stepRunning(spec, st) {
		requeue = until(obs.Now, st.StepStarted.Add(spec.Interval))
	} else {
		st.WaitingSince = stamp(obs.Now)
	}
	msg := fmt.Sprintf("resumed %s: canary.io/pause removed", position(spec, st))
	return Decision{Next: st, Requeue: requeue, Message: msg, Event: normal(ReasonResumed, msg)}
}

// pausedRequeue is the next due moment while paused: the running step's
// end, or an interval when nothing is due (removing the pause wakes the
// reconciler through its watch).
func pausedRequeue(spec Spec, st State, now time.Time) time.Duration {
	if stepRunning(spec, st) {
		return until(now, st.StepStarted.Add(spec.Interval))
	}
	return spec.Interval
}

// holdForRouting leaves someone else's weights alone.
func holdForRouting(spec Spec, st State, obs Observations) Decision {
	return Decision{
		Next:    st,
		Requeue: RecheckAfter,
		Message: fmt.Sprintf("holding %s: %s; the stepper leaves the weights alone until %s again, or canary.io/abort or canary.io/promote is set",
			position(spec, st), obs.RoutingChangedBySomeoneElse, phrase(spec, st.Weight, "the canary's weight is %d%%", "the route sends %s to the canary")),
	}
}

// scaleUp prepares the next step: the weight moves to w only once the
// canary has CanaryReplicas(Replicas, w) ready pods and they have been
// ready for the propagation delay; the wait is bounded by the progress
// deadline.
func scaleUp(spec Spec, st State, obs Observations) Decision {
	now := obs.Now
	w := spec.Steps[st.Step]
	need := spec.canaryReplicas(w)
	label := stepLabel(spec, st)
	if st.Phase == contract.PhasePaused {
		return Decision{Next: st, Requeue: pausedRequeue(spec, st, now),
			Message: fmt.Sprintf("paused before %s: %s until canary.io/pause is removed", label, phrase(spec, st.Weight, "the weight holds at %d%%", "the route holds, %s on the canary"))}
	}
	if st.WaitingSince.IsZero() {
		st.WaitingSince = stamp(now)
	}
	if at, ready := routable(spec, obs, w); ready {
		if now.Before(at) {
			d := Decision{Next: st, Requeue: until(now, at)}
			if d.Requeue > ShortWait || obs.Failing != "" {
				d.Message = fmt.Sprintf("%s: %d of %d canary pods ready; %s at %s, after the propagation delay (%s)",
					label, obs.CanaryReady, need, startsWith(spec, w), clock(at), contract.PromDuration(spec.PropagationDelay))
			}
			return d
		}
		if awaitsPreRollout(spec, st) {
			return preRollout(spec, st, obs, need)
		}
		return startStep(spec, st, obs, need)
	}
	deadline := st.WaitingSince.Add(spec.ProgressDeadline)
	if !now.Before(deadline) {
		return rollBack(spec, st, obs, ReasonProgressDeadlineExceeded,
			fmt.Sprintf("canary pods not ready for %s (%s): %d of %d ready after %s (progress deadline)",
				label, readyFor(spec, w), obs.CanaryReady, need, contract.PromDuration(spec.ProgressDeadline)))
	}
	return Decision{Next: st, Requeue: min(RecheckAfter, until(now, deadline)),
		Message: fmt.Sprintf("%s: waiting for canary pods: %d of %d ready for %s; rolling back at %s if they are not",
			label, obs.CanaryReady, need, readyFor(spec, w), clock(deadline))}
}

// readyFor says, for messages, what the canary's pods are readied for at
// weight w: routing(spec, w), or "the iteration" of a blue-green
// analysis (which routes no user traffic).
func readyFor(spec Spec, w int32) string {
	if spec.Strategy == contract.StrategyBlueGreen {
		return "the iteration"
	}
	return routing(spec, w)
}

// startsWith says, for messages, what starting a step at weight w does:
// "the weight moves to 40%", "the matching requests go to the canary",
// or for a blue-green iteration "the iteration starts".
func startsWith(spec Spec, w int32) string {
	switch m := spec.mirrorAt(w); {
	case spec.Strategy == contract.StrategyBlueGreen:
		return "the iteration starts"
	case weighted(spec) && m > 0:
		return fmt.Sprintf("%d%% of stable's requests are mirrored to the canary", m)
	}
	return phrase(spec, w, "the weight moves to %d%%", "%s go to the canary")
}

// preRollout stands between a ready canary and the first step: the
// pre-rollout hooks must pass before any traffic moves. Passed, the step
// starts in the same pass; failed, that counts as a failed check and they
// are called again an interval later; beyond the threshold the analysis
// rolls back. This wait is bounded by the threshold, as in Flagger, not by
// the progress deadline.
func preRollout(spec Spec, st State, obs Observations, need int32) Decision {
	now := obs.Now
	label := stepLabel(spec, st)
	if obs.PreRollout == nil {
		if retry := preRolloutRetry(spec, st); now.Before(retry) {
			return Decision{Next: st, Requeue: until(now, retry)} // the failure's message says when
		}
		return Decision{Next: st, Requeue: RecheckAfter,
			Message: fmt.Sprintf("%s: the canary is ready; waiting for the pre-rollout hooks to answer before any traffic moves", label)}
	}
	v := judge(contract.NoDataFail, obs.PreRollout)
	if v.outcome == outcomePassed {
		d := startStep(spec, st, obs, need)
		d.Event.Message = fmt.Sprintf("pre-rollout %s; %s", describe(v.all), d.Event.Message)
		return d
	}
	st.FailedChecks++
	failed := describe(v.failed)
	if st.FailedChecks > spec.Threshold {
		return rollBack(spec, st, obs, ReasonChecksFailed,
			fmt.Sprintf("pre-rollout %s failed before %s took traffic; %d failed checks exceed the threshold of %d",
				failed, label, st.FailedChecks, spec.Threshold))
	}
	st.PreRolloutFailed = stamp(now)
	st.WaitingSince = st.PreRolloutFailed // the pods were ready: a later wait for them starts from here
	retry := st.PreRolloutFailed.Add(spec.Interval)
	msg := fmt.Sprintf("pre-rollout %s failed (%d of %d failed checks tolerated); no traffic moved, the hooks are called again at %s",
		failed, st.FailedChecks, spec.Threshold, clock(retry))
	return Decision{Next: st, Requeue: until(now, retry), Message: msg, Event: warning(ReasonCheckFailed, msg)}
}

// startStep moves the weight to the step's and starts its interval.
func startStep(spec Spec, st State, obs Observations, need int32) Decision {
	w := spec.Steps[st.Step]
	st.Weight = w
	st.StepStarted = stamp(obs.Now)
	st.WaitingSince = time.Time{}
	st.PreRolloutFailed = time.Time{}
	return Decision{
		Next:    st,
		Actions: []Action{Route(w, MirrorFor(spec, st))},
		Requeue: until(obs.Now, st.StepStarted.Add(spec.Interval)),
		Message: runningMessage(spec, st),
		Event: normal(ReasonStepStarted, fmt.Sprintf("%s started: %s with %d of %d canary pods ready",
			stepLabel(spec, st), routing(spec, w), obs.CanaryReady, need)),
	}
}

// runningMessage describes a running step; it stays the same for the
// whole interval, so waiting passes do not rewrite it.
func runningMessage(spec Spec, st State) string {
	end := clock(st.StepStarted.Add(spec.Interval))
	if st.Phase == contract.PhasePaused {
		return fmt.Sprintf("paused %s by canary.io/pause; checks still run, next at %s", position(spec, st), end)
	}
	return fmt.Sprintf("%s running %s; checks at %s", stepLabel(spec, st), routedAt(spec, st.Weight), end)
}

// runStep waits for the running step's end and judges its checks.
func runStep(spec Spec, st State, obs Observations) Decision {
	now := obs.Now
	end := st.StepStarted.Add(spec.Interval)
	if now.Before(end) {
		return Decision{Next: st, Requeue: until(now, end), Message: runningMessage(spec, st)}
	}
	if obs.Checks == nil {
		if !st.WaitingSince.IsZero() && now.Before(st.WaitingSince.Add(spec.ProgressDeadline)) {
			// Holding for data and the next read on its way: the waiting
			// message (with its deadline) stands, unwritten.
			return Decision{Next: st, Requeue: RecheckAfter}
		}
		msg := runningMessage(spec, st)
		if now.Sub(end) >= ChecksLate {
			msg = fmt.Sprintf("%s: checks due since %s; waiting for their results", stepLabel(spec, st), clock(end))
		}
		return Decision{Next: st, Requeue: RecheckAfter, Message: msg}
	}
	v := judge(spec.NoData, obs.Checks)
	switch v.outcome {
	case outcomeFailed:
		return failStep(spec, st, obs, v)
	case outcomeNoData:
		return holdForData(spec, st, obs, v)
	}
	return passStep(spec, st, obs, v)
}

// failStep counts a failed round of checks: beyond the threshold it rolls
// back, otherwise the step runs again at the same weight.
func failStep(spec Spec, st State, obs Observations, v verdict) Decision {
	st.FailedChecks++
	st.WaitingSince = time.Time{}
	failed := describe(v.failed)
	if st.FailedChecks > spec.Threshold {
		return rollBack(spec, st, obs, ReasonChecksFailed,
			fmt.Sprintf("%s failed %s; %d failed checks exceed the threshold of %d",
				failed, position(spec, st), st.FailedChecks, spec.Threshold))
	}
	st.StepStarted = stamp(obs.Now)
	msg := fmt.Sprintf("%s check failed (%d of %d tolerated): %s; the %s runs again %s",
		stepLabel(spec, st), st.FailedChecks, spec.Threshold, failed, stepUnit(spec), routedAt(spec, st.Weight))
	return Decision{Next: st, Requeue: until(obs.Now, st.StepStarted.Add(spec.Interval)),
		Message: msg, Event: warning(ReasonCheckFailed, msg)}
}

// holdForData waits for data under no-data policy hold, bounded by the
// progress deadline. While paused there is no deadline: the step runs
// again instead.
func holdForData(spec Spec, st State, obs Observations, v verdict) Decision {
	now := obs.Now
	missing := describe(v.noData)
	if st.Phase == contract.PhasePaused {
		st.StepStarted = stamp(now)
		return Decision{Next: st, Requeue: until(now, st.StepStarted.Add(spec.Interval)),
			Message: fmt.Sprintf("paused %s by canary.io/pause: no data: %s; the step runs again", position(spec, st), missing)}
	}
	if st.WaitingSince.IsZero() {
		st.WaitingSince = stamp(now)
	}
	deadline := st.WaitingSince.Add(spec.ProgressDeadline)
	if !now.Before(deadline) {
		return rollBack(spec, st, obs, ReasonProgressDeadlineExceeded,
			fmt.Sprintf("no data arrived for %s (progress deadline) %s: %s",
				contract.PromDuration(spec.ProgressDeadline), position(spec, st), missing))
	}
	return Decision{Next: st, Requeue: min(RecheckAfter, until(now, deadline)),
		Message: fmt.Sprintf("%s waiting for data: %s; rolling back at %s if none arrives",
			stepLabel(spec, st), missing, clock(deadline))}
}

// passStep counts a passed step and prepares the next one, or promotes
// after the last. While paused, a pass runs the step again instead.
func passStep(spec Spec, st State, obs Observations, v verdict) Decision {
	now := obs.Now
	details := describe(v.all)
	st.WaitingSince = time.Time{}
	if st.Phase == contract.PhasePaused {
		st.StepStarted = stamp(now)
		return Decision{Next: st, Requeue: until(now, st.StepStarted.Add(spec.Interval)),
			Message: fmt.Sprintf("paused %s by canary.io/pause: checks passed: %s; the weight holds until canary.io/pause is removed",
				position(spec, st), details)}
	}
	msg := fmt.Sprintf("%s passed: %s; %s", stepLabel(spec, st), details, routing(spec, st.Weight))
	st.Step++
	st.StepStarted = time.Time{}
	if st.Step == len(spec.Steps) {
		return awaitPromotion(spec, st, obs, msg)
	}
	if at, ready := routable(spec, obs, spec.Steps[st.Step]); ready && !now.Before(at) {
		// The canary already has the pods the next step needs, ready for
		// the propagation delay (its size did not change): that step
		// starts in this pass, with one state write for both.
		d := startStep(spec, st, obs, spec.canaryReplicas(spec.Steps[st.Step]))
		d.Passed = normal(ReasonStepPassed, msg)
		return d
	}
	st.WaitingSince = stamp(now)
	return Decision{Next: st, Requeue: RecheckAfter, Message: msg, Event: normal(ReasonStepPassed, msg)}
}

// awaitPromotion promotes once all steps passed and the confirm-promotion
// gate is open (or there is none); a closed gate is a wait bounded by the
// progress deadline. passed is the message of the step that just passed,
// empty on later passes.
func awaitPromotion(spec Spec, st State, obs Observations, passed string) Decision {
	now := obs.Now
	n := len(spec.Steps)
	if st.Phase == contract.PhasePaused {
		return Decision{Next: st, Requeue: spec.Interval,
			Message: fmt.Sprintf("paused after all %d steps passed: promotion waits until canary.io/pause is removed", n)}
	}
	if spec.ConfirmPromotion && obs.GateOpen == nil {
		// The gate's answer is not in yet (its hooks are called in the
		// background): never read that as open. The step that just passed
		// is still told, with its numbers.
		if passed != "" {
			msg := passed + "; asking the confirm-promotion gate"
			return Decision{Next: st, Requeue: RecheckAfter, Message: msg, Event: normal(ReasonStepPassed, passed)}
		}
		return Decision{Next: st, Requeue: RecheckAfter}
	}
	if shouldPromote(obs) && spec.Strategy == contract.StrategyBlueGreen && !switchesAtOnce(spec, st, obs) &&
		obs.RoutingChangedBySomeoneElse == "" && (st.WaitingSince.IsZero() || now.Before(st.WaitingSince.Add(spec.ProgressDeadline))) {
		// The switch needs the full-size canary ready: wait for it,
		// bounded by the progress deadline; past it, promote without the
		// switch (the Service then serves both during the rolling update).
		if st.WaitingSince.IsZero() {
			st.WaitingSince = stamp(now)
		}
		deadline := st.WaitingSince.Add(spec.ProgressDeadline)
		msg := fmt.Sprintf("all %d iterations passed; the switch waits for the canary's pods: %d of %d ready; at %s it promotes without the switch",
			n, obs.CanaryReady, spec.canaryReplicas(100), clock(deadline))
		var event *Event
		if passed != "" {
			msg = passed + "; " + msg
			event = normal(ReasonStepPassed, passed)
		}
		return Decision{Next: st, Requeue: min(RecheckAfter, until(now, deadline)), Message: msg, Event: event}
	}
	if shouldPromote(obs) {
		why := passed
		if why == "" {
			why = fmt.Sprintf("all %d steps passed", n)
		}
		if obs.GateOpen != nil {
			why += "; the confirm-promotion gate is open"
		}
		return promote(spec, st, obs, ReasonPromoting, why)
	}
	if st.WaitingSince.IsZero() {
		st.WaitingSince = stamp(now)
	}
	deadline := st.WaitingSince.Add(spec.ProgressDeadline)
	if !now.Before(deadline) {
		return rollBack(spec, st, obs, ReasonProgressDeadlineExceeded,
			fmt.Sprintf("the confirm-promotion gate stayed closed for %s (progress deadline) after all %d steps passed",
				contract.PromDuration(spec.ProgressDeadline), n))
	}
	gate := "the confirm-promotion gate"
	if obs.Gate != "" {
		gate += " (" + obs.Gate + ")"
	}
	msg := fmt.Sprintf("all %d steps passed; waiting for %s, rolling back at %s if it stays closed", n, gate, clock(deadline))
	var event *Event
	if passed != "" {
		msg = fmt.Sprintf("%s; waiting for %s, rolling back at %s if it stays closed", passed, gate, clock(deadline))
		event = normal(ReasonStepPassed, passed)
	}
	return Decision{Next: st, Requeue: min(RecheckAfter, until(now, deadline)), Message: msg, Event: event}
}

// shouldPromote reports whether the confirm-promotion gate lets a revision
// whose steps all passed be promoted.
func shouldPromote(obs Observations) bool {
	return obs.GateOpen == nil || *obs.GateOpen
}
