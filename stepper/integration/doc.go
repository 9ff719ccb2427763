// Package integration tests the stepper against the real local control
// plane, with the webhook registered and a Prometheus stand-in that serves
// the values each test chooses.
package integration
