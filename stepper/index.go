package stepper

import (
	"context"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// The cache's indexes the stepper reads through, so that a pass looks at
// the few Services and Deployments that may concern it, not at every one
// of its namespace (with a hundred Deployments in a namespace, listing
// them all on every pass was a third of the controller's CPU).
const (
	// indexSelectorPair: Services by each pair of their selector, the pin
	// aside.
	indexSelectorPair = "canary.io/selector-pair"
	// indexTemplatePair: Deployments by each pair of their pod template's
	// labels.
	indexTemplatePair = "canary.io/template-pair"
)

// pairs are the label pairs of m as "key=value", the pin aside, sorted.
//
// Example: {app: reviews, pod-template-hash: 5d4f, version: v2} →
// ["app=reviews", "version=v2"].
func pairs(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k, v := range m {
		if k != podTemplateHash {
			out = append(out, k+"="+v)
		}
	}
	slices.Sort(out)
	return out
}

// IndexFields registers the stepper's indexes with the manager's cache.
func IndexFields(ctx context.Context, indexer client.FieldIndexer) error {
	if err := indexer.IndexField(ctx, &corev1.Service{}, indexSelectorPair, selectorPairs); err != nil {
		return err
	}
	return indexer.IndexField(ctx, &appsv1.Deployment{}, indexTemplatePair, templatePairs)
}

// selectorPairs indexes a Service under indexSelectorPair.
func selectorPairs(o client.Object) []string {
	if svc, ok := o.(*corev1.Service); ok {
		return pairs(svc.Spec.Selector)
	}
	return nil
}

// templatePairs indexes a Deployment under indexTemplatePair.
func templatePairs(o client.Object) []string {
	if d, ok := o.(*appsv1.Deployment); ok {
		return pairs(d.Spec.Template.Labels)
	}
	return nil
}

// servicesSelecting are the Services of d's namespace, not the system's
// own, whose selector (the pin aside) is not empty and selects d's pod
// template, by name. Each has all its pairs among the template's labels,
// so the union of the Services indexed under each template pair holds
// them all. Read only: the cache's own objects.
func (r *Reconciler) servicesSelecting(ctx context.Context, d *appsv1.Deployment) ([]*corev1.Service, error) {
	seen := map[string]bool{}
	var out []*corev1.Service
	for _, p := range pairs(d.Spec.Template.Labels) {
		var list corev1.ServiceList
		if err := r.Client.List(ctx, &list, client.InNamespace(d.Namespace), client.MatchingFields{indexSelectorPair: p}, client.UnsafeDisableDeepCopy); err != nil {
			return nil, err
		}
		for i := range list.Items {
			svc := &list.Items[i]
			if seen[svc.Name] || svc.Labels[LabelCanary] == "true" || !selects(svc, d) {
				continue
			}
			seen[svc.Name] = true
			out = append(out, svc)
		}
	}
	slices.SortFunc(out, func(a, b *corev1.Service) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// deploymentsSelectedBy are the Deployments of namespace whose pod
// template the selector sel (not empty, the pin aside) selects: all of
// them carry its first pair, so those indexed under it hold them all.
// Read only: the cache's own objects.
func (r *Reconciler) deploymentsSelectedBy(ctx context.Context, namespace string, sel map[string]string) ([]appsv1.Deployment, error) {
	ps := pairs(sel)
	if len(ps) == 0 {
		return nil, nil
	}
	var list appsv1.DeploymentList
	if err := r.Client.List(ctx, &list, client.InNamespace(namespace), client.MatchingFields{indexTemplatePair: ps[0]}, client.UnsafeDisableDeepCopy); err != nil {
		return nil, err
	}
	return list.Items, nil
}
