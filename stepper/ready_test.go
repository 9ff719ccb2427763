package stepper

import (
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
)

// TestReadySince: the propagation delay counts from a moment never
// before the canary pod was ready: the next second after its Ready
// condition's (whole seconds), or the pod watch's first sight of it ready
// when that is sooner; a pod seen not ready, or deleted, is forgotten.
func TestReadySince(t *testing.T) {
	at := func(s string) time.Time {
		tm, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	pod := func(uid types.UID, ready bool) *corev1.Pod {
		status := corev1.ConditionFalse
		if ready {
			status = corev1.ConditionTrue
		}
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{UID: uid, Name: "reviews-canary-5d4f-x", Namespace: "shop", Labels: map[string]string{LabelCanary: "true"}},
			Status:     corev1.PodStatus{Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: status}}},
		}
	}
	condition := at("2026-12-03T12:00:03Z")
	clk := clocktesting.NewFakeClock(at("2026-12-03T12:00:03.9Z"))
	r := &Reconciler{Clock: clk}
	h := r.sightings(handler.Funcs{})
	update := func(p *corev1.Pod) {
		h.Update(t.Context(), event.UpdateEvent{ObjectOld: pod(p.UID, !podReady(p)), ObjectNew: p}, nil)
	}
	check := func(what string, uid types.UID, cond time.Time, want time.Time) {
		t.Helper()
		if got := r.readySince(pod(uid, true), cond); !got.Equal(want) {
			t.Errorf("%s: ready since %v, want %v", what, got.Format(time.RFC3339Nano), want.Format(time.RFC3339Nano))
		}
	}
	check("not seen (a restart)", "a", condition, at("2026-12-03T12:00:04Z"))
	check("a condition with sub-second precision", "a", at("2026-12-03T12:00:03.5Z"), at("2026-12-03T12:00:03.5Z"))
	update(pod("a", true))
	check("seen ready at 12:00:03.9", "a", condition, at("2026-12-03T12:00:03.9Z"))
	clk.Step(10 * time.Second)
	update(pod("a", true))
	check("seen ready again later: the first sight stays", "a", condition, at("2026-12-03T12:00:03.9Z"))
	h.Create(t.Context(), event.CreateEvent{Object: pod("b", true)}, nil)
	check("first seen at 12:00:13.9 (the watch after a restart)", "b", condition, at("2026-12-03T12:00:04Z"))
	update(pod("a", false))
	check("seen not ready: forgotten", "a", condition, at("2026-12-03T12:00:04Z"))
	clk.SetTime(at("2026-12-03T12:00:03.2Z"))
	update(pod("c", true))
	h.Delete(t.Context(), event.DeleteEvent{Object: pod("c", true)}, nil)
	check("deleted: forgotten", "c", condition, at("2026-12-03T12:00:04Z"))
	for i := range maxReadySeen {
		update(pod(types.UID(strconv.Itoa(i)), true))
	}
	update(pod("d", true))
	if n := len(r.readySeen); n > maxReadySeen {
		t.Errorf("%d pods remembered, want at most %d", n, maxReadySeen)
	}
	check("seen after the memory was full", "d", condition, at("2026-12-03T12:00:03.2Z"))
}
