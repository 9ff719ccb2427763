// Package plan is the canary decision of the background stepper, as one
// pure function:
//
//	Next(spec, state, observations) Decision
//
// The reconciler gathers (the Deployment, the canary objects, the Service,
// the VirtualService, Prometheus, the hooks) into [Observations], calls
// [Next], and acts: it applies the [Decision]'s actions in order and writes
// [Encode] of the next [State] in one update of the Deployment. Nothing in
// here reads a clock or the cluster: time comes in as [Observations.Now],
// everything remembered between passes lives in [State], which round-trips
// through the Deployment's annotations ([Encode], [Decode]). A stepper killed
// at any point and started again decides from the same annotations, so it
// resumes at the same step with the same time left.
//
// # Phases
//
// canary.io/phase. The webhook starts an analysis (Progressing, step 0/N,
// weight 0) and ends a hold itself; the stepper does the rest.
//
//	   Idle
//	    |  new template (webhook)
//	    v
//	Progressing  <---- pause removed -----  Paused
//	    |        ----- pause set -------->    |
//	    |                                     |
//	    |  all steps passed and the gate      |  new promote value
//	    |  open, or new promote value         |
//	    v                                     |
//	Promoting  <------------------------------+
//	    |  rolled out; canary removed after PropagationDelay
//	    v
//	Succeeded
//
//	Progressing, Paused -> RolledBack   failed checks over the threshold, new
//	                                    abort value, progress deadline (canary
//	                                    pods, data, gate), conflict, canary
//	                                    worse than stable
//	Progressing, Paused -> RolledBack   stable template applied again (webhook)
//	RolledBack -> Progressing           new canary.io/retry value (webhook)
//	RolledBack -> Idle                  stable template applied again (webhook)
//	RolledBack -> Promoting             new promote value while the rolled-back
//	                                    revision is still held (the user
//	                                    overrides the verdict)
//	any -> Idle                         new template with skip-analysis (webhook)
//
// # Per-step sub-states (Progressing, and Paused where noted)
//
// Step counts the steps passed; the step being run or prepared is
// Steps[Step], at weight w. StepStarted is when the weight in effect took
// effect, zero between steps; WaitingSince is the start of the current wait
// that the progress deadline bounds, zero when there is none.
//
//	+-> scaling   StepStarted zero, WaitingSince set, EnsureCanary(need)
//	|     |  need = CanaryReplicas(Replicas, w) pods ready, and ready for
//	|     |  PropagationDelay: SetWeight(w), StepStarted = now
//	|     v
//	|   running   Weight w, until StepStarted + Interval  <-----------+
//	|     |  ChecksDue: the gatherer runs the checks                  |
//	|     v                                                           |
//	|   checks -- failed, FailedChecks <= Threshold: StepStarted = now +
//	|     |    -- failed, FailedChecks >  Threshold ------> RolledBack
//	|     |    -- no data, policy hold: wait, WaitingSince set
//	+-----|    -- passed, Step+1 < N: Step++, WaitingSince = now
//	      |
//	      |  passed, Step+1 = N: Step = N
//	      v
//	    gate      confirm-promotion closed: WaitingSince set
//	      |  open, or no such hook
//	      v
//	    Promoting
//
// Waiting for pods, for data and for the gate each rolls back at
// WaitingSince + ProgressDeadline, with a message that says what did not
// arrive. With no-data policy fail a check without data is a failed one;
// with policy pass, a passed one.
//
// Paused holds the weight: no SetWeight, no Step++. A running step's checks
// still run at each interval's end: a failure counts (and can roll back),
// a pass or no data re-runs the step. The progress deadline does not run
// while paused (the user holds, not the system); removing the pause
// restarts the current wait.
//
// # Promoting
//
//	enter      the record alone (Weight 0, StepStarted = WaitingSince =
//	           now); the next pass, at once: UnpinService, SetWeight(0),
//	           Unpause (the stepper bounds how many such passes run at
//	           once, never the record's)
//	rolling    wait for RolloutComplete, bounded by the progress deadline
//	overdue    deadline passed: SetProgressingFailed and a Warning Event,
//	           once (WaitingSince zeroed; the condition again after the
//	           unpause while that is still to be made, refused by a
//	           webhook outage say); phase stays Promoting and the
//	           wait goes on: the passed revision is already rolling and the
//	           controller may not change the template, so there is nothing
//	           to roll back to; canary.io/skip-analysis remains the way out
//	complete   after PropagationDelay since the weight left the canary:
//	           DeleteCanary; Succeeded, Stable = Revision
//
// A blue-green analysis (Spec.Strategy) runs its iterations as steps of
// weight 0 on a full-size canary (no user traffic: the hooks' load tests
// are what it is judged on). Its promotion switches instead: SetWeight(100)
// before the unpin and the unpause, Weight 100, kept while the rolling
// update runs; once it is complete, Weight 0 and StepStarted = now are
// recorded, then SetWeight(0), and the canary goes PropagationDelay
// later. A promotion before the canary is ready at full size enters as
// above (weight 0).
//
// # Cleanup in RolledBack, Idle and Succeeded
//
// Traffic first, then the canary, so that Envoy never routes to a
// destination without ready endpoints:
//
//  1. SetWeight(0), StepStarted = now
//  2. PropagationDelay later: DeleteCanary (repeated until its pods are gone)
//  3. UnpinService
//
// In RolledBack the Service stays pinned to the stable pods until the
// canary's pods are gone, so that the rejected version never serves through
// it. In Idle and Succeeded it is unpinned first: the Deployment may be
// rolling a new template, and a pin to the old pods would starve it.
// Cleanup leaves the phase and the message as they are. With nothing left
// to do, Next returns no actions and no requeue.
package plan
