// Package clustertest applies the manifests of package manifests to a
// local cluster (package e2e/cluster): a server-side dry run of every
// object (cert-manager's CRDs installed from its Go module), the RBAC for
// real checked with SubjectAccessReviews, and a full rollout by the
// controller running with only that RBAC. It holds only tests.
package clustertest
