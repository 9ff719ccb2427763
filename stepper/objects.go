package stepper

import (
	"fmt"
	"maps"
	"math"
	"regexp"

	networkingv1 "istio.io/api/networking/v1"
	istionetv1 "istio.io/client-go/pkg/apis/networking/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/canary-io/canary/contract"
	"github.com/canary-io/canary/stepper/plan"
)

// Labels and annotations the stepper puts on the objects it creates.
const (
	// LabelCanary sets the canary's pods apart from the stable ones: the
	// canary Deployment's selector and the canary Service select it.
	LabelCanary = "canary.io/canary"
	// LabelRevision on the canary's pod template names the revision its
	// pods run.
	LabelRevision = "canary.io/revision"
	// AnnotationWeight on a steered VirtualService records the canary
	// weight the stepper wrote in the same update, so that a change by
	// anyone else is told apart from the stepper's own.
	AnnotationWeight = "canary.io/routed-weight"
	// podTemplateHash is the label the Deployment controller gives each
	// ReplicaSet's pods; the pin adds the stable one to the Service.
	podTemplateHash = appsv1.DefaultDeploymentUniqueLabelKey
)

// CanaryName is the name of the canary copy of an object: <name>-canary.
func CanaryName(name string) string { return name + "-canary" }

// canaryDeployment is the desired <deployment>-canary: a copy of the
// Deployment's spec.template only (not its metadata labels, which GitOps
// tools would prune), plus the canary label on its pods and its selector,
// owned by the Deployment.
//
// Example: template labels {app: reviews, version: v2} → canary pods
// labelled {app: reviews, version: v2, canary.io/canary: "true",
// canary.io/revision: <rev>}, selector {app: reviews, canary.io/canary: "true"}.
func canaryDeployment(d *appsv1.Deployment, revision string, replicas int32) *appsv1.Deployment {
	tmpl := *d.Spec.Template.DeepCopy()
	tmpl.Labels = maps.Clone(tmpl.Labels)
	if tmpl.Labels == nil {
		tmpl.Labels = map[string]string{}
	}
	tmpl.Labels[LabelCanary] = "true"
	tmpl.Labels[LabelRevision] = revision
	selector := map[string]string{LabelCanary: "true"}
	if d.Spec.Selector != nil {
		for k, v := range d.Spec.Selector.MatchLabels {
			selector[k] = v
		}
	}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{
			Name: CanaryName(d.Name), Namespace: d.Namespace,
			Labels:          map[string]string{LabelCanary: "true"},
			OwnerReferences: []metav1.OwnerReference{ownerRef(d)},
		},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: selector},
			Template: tmpl,
		},
	}
}

// canaryService is the desired <service>-canary: the user's Service's
// ports, selecting only canary pods.
func canaryService(d *appsv1.Deployment, svc *corev1.Service) *corev1.Service {
	selector := maps.Clone(svc.Spec.Selector)
	delete(selector, podTemplateHash)
	if selector == nil {
		selector = map[string]string{}
	}
	selector[LabelCanary] = "true"
	ports := make([]corev1.ServicePort, len(svc.Spec.Ports))
	for i, p := range svc.Spec.Ports {
		ports[i] = corev1.ServicePort{Name: p.Name, Protocol: p.Protocol, Port: p.Port, TargetPort: p.TargetPort, AppProtocol: p.AppProtocol}
	}
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{
			Name: CanaryName(svc.Name), Namespace: svc.Namespace,
			Labels:          map[string]string{LabelCanary: "true"},
			OwnerReferences: []metav1.OwnerReference{ownerRef(d)},
		},
		Spec: corev1.ServiceSpec{Selector: selector, Ports: ports},
	}
}

// canaryDestinationRule is the desired DestinationRule <service>-canary: the
// traffic policy of the user's DestinationRule for <service>, if any, so the
// canary is reached under the same TLS mode, connection pool and outlier
// detection.
func canaryDestinationRule(d *appsv1.Deployment, svc *corev1.Service, user *istionetv1.DestinationRule) *istionetv1.DestinationRule {
	dr := &istionetv1.DestinationRule{
		ObjectMeta: metav1.ObjectMeta{
			Name: CanaryName(svc.Name), Namespace: svc.Namespace,
			Labels:          map[string]string{LabelCanary: "true"},
			OwnerReferences: []metav1.OwnerReference{ownerRef(d)},
		},
	}
	dr.Spec.Host = CanaryName(svc.Name)
	if user != nil && user.Spec.TrafficPolicy != nil {
		dr.Spec.TrafficPolicy = user.Spec.TrafficPolicy.DeepCopy()
	}
	return dr
}

// generatedVirtualService is the VirtualService <service> the stepper
// owns when the user names none: all traffic to <service>, or weight
// percent to <service>-canary and the rest to <service>. With match (an
// ab analysis) and a weight above 0: the matching requests to
// <service>-canary, first, and everything else to <service>.
func generatedVirtualService(d *appsv1.Deployment, svc *corev1.Service, r routing) *istionetv1.VirtualService {
	vs := &istionetv1.VirtualService{
		ObjectMeta: metav1.ObjectMeta{
			Name: svc.Name, Namespace: svc.Namespace,
			OwnerReferences: []metav1.OwnerReference{ownerRef(d)},
		},
	}
	vs.Spec.Hosts = []string{svc.Name}
	toCanary := []*networkingv1.HTTPRouteDestination{{Destination: &networkingv1.Destination{Host: CanaryName(svc.Name)}}}
	switch {
	case len(r.match) > 0 && r.weight > 0:
		vs.Spec.Http = []*networkingv1.HTTPRoute{
			{Name: "canary-match", Match: istioMatches(r.match), Route: toCanary},
			{Route: routeTo(svc.Name, 0)},
		}
	case r.sticky() && r.weight > 0:
		cookie := &networkingv1.StringMatch{MatchType: &networkingv1.StringMatch_Regex{Regex: r.stickyRegex()}}
		weighted := routeTo(svc.Name, r.weight)
		weighted[1].Headers = &networkingv1.Headers{Response: &networkingv1.Headers_HeaderOperations{Add: map[string]string{"Set-Cookie": r.setCookie()}}}
		vs.Spec.Http = []*networkingv1.HTTPRoute{
			{Name: "canary-sticky", Match: []*networkingv1.HTTPMatchRequest{{Headers: map[string]*networkingv1.StringMatch{"cookie": cookie}}}, Route: toCanary},
			{Route: weighted},
		}
	default:
		vs.Spec.Http = []*networkingv1.HTTPRoute{{Route: routeTo(svc.Name, r.weight)}}
	}
	if r.mirror > 0 {
		// The route that sends requests to the Service (the last one).
		last := vs.Spec.Http[len(vs.Spec.Http)-1]
		last.Mirror = &networkingv1.Destination{Host: CanaryName(svc.Name)}
		last.MirrorPercentage = &networkingv1.Percent{Value: float64(r.mirror)}
	}
	setRecordedWeight(vs, r.weight)
	return vs
}

// routing is what a generated route carries: the canary's weight and
// mirror (plan.Action), and what the analysis' settings add to it.
type routing struct {
	weight, mirror int32
	// match are canary.io/match (ab): with a weight, a first route sends
	// the matching requests to the canary.
	match []contract.Match
	// cookie is canary.io/sticky, revision names the analysis (its
	// revision and start): with a weight, the canary's answers set
	// cookie=revision and a first route sends the requests carrying it to
	// the canary.
	cookie, revision string
}

// routingFor is the routing of a SetWeight action in w's analysis. The
// sticky cookie's value names the analysis: its revision and start (a
// retry of the same revision is another analysis).
func routingFor(w *world, weight, mirror int32) routing {
	r := routing{weight: weight, mirror: mirror, match: w.settings.Match, cookie: w.settings.Sticky}
	if w.state.Revision != "" {
		r.revision = fmt.Sprintf("%s.%d", w.state.Revision, plan.AnalysisStart(w.state, w.obs.Now).Unix())
	}
	return r
}

func (r routing) sticky() bool { return r.cookie != "" && r.revision != "" }

// setCookie is the Set-Cookie the canary's answers carry on the weighted
// route: a session cookie for the whole site, naming the revision, so
// that a later analysis' route does not match it.
func (r routing) setCookie() string {
	return fmt.Sprintf("%s=%s; Path=/", r.cookie, r.revision)
}

// stickyRegex matches a Cookie header carrying the sticky cookie (RE2,
// the whole value; the cookie name and revision are plain tokens).
func (r routing) stickyRegex() string {
	return fmt.Sprintf("^(.*?; ?)?(%s=%s)(;.*)?$", regexp.QuoteMeta(r.cookie), regexp.QuoteMeta(r.revision))
}

// mirroredShare is the percentage of its requests a VirtualService's
// route copies to the Service's canary (Istio's mirror, 100 when no
// percentage is set), the largest over its routes; 0 when none does.
func mirroredShare(vs *istionetv1.VirtualService, svc *corev1.Service) int32 {
	var share int32
	for _, route := range vs.Spec.Http {
		if route.Mirror == nil || !isCanaryHost(route.Mirror.Host, svc) {
			continue
		}
		p := int32(100)
		if route.MirrorPercentage != nil {
			p = int32(math.Ceil(route.MirrorPercentage.Value))
		}
		share = max(share, p)
	}
	return share
}

// istioMatches are canary.io/match as Istio's HTTP match requests: the
// same format, field for field.
func istioMatches(ms []contract.Match) []*networkingv1.HTTPMatchRequest {
	out := make([]*networkingv1.HTTPMatchRequest, 0, len(ms))
	for _, m := range ms {
		r := &networkingv1.HTTPMatchRequest{}
		if len(m.Headers) > 0 {
			r.Headers = map[string]*networkingv1.StringMatch{}
			for k, v := range m.Headers {
				r.Headers[k] = istioStringMatch(v)
			}
		}
		if len(m.QueryParams) > 0 {
			r.QueryParams = map[string]*networkingv1.StringMatch{}
			for k, v := range m.QueryParams {
				r.QueryParams[k] = istioStringMatch(v)
			}
		}
		out = append(out, r)
	}
	return out
}

func istioStringMatch(m contract.StringMatch) *networkingv1.StringMatch {
	switch {
	case m.Regex != "":
		return &networkingv1.StringMatch{MatchType: &networkingv1.StringMatch_Regex{Regex: m.Regex}}
	case m.Prefix != "":
		return &networkingv1.StringMatch{MatchType: &networkingv1.StringMatch_Prefix{Prefix: m.Prefix}}
	}
	return &networkingv1.StringMatch{MatchType: &networkingv1.StringMatch_Exact{Exact: m.Exact}}
}

// routesToCanary reports whether any route of a VirtualService sends
// requests to the Service's canary: an ab analysis' weight (100) is
// routed.
func routesToCanary(vs *istionetv1.VirtualService, svc *corev1.Service) bool {
	for _, route := range vs.Spec.Http {
		for _, d := range route.Route {
			if d.Destination != nil && isCanaryHost(d.Destination.Host, svc) {
				return true
			}
		}
	}
	return false
}

// routeTo is the weighted destinations of a steered route: weight percent
// to <host>-canary and 100-weight to <host>; the canary destination is
// absent at weight 0 (Envoy routes nothing there, and it can be deleted
// after the propagation delay). Weights always add up to 100.
func routeTo(host string, weight int32) []*networkingv1.HTTPRouteDestination {
	if weight <= 0 {
		return []*networkingv1.HTTPRouteDestination{{Destination: &networkingv1.Destination{Host: host}, Weight: 100}}
	}
	return []*networkingv1.HTTPRouteDestination{
		{Destination: &networkingv1.Destination{Host: host}, Weight: 100 - weight},
		{Destination: &networkingv1.Destination{Host: CanaryName(host)}, Weight: weight},
	}
}

func setRecordedWeight(vs *istionetv1.VirtualService, weight int32) {
	if vs.Annotations == nil {
		vs.Annotations = map[string]string{}
	}
	vs.Annotations[AnnotationWeight] = fmt.Sprint(weight)
}

func ownerRef(d *appsv1.Deployment) metav1.OwnerReference {
	return metav1.OwnerReference{
		APIVersion: "apps/v1", Kind: "Deployment", Name: d.Name, UID: d.UID,
		Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true),
	}
}

// ownedBy reports whether obj is controlled by the Deployment d.
func ownedBy(obj metav1.Object, d *appsv1.Deployment) bool {
	ref := metav1.GetControllerOf(obj)
	return ref != nil && ref.UID == d.UID
}
