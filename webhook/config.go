package webhook

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/canary-io/canary/contract"
)

// ConfigurationName names both webhook configurations.
const ConfigurationName = "canary.io"

// optedInCondition is the CEL match condition that limits the webhooks to
// opted-in Deployments, on the old or the new object: the apiserver never
// calls us (and an outage never touches) any other Deployment. Any value
// but "false" counts, so that a typo such as "yes" reaches validation and
// is denied instead of being ignored.
var optedInCondition = fmt.Sprintf(
	`(has(object.metadata.annotations) && '%[1]s' in object.metadata.annotations && object.metadata.annotations['%[1]s'] != 'false') || `+
		`(oldObject != null && has(oldObject.metadata.annotations) && '%[1]s' in oldObject.metadata.annotations && oldObject.metadata.annotations['%[1]s'] != 'false')`,
	contract.KeyEnabled)

// pinnedCondition limits the Service webhook to Services an analysis has
// pinned: an outage refuses writes to those only, never to any other.
var pinnedCondition = fmt.Sprintf(
	`oldObject != null && has(oldObject.metadata.annotations) && '%[1]s' in oldObject.metadata.annotations`, contract.KeyPinned)

// controllerStatusWrite is a CEL expression, true for an update by the
// controller (user name controller) that changes nothing the webhooks
// judge: the pod template is the stored one, spec.paused is not turned
// off, and no annotation but the system's (contract.SystemKeys) is added,
// changed or removed (an opted-in Deployment has annotations before and
// after any write of the controller; one without goes to the webhooks).
// Mutate passes such a write untouched and Validate allows it, unless
// the stored settings do not parse (docs/security.md: the stepper then
// rolls back, and that write must go through), so the apiserver need not
// ask: the Deployment webhooks' match
// conditions leave it out, and the controller's status writes, a dozen per
// analysis, each save two admission round trips. Every other write by the
// controller, the unpause above all, still goes to the webhooks, which
// judge it as before. Each has() guards a field Kubernetes omits when
// empty: a match condition that fails to evaluate refuses the write
// (failurePolicy Fail).
func controllerStatusWrite(controller string) string {
	system := make([]string, len(contract.SystemKeys))
	for i, k := range contract.SystemKeys {
		system[i] = strconv.Quote(k)
	}
	keys := "[" + strings.Join(system, ", ") + "]"
	return fmt.Sprintf(`oldObject != null && request.userInfo.username == %[1]s && `+
		`object.spec.template == oldObject.spec.template && `+
		`!(has(oldObject.spec.paused) && oldObject.spec.paused && !(has(object.spec.paused) && object.spec.paused)) && `+
		`has(object.metadata.annotations) && has(oldObject.metadata.annotations) && `+
		`size(object.metadata.annotations) <= %[3]d && size(oldObject.metadata.annotations) <= %[3]d && `+
		`object.metadata.annotations.all(k, k in %[2]s || `+
		`(k in oldObject.metadata.annotations && oldObject.metadata.annotations[k] == object.metadata.annotations[k])) && `+
		`oldObject.metadata.annotations.all(k, k in %[2]s || k in object.metadata.annotations)`,
		strconv.Quote(controller), keys, maxSkippedAnnotations)
}

// StatusWriteOnly is controllerStatusWrite in Go, but for who writes:
// the update keeps the pod template, does not unpause, and adds, changes
// or removes no annotation but the system's, on a Deployment of at most
// maxSkippedAnnotations annotations. A write of the controller that
// reaches the webhooks and is one of these tells that the match
// conditions do not leave them out (they name another identity, or the
// apiserver ignores them): the Handler reports it (Unskipped).
func StatusWriteOnly(old, new *appsv1.Deployment) bool {
	if old == nil || len(old.Annotations) == 0 || len(new.Annotations) == 0 ||
		len(old.Annotations) > maxSkippedAnnotations || len(new.Annotations) > maxSkippedAnnotations ||
		old.Spec.Paused && !new.Spec.Paused ||
		!bytes.Equal(contract.TemplateJSON(&old.Spec.Template), contract.TemplateJSON(&new.Spec.Template)) {
		return false
	}
	for k, v := range new.Annotations {
		if w, ok := old.Annotations[k]; (!ok || w != v) && !contract.IsSystemKey(k) {
			return false
		}
	}
	for k := range old.Annotations {
		if _, ok := new.Annotations[k]; !ok && !contract.IsSystemKey(k) {
			return false
		}
	}
	return true
}

// maxSkippedAnnotations bounds the annotations the match condition
// compares: the comparison's cost grows with their number, and a
// Deployment with more goes to the webhooks (the apiserver's cost limit
// would otherwise refuse the write).
const maxSkippedAnnotations = 128

// ClientConfig says where the apiserver reaches the webhook server: a
// function of the handler's path.
type ClientConfig func(path string) admissionregistrationv1.WebhookClientConfig

// URLClientConfig reaches the server at a base URL (out of cluster, e.g.
// https://127.0.0.1:9443), trusting caBundle.
func URLClientConfig(base string, caBundle []byte) ClientConfig {
	return func(path string) admissionregistrationv1.WebhookClientConfig {
		return admissionregistrationv1.WebhookClientConfig{URL: ptr.To(base + path), CABundle: caBundle}
	}
}

// Configurations are the mutating and validating webhook configurations:
// Deployments opted in on the old or new object, CREATE and UPDATE, but
// for the status writes of the controller (controllerStatusWrite), and
// (mutating only) updates of the Services an analysis pinned by anyone
// but the controller (MutateService passes its writes untouched);
// failurePolicy Fail (an outage refuses template updates of opted-in
// Deployments and never rolls them unanalysed), no side effects, and
// reinvocation when a later mutating webhook changes the object.
// controller is the user name the controller writes as
// (--controller-identity).
func Configurations(cc ClientConfig, controller string) (*admissionregistrationv1.MutatingWebhookConfiguration, *admissionregistrationv1.ValidatingWebhookConfiguration) {
	rules := []admissionregistrationv1.RuleWithOperations{{
		Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
		Rule: admissionregistrationv1.Rule{
			APIGroups: []string{"apps"}, APIVersions: []string{"v1"}, Resources: []string{"deployments"},
			Scope: ptr.To(admissionregistrationv1.NamespacedScope),
		},
	}}
	match := []admissionregistrationv1.MatchCondition{
		{Name: "opted-in", Expression: optedInCondition},
		{Name: "not-a-controller-status-write", Expression: "!(" + controllerStatusWrite(controller) + ")"},
	}
	mutating := &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: ConfigurationName},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name:                    "deployments.mutate.canary.io",
			ClientConfig:            cc(MutatePath),
			Rules:                   rules,
			MatchConditions:         match,
			FailurePolicy:           ptr.To(admissionregistrationv1.Fail),
			SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
			ReinvocationPolicy:      ptr.To(admissionregistrationv1.IfNeededReinvocationPolicy),
			TimeoutSeconds:          ptr.To[int32](10),
			AdmissionReviewVersions: []string{"v1"},
		}, {
			Name:         "services.mutate.canary.io",
			ClientConfig: cc(ServicePath),
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Update},
				Rule: admissionregistrationv1.Rule{
					APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"services"},
					Scope: ptr.To(admissionregistrationv1.NamespacedScope),
				},
			}},
			MatchConditions: []admissionregistrationv1.MatchCondition{
				{Name: "pinned", Expression: pinnedCondition},
				{Name: "not-the-controller", Expression: "request.userInfo.username != " + strconv.Quote(controller)},
			},
			FailurePolicy:           ptr.To(admissionregistrationv1.Fail),
			SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
			ReinvocationPolicy:      ptr.To(admissionregistrationv1.IfNeededReinvocationPolicy),
			TimeoutSeconds:          ptr.To[int32](10),
			AdmissionReviewVersions: []string{"v1"},
		}},
	}
	validating := &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: ConfigurationName},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name:                    "deployments.validate.canary.io",
			ClientConfig:            cc(ValidatePath),
			Rules:                   rules,
			MatchConditions:         match,
			FailurePolicy:           ptr.To(admissionregistrationv1.Fail),
			SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
			TimeoutSeconds:          ptr.To[int32](10),
			AdmissionReviewVersions: []string{"v1"},
		}},
	}
	return mutating, validating
}

// Register creates or replaces both webhook configurations (for running
// out of cluster: make run, tests; a real cluster applies manifests/).
func Register(ctx context.Context, cs kubernetes.Interface, cc ClientConfig, controller string) error {
	m, v := Configurations(cc, controller)
	mc := cs.AdmissionregistrationV1().MutatingWebhookConfigurations()
	if old, err := mc.Get(ctx, m.Name, metav1.GetOptions{}); err == nil {
		m.ResourceVersion = old.ResourceVersion
		if _, err := mc.Update(ctx, m, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("update mutating webhook configuration: %w", err)
		}
	} else if !apierrors.IsNotFound(err) {
		return fmt.Errorf("get mutating webhook configuration: %w", err)
	} else if _, err := mc.Create(ctx, m, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create mutating webhook configuration: %w", err)
	}
	vc := cs.AdmissionregistrationV1().ValidatingWebhookConfigurations()
	if old, err := vc.Get(ctx, v.Name, metav1.GetOptions{}); err == nil {
		v.ResourceVersion = old.ResourceVersion
		if _, err := vc.Update(ctx, v, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("update validating webhook configuration: %w", err)
		}
	} else if !apierrors.IsNotFound(err) {
		return fmt.Errorf("get validating webhook configuration: %w", err)
	} else if _, err := vc.Create(ctx, v, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create validating webhook configuration: %w", err)
	}
	return nil
}
