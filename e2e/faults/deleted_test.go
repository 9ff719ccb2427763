package faults_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/canary-io/canary/contract"
	"github.com/canary-io/canary/e2e/kit"
)

// TestDeletedMidAnalysis: a Deployment deleted while its canary takes
// traffic leaves no pinned Service behind: the Service is unpinned within
// 10 s, and the owner's own apply of it is never reverted.
func TestDeletedMidAnalysis(t *testing.T) {
	t.Parallel()
	cs, _ := clients(t)
	team := kit.Namespace(t, cs, "deleted", nil)
	kit.Kubectl(t, env, kit.Service(team, "reviews", "reviews", 9080), "apply", "-f", "-")
	annotations := []string{`canary.io/enabled: "true"`, `canary.io/steps: "50"`, `canary.io/interval: "1m"`}
	kit.Kubectl(t, env, kit.Reviews(team, "v1", "reviews:v1", 2, annotations, nil), "apply", "-f", "-")
	kit.WaitDeployment(t, cs, team, "reviews", time.Minute, "v1 Idle", func(d *appsv1.Deployment) bool {
		return d.Annotations[contract.KeyPhase] == string(contract.PhaseIdle) && d.Status.AvailableReplicas == 2
	})
	kit.Kubectl(t, env, kit.Reviews(team, "v2", "reviews:v2", 2, annotations, nil), "apply", "-f", "-")
	kit.WaitDeployment(t, cs, team, "reviews", time.Minute, "the canary at 50%", func(d *appsv1.Deployment) bool {
		return d.Annotations[contract.KeyWeight] == "50"
	})
	svc, err := cs.CoreV1().Services(team).Get(t.Context(), "reviews", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, pinned := svc.Spec.Selector[appsv1.DefaultDeploymentUniqueLabelKey]; !pinned {
		t.Fatalf("the Service is not pinned mid-analysis: %v", svc.Spec.Selector)
	}
	if err := cs.AppsV1().Deployments(team).Delete(t.Context(), "reviews", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	kit.Eventually(t, 10*time.Second, "the Service unpinned", func(ctx context.Context) error {
		svc, err := cs.CoreV1().Services(team).Get(ctx, "reviews", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if _, pinned := svc.Spec.Selector[appsv1.DefaultDeploymentUniqueLabelKey]; pinned || svc.Annotations[contract.KeyPinnedBy] != "" {
			return fmt.Errorf("selector %v, annotations %v", svc.Spec.Selector, svc.Annotations)
		}
		return nil
	})
	fmt.Printf("BENCH Deployment deleted mid-analysis: its Service unpinned %s after the delete\n", time.Since(start).Round(10*time.Millisecond))
	// The owner's own apply of the Service stands.
	kit.Kubectl(t, env, fmt.Sprintf(`apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: %s}
spec:
  selector: {app: reviews, tier: web}
  ports: [{name: http, port: 9080}]
`, team), "apply", "-f", "-")
	svc, err = cs.CoreV1().Services(team).Get(t.Context(), "reviews", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(svc.Spec.Selector) != 2 || svc.Spec.Selector["tier"] != "web" {
		t.Errorf("the owner's apply of the Service was changed: selector %v", svc.Spec.Selector)
	}
}
