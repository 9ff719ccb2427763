package integration

import (
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/canary-io/canary/contract"
	"github.com/canary-io/canary/e2e/kit"
)

// TestActionRefusedEveryTime: a policy of the cluster's refuses
// <deployment>-canary in the namespace, every time. The failure is in the
// message at once, and at the progress deadline the analysis rolls back
// like any other wait, instead of retrying silently forever.
func TestActionRefusedEveryTime(t *testing.T) {
	t.Parallel()
	ns, cs, _ := setup(t, `canary.io/progress-deadline: "8s"`)
	prom.Set(ns, kit.Healthy)
	name := "no-canaries-" + ns
	kit.DenyPolicy(t, cs, name, ns, []admissionregistrationv1.OperationType{admissionregistrationv1.Create}, []string{"deployments"},
		`!object.metadata.name.endsWith("-canary")`, "canary Deployments are not allowed here")
	// The policy takes effect within a moment; wait until it refuses.
	probe := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "probe-canary", Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "probe"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "probe"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "probe", Image: "probe"}}},
			},
		},
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := cs.AppsV1().Deployments(ns).Create(t.Context(), probe, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil && strings.Contains(err.Error(), "not allowed here") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the policy did not take effect within 20s (last: %v)", err)
		}
		time.Sleep(200 * time.Millisecond)
	}

	kubectl(t, manifest(ns, "v2", `canary.io/progress-deadline: "8s"`), "apply", "-f", "-")
	d := waitFor(t, cs, ns, 30*time.Second, "the failure in the message", func(d *appsv1.Deployment) bool {
		return strings.HasPrefix(d.Annotations[contract.KeyMessage], "cannot act: ")
	})
	if msg := d.Annotations[contract.KeyMessage]; !strings.Contains(msg, "not allowed here") || !strings.Contains(msg, "if it keeps failing") {
		t.Errorf("message %q does not say what failed and until when", msg)
	}
	d = waitFor(t, cs, ns, 30*time.Second, "rolled back at the progress deadline", func(d *appsv1.Deployment) bool {
		return d.Annotations[contract.KeyPhase] == string(contract.PhaseRolledBack)
	})
	if msg := d.Annotations[contract.KeyMessage]; !strings.Contains(msg, "the stepper could not act for 8s (progress deadline)") || !strings.Contains(msg, "not allowed here") {
		t.Errorf("rollback message %q", msg)
	}
	if _, ok := d.Annotations[contract.KeyFailing]; ok {
		t.Errorf("the failure record stayed after the rollback: %v", d.Annotations[contract.KeyFailing])
	}
	if d.Annotations[contract.KeyWeight] != "0" {
		t.Errorf("weight %s after a rollback in which no canary ever ran", d.Annotations[contract.KeyWeight])
	}
}
