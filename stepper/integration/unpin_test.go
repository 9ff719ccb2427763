package integration

import (
	"context"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/canary-io/canary/contract"
	"github.com/canary-io/canary/e2e/kit"
)

// TestDeletedMidAnalysisUnpins: a Deployment deleted mid-analysis leaves
// no pinned Service behind (the webhook would keep the pin against its
// owner's own writes); the stepper unpins it within seconds.
func TestDeletedMidAnalysisUnpins(t *testing.T) {
	t.Parallel()
	ns, cs, _ := setup(t, `canary.io/interval: "1m"`)
	prom.Set(ns, kit.Healthy)
	kubectl(t, manifest(ns, "v2", `canary.io/interval: "1m"`), "apply", "-f", "-")
	waitFor(t, cs, ns, 60*time.Second, "weight 20", func(d *appsv1.Deployment) bool { return d.Annotations[contract.KeyWeight] == "20" })
	svc, err := cs.CoreV1().Services(ns).Get(t.Context(), "reviews", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	d, err := cs.AppsV1().Deployments(ns).Get(t.Context(), "reviews", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, pinned := svc.Spec.Selector[appsv1.DefaultDeploymentUniqueLabelKey]; !pinned || svc.Annotations[contract.KeyPinnedBy] != "reviews/"+string(d.UID) {
		t.Fatalf("mid-analysis the Service is not pinned with its owner: selector %v, annotations %v", svc.Spec.Selector, svc.Annotations)
	}
	deleted := time.Now()
	if err := cs.AppsV1().Deployments(ns).Delete(t.Context(), "reviews", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	err = wait.PollUntilContextTimeout(t.Context(), 100*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
		svc, err = cs.CoreV1().Services(ns).Get(ctx, "reviews", metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		_, pinned := svc.Spec.Selector[appsv1.DefaultDeploymentUniqueLabelKey]
		_, marked := svc.Annotations[contract.KeyPinned]
		return !pinned && !marked, nil
	})
	if err != nil {
		t.Fatalf("10s after the Deployment was deleted the Service is still pinned: selector %v, annotations %v", svc.Spec.Selector, svc.Annotations)
	}
	t.Logf("BENCH unpinned %v after the Deployment was deleted", time.Since(deleted).Round(100*time.Millisecond))
	if svc.Spec.Selector["app"] != "reviews" {
		t.Errorf("the user's selector changed: %v", svc.Spec.Selector)
	}
}
