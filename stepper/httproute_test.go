package stepper

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/canary-io/canary/contract"
)

// ref is a backendRef to a Service of the route's namespace on port
// 9080, of weight w (0: unset).
func ref(name string, w int32) gwv1.HTTPBackendRef {
	r := gwv1.HTTPBackendRef{BackendRef: gwv1.BackendRef{BackendObjectReference: gwv1.BackendObjectReference{Name: gwv1.ObjectName(name), Port: ptr.To(int32(9080))}}}
	if w != 0 {
		r.Weight = ptr.To(w)
	}
	return r
}

// weights renders a rule's backendRefs as "name=weight" ("name" when
// unset).
func weights(refs []gwv1.HTTPBackendRef) string {
	var out []string
	for _, r := range refs {
		s := string(r.Name)
		if r.Namespace != nil {
			s = string(*r.Namespace) + "/" + s
		}
		if r.Weight != nil {
			s += "=" + itoa(*r.Weight)
		}
		out = append(out, s)
	}
	return strings.Join(out, " ")
}

func itoa(n int32) string { b, _ := json.Marshal(n); return string(b) }

func TestSteerHTTPRoute(t *testing.T) {
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "reviews", Namespace: "shop"}}
	other := ref("reviews", 0)
	other.Namespace = ptr.To(gwv1.Namespace("elsewhere"))
	for _, c := range []struct {
		name   string
		rule   []gwv1.HTTPBackendRef
		weight int32
		want   string
	}{
		{"a lone backendRef, weight unset", []gwv1.HTTPBackendRef{ref("reviews", 0)}, 20, "reviews=80 reviews-canary=20"},
		{"a lone backendRef of weight 1", []gwv1.HTTPBackendRef{ref("reviews", 1)}, 20, "reviews=80 reviews-canary=20"},
		{"proportions kept", []gwv1.HTTPBackendRef{ref("reviews", 3), ref("ratings", 1)}, 50, "reviews=150 reviews-canary=150 ratings=100"},
		{"weight 0, never steered: untouched", []gwv1.HTTPBackendRef{ref("reviews", 0)}, 0, "reviews"},
		{"weight 0 gives it back", []gwv1.HTTPBackendRef{ref("reviews", 80), ref("reviews-canary", 20)}, 0, "reviews"},
		{"given back with the proportions", []gwv1.HTTPBackendRef{ref("reviews", 150), ref("reviews-canary", 150), ref("ratings", 100)}, 0, "reviews=3 ratings"},
		{"moved from 20 to 60", []gwv1.HTTPBackendRef{ref("reviews", 80), ref("reviews-canary", 20)}, 60, "reviews=40 reviews-canary=60"},
		{"another Service: untouched", []gwv1.HTTPBackendRef{ref("ratings", 0)}, 20, "ratings"},
		{"the same name in another namespace: untouched", []gwv1.HTTPBackendRef{other}, 20, "elsewhere/reviews"},
	} {
		rt := &gwv1.HTTPRoute{ObjectMeta: metav1.ObjectMeta{Name: "r", Namespace: "shop"}}
		rt.Spec.Rules = []gwv1.HTTPRouteRule{{BackendRefs: c.rule}}
		if err := steerHTTPRoute(rt, svc, c.weight); err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if got := weights(rt.Spec.Rules[0].BackendRefs); got != c.want {
			t.Errorf("%s: %s, want %s", c.name, got, c.want)
		}
		if c.weight > 0 && strings.Contains(c.want, "canary") {
			if got := steeredRouteWeight(rt, svc); got != c.weight {
				t.Errorf("%s: read back weight %d, want %d", c.name, got, c.weight)
			}
		}
		// Steering again to the same weight changes nothing.
		again := rt.DeepCopy()
		_ = steerHTTPRoute(again, svc, c.weight)
		if got := weights(again.Spec.Rules[0].BackendRefs); got != c.want {
			t.Errorf("%s: steered twice: %s, want %s", c.name, got, c.want)
		}
	}
}

// TestSteerHTTPRouteLeavesTheRestAsWritten: matches, filters, other rules
// and the parents stay as the user wrote them, and a weight too large to
// scale fails without changing anything.
func TestSteerHTTPRouteLeavesTheRestAsWritten(t *testing.T) {
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "reviews", Namespace: "shop"}}
	rt := &gwv1.HTTPRoute{ObjectMeta: metav1.ObjectMeta{Name: "r", Namespace: "shop"}}
	rt.Spec.ParentRefs = []gwv1.ParentReference{serviceParent("reviews")}
	rt.Spec.Rules = []gwv1.HTTPRouteRule{
		{
			Matches:     []gwv1.HTTPRouteMatch{{Headers: []gwv1.HTTPHeaderMatch{{Name: "x-team", Value: "beta"}}}},
			BackendRefs: []gwv1.HTTPBackendRef{ref("reviews-beta", 0)},
		},
		{
			Filters:     []gwv1.HTTPRouteFilter{{Type: gwv1.HTTPRouteFilterRequestHeaderModifier, RequestHeaderModifier: &gwv1.HTTPHeaderFilter{Set: []gwv1.HTTPHeader{{Name: "x-a", Value: "b"}}}}},
			BackendRefs: []gwv1.HTTPBackendRef{ref("reviews", 0)},
		},
	}
	before := rt.DeepCopy()
	if err := steerHTTPRoute(rt, svc, 40); err != nil {
		t.Fatal(err)
	}
	if got := weights(rt.Spec.Rules[0].BackendRefs); got != "reviews-beta" {
		t.Errorf("the first rule's backends: %s", got)
	}
	if len(rt.Spec.Rules[0].Matches) != 1 || len(rt.Spec.Rules[1].Filters) != 1 || len(rt.Spec.ParentRefs) != 1 {
		t.Errorf("matches, filters or parents changed: %+v", rt.Spec)
	}
	patch, err := steerHTTPRoutePatch(before, withRecord(rt, 40))
	if err != nil {
		t.Fatal(err)
	}
	data, _ := patch.Data(rt)
	if strings.Contains(string(data), "/spec/rules/0") || !strings.Contains(string(data), "/spec/rules/1/backendRefs") {
		t.Errorf("the patch touches more than the steered rule: %s", data)
	}

	huge := &gwv1.HTTPRoute{ObjectMeta: metav1.ObjectMeta{Name: "r", Namespace: "shop"}}
	huge.Spec.Rules = []gwv1.HTTPRouteRule{{BackendRefs: []gwv1.HTTPBackendRef{ref("reviews", 20000)}}}
	if err := steerHTTPRoute(huge, svc, 20); err == nil || !strings.Contains(err.Error(), "above 10000") {
		t.Errorf("a weight of 20000: %v", err)
	}
	if got := weights(huge.Spec.Rules[0].BackendRefs); got != "reviews=20000" {
		t.Errorf("a failed steer changed the rule: %s", got)
	}
}

func withRecord(rt *gwv1.HTTPRoute, w int32) *gwv1.HTTPRoute {
	rt = rt.DeepCopy()
	setRecordedRouteWeight(rt, w)
	return rt
}

// TestReleaseHTTPRoutePatch: the release gives back the route as the user
// wrote it, on the version read only, and is nil when there is nothing to
// give back.
func TestReleaseHTTPRoutePatch(t *testing.T) {
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "reviews", Namespace: "shop"}}
	user := &gwv1.HTTPRoute{ObjectMeta: metav1.ObjectMeta{Name: "r", Namespace: "shop", ResourceVersion: "7"}}
	user.Spec.Rules = []gwv1.HTTPRouteRule{{BackendRefs: []gwv1.HTTPBackendRef{ref("reviews", 3), ref("ratings", 0)}}}
	if p, err := ReleaseHTTPRoutePatch(user, svc); err != nil || p != nil {
		t.Fatalf("nothing steered: patch %s, %v", p, err)
	}
	steered := user.DeepCopy()
	if err := steerHTTPRoute(steered, svc, 20); err != nil {
		t.Fatal(err)
	}
	setRecordedRouteWeight(steered, 20)
	p, err := ReleaseHTTPRoutePatch(steered, svc)
	if err != nil || p == nil {
		t.Fatalf("patch %s, %v", p, err)
	}
	doc, _ := json.Marshal(steered)
	decoded, err := jsonpatch.DecodePatch(p)
	if err != nil {
		t.Fatal(err)
	}
	out, err := decoded.Apply(doc)
	if err != nil {
		t.Fatalf("apply %s: %v", p, err)
	}
	var back gwv1.HTTPRoute
	if err := json.Unmarshal(out, &back); err != nil {
		t.Fatal(err)
	}
	if got := weights(back.Spec.Rules[0].BackendRefs); got != "reviews=3 ratings" {
		t.Errorf("given back: %s", got)
	}
	if _, ok := back.Annotations[AnnotationWeight]; ok {
		t.Errorf("the record of the weight is left: %v", back.Annotations)
	}
	if !strings.Contains(string(p), `"/metadata/resourceVersion","value":"7"`) {
		t.Errorf("the patch is not on the version read: %s", p)
	}
}

func TestGeneratedHTTPRoute(t *testing.T) {
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "reviews", Namespace: "shop", UID: "u1"}}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "reviews", Namespace: "shop"},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 9080}}}}
	rt, err := generatedHTTPRoute(d, svc, routing{weight: 25, mirror: 0, match: nil})
	if err != nil {
		t.Fatal(err)
	}
	if rt.Name != "reviews" || !ownedBy(rt, d) || !attachedTo(rt, svc) {
		t.Errorf("name %s, owned %v, attached %v", rt.Name, ownedBy(rt, d), attachedTo(rt, svc))
	}
	if got := weights(rt.Spec.Rules[0].BackendRefs); got != "reviews=75 reviews-canary=25" {
		t.Errorf("weight 25: %s", got)
	}
	if rt.Annotations[AnnotationWeight] != "25" {
		t.Errorf("record %v", rt.Annotations)
	}
	if rt, _ := generatedHTTPRoute(d, svc, routing{weight: 0, mirror: 0, match: nil}); weights(rt.Spec.Rules[0].BackendRefs) != "reviews" {
		t.Errorf("weight 0: %s", weights(rt.Spec.Rules[0].BackendRefs))
	}
	svc.Spec.Ports = append(svc.Spec.Ports, corev1.ServicePort{Name: "grpc", Port: 9090})
	if _, err := generatedHTTPRoute(d, svc, routing{weight: 0, mirror: 0, match: nil}); err == nil || !strings.Contains(err.Error(), "has 2 ports") {
		t.Errorf("two ports: %v", err)
	}
}

func TestAttachedTo(t *testing.T) {
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "reviews", Namespace: "shop"}}
	route := func(ns string, p gwv1.ParentReference) *gwv1.HTTPRoute {
		rt := &gwv1.HTTPRoute{ObjectMeta: metav1.ObjectMeta{Name: "r", Namespace: ns}}
		rt.Spec.ParentRefs = []gwv1.ParentReference{p}
		return rt
	}
	inShop := serviceParent("reviews")
	inShop.Namespace = ptr.To(gwv1.Namespace("shop"))
	gateway := gwv1.ParentReference{Name: "reviews"} // group and kind unset: a Gateway
	for _, c := range []struct {
		name string
		rt   *gwv1.HTTPRoute
		want bool
	}{
		{"the Service's mesh route", route("shop", serviceParent("reviews")), true},
		{"from another namespace, naming it", route("edge", inShop), true},
		{"from another namespace, not naming it", route("edge", serviceParent("reviews")), false},
		{"another Service", route("shop", serviceParent("ratings")), false},
		{"a Gateway of the same name", route("shop", gateway), false},
	} {
		if got := attachedTo(c.rt, svc); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

// TestABRoutes: with a match and a weight above 0 the generated routes of
// both routers send the matching requests to the canary and the rest to
// stable, and read back as weight 100; at weight 0 they are the canary
// strategy's (all to stable).
func TestABRoutes(t *testing.T) {
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "reviews", Namespace: "shop", UID: "u1"}}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "reviews", Namespace: "shop"},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 9080}}}}
	match := []contract.Match{
		{Headers: map[string]contract.StringMatch{"x-canary": {Exact: "insider"}, "user-agent": {Prefix: "Mozilla/"}}},
		{QueryParams: map[string]contract.StringMatch{"beta": {Regex: "1|yes"}}},
	}

	vs := generatedVirtualService(d, svc, routing{weight: 100, mirror: 0, match: match})
	if len(vs.Spec.Http) != 2 || len(vs.Spec.Http[0].Match) != 2 || vs.Spec.Http[0].Route[0].Destination.Host != "reviews-canary" ||
		vs.Spec.Http[1].Match != nil || vs.Spec.Http[1].Route[0].Destination.Host != "reviews" {
		t.Fatalf("ab VirtualService: %v", vs.Spec.Http)
	}
	if h := vs.Spec.Http[0].Match[0].Headers; h["x-canary"].GetExact() != "insider" || h["user-agent"].GetPrefix() != "Mozilla/" {
		t.Errorf("headers %v", h)
	}
	if q := vs.Spec.Http[0].Match[1].QueryParams; q["beta"].GetRegex() != "1|yes" {
		t.Errorf("query parameters %v", q)
	}
	if !routesToCanary(vs, svc) || routesToCanary(generatedVirtualService(d, svc, routing{weight: 0, mirror: 0, match: match}), svc) {
		t.Errorf("routesToCanary does not tell the match route apart")
	}
	if zero := generatedVirtualService(d, svc, routing{weight: 0, mirror: 0, match: match}); len(zero.Spec.Http) != 1 || zero.Spec.Http[0].Match != nil {
		t.Errorf("ab at weight 0: %v", zero.Spec.Http)
	}

	rt, err := generatedHTTPRoute(d, svc, routing{weight: 100, mirror: 0, match: match})
	if err != nil {
		t.Fatal(err)
	}
	if len(rt.Spec.Rules) != 2 || weights(rt.Spec.Rules[0].BackendRefs) != "reviews-canary" || weights(rt.Spec.Rules[1].BackendRefs) != "reviews" {
		t.Fatalf("ab HTTPRoute rules: %+v", rt.Spec.Rules)
	}
	m := rt.Spec.Rules[0].Matches
	if len(m) != 2 || len(m[0].Headers) != 2 || m[0].Headers[0].Name != "user-agent" || *m[0].Headers[0].Type != gwv1.HeaderMatchRegularExpression ||
		m[0].Headers[0].Value != "Mozilla/.*" || m[0].Headers[1].Name != "x-canary" || *m[0].Headers[1].Type != gwv1.HeaderMatchExact {
		t.Errorf("header matches %+v", m)
	}
	if len(m[1].QueryParams) != 1 || *m[1].QueryParams[0].Type != gwv1.QueryParamMatchRegularExpression || m[1].QueryParams[0].Value != "1|yes" {
		t.Errorf("query matches %+v", m[1].QueryParams)
	}
	if !ruleToCanary(rt, svc) {
		t.Errorf("ruleToCanary misses the match rule")
	}
	if zero, _ := generatedHTTPRoute(d, svc, routing{weight: 0, mirror: 0, match: match}); ruleToCanary(zero, svc) || len(zero.Spec.Rules) != 1 {
		t.Errorf("ab at weight 0: %+v", zero.Spec.Rules)
	}
}

// TestMirroredRoutes: a mirror in the generated routes copies the chosen
// share of the requests that go to the Service (the last route or rule:
// the only one, or the one after an ab match) to the canary, with
// Istio's mirror and mirrorPercentage or the Gateway API's RequestMirror
// filter, and reads back as that share; no mirror reads back as 0.
func TestMirroredRoutes(t *testing.T) {
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "reviews", Namespace: "shop", UID: "u1"}}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "reviews", Namespace: "shop"},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 9080}}}}
	match := []contract.Match{{Headers: map[string]contract.StringMatch{"x-canary": {Exact: "insider"}}}}

	for _, c := range []struct {
		name          string
		weight        int32
		match         []contract.Match
		routes, index int
	}{{"weight 0", 0, nil, 1, 0}, {"ab", 100, match, 2, 1}} {
		vs := generatedVirtualService(d, svc, routing{weight: c.weight, mirror: 30, match: c.match})
		if len(vs.Spec.Http) != c.routes {
			t.Fatalf("%s: VirtualService routes %v", c.name, vs.Spec.Http)
		}
		r := vs.Spec.Http[c.index]
		if r.Mirror.GetHost() != "reviews-canary" || r.MirrorPercentage.GetValue() != 30 || r.Route[0].Destination.Host != "reviews" {
			t.Errorf("%s: the Service's route %v does not mirror 30%% to the canary", c.name, r)
		}
		if got := mirroredShare(vs, svc); got != 30 {
			t.Errorf("%s: mirroredShare %d, want 30", c.name, got)
		}
		rt, err := generatedHTTPRoute(d, svc, routing{weight: c.weight, mirror: 30, match: c.match})
		if err != nil {
			t.Fatal(err)
		}
		f := rt.Spec.Rules[c.index].Filters
		if len(rt.Spec.Rules) != c.routes || len(f) != 1 || f[0].Type != gwv1.HTTPRouteFilterRequestMirror ||
			f[0].RequestMirror.BackendRef.Name != "reviews-canary" || *f[0].RequestMirror.BackendRef.Port != 9080 || *f[0].RequestMirror.Percent != 30 {
			t.Errorf("%s: HTTPRoute rules %+v do not mirror 30%% to the canary", c.name, rt.Spec.Rules)
		}
		if got := mirroredRouteShare(rt, svc); got != 30 {
			t.Errorf("%s: mirroredRouteShare %d, want 30", c.name, got)
		}
	}
	if got := mirroredShare(generatedVirtualService(d, svc, routing{weight: 20, mirror: 0, match: nil}), svc); got != 0 {
		t.Errorf("no mirror reads as %d%%", got)
	}
	rt, _ := generatedHTTPRoute(d, svc, routing{weight: 0, mirror: 0, match: nil})
	if got := mirroredRouteShare(rt, svc); got != 0 {
		t.Errorf("no mirror reads as %d%%", got)
	}
	rt.Spec.Rules[0].Filters = []gwv1.HTTPRouteFilter{{Type: gwv1.HTTPRouteFilterRequestMirror, RequestMirror: &gwv1.HTTPRequestMirrorFilter{
		BackendRef: serviceBackend("reviews-canary", 9080), Fraction: &gwv1.Fraction{Numerator: 1, Denominator: ptr.To[int32](3)}}}}
	if got := mirroredRouteShare(rt, svc); got != 34 {
		t.Errorf("a fraction of 1/3 reads as %d%%, want 34 (rounded up)", got)
	}
	rt.Spec.Rules[0].Filters[0].RequestMirror.Fraction = nil
	if got := mirroredRouteShare(rt, svc); got != 100 {
		t.Errorf("a mirror without a share reads as %d%%, want 100", got)
	}
}

// TestStickyRoutes: with canary.io/sticky and a weight, the generated
// routes answer from the canary with Set-Cookie <cookie>=<revision> on
// the weighted route, and send the requests carrying that cookie (and no
// other revision's) to the canary first; the weight reads back as
// before; at weight 0 the sticky route is gone.
func TestStickyRoutes(t *testing.T) {
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "reviews", Namespace: "shop", UID: "u1"}}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "reviews", Namespace: "shop"},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 9080}}}}
	r := routing{weight: 20, cookie: "canary-session", revision: "5d8f7c"}
	re := regexp.MustCompile(r.stickyRegex())
	for header, want := range map[string]bool{
		"canary-session=5d8f7c": true, "a=1; canary-session=5d8f7c": true, "a=1;canary-session=5d8f7c; b=2": true,
		"canary-session=0a0a0a": false, "xcanary-session=5d8f7c": false, "canary-session=5d8f7cx": false, "": false,
	} {
		if re.MatchString(header) != want {
			t.Errorf("Cookie %q: matched %v, want %v", header, !want, want)
		}
	}

	vs := generatedVirtualService(d, svc, r)
	if len(vs.Spec.Http) != 2 || vs.Spec.Http[0].Match[0].Headers["cookie"].GetRegex() != r.stickyRegex() ||
		vs.Spec.Http[0].Route[0].Destination.Host != "reviews-canary" {
		t.Fatalf("sticky VirtualService: %v", vs.Spec.Http)
	}
	weighted := vs.Spec.Http[1].Route
	if len(weighted) != 2 || weighted[1].Destination.Host != "reviews-canary" || weighted[1].Weight != 20 ||
		weighted[1].Headers.GetResponse().GetAdd()["Set-Cookie"] != "canary-session=5d8f7c; Path=/" || weighted[0].Headers != nil {
		t.Errorf("the weighted route %v does not set the cookie on the canary's answers only", weighted)
	}
	if got := steeredWeight(vs, svc); got != 20 {
		t.Errorf("a sticky VirtualService reads as weight %d, want 20", got)
	}
	r.weight = 0
	if zero := generatedVirtualService(d, svc, r); len(zero.Spec.Http) != 1 {
		t.Errorf("sticky at weight 0: %v", zero.Spec.Http)
	}

	r.weight = 20
	rt, err := generatedHTTPRoute(d, svc, r)
	if err != nil {
		t.Fatal(err)
	}
	if len(rt.Spec.Rules) != 2 || weights(rt.Spec.Rules[0].BackendRefs) != "reviews-canary" ||
		rt.Spec.Rules[0].Matches[0].Headers[0].Value != r.stickyRegex() || *rt.Spec.Rules[0].Matches[0].Headers[0].Type != gwv1.HeaderMatchRegularExpression {
		t.Fatalf("sticky HTTPRoute rules: %+v", rt.Spec.Rules)
	}
	refs := rt.Spec.Rules[1].BackendRefs
	if weights(refs) != "reviews=80 reviews-canary=20" || len(refs[0].Filters) != 0 || len(refs[1].Filters) != 1 ||
		refs[1].Filters[0].ResponseHeaderModifier.Add[0] != (gwv1.HTTPHeader{Name: "Set-Cookie", Value: "canary-session=5d8f7c; Path=/"}) {
		t.Errorf("the weighted rule %+v does not set the cookie on the canary's answers only", refs)
	}
	if got := steeredRouteWeight(rt, svc); got != 20 {
		t.Errorf("a sticky HTTPRoute reads as weight %d, want 20", got)
	}
	r.weight = 0
	if zero, _ := generatedHTTPRoute(d, svc, r); len(zero.Spec.Rules) != 1 {
		t.Errorf("sticky at weight 0: %+v", zero.Spec.Rules)
	}
}
