package webhook

import (
	"fmt"
	"maps"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/canary-io/canary/contract"
)

// ServiceRequest is what the admission decision on a Service needs.
type ServiceRequest struct {
	Old, New     *corev1.Service
	ByController bool
}

// MutateService keeps a pinned Service pinned: while the stepper pins the
// user's Service to the stable pods, any write by someone else (kubectl
// apply or replace, a GitOps sync, server-side apply with force, which
// replaces the whole selector because it is an atomic field) gets the
// pinned key and the pin annotation back, with a warning. The controller's
// own writes (pinning, unpinning) pass untouched. It returns the object to
// store and the warnings; the object is New itself when nothing changes.
func MutateService(req ServiceRequest) (*corev1.Service, []string) {
	hash, pinned := req.Old.Annotations[contract.KeyPinned]
	if req.ByController || !pinned || hash == "" {
		return req.New, nil
	}
	owner, owned := req.Old.Annotations[contract.KeyPinnedBy]
	if req.New.Spec.Selector[appsv1.DefaultDeploymentUniqueLabelKey] == hash && req.New.Annotations[contract.KeyPinned] == hash &&
		(!owned || req.New.Annotations[contract.KeyPinnedBy] == owner) {
		return req.New, nil
	}
	svc := *req.New
	svc.Annotations = maps.Clone(req.New.Annotations)
	if svc.Annotations == nil {
		svc.Annotations = map[string]string{}
	}
	svc.Annotations[contract.KeyPinned] = hash
	if owned {
		svc.Annotations[contract.KeyPinnedBy] = owner
	}
	svc.Spec.Selector = maps.Clone(req.New.Spec.Selector)
	if svc.Spec.Selector == nil {
		svc.Spec.Selector = map[string]string{}
	}
	svc.Spec.Selector[appsv1.DefaultDeploymentUniqueLabelKey] = hash
	return &svc, []string{fmt.Sprintf(
		"canary.io: kept %s=%s in the selector of Service %s: a canary analysis pins it to the stable pods until the analysis ends",
		appsv1.DefaultDeploymentUniqueLabelKey, hash, svc.Name)}
}
