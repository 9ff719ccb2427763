package stepper

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8stypes "k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
)

// TestDeleteOnce: the passes that follow a deletion, while the cache still
// serves the object, do not delete it again (each would be a write for a
// 404); another object under the same name is deleted, and so is the same
// one again once recentWritesFor has passed.
func TestDeleteOnce(t *testing.T) {
	svc := func(uid string) *corev1.Service {
		return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "reviews-canary", Namespace: "shop", UID: k8stypes.UID(uid)}}
	}
	first, second := svc("u1"), svc("u2")
	deletes := 0
	r, c, clk := writesReconciler(t, interceptor.Funcs{Delete: func(ctx context.Context, c client.WithWatch, o client.Object, opts ...client.DeleteOption) error {
		deletes++
		return c.Delete(ctx, o, opts...)
	}}, first)

	for _, step := range []struct {
		name    string
		obj     *corev1.Service
		create  bool
		advance time.Duration
		want    int // Delete calls so far
	}{
		{name: "deleted", obj: first, want: 1},
		{name: "the cache still serves it, a moment later", obj: first, advance: recentWritesFor - time.Second, want: 1},
		{name: "another object under the same name", obj: second, create: true, want: 2},
		{name: "the first again, recentWritesFor after its deletion: gone already, no error", obj: first, advance: time.Second, want: 3},
	} {
		clk.SetTime(clk.Now().Add(step.advance))
		if step.create {
			if err := c.Create(t.Context(), step.obj.DeepCopy()); err != nil {
				t.Fatal(err)
			}
		}
		if err := r.deleteOnce(t.Context(), step.obj); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		if deletes != step.want {
			t.Errorf("%s: %d Delete calls, want %d", step.name, deletes, step.want)
		}
	}
	var left corev1.ServiceList
	if err := c.List(t.Context(), &left); err != nil || len(left.Items) != 0 {
		t.Errorf("left %d Services (err %v), want none", len(left.Items), err)
	}
}

// TestCreateOnce: the passes that follow a create, while the cache does
// not serve the object yet, do not create it again (each would be a 409,
// and for a Service a cluster IP allocated and released); once it is
// deleted, or recentWritesFor has passed, it is created again.
func TestCreateOnce(t *testing.T) {
	creates := 0
	r, c, clk := writesReconciler(t, interceptor.Funcs{Create: func(ctx context.Context, c client.WithWatch, o client.Object, opts ...client.CreateOption) error {
		creates++
		return c.Create(ctx, o, opts...)
	}})
	svc := func() *corev1.Service {
		return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "reviews-canary", Namespace: "shop"}}
	}
	create := func(step string, want int) {
		t.Helper()
		if err := r.createOnce(t.Context(), svc()); err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		if creates != want {
			t.Errorf("%s: %d Create calls, want %d", step, creates, want)
		}
	}
	create("created", 1)
	clk.SetTime(clk.Now().Add(recentWritesFor - time.Second))
	create("again a moment later, the cache not serving it yet", 1)
	clk.SetTime(clk.Now().Add(time.Second))
	create("again recentWritesFor later: there already, no error", 2)

	var got corev1.Service
	if err := c.Get(t.Context(), client.ObjectKey{Namespace: "shop", Name: "reviews-canary"}, &got); err != nil {
		t.Fatal(err)
	}
	if err := r.deleteOnce(t.Context(), &got); err != nil {
		t.Fatal(err)
	}
	create("deleted: a new analysis creates it at once", 3)
}

// writesReconciler is a Reconciler on a fake client holding objs, whose
// calls go through f, and on a fake clock.
func writesReconciler(t *testing.T, f interceptor.Funcs, objs ...client.Object) (*Reconciler, client.WithWatch, *clocktesting.FakePassiveClock) {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).WithInterceptorFuncs(f).Build()
	clk := clocktesting.NewFakePassiveClock(time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC))
	return &Reconciler{Client: c, Clock: clk}, c, clk
}
