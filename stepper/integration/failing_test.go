package integration

import (
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/canary-io/canary/contract"
	"github.com/canary-io/canary/e2e/kit"
)

// TestActionRefusedEveryTime: a policy of the cluster's refuses
// <deployment>-canary in the namespace, every time. The failure is in the
// message at once, and at the progress deadline the analysis rolls back
// like any other wait, instead of retrying silently forever.
func TestActionRefusedEveryTime(t *testing.T) {
	ns, cs, _ := setup(t, `canary.io/progress-deadline: "8s"`)
	prom.Set(ns, kit.Healthy)
	name := "no-canaries-" + ns
	policy := &admissionregistrationv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: ptr.To(admissionregistrationv1.Fail),
			MatchConstraints: &admissionregistrationv1.MatchResources{
				NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": ns}},
				ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{
					RuleWithOperations: admissionregistrationv1.RuleWithOperations{
						Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
						Rule:       admissionregistrationv1.Rule{APIGroups: []string{"apps"}, APIVersions: []string{"v1"}, Resources: []string{"deployments"}},
					},
				}},
			},
			Validations: []admissionregistrationv1.Validation{{
				Expression: `!object.metadata.name.endsWith("-canary")`,
				Message:    "canary Deployments are not allowed here",
			}},
		},
	}
	binding := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName: name, ValidationActions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny},
		},
	}
	vap := cs.AdmissionregistrationV1()
	if _, err := vap.ValidatingAdmissionPolicies().Create(t.Context(), policy, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = vap.ValidatingAdmissionPolicies().Delete(t.Context(), name, metav1.DeleteOptions{}) })
	if _, err := vap.ValidatingAdmissionPolicyBindings().Create(t.Context(), binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = vap.ValidatingAdmissionPolicyBindings().Delete(t.Context(), name, metav1.DeleteOptions{}) })
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
