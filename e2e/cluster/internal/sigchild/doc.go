//go:build sigchild

// Package sigchild is the victim of the cluster package's interrupt test:
// a test binary that starts a local cluster the way every suite does, says
// where its components are, and then waits to be interrupted or to panic.
// It builds only with the sigchild tag, so go test ./... never runs it.
package sigchild
