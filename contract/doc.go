// Package contract is the single home of the canary.io v1 contract: the
// names users and tests outside the project rely on (annotation keys, phase
// names, hook types, query placeholders) and the parser of the annotations
// users write on a Deployment.
//
// Every other package takes these names from here rather than spelling them
// again, so a rename is one edit and a typo is a compile error.
//
// The package is pure: no client-go, no I/O, no clock. Two entry points serve
// the two readers of user annotations:
//
//   - [Validate] checks every user-writable canary.io/* annotation, including
//     the controls and unknown keys, and is what the admission webhook uses to
//     refuse a Deployment with a clear, path-qualified message.
//   - [ParseSettings] turns the analysis settings into [Settings], starting
//     from [DefaultSettings]. The controller calls it when it holds a new
//     template; settings then stay fixed for that analysis.
//
// Errors are a field.ErrorList whose paths read
// metadata.annotations[canary.io/<key>], so the aggregated message names the
// annotation and the value, e.g.
//
//	metadata.annotations[canary.io/steps]: Invalid value: "20,abc": step 2 ("abc") is not a whole number
//
// Values are trimmed of surrounding white space before parsing, except the
// booleans (canary.io/enabled, canary.io/pause, canary.io/skip-analysis):
// those must be exactly "true" or "false" because the apiserver's
// matchConditions compare them as written, and a value the webhook accepted
// but the apiserver read differently would silently opt a Deployment out.
//
// The status annotations ([StatusKeys]) are written by the system; this
// package names them but does not validate them.
package contract
