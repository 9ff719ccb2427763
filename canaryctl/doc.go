// Package canaryctl is the logic of the kubectl plugin kubectl-canary: it
// reads where a canary analysis stands from a Deployment's canary.io status
// annotations and its Events, and writes the user's controls
// (canary.io/promote, abort, retry and pause).
//
// The package is split so that what users read is testable without a
// cluster:
//
//   - [RenderView] and [RenderList] are pure: objects and a time in, text
//     out. They are what `kubectl canary get` and `kubectl canary list` print.
//   - [ControlPatch] is pure: it says which merge patch each control command
//     sends, e.g. promote writes a new RFC 3339 timestamp with nanoseconds
//     to canary.io/promote, so the value is always new and the controller
//     acts on it once.
//   - [Run] parses the command line and does the API calls; it is thin.
//
// The names it reads and writes come from package contract.
package canaryctl
