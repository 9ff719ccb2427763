package stepper

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	networkingv1 "istio.io/api/networking/v1"
	istionetv1 "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func dst(host string, weight int32) *networkingv1.HTTPRouteDestination {
	return &networkingv1.HTTPRouteDestination{Destination: &networkingv1.Destination{Host: host}, Weight: weight}
}

func render(ds []*networkingv1.HTTPRouteDestination) string {
	var parts []string
	for _, d := range ds {
		s := fmt.Sprintf("%s %d", d.Destination.Host, d.Weight)
		if d.Destination.Subset != "" {
			s = fmt.Sprintf("%s/%s %d", d.Destination.Host, d.Destination.Subset, d.Weight)
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ", ")
}

func TestSteerRoute(t *testing.T) {
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "reviews", Namespace: "bookinfo"}}
	subset := &networkingv1.HTTPRouteDestination{Destination: &networkingv1.Destination{Host: "reviews", Subset: "v1"}, Weight: 100}
	tests := []struct {
		name   string
		in     []*networkingv1.HTTPRouteDestination
		weight int32
		want   string
	}{
		{"lone destination without weight", []*networkingv1.HTTPRouteDestination{dst("reviews", 0)}, 20, "reviews 80, reviews-canary 20"},
		{"back to 0: as the user wrote it", []*networkingv1.HTTPRouteDestination{dst("reviews", 80), dst("reviews-canary", 20)}, 0, "reviews 0"},
		{"re-split is idempotent", []*networkingv1.HTTPRouteDestination{dst("reviews", 80), dst("reviews-canary", 20)}, 40, "reviews 60, reviews-canary 40"},
		{"shared route keeps the other destination", []*networkingv1.HTTPRouteDestination{dst("reviews", 80), dst("ratings", 20)}, 25, "reviews 60, reviews-canary 20, ratings 20"},
		{"fully qualified host keeps its form", []*networkingv1.HTTPRouteDestination{dst("reviews.bookinfo.svc.cluster.local", 100)}, 60,
			"reviews.bookinfo.svc.cluster.local 40, reviews-canary.bookinfo.svc.cluster.local 60"},
		{"a subset is the user's: untouched", []*networkingv1.HTTPRouteDestination{subset}, 40, "reviews/v1 100"},
		{"another host: untouched", []*networkingv1.HTTPRouteDestination{dst("ratings", 0)}, 40, "ratings 0"},
		{"never steered, weight 0: untouched", []*networkingv1.HTTPRouteDestination{dst("reviews", 100)}, 0, "reviews 100"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := steerRoute(tt.in, svc, tt.weight)
			if render(got) != tt.want {
				t.Fatalf("got %s, want %s", render(got), tt.want)
			}
			var sum int32
			for _, d := range got {
				sum += d.Weight
			}
			if len(got) > 1 && sum != 100 {
				t.Fatalf("weights add up to %d", sum)
			}
		})
	}
}

func TestSteerKeepsWhatTheUserWrote(t *testing.T) {
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "reviews", Namespace: "bookinfo"}}
	vs := &istionetv1.VirtualService{}
	vs.Spec.Hosts = []string{"reviews"}
	vs.Spec.Http = []*networkingv1.HTTPRoute{
		{
			Match: []*networkingv1.HTTPMatchRequest{{Headers: map[string]*networkingv1.StringMatch{"end-user": {MatchType: &networkingv1.StringMatch_Exact{Exact: "jason"}}}}},
			Route: []*networkingv1.HTTPRouteDestination{{Destination: &networkingv1.Destination{Host: "reviews", Subset: "v2"}}},
		},
		{
			Fault: &networkingv1.HTTPFaultInjection{Abort: &networkingv1.HTTPFaultInjection_Abort{Percentage: &networkingv1.Percent{Value: 1}, ErrorType: &networkingv1.HTTPFaultInjection_Abort_HttpStatus{HttpStatus: 500}}},
			Route: []*networkingv1.HTTPRouteDestination{dst("reviews", 0)},
		},
	}
	steer(vs, svc, 40)
	if got := render(vs.Spec.Http[0].Route); got != "reviews/v2 0" {
		t.Errorf("header-matched route to a subset: %s", got)
	}
	if vs.Spec.Http[1].Fault == nil || vs.Spec.Http[1].Fault.Abort.Percentage.Value != 1 {
		t.Errorf("fault injection lost")
	}
	if got := render(vs.Spec.Http[1].Route); got != "reviews 60, reviews-canary 40" {
		t.Errorf("default route: %s", got)
	}
	if w := steeredWeight(vs, svc); w != 40 {
		t.Errorf("steeredWeight = %d, want 40", w)
	}
}

// TestSteerPatchKeepsUnknownFields: the patch that steers a user's
// VirtualService replaces only the destination lists that changed and the
// weight record; a field this Istio client does not know (here on the
// route, as a newer Istio would have) stays, and the patch carries the
// version read, which the apiserver checks (409 Conflict otherwise).
func TestSteerPatchKeepsUnknownFields(t *testing.T) {
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "reviews", Namespace: "bookinfo"}}
	stored := `{"apiVersion":"networking.istio.io/v1","kind":"VirtualService",
	  "metadata":{"name":"reviews","namespace":"bookinfo","resourceVersion":"7"},
	  "spec":{"hosts":["reviews"],"http":[
	    {"name":"jason","match":[{"headers":{"end-user":{"exact":"jason"}}}],"route":[{"destination":{"host":"reviews","subset":"v2"}}],"futureField":{"x":1}},
	    {"name":"default","route":[{"destination":{"host":"reviews"}}],"futureField":{"y":2}}]}}`
	var read istionetv1.VirtualService
	if err := json.Unmarshal([]byte(stored), &read); err != nil {
		t.Fatal(err)
	}
	steered := read.DeepCopy()
	steer(steered, svc, 25)
	setRecordedWeight(steered, 25)
	p, err := steerPatch(&read, steered)
	if err != nil {
		t.Fatal(err)
	}
	data, err := p.Data(steered)
	if err != nil {
		t.Fatal(err)
	}
	patch, err := jsonpatch.DecodePatch(data)
	if err != nil {
		t.Fatal(err)
	}
	out, err := patch.Apply([]byte(stored))
	if err != nil {
		t.Fatalf("apply %s: %v", data, err)
	}
	var got map[string]any
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	http := got["spec"].(map[string]any)["http"].([]any)
	for i, r := range http {
		if _, ok := r.(map[string]any)["futureField"]; !ok {
			t.Errorf("route %d lost its futureField: %s", i, out)
		}
	}
	if n := len(http[1].(map[string]any)["route"].([]any)); n != 2 {
		t.Errorf("the default route has %d destinations, want stable and canary: %s", n, out)
	}
	if strings.Contains(string(data), "/spec/http/0/") {
		t.Errorf("the patch rewrites the unsteered route 0: %s", data)
	}
	if rec := got["metadata"].(map[string]any)["annotations"].(map[string]any)[AnnotationWeight]; rec != "25" {
		t.Errorf("weight record %v, want 25", rec)
	}
	moved := strings.Replace(stored, `"resourceVersion":"7"`, `"resourceVersion":"8"`, 1)
	out, err = patch.Apply([]byte(moved))
	if err != nil || !strings.Contains(string(out), `"resourceVersion":"7"`) {
		t.Errorf("the patch does not carry the version read, for the apiserver's conflict check: %s (%v)", out, err)
	}
}
