package webhook

import (
	"strings"

	"gomodules.xyz/jsonpatch/v2"
	appsv1 "k8s.io/api/apps/v1"
)

// patch is the JSON patch that turns in into out, for the only fields
// Mutate changes: spec.paused and metadata.annotations. Writing the few
// operations directly, instead of diffing the two whole objects as
// admission.PatchResponseFromRaw does, keeps an admission review well under
// 100µs (see docs/benchmarks.md); TestPatchMatchesFullDiff checks that it
// yields the same object.
//
// Example: holding a template adds
//
//	{"op":"add","path":"/spec/paused","value":true}
//	{"op":"add","path":"/metadata/annotations/canary.io~1phase","value":"Progressing"}
//	...
func patch(in, out *appsv1.Deployment) []jsonpatch.Operation {
	var ops []jsonpatch.Operation
	if in.Spec.Paused != out.Spec.Paused {
		ops = append(ops, jsonpatch.NewOperation("add", "/spec/paused", out.Spec.Paused))
	}
	switch {
	case len(in.Annotations) == 0 && len(out.Annotations) > 0:
		ops = append(ops, jsonpatch.NewOperation("add", "/metadata/annotations", out.Annotations))
	case len(in.Annotations) > 0 && len(out.Annotations) == 0:
		ops = append(ops, jsonpatch.NewOperation("remove", "/metadata/annotations", nil))
	default:
		// Operations on distinct keys commute: map order is fine.
		for k, v := range out.Annotations {
			if old, ok := in.Annotations[k]; !ok || old != v {
				ops = append(ops, jsonpatch.NewOperation("add", "/metadata/annotations/"+escape(k), v))
			}
		}
		for k := range in.Annotations {
			if _, ok := out.Annotations[k]; !ok {
				ops = append(ops, jsonpatch.NewOperation("remove", "/metadata/annotations/"+escape(k), nil))
			}
		}
	}
	return ops
}

// escape makes an annotation key a JSON pointer token (RFC 6901).
func escape(key string) string {
	return strings.ReplaceAll(strings.ReplaceAll(key, "~", "~0"), "/", "~1")
}
