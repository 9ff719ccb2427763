package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/canary-io/canary/contract"
	"github.com/canary-io/canary/e2e/kit"
)

// TestOptOutRemovesLeftovers: opting out leaves nothing of the system's
// behind: the generated VirtualService (kept at weight 0 between
// analyses) goes, while an object another controller made the Deployment
// own stays.
func TestOptOutRemovesLeftovers(t *testing.T) {
	t.Parallel()
	ns, cs, ic := setup(t)
	prom.Set(ns, kit.Healthy)
	kubectl(t, manifest(ns, "v2"), "apply", "-f", "-")
	d := phaseOf(t, cs, ns, contract.PhaseSucceeded, 90*time.Second)
	if _, err := ic.NetworkingV1().VirtualServices(ns).Get(t.Context(), "reviews", metav1.GetOptions{}); err != nil {
		t.Fatalf("the generated VirtualService is not there after the analysis: %v", err)
	}
	theirs := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "reviews-metrics", Namespace: ns, OwnerReferences: []metav1.OwnerReference{{
			APIVersion: "apps/v1", Kind: "Deployment", Name: d.Name, UID: d.UID, Controller: ptr.To(true),
		}}},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "reviews"}, Ports: []corev1.ServicePort{{Port: 9090}}},
	}
	if _, err := cs.CoreV1().Services(ns).Create(t.Context(), theirs, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	kubectl(t, "", "-n", ns, "annotate", "deployment", "reviews", "canary.io/enabled=false", "--overwrite")
	kit.Eventually(t, 10*time.Second, "the generated VirtualService removed", func(ctx context.Context) error {
		if _, err := ic.NetworkingV1().VirtualServices(ns).Get(ctx, "reviews", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("still there (err %v)", err)
		}
		return nil
	})
	if _, err := cs.CoreV1().Services(ns).Get(t.Context(), "reviews-metrics", metav1.GetOptions{}); err != nil {
		t.Errorf("a Service another controller made the Deployment own was touched: %v", err)
	}
	d = waitFor(t, cs, ns, 10*time.Second, "status cleared", func(d *appsv1.Deployment) bool {
		_, managed := d.Annotations[contract.KeyPhase]
		return !managed
	})
	if d.Spec.Paused {
		t.Error("the opted-out Deployment is paused")
	}
}
