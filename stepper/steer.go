package stepper

import (
	"encoding/json"
	"fmt"
	"strings"

	networkingv1 "istio.io/api/networking/v1"
	istionetv1 "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// jsonPatchOp is one operation of a JSON patch (RFC 6902).
type jsonPatchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value,omitempty"`
}

// routeOps are the operations that replace, in the VirtualService read,
// the destination lists of the HTTP routes that steered changed, on the
// version read only: set in the patch, the apiserver applies it to that
// version and answers 409 Conflict otherwise, as to an update.
func routeOps(read, steered *istionetv1.VirtualService) ([]jsonPatchOp, error) {
	ops := []jsonPatchOp{{Op: "replace", Path: "/metadata/resourceVersion", Value: read.ResourceVersion}}
	if len(read.Spec.Http) != len(steered.Spec.Http) {
		return nil, fmt.Errorf("steering changed the number of HTTP routes (%d → %d)", len(read.Spec.Http), len(steered.Spec.Http))
	}
	for i := range steered.Spec.Http {
		before, _ := json.Marshal(read.Spec.Http[i].Route)
		after, err := json.Marshal(steered.Spec.Http[i].Route)
		if err != nil {
			return nil, err
		}
		if string(before) != string(after) {
			ops = append(ops, jsonPatchOp{Op: "replace", Path: fmt.Sprintf("/spec/http/%d/route", i), Value: json.RawMessage(after)})
		}
	}
	return ops, nil
}

// annotationPath is the JSON pointer of an annotation.
func annotationPath(key string) string {
	return "/metadata/annotations/" + strings.ReplaceAll(key, "/", "~1")
}

// steerPatch is the JSON patch (RFC 6902) that turns the user's
// VirtualService read into steered: it replaces only the destination
// lists of the HTTP routes that changed and the record of the weight, on
// the version read only (routeOps). Everything else in the object, fields
// this version of the Istio client does not know included, is left as the
// user wrote it.
func steerPatch(read, steered *istionetv1.VirtualService) (client.Patch, error) {
	ops, err := routeOps(read, steered)
	if err != nil {
		return nil, err
	}
	return recordPatch(ops, read.Annotations, steered.Annotations[AnnotationWeight])
}

// recordPatch is the JSON patch of a steered route object: ops (the
// version and the changed routes) and the record of the weight, added to
// the annotations read (created when there are none).
func recordPatch(ops []jsonPatchOp, read map[string]string, weight string) (client.Patch, error) {
	if read == nil {
		ops = append(ops, jsonPatchOp{Op: "add", Path: "/metadata/annotations", Value: map[string]string{}})
	}
	ops = append(ops, jsonPatchOp{Op: "add", Path: annotationPath(AnnotationWeight), Value: weight})
	data, err := json.Marshal(ops)
	if err != nil {
		return nil, err
	}
	return client.RawPatch(types.JSONPatchType, data), nil
}

// releaseOps ends the JSON patch that gives a route object back: ops
// (the version and the routes given back) and the record of the weight
// removed, if the annotations read hold one; nil when there is nothing
// to give back.
func releaseOps(ops []jsonPatchOp, read map[string]string) ([]byte, error) {
	if _, ok := read[AnnotationWeight]; ok {
		ops = append(ops, jsonPatchOp{Op: "remove", Path: annotationPath(AnnotationWeight)})
	}
	if len(ops) == 1 {
		return nil, nil // only the version: nothing to give back
	}
	return json.Marshal(ops)
}

// ReleasePatch is the JSON patch (RFC 6902) that gives a user's
// VirtualService back without the analysis: every route's canary share
// merged back into the Service's destination (as the user wrote it), and
// the system's record of the weight removed, on the version read only.
// Nothing else changes. It is nil when there is nothing to give back.
// kubectl canary release uses it once the controller is gone.
func ReleasePatch(vs *istionetv1.VirtualService, svc *corev1.Service) ([]byte, error) {
	released := vs.DeepCopy()
	steer(released, svc, 0)
	ops, err := routeOps(vs, released)
	if err != nil {
		return nil, err
	}
	return releaseOps(ops, vs.Annotations)
}

// steer sets the canary's weight in a user's VirtualService (one named in
// canary.io/virtualservice): in every HTTP route, each destination of the
// Service's host without a subset is split between that host and its
// canary; every other route, match, fault, retry and destination is left
// as the user wrote it. Splitting starts from the user's own weight (the
// canary share merged back first), so it is idempotent and survives
// restarts, and each route's weights keep their sum.
//
// Example: a route [reviews 80, ratings 20] at weight 25 becomes
// [reviews 60, reviews-canary 20, ratings 20]: 80 split as 80-20 and 20
// (20 = round(80 × 25 / 100)).
func steer(vs *istionetv1.VirtualService, svc *corev1.Service, weight int32) {
	for _, route := range vs.Spec.Http {
		route.Route = steerRoute(route.Route, svc, weight)
	}
}

func steerRoute(dsts []*networkingv1.HTTPRouteDestination, svc *corev1.Service, weight int32) []*networkingv1.HTTPRouteDestination {
	// Merge canary destinations back into their stable twins.
	var base []*networkingv1.HTTPRouteDestination
	canaryWeight := map[string]int32{}
	for _, d := range dsts {
		if d.Destination != nil && d.Destination.Subset == "" && isCanaryHost(d.Destination.Host, svc) {
			canaryWeight[stableHostOf(d.Destination.Host)] += d.Weight
			continue
		}
		base = append(base, d)
	}
	steerable := 0
	for _, d := range base {
		if steered(d, svc) {
			steerable++
		}
	}
	if steerable == 0 || (weight <= 0 && len(canaryWeight) == 0) {
		return dsts // nothing to steer, or nothing steered yet: untouched
	}
	var out []*networkingv1.HTTPRouteDestination
	for _, d := range base {
		if !steered(d, svc) {
			out = append(out, d)
			continue
		}
		total := d.Weight + canaryWeight[d.Destination.Host]
		if len(base) == 1 && total == 0 {
			total = 100 // a lone destination without a weight takes all traffic
		}
		stable := d.DeepCopy()
		canaryPart := int32((int64(total)*int64(weight) + 50) / 100)
		stable.Weight = total - canaryPart
		if weight <= 0 || canaryPart == 0 {
			if len(base) == 1 && stable.Weight == 100 {
				stable.Weight = 0 // as the user wrote it: a lone destination needs no weight
			}
			out = append(out, stable)
			continue
		}
		canary := d.DeepCopy()
		canary.Destination.Host = canaryHostOf(d.Destination.Host)
		canary.Weight = canaryPart
		out = append(out, stable, canary)
	}
	return out
}

// steeredWeight reads the canary's share (percent) of the first steered
// destination in a user's VirtualService.
func steeredWeight(vs *istionetv1.VirtualService, svc *corev1.Service) int32 {
	for _, route := range vs.Spec.Http {
		var stable, canary int32
		found := false
		for _, d := range route.Route {
			switch {
			case d.Destination == nil || d.Destination.Subset != "":
			case isCanaryHost(d.Destination.Host, svc):
				canary += d.Weight
			case steered(d, svc):
				stable += d.Weight
				found = true
			}
		}
		if found && stable+canary > 0 {
			return int32((int64(canary)*100 + int64(stable+canary)/2) / int64(stable+canary))
		}
	}
	return 0
}

func steered(d *networkingv1.HTTPRouteDestination, svc *corev1.Service) bool {
	return d.Destination != nil && d.Destination.Subset == "" && hostIs(d.Destination.Host, svc)
}

func isCanaryHost(host string, svc *corev1.Service) bool {
	canary := *svc
	canary.Name = CanaryName(svc.Name)
	return hostIs(host, &canary)
}

// canaryHostOf is the canary Service's host, in the form the user wrote
// the stable one: reviews → reviews-canary, reviews.ns.svc.cluster.local →
// reviews-canary.ns.svc.cluster.local.
func canaryHostOf(host string) string {
	name, rest, _ := strings.Cut(host, ".")
	if rest == "" {
		return CanaryName(name)
	}
	return CanaryName(name) + "." + rest
}

func stableHostOf(canaryHost string) string {
	name, rest, _ := strings.Cut(canaryHost, ".")
	name = strings.TrimSuffix(name, "-canary")
	if rest == "" {
		return name
	}
	return name + "." + rest
}
