package webhook

import (
	"encoding/json"
	"testing"

	jsonpatchapply "github.com/evanphx/json-patch/v5"
	appsv1 "k8s.io/api/apps/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"

	"github.com/canary-io/canary/contract"
)

// TestPatchMatchesFullDiff applies the handler's patch to the raw request
// object and checks that the result is exactly the object Mutate decided.
func TestPatchMatchesFullDiff(t *testing.T) {
	noAnnotations := edit(v1, func(d *appsv1.Deployment) { d.Annotations = nil })
	cases := []struct {
		name     string
		old, new *appsv1.Deployment
	}{
		{"create", nil, v1},
		{"hold", idle, edit(idle, image("reviews:v2"))},
		{"restore after replace", heldV2, edit(heldV2, paused(false), func(d *appsv1.Deployment) {
			d.Annotations = map[string]string{contract.KeyEnabled: "true", "x/y~z": "1"}
		})},
		{"opt out clears", idle, edit(idle, annotate(contract.KeyEnabled, "false"))},
		{"stable again", heldV2, edit(heldV2, image("reviews:v1"))},
		{"no annotations at all", nil, noAnnotations},
		{"opt in, annotations map absent before", edit(noAnnotations), edit(v1)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := Mutate(Request{Old: c.old, New: c.new, Now: now})
			if r.Denied != "" {
				t.Fatalf("denied: %s", r.Denied)
			}
			raw, err := json.Marshal(c.new)
			if err != nil {
				t.Fatal(err)
			}
			ops, err := json.Marshal(patch(c.new, r.Object))
			if err != nil {
				t.Fatal(err)
			}
			p, err := jsonpatchapply.DecodePatch(ops)
			if err != nil {
				t.Fatal(err)
			}
			patched, err := p.Apply(raw)
			if err != nil {
				t.Fatalf("apply %s: %v", ops, err)
			}
			var got appsv1.Deployment
			if err := json.Unmarshal(patched, &got); err != nil {
				t.Fatal(err)
			}
			if !apiequality.Semantic.DeepEqual(&got, r.Object) {
				t.Fatalf("patched object differs from Mutate's:\n got %v paused %v\nwant %v paused %v", got.Annotations, got.Spec.Paused, r.Object.Annotations, r.Object.Spec.Paused)
			}
		})
	}
}
