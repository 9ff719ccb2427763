// Package gitops holds what GitOps tools need to show canary.io rollouts:
// an Argo CD health check (argocd-health.lua), tested here against sample
// Deployments. docs/gitops.md says how to install it and how to keep a
// steered VirtualService in git.
package gitops
