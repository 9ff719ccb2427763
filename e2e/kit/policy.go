package kit

import (
	"context"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// DenyPolicy creates a ValidatingAdmissionPolicy named name and its binding
// that refuse, in namespace ns, the operations ops on the apps/v1
// resources (e.g. "deployments", "deployments/status") for which
// expression (CEL) is false, with message, as a cluster's own policy (or
// quota) would. Both are deleted when the test ends; the function
// returned deletes them earlier. The policy takes effect within a moment
// of its creation: the caller waits for it.
func DenyPolicy(t testing.TB, cs kubernetes.Interface, name, ns string, ops []admissionregistrationv1.OperationType, resources []string, expression, message string) (remove func()) {
	t.Helper()
	policy := &admissionregistrationv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: ptr.To(admissionregistrationv1.Fail),
			MatchConstraints: &admissionregistrationv1.MatchResources{
				NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": ns}},
				ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{
					RuleWithOperations: admissionregistrationv1.RuleWithOperations{
						Operations: ops,
						Rule:       admissionregistrationv1.Rule{APIGroups: []string{"apps"}, APIVersions: []string{"v1"}, Resources: resources},
					},
				}},
			},
			Validations: []admissionregistrationv1.Validation{{Expression: expression, Message: message}},
		},
	}
	binding := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName: name, ValidationActions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny},
		},
	}
	vap := cs.AdmissionregistrationV1()
	remove = func() {
		// Not t.Context(): it is cancelled before the cleanups run, and a
		// policy left behind would refuse the controller's writes for the
		// tests that follow.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = vap.ValidatingAdmissionPolicyBindings().Delete(ctx, name, metav1.DeleteOptions{})
		_ = vap.ValidatingAdmissionPolicies().Delete(ctx, name, metav1.DeleteOptions{})
	}
	if _, err := vap.ValidatingAdmissionPolicies().Create(t.Context(), policy, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(remove)
	if _, err := vap.ValidatingAdmissionPolicyBindings().Create(t.Context(), binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return remove
}

// ChangeWebhooks changes the canary.io webhook configurations (both named
// name) with change, as a person or an outage would leave them, and puts
// their webhooks back as they were when the returned function is called
// or the test ends.
func ChangeWebhooks(t testing.TB, cs kubernetes.Interface, name string,
	change func(*admissionregistrationv1.MutatingWebhookConfiguration, *admissionregistrationv1.ValidatingWebhookConfiguration)) (restore func()) {
	t.Helper()
	ar := cs.AdmissionregistrationV1()
	m, err := ar.MutatingWebhookConfigurations().Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	v, err := ar.ValidatingWebhookConfigurations().Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm, cv := m.DeepCopy(), v.DeepCopy()
	change(cm, cv)
	restored := false
	restore = func() {
		if restored {
			return
		}
		restored = true
		// Not t.Context(): it is cancelled before the cleanups run.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cur, err := ar.MutatingWebhookConfigurations().Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			cur.Webhooks = m.Webhooks
			_, err = ar.MutatingWebhookConfigurations().Update(ctx, cur, metav1.UpdateOptions{})
		}
		if err != nil {
			t.Errorf("restore the mutating webhook configuration: %v", err)
		}
		curV, err := ar.ValidatingWebhookConfigurations().Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			curV.Webhooks = v.Webhooks
			_, err = ar.ValidatingWebhookConfigurations().Update(ctx, curV, metav1.UpdateOptions{})
		}
		if err != nil {
			t.Errorf("restore the validating webhook configuration: %v", err)
		}
	}
	t.Cleanup(restore)
	if _, err := ar.MutatingWebhookConfigurations().Update(t.Context(), cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := ar.ValidatingWebhookConfigurations().Update(t.Context(), cv, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	return restore
}
