package stepper

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"strings"
	"sync"
	"time"

	istionetv1 "istio.io/client-go/pkg/apis/networking/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/source"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/canary-io/canary/contract"
	"github.com/canary-io/canary/stepper/notify"
	"github.com/canary-io/canary/stepper/plan"
)

// Reconciler is the stepper: for each opted-in Deployment, one pass
// gathers what the cluster and Prometheus say, asks plan.Next, and acts.
type Reconciler struct {
	// Client reads (from the manager's cache) and writes.
	Client client.Client
	// APIReader reads from the apiserver directly, for the re-reads that
	// resolve write conflicts (the cache may lag).
	APIReader client.Reader
	// Recorder emits Events on the Deployment (events.k8s.io).
	Recorder events.EventRecorder
	// Clock gives the time of each pass.
	Clock clock.PassiveClock
	// Prometheus is the default Prometheus URL (canary.io/prometheus
	// overrides it per Deployment).
	Prometheus string
	// GatewayAPI says the cluster serves the Gateway API's HTTPRoutes
	// (checked when the controller starts): the Gateway API router can
	// steer them, and the Istio router looks for them as conflicts.
	GatewayAPI bool
	// PropagationDelay is how long new endpoints or weights must have been
	// in place before traffic relies on them.
	PropagationDelay time.Duration
	// RemovalDelay is how long the canary's pods stay after the weight
	// left them (plan.Spec.RemovalDelay).
	RemovalDelay time.Duration
	// QueryTimeout bounds each Prometheus query.
	QueryTimeout time.Duration
	// Scrape knows each Prometheus' scrape interval, which sets the
	// checks' window (contract.Window); nil assumes
	// AssumedScrapeInterval.
	Scrape *ScrapeIntervals
	// ComparisonPeriod is how often the continuous canary-vs-stable
	// comparison reads the counters during a step (0 turns it off for
	// every Deployment); a few scrape intervals.
	ComparisonPeriod time.Duration
	// Metrics, if set, records each pass's outcome.
	Metrics *Metrics
	// NewQuerier makes a Querier for a Prometheus URL (default
	// NewPrometheus); queriers are kept per URL.
	NewQuerier func(url string) (Querier, error)
	// Background owns every hook call, made outside the reconcile workers:
	// under the leader lease, bounded in number overall and per namespace.
	// Nil runs them unowned (tests).
	Background *Background
	// MaxHookTimeout bounds every hook's timeout (zero: no bound).
	MaxHookTimeout time.Duration
	// Notify tells the providers a Deployment names in canary.io/notify of
	// its analyses' transitions; nil tells none.
	Notify *notify.Sender
	// Reader reads Prometheus for the analyses in flight, in the
	// background and in batches: the continuous comparison and the
	// end-of-step checks. Nil: no comparison, and checks never come in.
	Reader *Reader
	// HookClient calls the user's hooks (canary.io/webhooks); each call is
	// bounded by its hook's timeout. Default http.DefaultClient.
	HookClient *http.Client

	// creating bounds the passes that create a canary at once, finishing
	// those that finish an analysis that passed (SetupWithManager sizes
	// them): see mayTake, createsCanary, finishes.
	creating, finishing *slotPool

	mu            sync.Mutex
	queriers      map[string]Querier
	rollbackPolls map[string]*rollbackPoll // by namespace/name
	rounds        map[string]*hookRound    // by namespace/name/hook type
	// emittedIDs holds, by namespace/name, the transition whose Event this
	// stepper emitted and has yet to record as evented.
	emittedIDs map[string]string
	// wake asks for a pass of a Deployment whose background hook call
	// has ended, rather than waiting for the next requeue.
	wake chan event.GenericEvent
	// stale holds, by namespace/name, the resourceVersions of the
	// Deployment this stepper has already written over: the cache may
	// still serve one of them for a moment after the write.
	stale map[string][2]string
	// staleVS holds, by route kind/namespace/name (VirtualServices and
	// HTTPRoutes), the resourceVersion
	// this stepper wrote over ("" for one it created), until the cache
	// serves another: a pass that read the old weight would take our own
	// raise, already recorded, for a weight someone lowered.
	staleVS map[string]vsWrite
	// stableHashes holds, by namespace/name/uid/stable revision, the
	// pod-template-hash of a Deployment's stable ReplicaSet (at most one
	// entry per Deployment).
	stableHashes map[string]string
	// unrouted holds, by namespace/name, when this process first saw the
	// Deployment's canary without weight routed to it, in a row (only
	// while a canary exists): plan.Observations.UnroutedSince.
	unrouted map[string]time.Time
	// recent are this stepper's creates and deletes the cache may not
	// show yet: see createOnce and deleteOnce.
	recent recentWrites
	// readySeen holds, by pod UID, when this process' pod watch first saw
	// a canary pod ready (readySince), at most maxReadySeen of them.
	readySeen map[types.UID]time.Time
}

// unroutedSince returns when this process first saw, in a row, the
// Deployment key's canary unrouted (zero when it is not: routed, or no
// canary), and remembers it.
func (r *Reconciler) unroutedSince(key string, unrouted bool, now time.Time) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !unrouted {
		delete(r.unrouted, key)
		return time.Time{}
	}
	if r.unrouted == nil {
		r.unrouted = map[string]time.Time{}
	}
	t, ok := r.unrouted[key]
	if !ok {
		t = now
		r.unrouted[key] = t
	}
	return t
}

// vsWrite is a VirtualService version written over, and when.
type vsWrite struct {
	old string
	at  time.Time
}

// staleVSFor bounds how long a VirtualService write is waited for in the
// cache: a cache that never serves it (the object deleted meanwhile)
// does not hold the Deployment's passes back longer.
const staleVSFor = 10 * time.Second

// errStaleCache ends a pass that read an object this stepper has already
// written over: it looks again in a moment, on the cache's next version.
var errStaleCache = errors.New("the cache has not seen the stepper's last write yet")

// wroteRoute records that a write replaced version old of a route object
// of kind (VirtualService, HTTPRoute; old "" when it created it).
func (r *Reconciler) wroteRoute(kind, namespace, name, old string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.staleVS == nil {
		r.staleVS = map[string]vsWrite{}
	}
	r.staleVS[kind+"/"+namespace+"/"+name] = vsWrite{old: old, at: time.Now()}
}

// routeStale reports whether the cache still serves the version of a
// route object of kind this stepper wrote over (or not yet the one it
// created): found says whether the cache has it, rv its version.
func (r *Reconciler) routeStale(kind, namespace, name string, found bool, rv string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	key := kind + "/" + namespace + "/" + name
	wrote, ok := r.staleVS[key]
	if !ok {
		return false
	}
	old := wrote.old
	if time.Since(wrote.at) < staleVSFor && ((old == "" && !found) || (old != "" && found && rv == old)) {
		return true
	}
	delete(r.staleVS, key) // the cache has moved on
	return false
}

// superseded records that the version of d this pass read, and base (the
// version the successful write was made on, when a retry moved it), are
// written over by a write that made written. A write that changed nothing
// (written equals base) supersedes nothing: the cache will never serve
// another version for it.
func (r *Reconciler) superseded(d *appsv1.Deployment, base, written string) {
	if written == base {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stale == nil {
		r.stale = map[string][2]string{}
	}
	r.stale[d.Namespace+"/"+d.Name] = [2]string{d.ResourceVersion, base}
}

// isStale reports whether d is a version this stepper already wrote over:
// deciding on it would repeat the last pass (and call its hooks again).
func (r *Reconciler) isStale(d *appsv1.Deployment) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	key := d.Namespace + "/" + d.Name
	old, ok := r.stale[key]
	if ok && (d.ResourceVersion == old[0] || d.ResourceVersion == old[1]) {
		return true
	}
	delete(r.stale, key) // the cache has moved on
	return false
}

// forget drops what the reconciler keeps about a Deployment that is gone.
func (r *Reconciler) forget(key string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.stale, key)
	delete(r.rollbackPolls, key)
	delete(r.emittedIDs, key)
	delete(r.unrouted, key)
	r.endRoundsLocked(key)
	for k := range r.stableHashes {
		if strings.HasPrefix(k, key+"/") {
			delete(r.stableHashes, k)
		}
	}
	if r.Reader != nil {
		r.Reader.Drop(key)
	}
}

// comparisonPoll is how often a pass looks at an analysis in flight for
// its comparison's sake: the Reader wakes the pass when a read finds a
// regression, so this only bounds the wait should that wake-up be lost.
//
// Example: period 5s → 30s; period 10s → 1m.
func comparisonPoll(period time.Duration) time.Duration {
	return max(6*period, 30*time.Second)
}

// emitted remembers that the Event of transition id of d was emitted.
func (r *Reconciler) emitted(d *appsv1.Deployment, id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.emittedIDs == nil {
		r.emittedIDs = map[string]string{}
	}
	r.emittedIDs[d.Namespace+"/"+d.Name] = id
}

// wasEmitted reports whether this stepper emitted the Event of transition
// id of d.
func (r *Reconciler) wasEmitted(d *appsv1.Deployment, id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return id != "" && r.emittedIDs[d.Namespace+"/"+d.Name] == id
}

// wakeUp asks for a pass of d soon, without blocking: when the queue of
// wake-ups is full, the requeue of its last pass comes anyway.
func (r *Reconciler) wakeUp(d *appsv1.Deployment) {
	if r.wake == nil {
		return
	}
	select {
	case r.wake <- event.GenericEvent{Object: &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: d.Namespace, Name: d.Name}}}:
	default:
	}
}

// WakeUp asks for a pass of the Deployment key (namespace/name) soon: the
// Reader's news. It waits for room in the queue of wake-ups (at most a
// few seconds): a regression found must not wait for the next requeue.
func (r *Reconciler) WakeUp(key string) {
	if r.wake == nil {
		return
	}
	namespace, name, _ := strings.Cut(key, "/")
	select {
	case r.wake <- event.GenericEvent{Object: &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}}}:
	case <-time.After(5 * time.Second):
	}
}

// SetupWithManager registers the stepper: it reacts to opted-in
// Deployments and to every object they own, at once, not on a timer.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager, workers int) error {
	concerned := func(o client.Object) bool {
		_, managed := o.GetAnnotations()[contract.KeyPhase]
		return o.GetAnnotations()[contract.KeyEnabled] == "true" || managed
	}
	// Opted in, managed, or just opted out (what its analysis left is
	// removed).
	optedIn := predicate.Funcs{
		CreateFunc:  func(e event.CreateEvent) bool { return concerned(e.Object) },
		DeleteFunc:  func(e event.DeleteEvent) bool { return concerned(e.Object) },
		GenericFunc: func(e event.GenericEvent) bool { return concerned(e.Object) },
		UpdateFunc:  func(e event.UpdateEvent) bool { return concerned(e.ObjectOld) || concerned(e.ObjectNew) },
	}
	if err := IndexFields(context.Background(), mgr.GetFieldIndexer()); err != nil {
		return fmt.Errorf("index the cache: %w", err)
	}
	r.wake = make(chan event.GenericEvent, 1024)
	r.creating, r.finishing = newSlotPool(creationSlots(workers)), newSlotPool(creationSlots(workers))
	b := ctrl.NewControllerManagedBy(mgr).
		Named("stepper").
		WatchesRawSource(source.Channel(r.wake, urgently(&handler.EnqueueRequestForObject{}))).
		For(&appsv1.Deployment{}, builder.WithPredicates(optedIn)).
		// A user's control (abort, promote, pause, ...) goes first too:
		// an abort never waits behind a burst of canaries being created.
		Watches(&appsv1.Deployment{}, urgently(&handler.EnqueueRequestForObject{}),
			builder.WithPredicates(predicate.Funcs{
				CreateFunc:  func(event.CreateEvent) bool { return false },
				DeleteFunc:  func(event.DeleteEvent) bool { return false },
				GenericFunc: func(event.GenericEvent) bool { return false },
				UpdateFunc:  controlChanged,
			})).
		Owns(&appsv1.Deployment{}, builder.WithPredicates(predicate.Funcs{UpdateFunc: canaryChanged})).
		Owns(&corev1.Service{}).
		Owns(&istionetv1.DestinationRule{}).
		Owns(&istionetv1.VirtualService{})
	if r.GatewayAPI {
		b = b.Owns(&gwv1.HTTPRoute{})
	}
	return b.
		// A canary pod's readiness wakes its Deployment at once, not when
		// the deployment controller, busy with many canaries, gets to
		// count it in the canary Deployment's status.
		Watches(&corev1.Pod{}, r.sightings(urgently(handler.EnqueueRequestsFromMapFunc(canaryPodOwner))),
			builder.WithPredicates(predicate.Funcs{UpdateFunc: podReadinessChanged})).
		WithOptions(controller.Options{MaxConcurrentReconciles: workers, RateLimiter: retryLimiter()}).
		Complete(r)
}

// controlChanged reports whether an update of a Deployment changed one of
// the user's controls (contract.ControlKeys).
func controlChanged(e event.UpdateEvent) bool {
	if e.ObjectOld == nil || e.ObjectNew == nil {
		return false
	}
	o, n := e.ObjectOld.GetAnnotations(), e.ObjectNew.GetAnnotations()
	for _, k := range contract.ControlKeys {
		if o[k] != n[k] {
			return true
		}
	}
	return false
}

// canaryPodOwner maps a canary pod to the Deployment whose canary it
// runs: its ReplicaSet is <deployment>-canary-<hash>.
func canaryPodOwner(_ context.Context, o client.Object) []ctrl.Request {
	p, ok := o.(*corev1.Pod)
	if !ok || p.Labels[LabelCanary] != "true" {
		return nil
	}
	rs := controllerName(p)
	i := strings.LastIndex(rs, "-")
	if i < 0 {
		return nil
	}
	name, ok := strings.CutSuffix(rs[:i], "-canary")
	if !ok || name == "" {
		return nil
	}
	return []ctrl.Request{{NamespacedName: types.NamespacedName{Namespace: p.Namespace, Name: name}}}
}

// podReadinessChanged reports whether a pod update changed its readiness
// (or began its deletion): the rest of a pod's life wakes nobody.
func podReadinessChanged(e event.UpdateEvent) bool {
	o, ok1 := e.ObjectOld.(*corev1.Pod)
	n, ok2 := e.ObjectNew.(*corev1.Pod)
	if !ok1 || !ok2 {
		return true
	}
	return podReady(o) != podReady(n) || (o.DeletionTimestamp == nil) != (n.DeletionTimestamp == nil)
}

// podReady reports whether a pod's Ready condition is true.
func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// canaryChanged reports whether an update of a canary Deployment is one a
// pass can act on: its spec or metadata, or how many of its pods exist,
// are up to date, ready or available. The deployment controller's other
// status writes (conditions, observed generation) wake nobody: a rollout
// of many canaries makes several of them per canary.
func canaryChanged(e event.UpdateEvent) bool {
	o, ok1 := e.ObjectOld.(*appsv1.Deployment)
	n, ok2 := e.ObjectNew.(*appsv1.Deployment)
	if !ok1 || !ok2 {
		return true
	}
	return o.Generation != n.Generation || n.DeletionTimestamp != nil ||
		!maps.Equal(o.Labels, n.Labels) || !maps.Equal(o.Annotations, n.Annotations) ||
		o.Status.Replicas != n.Status.Replicas || o.Status.UpdatedReplicas != n.Status.UpdatedReplicas ||
		o.Status.ReadyReplicas != n.Status.ReadyReplicas || o.Status.AvailableReplicas != n.Status.AvailableReplicas
}

// Reconcile runs one pass for one Deployment.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var d appsv1.Deployment
	if err := r.Client.Get(ctx, req.NamespacedName, &d); apierrors.IsNotFound(err) {
		r.forget(req.String())
		return ctrl.Result{}, nil // gone: its canary objects go with it (owner references)
	} else if err != nil {
		return ctrl.Result{}, fmt.Errorf("get deployment %s: %w", req.NamespacedName, err)
	}
	if !contract.OptedIn(&d) {
		if _, managed := d.Annotations[contract.KeyPhase]; !managed {
			// Opted out (the webhook cleared the status): remove whatever
			// the analysis left. A Deployment never opted in owns none.
			_, err := r.removeLeftovers(ctx, &d)
			return ctrl.Result{}, err
		}
		return ctrl.Result{}, nil
	}
	if r.isStale(&d) {
		return ctrl.Result{RequeueAfter: staleRecheck}, nil // the cache has not seen the last write yet
	}
	began := time.Now()
	w, err := r.gather(ctx, &d)
	r.Metrics.took("gather", time.Since(began))
	if errors.Is(err, errStaleCache) {
		return ctrl.Result{RequeueAfter: staleRecheck}, nil
	} else if err != nil {
		return ctrl.Result{}, err
	}
	dec := plan.Next(w.spec, w.state, w.obs)
	for _, bounded := range []struct {
		pool *slotPool
		is   bool
	}{{r.creating, createsCanary(w, dec)}, {r.finishing, finishes(w, dec)}} {
		if !bounded.is {
			continue
		}
		release, ok := r.mayTake(bounded.pool, req.String())
		if !ok {
			// Nothing decided is written: the next pass decides again.
			return ctrl.Result{RequeueAfter: creationRetry}, nil
		}
		defer release()
	}
	if err := r.act(ctx, w, dec); errors.Is(err, errChangedMeanwhile) || apierrors.IsConflict(err) {
		// Someone wrote the Deployment or an object since this pass read
		// it: nothing is wrong, the next pass decides on the new state.
		log.FromContext(ctx).V(1).Info("changed meanwhile; deciding again", "err", err.Error())
		return ctrl.Result{RequeueAfter: staleRecheck}, nil
	} else if err != nil {
		r.recordFailure(ctx, w, dec, err)
		return ctrl.Result{}, err
	}
	r.expectChecks(ctx, w, dec.Next)
	log.FromContext(ctx).V(2).Info("pass", "phase", dec.Next.Phase, "weight", dec.Next.Weight, "actions", fmt.Sprint(dec.Actions), "requeue", dec.Requeue.String())
	if len(dec.Actions) > 1 || dec.Event != nil { // more than the state write
		log.FromContext(ctx).V(1).Info("stepped", "phase", dec.Next.Phase, "weight", dec.Next.Weight, "actions", fmt.Sprint(dec.Actions))
	}
	return ctrl.Result{
		RequeueAfter: requeueLeft(dec.Requeue, r.Clock.Now().Sub(w.obs.Now)),
		Priority:     ptr.To(requeuePriority(w.spec, dec.Next, w.obs, dec.Requeue)),
	}, nil
}

// minRequeueLeft is the soonest a pass that outlasted its requeue looks
// again: soon, never at once.
const minRequeueLeft = 50 * time.Millisecond

// requeueLeft is the requeue a pass returns. Next's requeue counts from
// the pass's start (its observations' Now), the queue's from its return:
// what the pass took (its writes, a second in a burst) is deducted, so
// that a due moment does not slip by the length of the pass before it.
// Zero stays zero (no requeue).
//
// Example: a step due in 40s, decided by a pass that took 300ms → 39.7s.
func requeueLeft(requeue, took time.Duration) time.Duration {
	if requeue <= 0 {
		return requeue
	}
	return max(requeue-max(took, 0), min(requeue, minRequeueLeft))
}

// staleRecheck is how soon a pass that read a Deployment version already
// written over looks again; the watch event of the write usually comes
// first.
const staleRecheck = 100 * time.Millisecond

// Querier is the client of a Prometheus URL ("": the controller's),
// kept per URL.
func (r *Reconciler) Querier(url string) (Querier, error) {
	if url == "" {
		url = r.Prometheus
	}
	if url == "" {
		return nil, fmt.Errorf("no Prometheus URL: set the controller's --prometheus-url or %s", contract.KeyPrometheus)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if q, ok := r.queriers[url]; ok {
		return q, nil
	}
	newQuerier := r.NewQuerier
	if newQuerier == nil {
		newQuerier = func(url string) (Querier, error) { return NewPrometheus(url) }
	}
	q, err := newQuerier(url)
	if err != nil {
		return nil, err
	}
	if r.queriers == nil {
		r.queriers = map[string]Querier{}
	}
	r.queriers[url] = q
	return q, nil
}
