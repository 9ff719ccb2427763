package webhook

import (
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/canary-io/canary/contract"
)

// Validate is the validating webhook's decision on the object as the
// mutating webhooks left it. It denies
//   - any canary.io annotation a user wrote that does not parse, with its
//     field path and the reason;
//   - a hook or Prometheus URL a user sets that the controller's
//     allow-lists refuse (Egress);
//   - an object Mutate would still change: the hold or the status
//     annotations were altered by a mutating webhook that ran after ours.
//
// It accepts exactly what Mutate produces: Mutate is idempotent, so its
// output is a fixed point.
func Validate(req Request) (field.ErrorList, string) {
	var errs field.ErrorList
	if _, present := req.New.Annotations[contract.KeyEnabled]; present || contract.OptedIn(req.Old) {
		errs = contract.Validate(req.New.Annotations)
		if len(errs) == 0 && !req.ByController {
			var old map[string]string
			if req.Old != nil {
				old = req.Old.Annotations
			}
			errs = req.Egress.check(old, req.New.Annotations)
		}
	}
	if len(errs) > 0 {
		return errs, ""
	}
	r := Mutate(req)
	if r.Denied != "" {
		return nil, r.Denied
	}
	if !sameIgnoringTransitionTime(r.Object, req.New) {
		return nil, "canary.io: the Deployment's hold (spec.paused) or its canary.io status annotations were changed after canary.io's mutating webhook ran; " +
			"check the other mutating webhooks that match Deployments"
	}
	return nil, ""
}

// sameIgnoringTransitionTime compares two Deployments that differ at
// most where Mutate changes them (spec.paused and the annotations), but
// for canary.io/last-transition, whose value depends on when Mutate ran.
func sameIgnoringTransitionTime(a, b *appsv1.Deployment) bool {
	if a.Spec.Paused != b.Spec.Paused {
		return false
	}
	skip := func(k string) bool { return k == contract.KeyLastTransition }
	for k, v := range a.Annotations {
		if w, ok := b.Annotations[k]; !skip(k) && (!ok || v != w) {
			return false
		}
	}
	for k := range b.Annotations {
		if _, ok := a.Annotations[k]; !skip(k) && !ok {
			return false
		}
	}
	return true
}
