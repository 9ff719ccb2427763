// Package manifests holds the kustomize manifests that install
// canary-controller on a cluster (kubectl apply -k manifests/), and, for
// their tests, the API access the controller needs (Needs) and the rendered
// objects (Render).
//
// The tests in this directory check the manifests without a cluster: the
// webhook configurations equal webhook.Configurations, the ClusterRole
// grants exactly Needs and nothing on Secrets, the Deployment is hardened.
// Those in clustertest/ apply them to a local cluster: a server-side dry
// run of every object, the RBAC checked with SubjectAccessReviews, and a
// full rollout by a controller limited to that RBAC.
package manifests
