package plan

import (
	"testing"
	"time"

	"github.com/canary-io/canary/contract"
)

// promotingSince is the state of a promotion that began at since.
func promotingSince(since time.Time) State {
	return State{Phase: contract.PhasePromoting, Step: 3, StepStarted: since, WaitingSince: since,
		Revision: "rev2", Stable: "rev1"}
}

// rolledOutNow records the rolling update seen complete now (t0).
func rolledOutNow(s *State) { s.RolledOut = t0 }

func TestNextPromoting(t *testing.T) {
	overdue := "promoting revision rev2: the rolling update did not complete within the progress deadline (10m); still waiting for it, the canary keeps serving"
	succeeded := func(s *State) {
		s.Phase, s.Stable, s.WaitingSince = contract.PhaseSucceeded, "rev2", time.Time{}
	}
	runTransitions(t, []transition{{
		name:    "rolling update in progress: wait; the promotion's message, which names the deadline, stands",
		state:   promotingSince(ago(30 * time.Second)),
		obs:     func(o *Observations) { o.ServicePinned = false },
		requeue: RecheckAfter,
	}, {
		name:  "rolling update in progress after a failure: the message replaces the failure's",
		state: promotingSince(ago(30 * time.Second)),
		obs: func(o *Observations) {
			o.ServicePinned, o.Failing, o.FailingSince = false, "unpin: refused", ago(20*time.Second)
		},
		requeue: RecheckAfter,
		message: "promoting revision rev2: waiting for the rolling update to complete (progress deadline 2026-03-01T12:09:30Z)",
	}, {
		name:    "rolling update past the progress deadline: reported once, still Promoting",
		state:   promotingSince(ago(10 * time.Minute)),
		obs:     func(o *Observations) { o.ServicePinned = false },
		next:    func(s *State) { s.WaitingSince = time.Time{} },
		actions: []Action{SetProgressingFailed(overdue)},
		requeue: RecheckAfter,
		message: overdue,
		event:   "Warning/PromotionDeadlineExceeded",
	}, {
		name:    "overdue and still rolling: no second warning",
		state:   with(promotingSince(ago(20*time.Minute)), func(s *State) { s.WaitingSince = time.Time{} }),
		obs:     func(o *Observations) { o.ServicePinned = false },
		requeue: RecheckAfter,
		message: overdue,
	}, {
		name:  "overdue, the unpause refused when it fell overdue: unpaused, then marked again",
		state: with(promotingSince(ago(20*time.Minute)), func(s *State) { s.WaitingSince = time.Time{} }),
		obs: func(o *Observations) {
			o.ServicePinned, o.Held, o.Failing = false, true, "unpause: webhook unreachable"
		},
		actions: []Action{Unpause(), SetProgressingFailed(overdue)},
		requeue: RecheckAfter,
		message: overdue,
	}, {
		// Every annotation write raises the Deployment's generation: the
		// status lags the stepper's own record of the completion. Judged
		// again, the promotion would go back to waiting and write again,
		// pass after pass (a write storm while the canary waits to go).
		name:    "rolled out as recorded, the status behind the stepper's own write: not waiting again",
		spec:    func(s *Spec) { s.RemovalDelay = 30 * time.Second },
		state:   with(promotingSince(ago(20*time.Second)), func(s *State) { s.RolledOut = ago(time.Second) }),
		obs:     func(o *Observations) { o.ServicePinned, o.RolloutComplete = false, false },
		requeue: 10 * time.Second,
		message: "promoting revision rev2: rolled out; the canary is removed at 2026-03-01T12:00:10Z, once every proxy has the new routes",
	}, {
		name:  "rolled out as recorded, the removal delay over: canary deleted, the record cleared",
		spec:  func(s *Spec) { s.RemovalDelay = 30 * time.Second },
		state: with(promotingSince(ago(30*time.Second)), func(s *State) { s.RolledOut = ago(10 * time.Second) }),
		obs:   func(o *Observations) { o.ServicePinned, o.RolloutComplete = false, false },
		next: func(s *State) {
			s.Phase, s.Stable, s.WaitingSince, s.RolledOut = contract.PhaseSucceeded, "rev2", time.Time{}, time.Time{}
		},
		actions: []Action{DeleteCanary()},
		requeue: RecheckAfter,
		message: "promoted: revision rev2 is rolled out and stable",
		event:   "Normal/Succeeded",
	}, {
		name:    "rolled out within the propagation delay: the canary stays a little longer",
		next:    rolledOutNow,
		state:   promotingSince(ago(4 * time.Second)),
		obs:     func(o *Observations) { o.ServicePinned, o.RolloutComplete = false, true },
		requeue: 6 * time.Second,
		message: "promoting revision rev2: rolled out; the canary is removed at 2026-03-01T12:00:06Z, once every proxy has the new routes",
	}, {
		name:    "rolled out, the removal delay longer than the propagation delay: the canary stays for it",
		next:    rolledOutNow,
		spec:    func(s *Spec) { s.RemovalDelay = 30 * time.Second },
		state:   promotingSince(ago(20 * time.Second)),
		obs:     func(o *Observations) { o.ServicePinned, o.RolloutComplete = false, true },
		requeue: 10 * time.Second,
		message: "promoting revision rev2: rolled out; the canary is removed at 2026-03-01T12:00:10Z, once every proxy has the new routes",
	}, {
		name:    "rolled out, the removal delay over: canary deleted",
		spec:    func(s *Spec) { s.RemovalDelay = 30 * time.Second },
		state:   promotingSince(ago(30 * time.Second)),
		obs:     func(o *Observations) { o.ServicePinned, o.RolloutComplete = false, true },
		next:    succeeded,
		actions: []Action{DeleteCanary()},
		requeue: RecheckAfter,
		message: "promoted: revision rev2 is rolled out and stable",
		event:   "Normal/Succeeded",
	}, {
		name:    "rolled out: canary deleted, Succeeded, stable revision updated",
		state:   promotingSince(ago(30 * time.Second)),
		obs:     func(o *Observations) { o.ServicePinned, o.RolloutComplete = false, true },
		next:    succeeded,
		actions: []Action{DeleteCanary()},
		requeue: RecheckAfter,
		message: "promoted: revision rev2 is rolled out and stable",
		event:   "Normal/Succeeded",
	}, {
		name:    "rolled out after being overdue: Succeeded",
		state:   with(promotingSince(ago(20*time.Minute)), func(s *State) { s.WaitingSince = time.Time{} }),
		obs:     func(o *Observations) { o.ServicePinned, o.RolloutComplete = false, true },
		next:    succeeded,
		actions: []Action{DeleteCanary()},
		requeue: RecheckAfter,
		message: "promoted: revision rev2 is rolled out and stable",
		event:   "Normal/Succeeded",
	}, {
		name:  "rolled out, canary already gone: Succeeded, nothing to look at again",
		state: promotingSince(ago(30 * time.Second)),
		obs: func(o *Observations) {
			o.ServicePinned, o.RolloutComplete, o.CanaryObjectsExist = false, true, false
		},
		next:    succeeded,
		message: "promoted: revision rev2 is rolled out and stable",
		event:   "Normal/Succeeded",
	}, {
		name:    "new abort value while promoting: ignored and recorded",
		state:   promotingSince(ago(30 * time.Second)),
		obs:     func(o *Observations) { o.ServicePinned, o.Abort = false, "a1" },
		next:    func(s *State) { s.Acted = map[string]string{contract.KeyAbort: "a1"} },
		requeue: RecheckAfter,
		message: `canary.io/abort "a1" ignored: revision rev2 passed its analysis and is being rolled out; once the rollout completes, apply the previous template to go back`,
		event:   "Warning/AbortIgnored",
	}, {
		name:    "new promote value while promoting: recorded, nothing else",
		state:   promotingSince(ago(30 * time.Second)),
		obs:     func(o *Observations) { o.ServicePinned, o.Promote = false, "p2" },
		next:    func(s *State) { s.Acted = map[string]string{contract.KeyPromote: "p2"} },
		requeue: RecheckAfter,
	}, {
		name:    "Service pinned again by someone: unpinned, or the rollout would starve it",
		state:   promotingSince(ago(30 * time.Second)),
		actions: []Action{UnpinService()},
		requeue: RecheckAfter,
	}, {
		name:  "rolled out, someone else routes to the canary: the canary is kept",
		next:  rolledOutNow,
		state: promotingSince(ago(30 * time.Second)),
		obs: func(o *Observations) {
			o.ServicePinned, o.RolloutComplete = false, true
			o.RoutingChangedBySomeoneElse, o.RoutedWeight = "VirtualService web sends 30% to web-canary, not the 0% the stepper wrote", 30
		},
		requeue: RecheckAfter,
		message: "promoting revision rev2: rolled out, but VirtualService web sends 30% to web-canary, not the 0% the stepper wrote; the canary is kept until no traffic is routed to it",
	}, {
		name:    "rolled out, our own weight still on the canary: moved off first, canary kept",
		next:    rolledOutNow,
		state:   promotingSince(ago(30 * time.Second)),
		obs:     func(o *Observations) { o.ServicePinned, o.RolloutComplete, o.RoutedWeight = false, true, 60 },
		actions: []Action{SetWeight(0)},
		requeue: 10 * time.Second,
		message: "promoting revision rev2: rolled out; the canary is removed at 2026-03-01T12:00:10Z, once every proxy has the new routes",
	}})
}

func TestNextCleanup(t *testing.T) {
	// The webhook's RolledBack: the stable template applied again mid-analysis.
	reverted := State{Phase: contract.PhaseRolledBack, Step: 1, Weight: 40, StepStarted: ago(30 * time.Second),
		Revision: "rev1", Stable: "rev1"}
	weightGone := func(since time.Time) State {
		return with(reverted, func(s *State) { s.Weight, s.StepStarted = 0, since })
	}
	// The stepper's own RolledBack: revision rev2 held, rejected.
	rejected := State{Phase: contract.PhaseRolledBack, Step: 1, FailedChecks: 4, StepStarted: ago(time.Hour),
		Revision: "rev2", Stable: "rev1", Acted: map[string]string{contract.KeyPromote: "p1"}}
	skipped := State{Phase: contract.PhaseIdle, Step: 1, Weight: 40, StepStarted: ago(time.Minute), Revision: "rev3", Stable: "rev3"}
	clean := func(o *Observations) { o.ServicePinned, o.CanaryObjectsExist = false, false }
	runTransitions(t, []transition{{
		name:    "stable template applied again mid-analysis: weight to stable first, phase and message kept",
		state:   reverted,
		next:    func(s *State) { s.Weight, s.StepStarted = 0, t0 },
		actions: []Action{SetWeight(0)},
		requeue: 10 * time.Second,
	}, {
		name:    "weight left the canary less than the propagation delay ago: wait",
		state:   weightGone(ago(4 * time.Second)),
		requeue: 6 * time.Second,
	}, {
		name:    "propagation delay over: canary deleted, the pin stays until its pods are gone",
		state:   weightGone(ago(10 * time.Second)),
		actions: []Action{DeleteCanary()},
		requeue: RecheckAfter,
	}, {
		name:    "weight 0 recorded, still routed (stopped before the routing): routed now, not recorded again",
		state:   weightGone(ago(20 * time.Second)),
		obs:     func(o *Observations) { o.RoutedWeight = 40 },
		actions: []Action{SetWeight(0)},
		requeue: 10 * time.Second,
	}, {
		name:    "delay over since the record, but this process saw the weight gone 3s ago: wait the delay from then",
		state:   weightGone(ago(time.Minute)),
		obs:     func(o *Observations) { o.UnroutedSince = ago(3 * time.Second) },
		requeue: 7 * time.Second,
	}, {
		name:    "canary's pods gone: unpinned",
		state:   weightGone(ago(time.Minute)),
		obs:     func(o *Observations) { o.CanaryObjectsExist = false },
		actions: []Action{UnpinService()},
		requeue: RecheckAfter,
	}, {
		name:  "RolledBack, nothing left: no actions, no requeue",
		state: weightGone(ago(time.Minute)),
		obs:   clean,
	}, {
		name:    "RolledBack, the condition lost (killed after the state write): re-asserted",
		state:   rejected,
		obs:     func(o *Observations) { clean(o); o.Rejection = "success rate 80% failed" },
		actions: []Action{SetProgressingFailed("rolled back: success rate 80% failed")},
		requeue: RecheckAfter,
	}, {
		name:  "RolledBack, the condition holds: nothing to do",
		state: rejected,
		obs:   func(o *Observations) { clean(o); o.Rejection, o.ProgressingFailed = "success rate 80% failed", true },
	}, {
		name:    "RolledBack with traffic left and the condition lost: weight to stable and the condition",
		state:   with(rejected, func(s *State) { s.Weight = 40 }),
		obs:     func(o *Observations) { o.Rejection = "aborted" },
		next:    func(s *State) { s.Weight, s.StepStarted = 0, t0 },
		actions: []Action{SetWeight(0), SetProgressingFailed("rolled back: aborted")},
		requeue: 10 * time.Second,
	}, {
		name:    "Idle after skip-analysis: unpinned first, the Deployment is rolling; weight to stable",
		state:   skipped,
		next:    func(s *State) { s.Weight, s.StepStarted = 0, t0 },
		actions: []Action{UnpinService(), SetWeight(0)},
		requeue: 10 * time.Second,
	}, {
		name:    "Idle, canary left without traffic: deleted",
		state:   with(skipped, func(s *State) { s.Weight, s.StepStarted = 0, time.Time{} }),
		obs:     func(o *Observations) { o.ServicePinned = false },
		actions: []Action{DeleteCanary()},
		requeue: RecheckAfter,
	}, {
		name:    "Idle, only the pin left: unpinned",
		state:   with(skipped, func(s *State) { s.Weight = 0 }),
		obs:     func(o *Observations) { o.CanaryObjectsExist = false },
		actions: []Action{UnpinService()},
		requeue: RecheckAfter,
	}, {
		name:  "Idle, nothing left: no actions, no requeue",
		state: with(skipped, func(s *State) { s.Weight = 0 }),
		obs:   clean,
	}, {
		name:  "Succeeded, nothing left: no actions, no requeue",
		state: with(promotingSince(ago(time.Hour)), func(s *State) { s.Phase, s.Stable, s.WaitingSince = contract.PhaseSucceeded, "rev2", time.Time{} }),
		obs:   clean,
	}, {
		name:    "Succeeded, canary's pods still terminating: deleted again",
		state:   with(promotingSince(ago(time.Minute)), func(s *State) { s.Phase, s.Stable, s.WaitingSince = contract.PhaseSucceeded, "rev2", time.Time{} }),
		obs:     func(o *Observations) { o.ServicePinned = false },
		actions: []Action{DeleteCanary()},
		requeue: RecheckAfter,
	}, {
		name:  "not opted in, nothing left: no actions, no requeue",
		state: State{},
		obs:   clean,
	}, {
		name:  "someone else routes to the canary: cleanup waits, weights left alone",
		state: weightGone(ago(time.Minute)),
		obs: func(o *Observations) {
			o.RoutingChangedBySomeoneElse, o.RoutedWeight = "VirtualService web sends 20% to web-canary, not the 0% the stepper wrote", 20
		},
		requeue: RecheckAfter,
		message: "removing the canary waits: VirtualService web sends 20% to web-canary, not the 0% the stepper wrote; it is removed once no traffic is routed to it",
	}, {
		name:  "new promote value while the rejected revision is held: promoted, as the user overrides",
		state: rejected,
		obs:   func(o *Observations) { o.ServicePinned, o.CanaryObjectsExist, o.Promote = false, false, "p2" },
		next: func(s *State) {
			s.Phase, s.StepStarted, s.WaitingSince = contract.PhasePromoting, t0, t0
			s.Acted = map[string]string{contract.KeyPromote: "p2"}
		},
		requeue: minRequeue, // promoting continues the promotion at once
		message: `canary.io/promote "p2" overrides the rollback of revision rev2; promoting revision rev2: all traffic to the Deployment's Service, rolling update started (progress deadline 2026-03-01T12:10:00Z)`,
		event:   "Normal/PromoteRequested",
	}, {
		name:  "promote value acted on before the rollback: nothing happens",
		state: rejected,
		obs:   func(o *Observations) { o.ServicePinned, o.CanaryObjectsExist, o.Promote = false, false, "p1" },
	}, {
		name:  "new promote value after the stable template came back: nothing to promote",
		state: weightGone(ago(time.Minute)),
		obs: func(o *Observations) {
			o.ServicePinned, o.CanaryObjectsExist, o.Promote = false, false, "p2"
		},
	}, {
		name:  "new abort value when nothing is in flight: nothing happens",
		state: rejected,
		obs:   func(o *Observations) { o.ServicePinned, o.CanaryObjectsExist, o.Abort = false, false, "a9" },
	}})
}
