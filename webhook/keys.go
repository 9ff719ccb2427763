package webhook

import "github.com/canary-io/canary/contract"

// System annotations beyond the contract's status annotations: bookkeeping
// the system writes and users cannot, kept in the cluster so that nothing
// is lost when the controller restarts.
const (
	// KeySettings freezes the settings annotations in force when a
	// template is held (a JSON object of key to value): they stay fixed for
	// that analysis.
	KeySettings = contract.Prefix + "analysis-settings"
	// KeyActed records the last value of each once-per-value control
	// (promote, abort, retry) the system acted on, as a JSON object.
	KeyActed = contract.Prefix + "acted"
	// KeyStepStarted is when the current step began (RFC 3339).
	KeyStepStarted = contract.Prefix + "step-started"
	// KeyRejection says when and why canary.io/rejected-revision was
	// rolled back, for the warning given when it is applied again.
	KeyRejection = contract.Prefix + "rejection"
)

// SystemKeys are every annotation only the system writes.
var SystemKeys = append(append([]string(nil), contract.StatusKeys...), KeySettings, KeyActed, KeyStepStarted, KeyRejection)
