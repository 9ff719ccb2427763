// Package integration tests kubectl-canary against the real local cluster
// (etcd and kube-apiserver of package e2e/cluster). No controller runs: the
// tests write the status annotations and Events as the system would, and
// check what the plugin prints and what its controls write.
package integration
