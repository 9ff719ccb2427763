package stepper

import (
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/canary-io/canary/contract"
)

// TestIndexedLookups: the Services that select a Deployment's pods, and
// the opted-in Deployments a Service selects, found through the cache's
// indexes, are those a look at every object of the namespace finds.
func TestIndexedLookups(t *testing.T) {
	service := func(name string, selector map[string]string, canary bool) *corev1.Service {
		svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop"}, Spec: corev1.ServiceSpec{Selector: selector}}
		if canary {
			svc.Labels = map[string]string{LabelCanary: "true"}
		}
		return svc
	}
	deployment := func(name string, labels map[string]string, optedIn bool) *appsv1.Deployment {
		d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop", UID: types.UID("uid-" + name)}}
		d.Spec.Template.Labels = labels
		if optedIn {
			d.Annotations = map[string]string{contract.KeyEnabled: "true"}
		}
		return d
	}
	reviews := deployment("reviews", map[string]string{"app": "reviews", "version": "v2"}, true)
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c := fake.NewClientBuilder().WithScheme(scheme).
		WithIndex(&corev1.Service{}, indexSelectorPair, selectorPairs).
		WithIndex(&appsv1.Deployment{}, indexTemplatePair, templatePairs).
		WithObjects(
			service("reviews", map[string]string{"app": "reviews"}, false),
			service("reviews-v2", map[string]string{"app": "reviews", "version": "v2"}, false),
			service("pinned", map[string]string{"app": "reviews", podTemplateHash: "5d4f"}, false),
			service("version-only", map[string]string{"version": "v2"}, false),
			service("reviews-v3", map[string]string{"app": "reviews", "version": "v3"}, false),
			service("ratings", map[string]string{"app": "ratings"}, false),
			service("headless", nil, false),
			service("pin-only", map[string]string{podTemplateHash: "5d4f"}, false),
			service("reviews-canary", map[string]string{"app": "reviews"}, true),
			reviews,
			deployment("reviews-two", map[string]string{"app": "reviews", "version": "two"}, true),
			deployment("reviews-off", map[string]string{"app": "reviews", "version": "off"}, false),
			deployment("ratings", map[string]string{"app": "ratings"}, true),
		).Build()
	r := &Reconciler{Client: c}
	svcs, err := r.servicesSelecting(t.Context(), reviews)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range svcs {
		names = append(names, s.Name)
	}
	if want := []string{"pinned", "reviews", "reviews-v2", "version-only"}; !slices.Equal(names, want) {
		t.Errorf("Services selecting reviews: %v, want %v", names, want)
	}
	for _, tc := range []struct {
		selector map[string]string
		conflict bool
	}{
		{selector: map[string]string{"app": "reviews"}, conflict: true},         // reviews-two too
		{selector: map[string]string{"app": "reviews", "version": "v2"}},        // reviews alone
		{selector: map[string]string{"version": "v2", podTemplateHash: "5d4f"}}, // the pin aside
		{selector: map[string]string{"app": "reviews", podTemplateHash: "5d4f"}, conflict: true},
	} {
		w := &world{deployment: reviews, service: service("s", tc.selector, false)}
		if err := r.checkOneDeploymentPerService(t.Context(), w); err != nil {
			t.Fatal(err)
		}
		if got := w.obs.Conflict != ""; got != tc.conflict {
			t.Errorf("selector %v: conflict %q, want one: %v", tc.selector, w.obs.Conflict, tc.conflict)
		}
	}
}
