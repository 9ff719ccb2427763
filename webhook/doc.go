// Package webhook is the admission half of the canary.io contract: it makes
// `kubectl apply` of a new pod template start a canary analysis instead of
// a rolling update, and keeps that hold safe against every other way a
// Deployment gets written (kubectl apply, replace, rollout undo, Helm,
// Argo CD, Flux).
//
// The decision is a pure function of the old and new Deployment, who is
// asking and the time (Mutate, Validate): no API calls on the admission
// path, so it is safe to run again on reinvocation and the apiserver can
// call it with sideEffects None. The handlers decode the request, call the
// decision and answer with a JSON patch against the raw object.
//
// What Mutate does to an update of an opted-in Deployment by a user:
//
//	template unchanged            pass through; a held Deployment stays paused
//	                              (a request whose only change is unpausing is
//	                              refused, naming canary.io/promote)
//	new template                  held: spec.paused true, phase Progressing,
//	                              canary.io/revision set, settings frozen
//	new template, skip-analysis   rolls out as plain Kubernetes; phase Idle
//	stable template, in flight    phase RolledBack (the rollback asked for)
//	stable template, RolledBack   hold ends: unpaused, phase Idle
//	rejected template             held without analysis until retry changes
//	any template, rolling update  refused: retry when the rollout completes
//
// In every case the status annotations are the system's: a user's write
// never changes them.
//
// The controller's own status writes do not reach the server: the match
// conditions of [Configurations] leave out an update by the controller
// that keeps the template, does not unpause and changes only the system's
// annotations (on a Deployment of at most 128 annotations), which Mutate
// would pass untouched.
package webhook
