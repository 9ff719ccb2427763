package stepper

import (
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/canary-io/canary/contract"
)

func TestOrphanedPin(t *testing.T) {
	deployment := func(name, uid string, ann map[string]string) appsv1.Deployment {
		d := appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID(uid), Annotations: ann}}
		d.Spec.Template.Labels = map[string]string{"app": name}
		return d
	}
	optedIn := map[string]string{contract.KeyEnabled: "true", contract.KeyPhase: "Progressing"}
	service := func(ann map[string]string) *corev1.Service {
		return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "reviews", Annotations: ann},
			Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "reviews", "pod-template-hash": "abc"}}}
	}
	pinnedBy := func(owner string) map[string]string {
		return map[string]string{contract.KeyPinned: "abc", contract.KeyPinnedBy: owner}
	}
	for _, tc := range []struct {
		name        string
		svc         *corev1.Service
		deployments []appsv1.Deployment
		want        string // a part of the reason; "" keeps the pin
	}{
		{"owner analysing: kept", service(pinnedBy("reviews/u1")), []appsv1.Deployment{deployment("reviews", "u1", optedIn)}, ""},
		{"owner deleted", service(pinnedBy("reviews/u1")), nil, "Deployment reviews that pinned it was deleted"},
		{"owner re-created under its name", service(pinnedBy("reviews/u1")), []appsv1.Deployment{deployment("reviews", "u2", optedIn)}, "one of the same name exists now"},
		{"owner opted out", service(pinnedBy("reviews/u1")), []appsv1.Deployment{deployment("reviews", "u1", nil)}, "no longer opted in"},
		{"an old pin without owner record, an opted-in Deployment selected: kept", service(map[string]string{contract.KeyPinned: "abc"}),
			[]appsv1.Deployment{deployment("reviews", "u1", optedIn)}, ""},
		{"an old pin without owner record, none selected", service(map[string]string{contract.KeyPinned: "abc"}),
			[]appsv1.Deployment{deployment("ratings", "u3", optedIn)}, "no opted-in Deployment"},
		{"the user's own pod-template-hash selector: not ours", service(nil), nil, ""},
	} {
		got := orphanedPin(tc.svc, tc.deployments)
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestUnpinnerLooksUpOwners: a Deployment's change wakes the Services it
// pinned and the pins without an owner record, not every pinned Service
// of its namespace; a pin is judged on its owner looked up by name.
func TestUnpinnerLooksUpOwners(t *testing.T) {
	service := func(name string, ann map[string]string) *corev1.Service {
		return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop", Annotations: ann},
			Spec: corev1.ServiceSpec{Selector: map[string]string{"app": name, podTemplateHash: "abc"}}}
	}
	deployment := func(name string) *appsv1.Deployment {
		d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop", UID: types.UID("uid-" + name),
			Annotations: map[string]string{contract.KeyEnabled: "true"}}}
		d.Spec.Template.Labels = map[string]string{"app": name}
		return d
	}
	pin := func(owner string) map[string]string {
		return map[string]string{contract.KeyPinned: "abc", contract.KeyPinnedBy: owner}
	}
	reviews, ratings := deployment("reviews"), deployment("ratings")
	legacy := service("legacy", map[string]string{contract.KeyPinned: "abc"})
	legacy.Spec.Selector["app"] = "reviews"
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c := fake.NewClientBuilder().WithScheme(scheme).
		WithIndex(&corev1.Service{}, indexPinnedBy, pinnedBy).
		WithObjects(
			service("reviews", pin(PinOwner(reviews))),
			service("reviews-v2", pin(PinOwner(reviews))),
			legacy,
			service("legacy-orphan", map[string]string{contract.KeyPinned: "abc"}),
			service("ratings", pin("ratings/uid-before")),
			service("details", pin("details/uid-details")),
			service("users-own", nil),
			reviews, ratings,
		).Build()
	u := &Unpinner{Client: c}

	var woken []string
	for _, req := range u.pinnedIn(t.Context(), reviews) {
		woken = append(woken, req.Name)
	}
	slices.Sort(woken)
	if want := []string{"legacy", "legacy-orphan", "reviews", "reviews-v2"}; !slices.Equal(woken, want) {
		t.Errorf("reviews' change wakes %v, want %v", woken, want)
	}

	for _, tc := range []struct {
		svc    string
		unpins bool
	}{
		{"reviews", false},   // its owner, opted in
		{"legacy", false},    // an opted-in Deployment selects it
		{"ratings", true},    // its owner re-created under the same name
		{"details", true},    // its owner gone
		{"users-own", false}, // the user's own pod-template-hash
	} {
		if _, err := u.Reconcile(t.Context(), ctrl.Request{NamespacedName: types.NamespacedName{Namespace: "shop", Name: tc.svc}}); err != nil {
			t.Fatalf("%s: %v", tc.svc, err)
		}
		var svc corev1.Service
		if err := c.Get(t.Context(), types.NamespacedName{Namespace: "shop", Name: tc.svc}, &svc); err != nil {
			t.Fatal(err)
		}
		if _, pinned := svc.Spec.Selector[podTemplateHash]; pinned == tc.unpins {
			t.Errorf("%s: selector %v, unpinned %v wanted", tc.svc, svc.Spec.Selector, tc.unpins)
		}
	}
}
