package plan

import "fmt"

// ActionKind names what an [Action] asks the reconciler to do.
type ActionKind string

const (
	// ActionEnsureCanary creates or updates <deployment>-canary (a copy of
	// the Deployment's spec.template plus the canary label), Service
	// <service>-canary and DestinationRule <service>-canary, with
	// Action.Replicas replicas.
	ActionEnsureCanary ActionKind = "EnsureCanary"
	// ActionPinService adds the stable ReplicaSet's pod-template-hash to the
	// user's Service selector, so traffic that bypasses the VirtualService
	// reaches only stable pods.
	ActionPinService ActionKind = "PinService"
	// ActionSetWeight sets the canary's weight in the VirtualService(s) to
	// Action.Weight percent, the rest to the user's Service; 0 sends all
	// traffic to the user's Service. Action.Mirror percent of the
	// Service's requests are copied to the canary (0: none).
	ActionSetWeight ActionKind = "SetWeight"
	// ActionUnpause sets spec.paused false, so the Deployment's ordinary
	// rolling update moves it to the promoted template: a Deployment update
	// of its own, after the state write that records phase Promoting and
	// after the Service's unpin.
	ActionUnpause ActionKind = "Unpause"
	// ActionUnpinService removes the pod-template-hash from the user's
	// Service selector.
	ActionUnpinService ActionKind = "UnpinService"
	// ActionDeleteCanary deletes the canary objects the Deployment owns
	// (never an object of another owner under the same name).
	ActionDeleteCanary ActionKind = "DeleteCanary"
	// ActionSetProgressingFailed sets the Deployment's condition Progressing
	// to False, reason ProgressDeadlineExceeded, message Action.Message, so
	// that kubectl rollout status and GitOps tools report the failure. The
	// Deployment controller keeps this reason while the Deployment is
	// paused.
	ActionSetProgressingFailed ActionKind = "SetProgressingFailed"
	// ActionWriteState writes the decision to the Deployment: one update
	// carrying Encode(Next), the message, and the Unpause and
	// RecordRejected actions of the same decision (wherever they stand in
	// the list), with the resourceVersion the pass read. Write-ahead: it
	// comes before every action that follows from the decision (a weight
	// raised for a step, a weight moved off a rolled-back canary, the
	// unpin of a promotion), after only the upkeep that holds whatever was
	// decided (the pin, the canary sized, a weight lowered to the record).
	// A refused write stops the pass: nothing that depends on it is done.
	ActionWriteState ActionKind = "WriteState"
	// ActionDeleteGeneratedVirtualService deletes the VirtualService the
	// stepper generated for an analysis that now steers the user's own
	// (canary.io/virtualservice): two VirtualServices must never route one
	// host. It routes all of the host to the user's Service (the analysis
	// never steered it), so it may go at any moment.
	ActionDeleteGeneratedVirtualService ActionKind = "DeleteGeneratedVirtualService"
	// ActionRecordRejected records Action.Revision as
	// canary.io/rejected-revision and Action.Reason as why, so that
	// applying it again holds it until canary.io/retry changes. It is
	// applied in the Deployment update of the pass.
	ActionRecordRejected ActionKind = "RecordRejected"
)

// Action is one thing the reconciler must do. Kind says what; the fields
// that Kind names carry the values, the others are zero. Every action is
// idempotent: doing it twice is doing it once.
type Action struct {
	// Kind says what to do.
	Kind ActionKind
	// Replicas is the canary's replicas, for EnsureCanary.
	Replicas int32
	// Weight is the canary's weight in percent, for SetWeight.
	Weight int32
	// Mirror is the percentage of the Service's requests copied to the
	// canary, for SetWeight.
	Mirror int32
	// Revision is the rejected template hash, for RecordRejected.
	Revision string
	// Reason is why the revision was rejected, for RecordRejected.
	Reason string
	// Message is the condition's message, for SetProgressingFailed.
	Message string
}

// EnsureCanary returns an ActionEnsureCanary with replicas.
func EnsureCanary(replicas int32) Action {
	return Action{Kind: ActionEnsureCanary, Replicas: replicas}
}

// PinService returns an ActionPinService.
func PinService() Action { return Action{Kind: ActionPinService} }

// SetWeight returns an ActionSetWeight with weight percent on the canary.
func SetWeight(weight int32) Action { return Action{Kind: ActionSetWeight, Weight: weight} }

// Route returns an ActionSetWeight with weight percent on the canary and
// mirror percent of the Service's requests copied to it.
func Route(weight, mirror int32) Action {
	return Action{Kind: ActionSetWeight, Weight: weight, Mirror: mirror}
}

// WriteState returns an ActionWriteState.
func WriteState() Action { return Action{Kind: ActionWriteState} }

// Unpause returns an ActionUnpause.
func Unpause() Action { return Action{Kind: ActionUnpause} }

// UnpinService returns an ActionUnpinService.
func UnpinService() Action { return Action{Kind: ActionUnpinService} }

// DeleteCanary returns an ActionDeleteCanary.
func DeleteCanary() Action { return Action{Kind: ActionDeleteCanary} }

// SetProgressingFailed returns an ActionSetProgressingFailed with the
// condition's message.
func SetProgressingFailed(message string) Action {
	return Action{Kind: ActionSetProgressingFailed, Message: message}
}

// DeleteGeneratedVirtualService returns an
// ActionDeleteGeneratedVirtualService.
func DeleteGeneratedVirtualService() Action {
	return Action{Kind: ActionDeleteGeneratedVirtualService}
}

// RecordRejected returns an ActionRecordRejected for revision and reason.
func RecordRejected(revision, reason string) Action {
	return Action{Kind: ActionRecordRejected, Revision: revision, Reason: reason}
}

// String renders the action for logs and test failures, e.g.
// "SetWeight(40)" or "EnsureCanary(2)".
func (a Action) String() string {
	switch a.Kind {
	case ActionEnsureCanary:
		return fmt.Sprintf("%s(%d)", a.Kind, a.Replicas)
	case ActionSetWeight:
		if a.Mirror > 0 {
			return fmt.Sprintf("%s(%d, mirror %d%%)", a.Kind, a.Weight, a.Mirror)
		}
		return fmt.Sprintf("%s(%d)", a.Kind, a.Weight)
	case ActionRecordRejected:
		return fmt.Sprintf("%s(%s: %s)", a.Kind, a.Revision, a.Reason)
	case ActionSetProgressingFailed:
		return fmt.Sprintf("%s(%s)", a.Kind, a.Message)
	}
	return string(a.Kind)
}

// setsWeight reports whether actions include a SetWeight.
func setsWeight(actions []Action) bool {
	for _, a := range actions {
		if a.Kind == ActionSetWeight {
			return true
		}
	}
	return false
}

// EventType is the type of a Kubernetes Event.
type EventType string

const (
	// EventNormal is an Event about progress (corev1.EventTypeNormal).
	EventNormal EventType = "Normal"
	// EventWarning is an Event about a failure or a hold
	// (corev1.EventTypeWarning).
	EventWarning EventType = "Warning"
)

// Event is a Kubernetes Event on the Deployment.
type Event struct {
	// Type is Normal or Warning.
	Type EventType
	// Reason is one of the Reason constants.
	Reason string
	// Message is the sentence, usually the Decision's message.
	Message string
}

// Reasons of the Events Next emits.
const (
	// ReasonStepStarted: the weight moved to a step's weight.
	ReasonStepStarted = "StepStarted"
	// ReasonStepPassed: a step's checks passed.
	ReasonStepPassed = "StepPassed"
	// ReasonCheckFailed: a step's checks failed, within the threshold; the
	// step runs again.
	ReasonCheckFailed = "CheckFailed"
	// ReasonPaused: canary.io/pause was set (Progressing → Paused).
	ReasonPaused = "Paused"
	// ReasonResumed: canary.io/pause was removed (Paused → Progressing).
	ReasonResumed = "Resumed"
	// ReasonPromoting: all steps passed (→ Promoting).
	ReasonPromoting = "Promoting"
	// ReasonPromoteRequested: a new canary.io/promote value (→ Promoting).
	ReasonPromoteRequested = "PromoteRequested"
	// ReasonPromotionDeadlineExceeded: the promotion's rolling update did
	// not complete within the progress deadline (phase stays Promoting).
	ReasonPromotionDeadlineExceeded = "PromotionDeadlineExceeded"
	// ReasonSwitchEnded: a blue-green promotion's canary lost ready pods
	// while all traffic was switched to it; traffic went back to the
	// Service (phase stays Promoting).
	ReasonSwitchEnded = "SwitchEnded"
	// ReasonAbortIgnored: a new canary.io/abort value arrived while the
	// revision was already being promoted.
	ReasonAbortIgnored = "AbortIgnored"
	// ReasonSucceeded: the promoted revision is rolled out (→ Succeeded).
	ReasonSucceeded = "Succeeded"
	// ReasonChecksFailed: more failed checks than the threshold
	// (→ RolledBack).
	ReasonChecksFailed = "ChecksFailed"
	// ReasonCanaryWorse: the continuous comparison found the canary worse
	// than stable (→ RolledBack).
	ReasonCanaryWorse = "CanaryWorse"
	// ReasonRollbackHook: a rollback hook answered with success
	// (→ RolledBack).
	ReasonRollbackHook = "RollbackHook"
	// ReasonAborted: a new canary.io/abort value (→ RolledBack).
	ReasonAborted = "Aborted"
	// ReasonProgressDeadlineExceeded: a wait (canary pods, data, the gate)
	// outlasted the progress deadline (→ RolledBack).
	ReasonProgressDeadlineExceeded = "ProgressDeadlineExceeded"
	// ReasonConflict: the analysis cannot own its objects (→ RolledBack).
	ReasonConflict = "Conflict"
)

// Reasons of the transitions the webhook makes: it records the reason
// with the transition (canary.io/transition-reason) and the stepper emits
// the Event (the webhook makes no API calls on the admission path).
const (
	// ReasonEnabled: canary.io/enabled set (→ Idle).
	ReasonEnabled = "Enabled"
	// ReasonHeld: a new template held for analysis, or the analysis
	// restarted or retried (→ Progressing).
	ReasonHeld = "Held"
	// ReasonAnalysisSkipped: a template applied with
	// canary.io/skip-analysis rolls out unanalysed (→ Idle).
	ReasonAnalysisSkipped = "AnalysisSkipped"
	// ReasonHoldEnded: the stable template applied again while a
	// rolled-back revision was held (→ Idle).
	ReasonHoldEnded = "HoldEnded"
	// ReasonRevertedByUser: the stable template applied again during an
	// analysis (→ RolledBack).
	ReasonRevertedByUser = "RolledBackByUser"
	// ReasonHeldRejected: a revision rolled back earlier applied again: held
	// without analysis until canary.io/retry changes (→ RolledBack).
	ReasonHeldRejected = "HeldRejected"
)

// warningReasons are the reasons whose Events are warnings: a failure, a
// rollback, something skipped or ignored.
var warningReasons = map[string]bool{
	ReasonCheckFailed: true, ReasonChecksFailed: true, ReasonCanaryWorse: true, ReasonRollbackHook: true,
	ReasonAborted: true, ReasonProgressDeadlineExceeded: true, ReasonConflict: true,
	ReasonPromotionDeadlineExceeded: true, ReasonAbortIgnored: true,
	ReasonAnalysisSkipped: true, ReasonRevertedByUser: true, ReasonHeldRejected: true,
}

// EventFor is the Event of a recorded transition, from its reason.
//
// Example: EventFor("ChecksFailed", "rolled back: …") is a Warning;
// EventFor("Held", …) is Normal.
func EventFor(reason, message string) *Event {
	t := EventNormal
	if warningReasons[reason] {
		t = EventWarning
	}
	return &Event{Type: t, Reason: reason, Message: message}
}

func normal(reason, message string) *Event {
	return &Event{Type: EventNormal, Reason: reason, Message: message}
}

func warning(reason, message string) *Event {
	return &Event{Type: EventWarning, Reason: reason, Message: message}
}
