package stepper

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/canary-io/canary/contract"
)

// The Gateway API router (canary.io/router: gateway-api, or HTTPRoutes
// named in canary.io/httproute) steers HTTPRoutes the way the Istio
// router steers VirtualServices: a route generated for the Service, or
// the backendRefs to the Service in the user's routes, split between the
// Service and <service>-canary; everything else as the user wrote it.
//
// Gateway API weights are proportions within a rule, not percents (a
// lone backendRef's weight is 1 by default): a rule that carries a canary
// share is scaled by weightScale, so that a percent of a backendRef of
// weight 1 is a whole number. Each backendRef to the Service of weight W
// becomes W×(100-w) to the Service and W×w to the canary, and every
// other backendRef of the rule W×100: the proportions the user wrote
// hold between them. Given back, the rule is divided by weightScale
// again.
const weightScale = 100

// maxUserWeight is the largest backendRef weight the user's rule may
// hold to be steered: scaled, it stays within the API's bound (1,000,000).
const maxUserWeight = 1_000_000 / weightScale

// generatedHTTPRoute is the HTTPRoute <service> the stepper owns when the
// Gateway API router is chosen and the user names none: attached to the
// Service (the Service's mesh route, as sidecars and ambient's waypoints
// serve it), all traffic to <service>, or weight percent to
// <service>-canary and the rest to <service>. A Service's backendRef needs
// its port, so the Service must have exactly one.
//
// With match (an ab analysis) and a weight above 0, a first rule sends the
// matching requests to <service>-canary and the second everything else to
// <service> (the Gateway API ranks a rule with header or query matches
// before one without).
func generatedHTTPRoute(d *appsv1.Deployment, svc *corev1.Service, r routing) (*gwv1.HTTPRoute, error) {
	if len(svc.Spec.Ports) != 1 {
		return nil, fmt.Errorf("the Service %s has %d ports, and a generated HTTPRoute routes one: name an HTTPRoute for each port in canary.io/httproute", svc.Name, len(svc.Spec.Ports))
	}
	rt := &gwv1.HTTPRoute{
		ObjectMeta: metav1.ObjectMeta{
			Name: svc.Name, Namespace: svc.Namespace,
			OwnerReferences: []metav1.OwnerReference{ownerRef(d)},
		},
	}
	rt.Spec.ParentRefs = []gwv1.ParentReference{serviceParent(svc.Name)}
	port := svc.Spec.Ports[0].Port
	stable := gwv1.HTTPBackendRef{BackendRef: gwv1.BackendRef{BackendObjectReference: serviceBackend(svc.Name, port)}}
	canary := gwv1.HTTPBackendRef{BackendRef: gwv1.BackendRef{BackendObjectReference: serviceBackend(CanaryName(svc.Name), port)}}
	rt.Spec.Rules = []gwv1.HTTPRouteRule{{BackendRefs: []gwv1.HTTPBackendRef{stable}}}
	switch {
	case len(r.match) > 0 && r.weight > 0:
		rt.Spec.Rules = []gwv1.HTTPRouteRule{{Matches: gatewayMatches(r.match), BackendRefs: []gwv1.HTTPBackendRef{canary}}, rt.Spec.Rules[0]}
	default:
		if err := steerHTTPRoute(rt, svc, r.weight); err != nil {
			return nil, err
		}
		if r.sticky() && r.weight > 0 {
			// The weighted rule's canary sets the cookie; a first rule
			// sends the requests carrying it to the canary.
			refs := rt.Spec.Rules[0].BackendRefs
			for i := range refs {
				if string(refs[i].Name) == CanaryName(svc.Name) {
					refs[i].Filters = []gwv1.HTTPRouteFilter{{Type: gwv1.HTTPRouteFilterResponseHeaderModifier,
						ResponseHeaderModifier: &gwv1.HTTPHeaderFilter{Add: []gwv1.HTTPHeader{{Name: "Set-Cookie", Value: r.setCookie()}}}}}
				}
			}
			cookie := gwv1.HTTPHeaderMatch{Type: ptr.To(gwv1.HeaderMatchRegularExpression), Name: "cookie", Value: r.stickyRegex()}
			rt.Spec.Rules = []gwv1.HTTPRouteRule{{Matches: []gwv1.HTTPRouteMatch{{Headers: []gwv1.HTTPHeaderMatch{cookie}}}, BackendRefs: []gwv1.HTTPBackendRef{canary}}, rt.Spec.Rules[0]}
		}
	}
	if mirror := r.mirror; mirror > 0 {
		// The rule that sends requests to the Service (the last one).
		last := &rt.Spec.Rules[len(rt.Spec.Rules)-1]
		last.Filters = append(last.Filters, gwv1.HTTPRouteFilter{
			Type: gwv1.HTTPRouteFilterRequestMirror,
			RequestMirror: &gwv1.HTTPRequestMirrorFilter{
				BackendRef: canary.BackendObjectReference,
				Percent:    ptr.To(mirror),
			},
		})
	}
	setRecordedRouteWeight(rt, r.weight)
	return rt, nil
}

// mirroredRouteShare is the percentage of its requests an HTTPRoute's
// rule copies to the Service's canary (a RequestMirror filter: its
// percent, its fraction rounded up, or 100), the largest over its rules;
// 0 when none does.
func mirroredRouteShare(rt *gwv1.HTTPRoute, svc *corev1.Service) int32 {
	var share int32
	for _, rule := range rt.Spec.Rules {
		for _, f := range rule.Filters {
			m := f.RequestMirror
			if f.Type != gwv1.HTTPRouteFilterRequestMirror || m == nil || !backendIs(m.BackendRef, rt.Namespace, svc, CanaryName(svc.Name)) {
				continue
			}
			p := int32(100)
			switch {
			case m.Percent != nil:
				p = *m.Percent
			case m.Fraction != nil && ptr.Deref(m.Fraction.Denominator, 100) > 0:
				p = int32(math.Ceil(100 * float64(m.Fraction.Numerator) / float64(ptr.Deref(m.Fraction.Denominator, 100))))
			}
			share = max(share, p)
		}
	}
	return share
}

// gatewayMatches are canary.io/match as Gateway API matches: exact
// conditions as Exact, prefixes and regexes as RegularExpression (the
// API has no prefix match for headers), in name order.
func gatewayMatches(ms []contract.Match) []gwv1.HTTPRouteMatch {
	out := make([]gwv1.HTTPRouteMatch, 0, len(ms))
	for _, m := range ms {
		var r gwv1.HTTPRouteMatch
		for _, name := range slices.Sorted(maps.Keys(m.Headers)) {
			kind, value := gatewayValue(m.Headers[name])
			r.Headers = append(r.Headers, gwv1.HTTPHeaderMatch{Type: ptr.To(gwv1.HeaderMatchType(kind)), Name: gwv1.HTTPHeaderName(name), Value: value})
		}
		for _, name := range slices.Sorted(maps.Keys(m.QueryParams)) {
			kind, value := gatewayValue(m.QueryParams[name])
			r.QueryParams = append(r.QueryParams, gwv1.HTTPQueryParamMatch{Type: ptr.To(gwv1.QueryParamMatchType(kind)), Name: gwv1.HTTPHeaderName(name), Value: value})
		}
		out = append(out, r)
	}
	return out
}

func gatewayValue(m contract.StringMatch) (kind, value string) {
	if m.Exact != "" {
		return "Exact", m.Exact
	}
	return "RegularExpression", m.AsRegex()
}

// ruleToCanary reports whether any rule of an HTTPRoute sends requests
// to the Service's canary: an ab analysis' weight (100) is routed.
func ruleToCanary(rt *gwv1.HTTPRoute, svc *corev1.Service) bool {
	for _, rule := range rt.Spec.Rules {
		for _, r := range rule.BackendRefs {
			if backendIs(r.BackendObjectReference, rt.Namespace, svc, CanaryName(svc.Name)) && refWeight(r) > 0 {
				return true
			}
		}
	}
	return false
}

// serviceParent is the parentRef that attaches a route to a Service (the
// Gateway API's mesh routes: group "" and kind Service).
func serviceParent(name string) gwv1.ParentReference {
	return gwv1.ParentReference{Group: ptr.To(gwv1.Group("")), Kind: ptr.To(gwv1.Kind("Service")), Name: gwv1.ObjectName(name)}
}

func serviceBackend(name string, port int32) gwv1.BackendObjectReference {
	return gwv1.BackendObjectReference{Group: ptr.To(gwv1.Group("")), Kind: ptr.To(gwv1.Kind("Service")), Name: gwv1.ObjectName(name), Port: ptr.To(port)}
}

// attachedTo reports whether an HTTPRoute is attached to the Service: a
// parentRef of group "" and kind Service naming it, in the route's
// namespace or the one named.
func attachedTo(rt *gwv1.HTTPRoute, svc *corev1.Service) bool {
	for _, p := range rt.Spec.ParentRefs {
		if p.Group == nil || *p.Group != "" || p.Kind == nil || *p.Kind != "Service" || string(p.Name) != svc.Name {
			continue
		}
		ns := rt.Namespace
		if p.Namespace != nil {
			ns = string(*p.Namespace)
		}
		if ns == svc.Namespace {
			return true
		}
	}
	return false
}

// backendIs reports whether a backendRef of a route in namespace routeNS
// is the Service name (the user's, or with name its canary).
func backendIs(ref gwv1.BackendObjectReference, routeNS string, svc *corev1.Service, name string) bool {
	if ref.Group != nil && *ref.Group != "" || ref.Kind != nil && *ref.Kind != "Service" || string(ref.Name) != name {
		return false
	}
	ns := routeNS
	if ref.Namespace != nil {
		ns = string(*ref.Namespace)
	}
	return ns == svc.Namespace
}

// refWeight is a backendRef's weight, 1 when unset (the API's default).
func refWeight(r gwv1.HTTPBackendRef) int64 {
	if r.Weight == nil {
		return 1
	}
	return int64(*r.Weight)
}

// steerHTTPRoute sets the canary's weight in an HTTPRoute: in every rule,
// each backendRef to the Service is split between the Service and its
// canary (see weightScale); every other rule, match, filter and backendRef
// is left as the user wrote it. Splitting starts from the user's own
// weights (the canary share merged back and the scale undone first), so
// it is idempotent and survives restarts. It fails, changing nothing,
// when a rule holds a weight too large to scale.
//
// Example: a rule [reviews (weight unset)] at weight 20 becomes
// [reviews 80, reviews-canary 20]; a rule [reviews 3, ratings 1] at
// weight 50 becomes [reviews 150, reviews-canary 150, ratings 100].
func steerHTTPRoute(rt *gwv1.HTTPRoute, svc *corev1.Service, weight int32) error {
	rules := make([][]gwv1.HTTPBackendRef, len(rt.Spec.Rules))
	for i, rule := range rt.Spec.Rules {
		refs, err := steerRule(rule.BackendRefs, rt.Namespace, svc, weight)
		if err != nil {
			return fmt.Errorf("HTTPRoute %s rule %d: %w", rt.Name, i+1, err)
		}
		rules[i] = refs
	}
	for i := range rt.Spec.Rules {
		rt.Spec.Rules[i].BackendRefs = rules[i]
	}
	return nil
}

func steerRule(refs []gwv1.HTTPBackendRef, routeNS string, svc *corev1.Service, weight int32) ([]gwv1.HTTPBackendRef, error) {
	canaryName := CanaryName(svc.Name)
	steerable, scaled := false, false
	for _, r := range refs {
		steerable = steerable || backendIs(r.BackendObjectReference, routeNS, svc, svc.Name)
		scaled = scaled || backendIs(r.BackendObjectReference, routeNS, svc, canaryName)
	}
	if !steerable || (weight <= 0 && !scaled) {
		return refs, nil // nothing to steer, or nothing steered yet: untouched
	}
	// The user's own rule: canary shares merged back into the Service's
	// backendRef of the same port, the scale undone (a weight of 1 comes
	// back unset, the API's default).
	canaryShare := map[int32]int64{}
	var base []gwv1.HTTPBackendRef
	for _, r := range refs {
		if backendIs(r.BackendObjectReference, routeNS, svc, canaryName) {
			canaryShare[ptr.Deref(r.Port, 0)] += refWeight(r)
			continue
		}
		base = append(base, *r.DeepCopy())
	}
	for i, r := range base {
		if !scaled {
			break // as the user wrote it
		}
		w := refWeight(r)
		if backendIs(r.BackendObjectReference, routeNS, svc, svc.Name) {
			w += canaryShare[ptr.Deref(r.Port, 0)]
			canaryShare[ptr.Deref(r.Port, 0)] = 0
		}
		base[i].Weight = nil
		if w = (w + weightScale/2) / weightScale; w != 1 {
			base[i].Weight = ptr.To(int32(w))
		}
	}
	if weight <= 0 {
		return base, nil
	}
	var out []gwv1.HTTPBackendRef
	for _, r := range base {
		w := refWeight(r)
		if w > maxUserWeight {
			return nil, fmt.Errorf("a backendRef's weight %d is above %d, the largest that can be split in percent", w, maxUserWeight)
		}
		if !backendIs(r.BackendObjectReference, routeNS, svc, svc.Name) {
			r.Weight = ptr.To(int32(w * weightScale))
			out = append(out, r)
			continue
		}
		stable, canary := *r.DeepCopy(), *r.DeepCopy()
		stable.Weight = ptr.To(int32(w * int64(100-weight)))
		canary.Name = gwv1.ObjectName(canaryName)
		canary.Weight = ptr.To(int32(w * int64(weight)))
		out = append(out, stable, canary)
	}
	return out, nil
}

// steeredRouteWeight reads the canary's share (percent) of the first
// backendRef to the Service in an HTTPRoute.
func steeredRouteWeight(rt *gwv1.HTTPRoute, svc *corev1.Service) int32 {
	for _, rule := range rt.Spec.Rules {
		var stable, canary int64
		found := false
		for _, r := range rule.BackendRefs {
			switch {
			case backendIs(r.BackendObjectReference, rt.Namespace, svc, CanaryName(svc.Name)):
				canary += refWeight(r)
			case backendIs(r.BackendObjectReference, rt.Namespace, svc, svc.Name):
				stable += refWeight(r)
				found = true
			}
		}
		if found && stable+canary > 0 {
			return int32((canary*100 + (stable+canary)/2) / (stable + canary))
		}
	}
	return 0
}

func setRecordedRouteWeight(rt *gwv1.HTTPRoute, weight int32) {
	if rt.Annotations == nil {
		rt.Annotations = map[string]string{}
	}
	rt.Annotations[AnnotationWeight] = fmt.Sprint(weight)
}

// httpRouteOps are the operations that replace, in the HTTPRoute read,
// the backendRefs of the rules that steering changed, on the version read
// only (see routeOps).
func httpRouteOps(read, steered *gwv1.HTTPRoute) ([]jsonPatchOp, error) {
	ops := []jsonPatchOp{{Op: "replace", Path: "/metadata/resourceVersion", Value: read.ResourceVersion}}
	if len(read.Spec.Rules) != len(steered.Spec.Rules) {
		return nil, fmt.Errorf("steering changed the number of rules (%d → %d)", len(read.Spec.Rules), len(steered.Spec.Rules))
	}
	for i := range steered.Spec.Rules {
		before, _ := json.Marshal(read.Spec.Rules[i].BackendRefs)
		after, err := json.Marshal(steered.Spec.Rules[i].BackendRefs)
		if err != nil {
			return nil, err
		}
		if string(before) != string(after) {
			ops = append(ops, jsonPatchOp{Op: "replace", Path: fmt.Sprintf("/spec/rules/%d/backendRefs", i), Value: json.RawMessage(after)})
		}
	}
	return ops, nil
}

// steerHTTPRoutePatch is the JSON patch that turns the user's HTTPRoute
// read into steered: only the backendRefs of the rules that changed and
// the record of the weight, on the version read only. Everything else,
// fields this version of the Gateway API types does not know included,
// is left as the user wrote it.
func steerHTTPRoutePatch(read, steered *gwv1.HTTPRoute) (client.Patch, error) {
	ops, err := httpRouteOps(read, steered)
	if err != nil {
		return nil, err
	}
	return recordPatch(ops, read.Annotations, steered.Annotations[AnnotationWeight])
}

// ReleaseHTTPRoutePatch is the JSON patch (RFC 6902) that gives a user's
// HTTPRoute back without the analysis: every rule's canary share merged
// back into the Service's backendRef and the scale undone, and the
// system's record of the weight removed, on the version read only. It is
// nil when there is nothing to give back. kubectl canary release uses it
// once the controller is gone.
func ReleaseHTTPRoutePatch(rt *gwv1.HTTPRoute, svc *corev1.Service) ([]byte, error) {
	released := rt.DeepCopy()
	if err := steerHTTPRoute(released, svc, 0); err != nil {
		return nil, err
	}
	ops, err := httpRouteOps(rt, released)
	if err != nil {
		return nil, err
	}
	return releaseOps(ops, rt.Annotations)
}
