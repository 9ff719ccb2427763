package webhook

import (
	"maps"

	appsv1 "k8s.io/api/apps/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/canary-io/canary/contract"
)

// Validate is the validating webhook's decision on the object as the
// mutating webhooks left it. It denies
//   - any canary.io annotation a user wrote that does not parse, with its
//     field path and the reason;
//   - an object Mutate would still change: the hold or the status
//     annotations were altered by a mutating webhook that ran after ours.
//
// It accepts exactly what Mutate produces: Mutate is idempotent, so its
// output is a fixed point.
func Validate(req Request) (field.ErrorList, string) {
	var errs field.ErrorList
	if _, present := req.New.Annotations[contract.KeyEnabled]; present || OptedIn(req.Old) {
		errs = contract.Validate(userAnnotations(req.New.Annotations))
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

// userAnnotations drops the system's bookkeeping annotations, which are
// not the user's to write and are checked by Mutate's fixed point instead.
func userAnnotations(a map[string]string) map[string]string {
	out := maps.Clone(a)
	for _, k := range []string{KeySettings, KeyActed, KeyStepStarted, KeyRejection} {
		delete(out, k)
	}
	return out
}

// sameIgnoringTransitionTime compares two Deployments but for
// canary.io/last-transition, whose value depends on when Mutate ran.
func sameIgnoringTransitionTime(a, b *appsv1.Deployment) bool {
	a, b = a.DeepCopy(), b.DeepCopy()
	for _, d := range []*appsv1.Deployment{a, b} {
		delete(d.Annotations, contract.KeyLastTransition)
		if len(d.Annotations) == 0 {
			d.Annotations = nil
		}
	}
	return apiequality.Semantic.DeepEqual(a, b)
}
