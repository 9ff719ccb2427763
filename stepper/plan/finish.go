package plan

import (
	"fmt"
	"time"

	"github.com/canary-io/canary/contract"
)

// promote enters Promoting, recorded alone: then (the next pass,
// promoting) the user's Service is unpinned (it then selects the stable
// and the canary pods), all traffic goes to it, and the Deployment is
// unpaused so its rolling update moves it to the revision. why is the
// sentence that led here.
//
// A blue-green analysis whose canary is ready at full size switches all
// traffic to it instead (weight 100), before the unpin: the users move
// from stable to the revision at once, and stay on it while the rolling
// update runs; the weight goes back to the Service once it is done (see
// promoting). Its canary not ready (a promote requested early, a
// rollback overridden), it promotes as a canary does.
func promote(spec Spec, st State, obs Observations, reason, why string) Decision {
	st = consumeControls(st, obs)
	switches := inFlightPhase(st.Phase) && switchesAtOnce(spec, st, obs)
	st.Phase = contract.PhasePromoting
	st.Weight = 0
	st.StepStarted = stamp(obs.Now)
	st.WaitingSince = st.StepStarted
	st.RolledOut = time.Time{}
	// The message names the rolling update's deadline: it stands while
	// the update runs (awaitRollout).
	deadline := clock(st.WaitingSince.Add(spec.ProgressDeadline))
	// The decision is recorded alone; the next pass (promoting, at once)
	// unpins the Service, routes the weight recorded (a switch's 100
	// before the unpin) and then unpauses the Deployment (a Service
	// still pinned to the stable ReplicaSet while the rolling update
	// drains it would have no endpoints). The
	// pass that records a promotion is the one at which the last step's
	// checks passed, due at a known moment; its three writes after the
	// record are not: they are left to a pass the stepper may bound (when
	// a thousand analyses end together, so that the steps still due find
	// a worker), as a process stopped after the record leaves them.
	if switches {
		st.Weight = 100
		msg := fmt.Sprintf("%s; promoting revision %s: all traffic switched to the canary, rolling update started (progress deadline %s)", why, st.Revision, deadline)
		return Decision{Next: st, Actions: []Action{WriteState()}, Requeue: minRequeue, Message: msg, Event: normal(reason, msg)}
	}
	msg := fmt.Sprintf("%s; promoting revision %s: all traffic to the Deployment's Service, rolling update started (progress deadline %s)", why, st.Revision, deadline)
	return Decision{Next: st, Actions: []Action{WriteState()}, Requeue: minRequeue, Message: msg, Event: normal(reason, msg)}
}

// switchesAtOnce reports whether a promotion switches all traffic to the
// canary: a blue-green analysis whose canary is ready at full size (for
// the propagation delay) and whose routing nobody else changed. Only an
// analysis in flight switches: a rolled-back one's canary may be going.
func switchesAtOnce(spec Spec, st State, obs Observations) bool {
	if spec.Strategy != contract.StrategyBlueGreen || obs.RoutingChangedBySomeoneElse != "" || st.Revision == st.Stable {
		return false
	}
	at, ready := routable(spec, obs, 100)
	return ready && !obs.Now.Before(at)
}

// shouldPromoteRejected reports whether a new promote value overrides a
// rollback: the rolled-back revision is still held (it is not the stable
// one, which the webhook records when the stable template is applied
// again).
func shouldPromoteRejected(st State, obs Observations) bool {
	return st.Revision != "" && st.Revision != st.Stable && isNewControl(st, contract.KeyPromote, obs.Promote)
}

// promoting waits for the rolling update, then removes the canary and
// declares success. Past the progress deadline it reports the failure
// once and keeps waiting: see the package documentation. The weight
// recorded with the promotion is routed on every pass (0, or 100 for a
// blue-green switch); a switch goes back to the Service once the rolling
// update is done, recorded before it is routed.
func promoting(spec Spec, st State, obs Observations) Decision {
	now, in := obs.Now, st
	var acts []Action
	if st.Weight > 0 && st.RolledOut.IsZero() && obs.RoutingChangedBySomeoneElse == "" {
		if at, ready := routable(spec, obs, st.Weight); !ready || now.Before(at) {
			// The canary lost pods during the switch: all traffic goes
			// back to the Service (unpinned: it serves the stable and the
			// new pods alike), recorded first.
			st.Weight = 0
			st.StepStarted = stamp(now)
			msg := fmt.Sprintf("promoting revision %s: the canary has %d of %d pods ready, so the switch ends: all traffic to the Deployment's Service while the rolling update runs",
				st.Revision, obs.CanaryReady, spec.canaryReplicas(100))
			acts = append(append(acts, SetWeight(0)), unhold(obs)...)
			return Decision{Next: st, Actions: acts, Requeue: RecheckAfter, Message: msg, Event: warning(ReasonSwitchEnded, msg)}
		}
		if obs.RoutedWeight != st.Weight || obs.RoutedMirror > 0 {
			// The switch recorded, not routed yet (the process that
			// recorded it was stopped): routed before the unpin, as
			// promote does.
			acts = append(acts, SetWeight(st.Weight))
		}
	}
	// The promotion's weight 0 recorded, routed still (the pass after the
	// record): moved after the unpin and before the unpause, as the
	// promotion orders them, so that a refused unpause (a webhook outage)
	// leaves the traffic where the promotion puts it. The removal delay
	// counts from when it is seen unrouted (canaryFree).
	unrouting := obs.RoutingChangedBySomeoneElse == "" && st.Weight == 0 && obs.Routed()
	if obs.ServicePinned {
		acts = append(acts, UnpinService())
	}
	if unrouting {
		acts = append(acts, SetWeight(0))
	}
	if obs.Held {
		acts = append(acts, Unpause())
	}
	if isNewControl(st, contract.KeyAbort, obs.Abort) {
		st = consumeControls(st, obs)
		msg := fmt.Sprintf("canary.io/abort %q ignored: revision %s passed its analysis and is being rolled out; once the rollout completes, apply the previous template to go back",
			obs.Abort, st.Revision)
		return Decision{Next: st, Actions: acts, Requeue: RecheckAfter, Message: msg, Event: warning(ReasonAbortIgnored, msg)}
	}
	st = consumeControls(st, obs) // a new promote value changes nothing now
	if st.RolledOut.IsZero() {
		if !obs.RolloutComplete {
			return awaitRollout(spec, st, obs, acts)
		}
		st.RolledOut = stamp(now) // judged once: see State.RolledOut
	}
	switchEnds := st.Weight > 0 && obs.RoutingChangedBySomeoneElse == ""
	if switchEnds {
		// The switch ends: every pod behind the Service runs the revision
		// now. Recorded first (write-ahead), then routed.
		st.Weight = 0
		st.StepStarted = stamp(now)
		acts = append(acts, SetWeight(0))
	}
	if obs.CanaryObjectsExist {
		if obs.RoutingChangedBySomeoneElse != "" {
			return Decision{Next: st, Actions: acts, Requeue: RecheckAfter,
				Message: fmt.Sprintf("promoting revision %s: rolled out, but %s; the canary is kept until no traffic is routed to it",
					st.Revision, obs.RoutingChangedBySomeoneElse)}
		}
		// Never in the pass that moves the weight, even with no delay.
		free := canaryFree(spec, st, obs)
		if setsWeight(acts) {
			free = now.Add(removalDelay(spec))
		}
		if now.Before(free) {
			msg := fmt.Sprintf("promoting revision %s: rolled out; the canary is removed at %s, once every proxy has the new routes", st.Revision, clock(free))
			if st.Equal(in) && free.After(st.StepStarted.Add(removalDelay(spec))) {
				// The moment depends on this process (it routed the weight
				// recorded by one that was stopped, or first saw it
				// unrouted): said in a write of its own, every restart
				// would write a new moment and never reach it. The message
				// stands; the wait is kept all the same.
				msg = ""
			}
			return Decision{Next: st, Actions: acts, Requeue: until(now, free), Message: msg}
		}
		acts = append(acts, DeleteCanary())
	}
	st.Phase = contract.PhaseSucceeded
	st.Stable = st.Revision
	st.WaitingSince, st.RolledOut = time.Time{}, time.Time{}
	msg := fmt.Sprintf("promoted: revision %s is rolled out and stable", st.Revision)
	d := Decision{Next: st, Actions: acts, Message: msg, Event: normal(ReasonSucceeded, msg)}
	if len(acts) > 0 {
		d.Requeue = RecheckAfter
	}
	return d
}

// unhold are the promotion's unpin and unpause that are not done yet
// (the promotion recorded, the process stopped before them), the unpause
// after the unpin.
func unhold(obs Observations) []Action {
	var acts []Action
	if obs.ServicePinned {
		acts = append(acts, UnpinService())
	}
	if obs.Held {
		acts = append(acts, Unpause())
	}
	return acts
}

// awaitRollout waits for the promotion's rolling update. Past the progress
// deadline it marks the Deployment failed and warns, once: WaitingSince
// is zeroed to say so, and the wait goes on without a bound. The mark
// comes after the unpause (the deployment controller judges no progress
// of a paused Deployment); while the unpause is still to be made (it was
// refused: a webhook outage, say), each pass that makes it marks again
// after it, so that a refused unpause never loses the mark.
func awaitRollout(spec Spec, st State, obs Observations, acts []Action) Decision {
	now := obs.Now
	if st.WaitingSince.IsZero() {
		msg := overdueMessage(spec, st)
		if obs.Held {
			acts = append(acts, SetProgressingFailed(msg))
		}
		return Decision{Next: st, Actions: acts, Requeue: RecheckAfter, Message: msg}
	}
	deadline := st.WaitingSince.Add(spec.ProgressDeadline)
	if now.Before(deadline) {
		d := Decision{Next: st, Actions: acts, Requeue: min(RecheckAfter, until(now, deadline))}
		if obs.Failing != "" {
			// The promotion's message (it names the deadline) stands
			// while the update runs, unwritten; a failure's message is
			// replaced once the pass does all it decided.
			d.Message = fmt.Sprintf("promoting revision %s: waiting for the rolling update to complete (progress deadline %s)",
				st.Revision, clock(deadline))
		}
		return d
	}
	st.WaitingSince = time.Time{}
	msg := overdueMessage(spec, st)
	acts = append(acts, SetProgressingFailed(msg))
	return Decision{Next: st, Actions: acts, Requeue: RecheckAfter, Message: msg,
		Event: warning(ReasonPromotionDeadlineExceeded, msg)}
}

// overdueMessage says that the promotion's rolling update is late.
func overdueMessage(spec Spec, st State) string {
	return fmt.Sprintf("promoting revision %s: the rolling update did not complete within the progress deadline (%s); still waiting for it, the canary keeps serving",
		st.Revision, contract.PromDuration(spec.ProgressDeadline))
}

// rollBack ends the analysis as RolledBack: all traffic to stable first,
// the revision recorded as rejected, the Deployment's Progressing
// condition failed; the canary goes in later passes (see cleanUp). why is
// the sentence after "rolled back: ", naming what failed with its values.
//
// A conflict is a rollback too, with the revision recorded as rejected:
// the webhook restarts the analysis of a rejected revision when
// canary.io/retry changes, which is what the user does once the conflict
// is fixed.
func rollBack(spec Spec, st State, obs Observations, reason, why string) Decision {
	st = consumeControls(st, obs)
	st.Phase = contract.PhaseRolledBack
	st.WaitingSince = time.Time{}
	msg := "rolled back: " + why
	d := Decision{Next: st, Message: msg, Event: warning(reason, msg)}
	moved := TakesTraffic(spec, st) || obs.Routed()
	if moved {
		// Even over someone else's weights: sending everything to stable is
		// always safe, and it is written once, not fought over.
		d.Next.Weight = 0
		d.Next.StepStarted = stamp(obs.Now)
		d.Actions = append(d.Actions, SetWeight(0))
		d.Requeue = until(obs.Now, d.Next.StepStarted.Add(removalDelay(spec)))
	} else {
		// No traffic on the canary: the cleanup can start now.
		rest := cleanUp(spec, d.Next, obs, false)
		d.Next, d.Actions, d.Requeue = rest.Next, rest.Actions, rest.Requeue
	}
	d.Actions = append(d.Actions, RecordRejected(st.Revision, why), SetProgressingFailed(msg))
	if d.Requeue == 0 {
		d.Requeue = RecheckAfter // to see that nothing is left
	}
	return d
}

// canaryFree is when the canary of an ended analysis may go: the removal
// delay after the weight left it, counted from the later of its recorded
// move (StepStarted) and the moment this process first saw no weight
// routed to the canary (obs.UnroutedSince): a process that did not move
// the weight itself does not know when it moved, and waits the whole
// delay again. Zero when neither is known.
func canaryFree(spec Spec, st State, obs Observations) time.Time {
	since := st.StepStarted
	if obs.UnroutedSince.After(since) {
		since = obs.UnroutedSince
	}
	if since.IsZero() {
		return time.Time{}
	}
	return since.Add(removalDelay(spec))
}

// cleanUp removes what an ended analysis left, in the safe order: weight
// to stable, the removal delay (see Spec.RemovalDelay), the canary, then (unpinFirst false)
// the Service's pin. unpinFirst unpins at once instead, for a Deployment
// that may be rolling a new template (Idle, Succeeded). It changes neither
// the phase nor the message.
func cleanUp(spec Spec, st State, obs Observations, unpinFirst bool) Decision {
	now := obs.Now
	d := Decision{Next: st}
	if unpinFirst && obs.ServicePinned {
		d.Actions = append(d.Actions, UnpinService())
	}
	switch {
	case obs.RoutingChangedBySomeoneElse != "":
		d.Message = fmt.Sprintf("removing the canary waits: %s; it is removed once no traffic is routed to it", obs.RoutingChangedBySomeoneElse)
		d.Requeue = RecheckAfter
	case st.Weight > 0:
		d.Next.Weight = 0
		d.Next.StepStarted = stamp(now)
		d.Actions = append(d.Actions, SetWeight(0))
		d.Requeue = until(now, d.Next.StepStarted.Add(removalDelay(spec)))
	case obs.Routed():
		// Weight 0 recorded and not routed yet (the process that recorded
		// it was stopped): routed now, not recorded again (a new record
		// per restart would never reach the routing); the removal delay
		// counts from when this process sees it unrouted (canaryFree).
		d.Actions = append(d.Actions, SetWeight(0))
		d.Requeue = removalDelay(spec)
	case obs.CanaryObjectsExist:
		if free := canaryFree(spec, st, obs); !free.IsZero() && now.Before(free) {
			d.Requeue = until(now, free)
		} else {
			d.Actions = append(d.Actions, DeleteCanary())
		}
	case !unpinFirst && obs.ServicePinned:
		d.Actions = append(d.Actions, UnpinService())
	}
	if len(d.Actions) > 0 && d.Requeue == 0 {
		d.Requeue = RecheckAfter
	}
	return d
}
