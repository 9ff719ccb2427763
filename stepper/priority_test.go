package stepper

import (
	"slices"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/controller/priorityqueue"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/canary-io/canary/contract"
	"github.com/canary-io/canary/stepper/plan"
)

func TestRequeuePriority(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 37, 0, time.UTC)
	spec := plan.Spec{Steps: []int32{20, 40, 60}, Interval: 40 * time.Second, Replicas: 1, PropagationDelay: 2 * time.Second}
	running := plan.State{Phase: contract.PhaseProgressing, Step: 0, Weight: 20, StepStarted: now.Add(-37 * time.Second)}
	prepared := plan.State{Phase: contract.PhaseProgressing, Step: 1, Weight: 20}
	paused := running
	paused.Phase = contract.PhasePaused
	for _, c := range []struct {
		name    string
		next    plan.State
		obs     plan.Observations
		requeue time.Duration
		want    int
	}{
		{"the step's end", running, plan.Observations{}, 3 * time.Second, priorityMoves},
		{"a look before the step's end", running, plan.Observations{}, 2 * time.Second, priorityUpkeep},
		{"late: the shortest requeue", plan.State{Phase: contract.PhaseProgressing, Weight: 20, StepStarted: now.Add(-50 * time.Second)}, plan.Observations{}, time.Second, priorityMoves},
		{"the weight becomes routable", prepared, plan.Observations{CanaryReady: 1, CanaryReadySince: now.Add(-time.Second)}, time.Second, priorityMoves},
		{"canary not ready", prepared, plan.Observations{}, 5 * time.Second, priorityUpkeep},
		{"paused", paused, plan.Observations{}, 3 * time.Second, priorityUpkeep},
		{"no requeue", running, plan.Observations{}, 0, priorityUpkeep},
	} {
		c.obs.Now = now
		if got := requeuePriority(spec, c.next, c.obs, c.requeue); got != c.want {
			t.Errorf("%s: priority %d, want %d", c.name, got, c.want)
		}
	}
}

// TestUrgentGoesFirst: in a backed-up queue, what urgent adds is served
// before the upkeep added earlier.
func TestUrgentGoesFirst(t *testing.T) {
	q := priorityqueue.New[reconcile.Request]("test")
	defer q.ShutDown()
	req := func(name string) reconcile.Request {
		return reconcile.Request{NamespacedName: types.NamespacedName{Namespace: "shop", Name: name}}
	}
	for _, n := range []string{"upkeep-1", "upkeep-2", "upkeep-3"} {
		q.Add(req(n))
	}
	urgent(q).Add(req("moves"))
	got, _ := q.Get()
	if got != req("moves") {
		t.Errorf("first served %v, want shop/moves", got)
	}
	plain := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[reconcile.Request]())
	defer plain.ShutDown()
	if urgent(plain) != plain {
		t.Errorf("a queue without priorities is not used as it is")
	}
}

func TestControlChanged(t *testing.T) {
	dep := func(annotations map[string]string) *appsv1.Deployment {
		return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Annotations: annotations}}
	}
	for _, c := range []struct {
		name     string
		old, new map[string]string
		want     bool
	}{
		{"abort set", nil, map[string]string{contract.KeyAbort: "1"}, true},
		{"promote changed", map[string]string{contract.KeyPromote: "a"}, map[string]string{contract.KeyPromote: "b"}, true},
		{"pause removed", map[string]string{contract.KeyPause: "true"}, map[string]string{}, true},
		{"the system's status only", map[string]string{contract.KeyWeight: "20"}, map[string]string{contract.KeyWeight: "40"}, false},
		{"a setting", nil, map[string]string{contract.KeySteps: "10,50"}, false},
	} {
		if got := controlChanged(event.UpdateEvent{ObjectOld: dep(c.old), ObjectNew: dep(c.new)}); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

func TestCreationSlots(t *testing.T) {
	for workers, want := range map[int]int{64: 16, 8: 2, 2: 1, 1: 1} {
		if got := creationSlots(workers); got != want {
			t.Errorf("creationSlots(%d) = %d, want %d", workers, got, want)
		}
	}
	r := &Reconciler{creating: newSlotPool(2), wake: make(chan event.GenericEvent, 4)}
	first, ok1 := r.mayTake(r.creating, "shop/a")
	_, ok2 := r.mayTake(r.creating, "shop/b")
	_, ok3 := r.mayTake(r.creating, "shop/c")
	_, ok4 := r.mayTake(r.creating, "shop/d")
	r.mayTake(r.creating, "shop/c") // asks again: still second in line
	if !ok1 || !ok2 || ok3 || ok4 {
		t.Fatalf("slots taken: %v %v %v %v, want true true false false", ok1, ok2, ok3, ok4)
	}
	first()
	select {
	case e := <-r.wake:
		if e.Object.GetNamespace() != "shop" || e.Object.GetName() != "c" {
			t.Errorf("the release woke %s/%s, want shop/c (the first in line)", e.Object.GetNamespace(), e.Object.GetName())
		}
	default:
		t.Errorf("the release woke nobody")
	}
	if _, ok := r.mayTake(r.creating, "shop/c"); !ok {
		t.Errorf("a released slot was not free again")
	}
	if !slices.Equal(r.creating.line, []string{"shop/d"}) {
		t.Errorf("in line: %v, want [shop/d]", r.creating.line)
	}
	// A Deployment in line that takes a slot on its own pass (its
	// requeue came before the wake-up of the one first in line) leaves
	// the line: a later release wakes one that still waits.
	one := &Reconciler{creating: newSlotPool(1), wake: make(chan event.GenericEvent, 4)}
	a, _ := one.mayTake(one.creating, "shop/a")
	one.mayTake(one.creating, "shop/b")
	one.mayTake(one.creating, "shop/c")
	a() // wakes shop/b
	if _, ok := one.mayTake(one.creating, "shop/c"); !ok {
		t.Fatal("shop/c: no slot after a release")
	}
	if len(one.creating.line) != 0 {
		t.Errorf("in line after shop/c took the slot: %v, want none", one.creating.line)
	}
	creates := plan.Decision{Actions: []plan.Action{plan.WriteState(), plan.EnsureCanary(1)}}
	if !createsCanary(&world{}, creates) {
		t.Errorf("EnsureCanary without a canary: not a creation")
	}
	if createsCanary(&world{canary: &appsv1.Deployment{}}, creates) {
		t.Errorf("EnsureCanary of an existing canary: a creation")
	}
	if createsCanary(&world{}, plan.Decision{Actions: []plan.Action{plan.WriteState(), plan.SetWeight(0)}}) {
		t.Errorf("no EnsureCanary: a creation")
	}
}

// TestFinishes: the work after a promotion is recorded (its route,
// unpin, unpause; the canary's removal) is bounded; the record itself, a
// pass with nothing but its state to write, and a rollback's work are not.
func TestFinishes(t *testing.T) {
	in := func(p contract.Phase) *world { return &world{state: plan.State{Phase: p}} }
	record := plan.Decision{Actions: []plan.Action{plan.WriteState()}}
	unhold := plan.Decision{Actions: []plan.Action{plan.WriteState(), plan.UnpinService(), plan.Unpause(), plan.SetWeight(0)}}
	cleanup := plan.Decision{Actions: []plan.Action{plan.WriteState(), plan.DeleteCanary()}}
	for _, tc := range []struct {
		name string
		w    *world
		dec  plan.Decision
		want bool
	}{
		{"the promotion recorded (the last step's pass)", in(contract.PhaseProgressing), record, false},
		{"the promotion's route, unpin and unpause", in(contract.PhasePromoting), unhold, true},
		{"the canary removed at the promotion's end", in(contract.PhasePromoting), cleanup, true},
		{"a Succeeded analysis' leftovers removed", in(contract.PhaseSucceeded), cleanup, true},
		{"waiting for the rolling update", in(contract.PhasePromoting), record, false},
		{"a rollback's route", in(contract.PhaseProgressing), plan.Decision{Actions: []plan.Action{plan.WriteState(), plan.UnpinService(), plan.SetWeight(0), plan.Unpause()}}, false},
		{"a rolled-back analysis' route and removal", in(contract.PhaseRolledBack), cleanup, false},
		{"a blue/green switch ended, the canary short of pods", in(contract.PhasePromoting),
			plan.Decision{Actions: unhold.Actions, Event: &plan.Event{Type: plan.EventWarning, Reason: plan.ReasonSwitchEnded}}, false},
	} {
		if got := finishes(tc.w, tc.dec); got != tc.want {
			t.Errorf("%s: finishes %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestRequeueLeft(t *testing.T) {
	for _, c := range []struct {
		name          string
		requeue, took time.Duration
		want          time.Duration
	}{
		{"a step due in 40s, a pass of 300ms", 40 * time.Second, 300 * time.Millisecond, 39700 * time.Millisecond},
		{"no requeue stays none", 0, time.Second, 0},
		{"a pass longer than its requeue looks again soon", time.Second, 3 * time.Second, minRequeueLeft},
		{"a requeue shorter than the floor is kept", 10 * time.Millisecond, time.Second, 10 * time.Millisecond},
		{"a clock stepping back deducts nothing", 5 * time.Second, -time.Second, 5 * time.Second},
	} {
		if got := requeueLeft(c.requeue, c.took); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

// TestRetriesBackOffAtMostMaxRetryBackoff: a pass that keeps failing is
// retried soon at first, then at most maxRetryBackoff apart however long
// it fails (controller-runtime's default reaches 1,000 s), and soon again
// once it succeeded.
func TestRetriesBackOffAtMostMaxRetryBackoff(t *testing.T) {
	l := retryLimiter()
	req := reconcile.Request{NamespacedName: types.NamespacedName{Namespace: "shop", Name: "reviews"}}
	if got := l.When(req); got != 5*time.Millisecond {
		t.Errorf("first retry after %v, want 5ms", got)
	}
	var waited, last time.Duration
	for range 40 {
		last = l.When(req)
		waited += last
	}
	if last != maxRetryBackoff || maxRetryBackoff != 30*time.Second {
		t.Errorf("after 41 failures the retry waits %v, want 30s", last)
	}
	t.Logf("41 failures over %v", waited)
	l.Forget(req)
	if got := l.When(req); got != 5*time.Millisecond {
		t.Errorf("after a success the first retry waits %v, want 5ms", got)
	}
}
