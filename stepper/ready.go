package stepper

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// maxReadySeen bounds readySeen: past it the sightings are forgotten,
// and the pods' Ready conditions alone count (readySince).
const maxReadySeen = 50_000

// sawPod records when the pod watch saw a canary pod ready, first; a pod
// not ready, or going, is forgotten.
func (r *Reconciler) sawPod(p *corev1.Pod) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !podReady(p) || p.DeletionTimestamp != nil {
		delete(r.readySeen, p.UID)
		return
	}
	if _, ok := r.readySeen[p.UID]; ok {
		return
	}
	if r.readySeen == nil || len(r.readySeen) >= maxReadySeen {
		r.readySeen = map[types.UID]time.Time{}
	}
	r.readySeen[p.UID] = r.Clock.Now()
}

// sightings is h, with the pod watch's events recorded by sawPod first
// (a deleted pod forgotten).
func (r *Reconciler) sightings(h handler.EventHandler) handler.EventHandler {
	saw := func(o client.Object, gone bool) {
		p, ok := o.(*corev1.Pod)
		if !ok || p.Labels[LabelCanary] != "true" {
			return
		}
		if gone {
			r.mu.Lock()
			delete(r.readySeen, p.UID)
			r.mu.Unlock()
			return
		}
		r.sawPod(p)
	}
	return handler.Funcs{
		CreateFunc: func(ctx context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			saw(e.Object, false)
			h.Create(ctx, e, q)
		},
		UpdateFunc: func(ctx context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			saw(e.ObjectNew, false)
			h.Update(ctx, e, q)
		},
		DeleteFunc: func(ctx context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			saw(e.Object, true)
			h.Delete(ctx, e, q)
		},
		GenericFunc: func(ctx context.Context, e event.GenericEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			h.Generic(ctx, e, q)
		},
	}
}

// readySince is when a ready canary pod became ready, never earlier than
// it did, so that the propagation delay counted from it is never short:
// its Ready condition's time has whole seconds only (a pod ready at
// 12:00:03.8 says 12:00:03), so it counts from the next second, or from
// the moment this process' pod watch first saw the pod ready if that is
// sooner (after a restart the watch sees every ready pod anew, and the
// condition bounds the wait).
//
// Example: Ready since 12:00:03 (whole seconds), seen at 12:00:03.9 →
// 12:00:03.9; not seen (a restart) → 12:00:04.
func (r *Reconciler) readySince(p *corev1.Pod, condition time.Time) time.Time {
	since := condition
	if since.Nanosecond() == 0 {
		since = since.Add(time.Second)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if seen, ok := r.readySeen[p.UID]; ok && seen.Before(since) {
		return seen
	}
	return since
}
