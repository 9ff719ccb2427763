package stepper

import (
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

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
