package stepper

import (
	"strings"

	networkingv1 "istio.io/api/networking/v1"
	istionetv1 "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
)

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
