// Package cluster runs a real Kubernetes control plane on one machine, for
// the project's integration and end-to-end tests and for people trying the
// project by hand (make cluster-up).
//
// Every component is an upstream binary built from its Go module by
// hack/tools.sh: etcd, kube-apiserver (TLS, client-certificate credentials,
// RBAC), kube-controller-manager, kube-scheduler, kwok (fake nodes, so pods
// are scheduled and turn Ready with no container runtime), Prometheus and,
// on request, istiod with plaintext xDS on loopback. Nothing is faked: the
// admission chain, CRD validation, owner references, garbage collection,
// rolling updates and EndpointSlices behave as in production.
//
// Every component listens on loopback on a free port, keeps its log in the
// run directory and runs in its own process group. A cluster started by a
// test dies with the test process, even on a panic or SIGKILL (the children
// carry a parent-death signal); Stop ends it in order. Start refuses when an
// orphaned cluster of an earlier run is still alive, naming its processes.
package cluster
