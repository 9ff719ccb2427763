// Package integration tests the admission webhook against the real local
// control plane: the canary-controller binary serves the webhook over TLS,
// registered in kube-apiserver, and kubectl writes Deployments every way a
// user or a GitOps tool does.
package integration
