package canaryctl

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	istioclient "istio.io/client-go/pkg/clientset/versioned"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/canary-io/canary/contract"
	"github.com/canary-io/canary/stepper"
)

// validatingWebhook is the name of the controller's validating webhook,
// in whatever configuration holds it: canary.io from the manifests, or
// the Helm chart's webhook.configurationName.
const validatingWebhook = "deployments.validate.canary.io"

// registeredConfigurations are the validating webhook configurations
// that hold the controller's webhook.
func registeredConfigurations(ctx context.Context, cs kubernetes.Interface) ([]string, error) {
	list, err := cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list validating webhook configurations: %w", err)
	}
	var names []string
	for _, c := range list.Items {
		for _, w := range c.Webhooks {
			if w.Name == validatingWebhook {
				names = append(names, c.Name)
				break
			}
		}
	}
	return names, nil
}

// release hands a Deployment back from canary.io once the controller is
// gone (docs/uninstall.md, steps 2 to 6, for one Deployment): all traffic
// to the stable pods (the generated VirtualService or HTTPRoute deleted,
// the canary's routes taken out of the user's own), proxyWait for every proxy to have
// the new routes, the canary's objects deleted, the Service unpinned, the
// system's annotations removed. The Deployment's template and spec.paused
// are left as they are: the user chooses what runs next, as the last line
// printed says. It refuses while the controller's webhooks are
// registered: the controller would steer against it.
func (p *Plugin) release(ctx context.Context, cs kubernetes.Interface, ic istioclient.Interface, dc dynamic.Interface, namespace, name, serviceName string, proxyWait time.Duration) error {
	if registered, err := registeredConfigurations(ctx, cs); err != nil {
		return err
	} else if len(registered) > 0 {
		return fmt.Errorf("the controller's webhooks (%s) are registered: to end an analysis use kubectl canary abort %s; "+
			"to remove the controller, follow docs/uninstall.md, whose step 1 removes them, then run release", strings.Join(registered, ", "), name)
	}
	d, err := cs.AppsV1().Deployments(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("get deployment %s/%s: %w", namespace, name, err)
	}
	svc, err := releasedService(ctx, cs, d, serviceName)
	if err != nil {
		return err
	}
	say := func(format string, args ...any) { fmt.Fprintf(p.Out, format+"\n", args...) }

	// 1. All traffic to the stable pods.
	routed := false
	vss, err := ic.NetworkingV1().VirtualServices(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("list virtual services: %w", err)
	}
	for _, vs := range vss.Items {
		switch {
		case ownedBy(vs, d):
			if err := ic.NetworkingV1().VirtualServices(namespace).Delete(ctx, vs.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &vs.UID}}); err != nil && !apierrors.IsNotFound(err) {
				return fmt.Errorf("delete virtual service %s: %w", vs.Name, err)
			}
			say("virtualservice.networking.istio.io/%s deleted (generated for the analysis: the mesh routes to Service %s)", vs.Name, svc.Name)
			routed = true
		default:
			patch, err := stepper.ReleasePatch(vs, svc)
			if err != nil {
				return fmt.Errorf("virtual service %s: %w", vs.Name, err)
			}
			if patch == nil {
				continue
			}
			if _, err := ic.NetworkingV1().VirtualServices(namespace).Patch(ctx, vs.Name, types.JSONPatchType, patch, metav1.PatchOptions{}); err != nil {
				return fmt.Errorf("patch virtual service %s: %w", vs.Name, err)
			}
			say("virtualservice.networking.istio.io/%s patched (the canary's routes merged back into %s)", vs.Name, svc.Name)
			routed = true
		}
	}

	if done, err := releaseHTTPRoutes(ctx, dc, d, svc, say); err != nil {
		return err
	} else if done {
		routed = true
	}

	// 2. The proxies get the new routes before the canary's pods go.
	canaryExists := false
	if c, err := cs.AppsV1().Deployments(namespace).Get(ctx, stepper.CanaryName(name), metav1.GetOptions{}); err == nil && ownedBy(c, d) {
		canaryExists = true
	}
	if routed && canaryExists && proxyWait > 0 {
		say("waiting %s for every proxy to have the new routes (--proxy-wait)", proxyWait)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(proxyWait):
		}
	}

	// 3. The canary's objects, only those the Deployment owns.
	if err := deleteOwned(ctx, cs, ic, d, svc, say); err != nil {
		return err
	}

	// 4. The Service's pin.
	if err := unpinService(ctx, cs, svc, say); err != nil {
		return err
	}

	// 5. The system's annotations.
	var keys []string
	for k := range d.Annotations {
		if strings.HasPrefix(k, contract.Prefix) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	if len(keys) > 0 {
		null := map[string]any{}
		for _, k := range keys {
			null[k] = nil
		}
		patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": null}})
		if _, err := cs.AppsV1().Deployments(namespace).Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
			return fmt.Errorf("remove the canary.io annotations of deployment %s: %w", name, err)
		}
	}
	next := "it runs its template as plain Kubernetes"
	if d.Spec.Paused {
		next = fmt.Sprintf("it is paused with the template held for analysis (revision %s): apply the stable version's manifest again to keep it, then kubectl rollout resume deployment/%s -n %s; or resume it as it is to roll the held template out unanalysed",
			orNone(d.Annotations[contract.KeyRevision]), name, namespace)
	}
	say("deployment.apps/%s released: %d canary.io annotations removed; %s", name, len(keys), next)
	return nil
}

// httpRoutes is the Gateway API's HTTPRoute resource.
var httpRoutes = schema.GroupVersionResource{Group: gwv1.GroupName, Version: "v1", Resource: "httproutes"}

// releaseHTTPRoutes does for HTTPRoutes (the gateway-api router) what
// release does for VirtualServices: the generated HTTPRoute deleted, the
// canary's backendRefs taken out of the user's own (the rules divided
// back). A cluster without the Gateway API has nothing to release. It
// reports whether it changed a route.
func releaseHTTPRoutes(ctx context.Context, dc dynamic.Interface, d *appsv1.Deployment, svc *corev1.Service, say func(string, ...any)) (bool, error) {
	list, err := dc.Resource(httpRoutes).Namespace(d.Namespace).List(ctx, metav1.ListOptions{})
	if apierrors.IsNotFound(err) || meta.IsNoMatchError(err) {
		return false, nil // no HTTPRoutes served here
	} else if err != nil {
		return false, fmt.Errorf("list HTTPRoutes: %w", err)
	}
	changed := false
	for _, u := range list.Items {
		var rt gwv1.HTTPRoute
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &rt); err != nil {
			return changed, fmt.Errorf("read HTTPRoute %s: %w", u.GetName(), err)
		}
		if ownedBy(&rt, d) {
			if err := dc.Resource(httpRoutes).Namespace(d.Namespace).Delete(ctx, rt.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &rt.UID}}); err != nil && !apierrors.IsNotFound(err) {
				return changed, fmt.Errorf("delete HTTPRoute %s: %w", rt.Name, err)
			}
			say("httproute.gateway.networking.k8s.io/%s deleted (generated for the analysis: the mesh routes to Service %s)", rt.Name, svc.Name)
			changed = true
			continue
		}
		patch, err := stepper.ReleaseHTTPRoutePatch(&rt, svc)
		if err != nil {
			return changed, fmt.Errorf("HTTPRoute %s: %w", rt.Name, err)
		}
		if patch == nil {
			continue
		}
		if _, err := dc.Resource(httpRoutes).Namespace(d.Namespace).Patch(ctx, rt.Name, types.JSONPatchType, patch, metav1.PatchOptions{}); err != nil {
			return changed, fmt.Errorf("patch HTTPRoute %s: %w", rt.Name, err)
		}
		say("httproute.gateway.networking.k8s.io/%s patched (the canary's backendRefs merged back into %s)", rt.Name, svc.Name)
		changed = true
	}
	return changed, nil
}

// releasedService is the Service an analysis of d steered: the one named
// (flag --service, else canary.io/service), else the one Service whose
// selector, the pin aside, selects d's pods.
func releasedService(ctx context.Context, cs kubernetes.Interface, d *appsv1.Deployment, name string) (*corev1.Service, error) {
	if name == "" {
		name = d.Annotations[contract.KeyService]
	}
	if name != "" {
		svc, err := cs.CoreV1().Services(d.Namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, fmt.Errorf("get service %s/%s: %w", d.Namespace, name, err)
		}
		return svc, nil
	}
	list, err := cs.CoreV1().Services(d.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list services: %w", err)
	}
	var found []*corev1.Service
	for i := range list.Items {
		svc := &list.Items[i]
		if svc.Labels[stepper.LabelCanary] == "true" || len(svc.Spec.Selector) == 0 {
			continue
		}
		sel := map[string]string{}
		for k, v := range svc.Spec.Selector {
			if k != appsv1.DefaultDeploymentUniqueLabelKey {
				sel[k] = v
			}
		}
		if len(sel) > 0 && labels.SelectorFromSet(sel).Matches(labels.Set(d.Spec.Template.Labels)) {
			found = append(found, svc)
		}
	}
	if len(found) != 1 {
		return nil, fmt.Errorf("%d Services select the pods of deployment %s: name the one its analysis steered with --service", len(found), d.Name)
	}
	return found[0], nil
}

// deleteOwned deletes the canary Deployment, Service and DestinationRule
// that d owns (never an object of another owner under the same name).
func deleteOwned(ctx context.Context, cs kubernetes.Interface, ic istioclient.Interface, d *appsv1.Deployment, svc *corev1.Service, say func(string, ...any)) error {
	ns := d.Namespace
	background := metav1.DeletePropagationBackground
	if c, err := cs.AppsV1().Deployments(ns).Get(ctx, stepper.CanaryName(d.Name), metav1.GetOptions{}); err == nil && ownedBy(c, d) {
		if err := cs.AppsV1().Deployments(ns).Delete(ctx, c.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &c.UID}, PropagationPolicy: &background}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete deployment %s: %w", c.Name, err)
		}
		say("deployment.apps/%s deleted", c.Name)
	}
	if s, err := cs.CoreV1().Services(ns).Get(ctx, stepper.CanaryName(svc.Name), metav1.GetOptions{}); err == nil && ownedBy(s, d) {
		if err := cs.CoreV1().Services(ns).Delete(ctx, s.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &s.UID}}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete service %s: %w", s.Name, err)
		}
		say("service/%s deleted", s.Name)
	}
	if r, err := ic.NetworkingV1().DestinationRules(ns).Get(ctx, stepper.CanaryName(svc.Name), metav1.GetOptions{}); err == nil && ownedBy(r, d) {
		if err := ic.NetworkingV1().DestinationRules(ns).Delete(ctx, r.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &r.UID}}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete destination rule %s: %w", r.Name, err)
		}
		say("destinationrule.networking.istio.io/%s deleted", r.Name)
	}
	return nil
}

// unpinService removes the pin (the pod-template-hash in the selector) and
// its canary.io annotations from the Service, with a JSON patch of only
// those keys on the version read.
func unpinService(ctx context.Context, cs kubernetes.Interface, svc *corev1.Service, say func(string, ...any)) error {
	type op struct {
		Op    string `json:"op"`
		Path  string `json:"path"`
		Value any    `json:"value,omitempty"`
	}
	ops := []op{{Op: "replace", Path: "/metadata/resourceVersion", Value: svc.ResourceVersion}}
	hash, pinned := svc.Spec.Selector[appsv1.DefaultDeploymentUniqueLabelKey]
	if pinned {
		ops = append(ops, op{Op: "remove", Path: "/spec/selector/pod-template-hash"})
	}
	var keys []string
	for k := range svc.Annotations {
		if strings.HasPrefix(k, contract.Prefix) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		ops = append(ops, op{Op: "remove", Path: "/metadata/annotations/" + strings.ReplaceAll(k, "/", "~1")})
	}
	if len(ops) == 1 {
		return nil
	}
	patch, _ := json.Marshal(ops)
	if _, err := cs.CoreV1().Services(svc.Namespace).Patch(ctx, svc.Name, types.JSONPatchType, patch, metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("unpin service %s: %w", svc.Name, err)
	}
	if pinned {
		say("service/%s unpinned (pod-template-hash %s removed from its selector)", svc.Name, hash)
	}
	return nil
}

// ownedBy reports whether d is obj's controller.
func ownedBy(obj metav1.Object, d *appsv1.Deployment) bool {
	ref := metav1.GetControllerOf(obj)
	return ref != nil && ref.UID == d.UID
}
