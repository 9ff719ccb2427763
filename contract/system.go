package contract

// Bookkeeping annotations the system writes beside the contract's status
// annotations, so that everything it knows lives in the cluster and a
// restarted controller resumes exactly. Users cannot write them (the
// webhook keeps them as the system last wrote them) and need not read them.
const (
	// KeyAnalysisSettings freezes the settings annotations in force when a
	// template is held, as a JSON object of key to value: they stay fixed
	// for that analysis.
	KeyAnalysisSettings = Prefix + "analysis-settings"
	// KeyActed records the last value of each once-per-value control
	// (promote, abort, retry) the system acted on, as a JSON object of
	// annotation key to value.
	KeyActed = Prefix + "acted"
	// KeyStepsPassed counts the steps of the analysis that passed ("0",
	// "1", ...): [KeyStep] shows the step in progress, which reads the
	// same ("3/3") while the last step runs and after it passed.
	KeyStepsPassed = Prefix + "steps-passed"
	// KeyStepStarted is when the current weight took effect (RFC 3339).
	KeyStepStarted = Prefix + "step-started"
	// KeyWaitingSince is when the current wait began (canary pods, data, a
	// gate), for the progress deadline (RFC 3339).
	KeyWaitingSince = Prefix + "waiting-since"
	// KeyPreRolloutFailed is when the pre-rollout hooks last failed (RFC
	// 3339): they are called again an interval later.
	KeyPreRolloutFailed = Prefix + "pre-rollout-failed"
	// KeyAnalysisStarted is when the stepper first saw the analysis in
	// flight (RFC 3339): the continuous comparison replays the counters
	// from then on every pass, so that a restart never starts a new test.
	KeyAnalysisStarted = Prefix + "analysis-started"
	// KeyEventedTransition names the transition (phase, revision and
	// canary.io/last-transition) whose Event the system has emitted:
	// transitions the webhook makes (a template held, skip-analysis, the
	// stable template applied again) get their Event from the stepper,
	// and so do the stepper's own, recorded in the pass after the Event.
	KeyEventedTransition = Prefix + "evented-transition"
	// KeyTransitionReason is the Event reason of the last transition
	// (canary.io/last-transition), as whoever made it (the webhook or the
	// stepper) named it: the stepper emits every transition's Event from
	// it, at least once, even after a restart between the write and the
	// Event.
	KeyTransitionReason = Prefix + "transition-reason"
	// KeyFailing is why the last pass of an analysis in flight could not
	// do what it decided (an action refused by a policy, a quota, the
	// apiserver), and KeyFailingSince (RFC 3339) since when its passes
	// have kept failing: past the progress deadline the analysis rolls
	// back. Removed once a pass succeeds.
	KeyFailing      = Prefix + "failing"
	KeyFailingSince = Prefix + "failing-since"
	// KeyRolledOut is when a promotion's rolling update was first seen
	// complete (RFC 3339), read once: the apiserver raises a Deployment's
	// generation with every change of its annotations, so its status lags
	// each of the system's own writes, and a completion judged again on
	// every pass would flip with them.
	KeyRolledOut = Prefix + "rolled-out"
	// KeyRejection says when and why [KeyRejectedRevision] was rolled back,
	// for the warning given when that template is applied again.
	KeyRejection = Prefix + "rejection"
)

// BookkeepingKeys are the bookkeeping annotations above.
var BookkeepingKeys = []string{KeyAnalysisSettings, KeyActed, KeyStepsPassed, KeyStepStarted, KeyWaitingSince, KeyPreRolloutFailed, KeyAnalysisStarted, KeyRolledOut, KeyEventedTransition, KeyTransitionReason, KeyRejection, KeyFailing, KeyFailingSince}

// SystemKeys are every annotation only the system writes: the status
// annotations and the bookkeeping ones.
var SystemKeys = append(append([]string(nil), StatusKeys...), BookkeepingKeys...)

// IsSystemKey reports whether k is one of [SystemKeys].
func IsSystemKey(k string) bool { return knownKeys[k] == kindStatus }
