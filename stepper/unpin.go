package stepper

import (
	"context"
	"fmt"
	"maps"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/canary-io/canary/contract"
)

// PinOwner is the record of the Deployment that pins a Service
// (contract.KeyPinnedBy): its name and UID, so that a Deployment
// re-created under the same name is not taken for the owner.
//
// Example: "reviews/0d7c5a4e-…".
func PinOwner(d *appsv1.Deployment) string {
	return d.Name + "/" + string(d.UID)
}

// pinOwnerName is the Deployment's name in an owner record (PinOwner).
//
// Example: "reviews/0d7c5a4e-…" → "reviews".
func pinOwnerName(owner string) string {
	name, _, _ := strings.Cut(owner, "/")
	return name
}

// unpinned is svc without the pin: the pod-template-hash out of its
// selector, the pin's annotations gone. It changes a copy.
func unpinned(svc *corev1.Service) *corev1.Service {
	out := svc.DeepCopy()
	delete(out.Spec.Selector, podTemplateHash)
	delete(out.Annotations, contract.KeyPinned)
	delete(out.Annotations, contract.KeyPinnedBy)
	return out
}

// orphanedPin says why a pinned Service must be unpinned, or "" when its
// pin has an owner that still runs an analysis: the Deployment named in
// its owner record is gone, is another object under the same name, or is
// no longer opted in. A pin without an owner record (written before it
// existed) belongs to any opted-in Deployment of the namespace whose pods
// the Service selects. deployments are the namespace's. Pure.
func orphanedPin(svc *corev1.Service, deployments []appsv1.Deployment) string {
	if _, pinned := svc.Annotations[contract.KeyPinned]; !pinned {
		return "" // not pinned, or the user's own pod-template-hash selector
	}
	managed := pinManaged
	if owner, ok := svc.Annotations[contract.KeyPinnedBy]; ok {
		name := pinOwnerName(owner)
		for i := range deployments {
			d := &deployments[i]
			if d.Name != name {
				continue
			}
			if PinOwner(d) != owner {
				return fmt.Sprintf("Deployment %s that pinned it was deleted (one of the same name exists now)", name)
			}
			if !managed(d) {
				return fmt.Sprintf("Deployment %s that pinned it is no longer opted in", name)
			}
			return ""
		}
		return fmt.Sprintf("Deployment %s that pinned it was deleted", name)
	}
	sel := withoutPin(svc.Spec.Selector)
	for i := range deployments {
		d := &deployments[i]
		if managed(d) && len(sel) > 0 && labels.SelectorFromSet(sel).Matches(labels.Set(d.Spec.Template.Labels)) {
			return ""
		}
	}
	return "no opted-in Deployment whose pods it selects is left"
}

// Unpinner unpins the Services whose pin lost its owner: a Deployment
// deleted mid-analysis, or opted out by removing the webhook's guard. It
// runs with the stepper, under the leader lease.
type Unpinner struct {
	Client   client.Client
	Recorder events.EventRecorder
}

// SetupWithManager watches pinned Services and Deployments: a Deployment
// deleted or changed wakes the pinned Services of its namespace.
func (u *Unpinner) SetupWithManager(mgr ctrl.Manager) error {
	pinned := predicate.NewPredicateFuncs(func(o client.Object) bool {
		_, ok := o.GetAnnotations()[contract.KeyPinned]
		return ok
	})
	// Only the Deployment changes that can orphan a pin: created,
	// deleted, opted in or out, its pod labels changed; not the status
	// updates of every rollout, each of which would look at every pinned
	// Service of the namespace.
	canOrphan := predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
		old, okOld := e.ObjectOld.(*appsv1.Deployment)
		cur, okNew := e.ObjectNew.(*appsv1.Deployment)
		return !okOld || !okNew || pinManaged(old) != pinManaged(cur) || !maps.Equal(old.Spec.Template.Labels, cur.Spec.Template.Labels)
	}}
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &corev1.Service{}, indexPinnedBy, pinnedBy); err != nil {
		return fmt.Errorf("index pinned Services: %w", err)
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("unpinner").
		For(&corev1.Service{}, builder.WithPredicates(pinned)).
		Watches(&appsv1.Deployment{}, handler.EnqueueRequestsFromMapFunc(u.pinnedIn), builder.WithPredicates(canOrphan)).
		Complete(u)
}

// pinManaged reports whether d may hold a pin: opted in, or its
// analysis' status still there.
func pinManaged(d *appsv1.Deployment) bool {
	_, phase := d.Annotations[contract.KeyPhase]
	return contract.OptedIn(d) || phase
}

// indexPinnedBy: pinned Services by the name of the Deployment that
// pinned them, or unownedPin for a pin without an owner record.
const indexPinnedBy = "canary.io/pinned-by"

// unownedPin is the index value of a pin without an owner record: a
// Deployment's name never holds a slash.
const unownedPin = "/"

// pinnedBy indexes a Service under indexPinnedBy.
func pinnedBy(o client.Object) []string {
	if _, pinned := o.GetAnnotations()[contract.KeyPinned]; !pinned {
		return nil
	}
	owner, ok := o.GetAnnotations()[contract.KeyPinnedBy]
	if !ok {
		return []string{unownedPin}
	}
	return []string{pinOwnerName(owner)}
}

// pinnedIn lists the pinned Services a Deployment's change may orphan:
// those it pinned, and those of its namespace without an owner record.
// A list that fails wakes nothing: the Services' own events, and the
// resync, still reach them.
func (u *Unpinner) pinnedIn(ctx context.Context, o client.Object) []reconcile.Request {
	var out []reconcile.Request
	for _, owner := range []string{o.GetName(), unownedPin} {
		var list corev1.ServiceList
		if err := u.Client.List(ctx, &list, client.InNamespace(o.GetNamespace()), client.MatchingFields{indexPinnedBy: owner}, client.UnsafeDisableDeepCopy); err != nil {
			return nil
		}
		for i := range list.Items {
			out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
		}
	}
	return out
}

// pinOwners are the Deployments that may own svc's pin: the one named in
// its owner record (none if it is gone), or for a pin without one,
// every Deployment of its namespace. Read only: the cache's own objects.
func (u *Unpinner) pinOwners(ctx context.Context, svc *corev1.Service) ([]appsv1.Deployment, error) {
	owner, ok := svc.Annotations[contract.KeyPinnedBy]
	if !ok {
		var list appsv1.DeploymentList
		if err := u.Client.List(ctx, &list, client.InNamespace(svc.Namespace), client.UnsafeDisableDeepCopy); err != nil {
			return nil, err
		}
		return list.Items, nil
	}
	var d appsv1.Deployment
	switch err := u.Client.Get(ctx, client.ObjectKey{Namespace: svc.Namespace, Name: pinOwnerName(owner)}, &d); {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, err
	}
	return []appsv1.Deployment{d}, nil
}

// Reconcile unpins one Service if its pin is orphaned.
func (u *Unpinner) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var svc corev1.Service
	if err := u.Client.Get(ctx, req.NamespacedName, &svc); apierrors.IsNotFound(err) {
		return ctrl.Result{}, nil
	} else if err != nil {
		return ctrl.Result{}, err
	}
	if _, pinned := svc.Annotations[contract.KeyPinned]; !pinned {
		return ctrl.Result{}, nil
	}
	owners, err := u.pinOwners(ctx, &svc)
	if err != nil {
		return ctrl.Result{}, err
	}
	why := orphanedPin(&svc, owners)
	if why == "" {
		return ctrl.Result{}, nil
	}
	updated := unpinned(&svc)
	// A merge patch on the version read: fields this client does not know
	// are kept.
	if err := u.Client.Patch(ctx, updated, client.MergeFromWithOptions(&svc, client.MergeFromWithOptimisticLock{})); err != nil {
		return ctrl.Result{}, fmt.Errorf("unpin service %s: %w", req, err)
	}
	if u.Recorder != nil {
		u.Recorder.Eventf(updated, nil, corev1.EventTypeNormal, "Unpinned", "Unpin",
			"removed %s=%s from the selector: %s", podTemplateHash, svc.Spec.Selector[podTemplateHash], why)
	}
	return ctrl.Result{}, nil
}
