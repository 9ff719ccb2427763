package stepper

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/controller/priorityqueue"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/canary-io/canary/contract"
	"github.com/canary-io/canary/stepper/plan"
)

// The priorities of passes in the stepper's queue. When many analyses
// start at once, each pass waits on its writes to an apiserver busy with
// every canary being created, and the queue backs up; the passes at which
// an analysis moves then go first, ahead of upkeep: the requeue at the
// moment a step's checks fall due or a prepared weight may be routed
// (plan.MovesAt), the background reads' answers (checks in, a regression
// found, a hook's answer), a canary pod's readiness. Everything else
// (the user's writes, the canary objects' changes, the periodic looks)
// keeps the default.
const (
	priorityUpkeep = 0
	priorityMoves  = 10
)

// requeuePriority is the priority of the next pass of an analysis whose
// decision recorded next and asked for a pass after requeue: priorityMoves
// when that pass is the moment the analysis moves, priorityUpkeep
// otherwise.
//
// Example: a step that ends at 12:00:40, decided at 12:00:37 with a
// requeue of 3s → priorityMoves; with a requeue of 5s (a comparison
// period, at 12:00:30) → priorityUpkeep.
func requeuePriority(spec plan.Spec, next plan.State, obs plan.Observations, requeue time.Duration) int {
	if at, ok := plan.MovesAt(spec, next, obs); ok && requeue > 0 && !obs.Now.Add(requeue).Before(at) {
		return priorityMoves
	}
	return priorityUpkeep
}

// urgently is h enqueueing its requests with priorityMoves (when the
// controller's queue is a priority queue, as controller-runtime's is by
// default).
func urgently(h handler.EventHandler) handler.EventHandler {
	return handler.Funcs{
		CreateFunc: func(ctx context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			h.Create(ctx, e, urgent(q))
		},
		UpdateFunc: func(ctx context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			h.Update(ctx, e, urgent(q))
		},
		DeleteFunc: func(ctx context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			h.Delete(ctx, e, urgent(q))
		},
		GenericFunc: func(ctx context.Context, e event.GenericEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			h.Generic(ctx, e, urgent(q))
		},
	}
}

// urgent is q adding with priorityMoves, or q itself when it has no
// priorities.
func urgent(q workqueue.TypedRateLimitingInterface[reconcile.Request]) workqueue.TypedRateLimitingInterface[reconcile.Request] {
	if pq, ok := q.(priorityqueue.PriorityQueue[reconcile.Request]); ok {
		return urgentQueue{pq}
	}
	return q
}

// urgentQueue is a priority queue whose adds have priorityMoves.
type urgentQueue struct {
	priorityqueue.PriorityQueue[reconcile.Request]
}

func (q urgentQueue) opts() priorityqueue.AddOpts {
	return priorityqueue.AddOpts{Priority: ptr.To(priorityMoves)}
}

func (q urgentQueue) Add(r reconcile.Request) { q.AddWithOpts(q.opts(), r) }

func (q urgentQueue) AddAfter(r reconcile.Request, after time.Duration) {
	o := q.opts()
	o.After = after
	q.AddWithOpts(o, r)
}

func (q urgentQueue) AddRateLimited(r reconcile.Request) {
	o := q.opts()
	o.RateLimited = true
	q.AddWithOpts(o, r)
}

// Creating a canary is a pass's slowest work: four objects written to an
// apiserver that is, when many analyses start together, busy creating
// every canary's ReplicaSet and pods too (seconds each on the benchmark
// machine). A quarter of the workers at most create canaries at once;
// the others stay free for the passes at which analyses move, which would
// otherwise wait behind a burst of creations. A pass that would create a
// canary while the slots are taken writes nothing and waits its turn:
// the release of a slot wakes the Deployment that waited longest, and
// creationRetry bounds the wait should that wake-up be lost.
const creationRetry = 10 * time.Second

// creationSlots is how many passes of workers may create a canary at
// once.
//
// Example: 64 workers → 16; 2 → 1.
func creationSlots(workers int) int {
	return max(1, workers/4)
}

// createsCanary reports whether dec creates w's canary Deployment.
func createsCanary(w *world, dec plan.Decision) bool {
	if w.canary != nil {
		return false
	}
	for _, a := range dec.Actions {
		if a.Kind == plan.ActionEnsureCanary {
			return true
		}
	}
	return false
}

// finishes reports whether dec is the work of an analysis that passed,
// after the pass that recorded it: the promotion's route, unpin and
// unpause, the canary's removal, the Succeeded record's cleanup. Like a
// creation, it is many writes to an apiserver busy (when many analyses
// end together) with every promotion's rolling update, and nothing about
// it is due at a moment: a quarter of the workers at most do it at once,
// so that the steps still due find a worker. A rollback's work is never
// bounded so (a version judged bad leaves the traffic at once), nor a
// decision that warns (a blue/green switch ended because the canary lost
// pods: the traffic leaves it at once).
func finishes(w *world, dec plan.Decision) bool {
	if p := w.state.Phase; p != contract.PhasePromoting && p != contract.PhaseSucceeded {
		return false
	}
	if dec.Event != nil && dec.Event.Type == plan.EventWarning {
		return false
	}
	for _, a := range dec.Actions {
		if a.Kind != plan.ActionWriteState && a.Kind != plan.ActionRecordRejected {
			return true
		}
	}
	return false
}

// slotPool bounds how many passes of one kind act at once: a pass takes a
// slot or writes nothing and waits in line; the release of a slot wakes
// the Deployment first in line, and creationRetry bounds the wait should
// that wake-up be lost.
type slotPool struct {
	free chan struct{}
	mu   sync.Mutex
	line []string // Deployments (namespace/name) waiting, the first first
}

func newSlotPool(n int) *slotPool { return &slotPool{free: make(chan struct{}, n)} }

// mayTake takes a slot of p for the Deployment key, if one is free, and
// returns its release; true when there is no bound (p nil: the
// reconciler was not set up with a manager, as in tests). When none is
// free the key waits in line: the next release wakes the first in line.
func (r *Reconciler) mayTake(p *slotPool, key string) (release func(), ok bool) {
	if p == nil {
		return func() {}, true
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case p.free <- struct{}{}:
		// Out of line, if it waited in it: a release wakes one that waits.
		p.line = slices.DeleteFunc(p.line, func(k string) bool { return k == key })
		return func() { r.release(p) }, true
	default:
	}
	if !slices.Contains(p.line, key) {
		p.line = append(p.line, key)
	}
	return nil, false
}

// release frees a slot of p and wakes the first Deployment in line for
// one.
func (r *Reconciler) release(p *slotPool) {
	<-p.free
	p.mu.Lock()
	var next string
	if len(p.line) > 0 {
		next, p.line = p.line[0], p.line[1:]
	}
	p.mu.Unlock()
	if next == "" || r.wake == nil {
		return
	}
	// Without blocking: when the queue of wake-ups is full, creationRetry
	// brings it back.
	namespace, name, _ := strings.Cut(next, "/")
	r.wakeUp(&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}})
}

// maxRetryBackoff bounds the wait before a pass that failed is tried
// again; controller-runtime's default grows to 1,000 s. A pass that
// failed in Promoting (its unpause refused while the webhook is
// unreachable, say) is never rolled back: only its retry moves the
// promotion on once the cause is gone; one that failed in an analysis in
// flight comes back to roll back at the progress deadline. Either would
// otherwise lag by up to about 17 minutes after a long failure. Events (a
// write of the Deployment, a canary pod's readiness) still bring a pass
// at once.
const maxRetryBackoff = 30 * time.Second

// retryLimiter is the stepper queue's backoff for a pass that failed:
// exponential from 5 ms, as controller-runtime's, up to maxRetryBackoff.
// With every analysis failing (the apiserver refusing the controller's
// writes), that is at most one pass per analysis every 30 s.
func retryLimiter() workqueue.TypedRateLimiter[reconcile.Request] {
	return workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](5*time.Millisecond, maxRetryBackoff)
}
