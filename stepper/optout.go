package stepper

import (
	"context"
	"fmt"

	istionetv1 "istio.io/client-go/pkg/apis/networking/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// removeLeftovers deletes what an analysis of d left behind once d is no
// longer opted in: the canary Deployment, Services and DestinationRules it
// owns, and the generated VirtualService or HTTPRoute (which routes all of
// the host to the user's Service by then: the webhook refuses the opt-out
// while the canary takes traffic). Only objects the stepper made are
// touched: those whose controller owner is d and that carry its marks (the
// label canary.io/canary, or, on a route, the record of the weight it
// wrote), never d's ReplicaSets nor anything another controller gave d
// to own. The Service's pin is the Unpinner's. It reports what it
// deleted.
func (r *Reconciler) removeLeftovers(ctx context.Context, d *appsv1.Deployment) ([]string, error) {
	var objs []client.Object
	var deployments appsv1.DeploymentList
	if err := r.Client.List(ctx, &deployments, client.InNamespace(d.Namespace), client.MatchingLabels{LabelCanary: "true"}); err != nil {
		return nil, fmt.Errorf("list canary deployments in %s: %w", d.Namespace, err)
	}
	for i := range deployments.Items {
		objs = append(objs, &deployments.Items[i])
	}
	var services corev1.ServiceList
	if err := r.Client.List(ctx, &services, client.InNamespace(d.Namespace), client.MatchingLabels{LabelCanary: "true"}); err != nil {
		return nil, fmt.Errorf("list services in %s: %w", d.Namespace, err)
	}
	for i := range services.Items {
		objs = append(objs, &services.Items[i])
	}
	var rules istionetv1.DestinationRuleList
	if err := r.Client.List(ctx, &rules, client.InNamespace(d.Namespace), client.MatchingLabels{LabelCanary: "true"}); err != nil {
		return nil, fmt.Errorf("list destination rules in %s: %w", d.Namespace, err)
	}
	for _, o := range rules.Items {
		objs = append(objs, o)
	}
	var vss istionetv1.VirtualServiceList
	if err := r.Client.List(ctx, &vss, client.InNamespace(d.Namespace)); err != nil {
		return nil, fmt.Errorf("list virtual services in %s: %w", d.Namespace, err)
	}
	for _, o := range vss.Items {
		if _, generated := o.Annotations[AnnotationWeight]; generated {
			objs = append(objs, o) // with the owner checked below: the generated one
		}
	}
	if r.GatewayAPI {
		var routes gwv1.HTTPRouteList
		if err := r.Client.List(ctx, &routes, client.InNamespace(d.Namespace)); err != nil {
			return nil, fmt.Errorf("list HTTPRoutes in %s: %w", d.Namespace, err)
		}
		for i := range routes.Items {
			if _, generated := routes.Items[i].Annotations[AnnotationWeight]; generated {
				objs = append(objs, &routes.Items[i]) // with the owner checked below
			}
		}
	}
	var deleted []string
	for _, o := range objs {
		if !ownedBy(o, d) {
			continue
		}
		if err := r.deleteOnce(ctx, o, client.PropagationPolicy(metav1.DeletePropagationBackground)); err != nil {
			return deleted, fmt.Errorf("delete %s %s: %w", kindOf(o), o.GetName(), err)
		}
		deleted = append(deleted, kindOf(o)+" "+o.GetName())
	}
	if len(deleted) > 0 {
		log.FromContext(ctx).Info("removed what an analysis left behind: the Deployment is no longer opted in", "deleted", deleted)
	}
	return deleted, nil
}
