package webhook_test

import (
	"fmt"
	"maps"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apiserver/pkg/admission"
	"k8s.io/apiserver/pkg/admission/plugin/cel"
	apiwebhook "k8s.io/apiserver/pkg/admission/plugin/webhook"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/cel/environment"

	"github.com/canary-io/canary/contract"
	"github.com/canary-io/canary/webhook"
)

const controller = "system:serviceaccount:canary-system:canary-controller"

// calls reports whether the apiserver calls each webhook for a request:
// the match conditions compiled and evaluated by the apiserver's own code
// (k8s.io/apiserver's webhook dispatcher compiles them the same way). An
// evaluation error fails the test: with failurePolicy Fail it would refuse
// the write.
func calls(t *testing.T, accessors []apiwebhook.WebhookAccessor, obj, old runtime.Object, gvk schema.GroupVersionKind, gvr schema.GroupVersionResource, username string) []bool {
	t.Helper()
	compiler := cel.NewConditionCompiler(environment.MustBaseEnvSet(environment.DefaultCompatibilityVersion()))
	obj.GetObjectKind().SetGroupVersionKind(gvk)
	op := admission.Update
	if old == nil {
		op = admission.Create
	} else {
		old.GetObjectKind().SetGroupVersionKind(gvk)
	}
	attr := admission.NewAttributesRecord(obj, old, gvk, "shop", "reviews", gvr, "", op, nil, false, &user.DefaultInfo{Name: username})
	versioned, err := admission.NewVersionedAttributes(attr, gvk, nil)
	if err != nil {
		t.Fatal(err)
	}
	var out []bool
	for _, a := range accessors {
		m := a.GetCompiledMatcher(compiler)
		r := m.Match(t.Context(), versioned, nil, nil)
		if r.Error != nil {
			t.Fatalf("webhook %s: match conditions failed: %v", a.GetName(), r.Error)
		}
		out = append(out, r.Matches)
	}
	return out
}

func accessors(m *admissionregistrationv1.MutatingWebhookConfiguration, v *admissionregistrationv1.ValidatingWebhookConfiguration, names ...string) []apiwebhook.WebhookAccessor {
	var out []apiwebhook.WebhookAccessor
	for i := range m.Webhooks {
		for _, n := range names {
			if m.Webhooks[i].Name == n {
				out = append(out, apiwebhook.NewMutatingWebhookAccessor(n, m.Name, &m.Webhooks[i]))
			}
		}
	}
	for i := range v.Webhooks {
		for _, n := range names {
			if v.Webhooks[i].Name == n {
				out = append(out, apiwebhook.NewValidatingWebhookAccessor(n, v.Name, &v.Webhooks[i]))
			}
		}
	}
	return out
}

func configurations() (*admissionregistrationv1.MutatingWebhookConfiguration, *admissionregistrationv1.ValidatingWebhookConfiguration) {
	return webhook.Configurations(func(string) admissionregistrationv1.WebhookClientConfig {
		return admissionregistrationv1.WebhookClientConfig{}
	}, controller)
}

// TestDeploymentWebhooksSkipOnlyTheControllersStatusWrites: the apiserver
// leaves out of the Deployment webhooks exactly the controller's writes
// that Mutate passes untouched and Validate allows (status annotations,
// pausing); the controller's every other write still reaches them, and so
// does everyone else's.
func TestDeploymentWebhooksSkipOnlyTheControllersStatusWrites(t *testing.T) {
	m, v := configurations()
	hooks := accessors(m, v, "deployments.mutate.canary.io", "deployments.validate.canary.io")
	if len(hooks) != 2 {
		t.Fatalf("found %d Deployment webhooks, want 2", len(hooks))
	}
	stored := &appsv1.Deployment{
		TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Name: "reviews", Namespace: "shop", Annotations: map[string]string{
			contract.KeyEnabled: "true", contract.KeySteps: "10,50",
			contract.KeyPhase: string(contract.PhaseProgressing), contract.KeyRevision: "abc", contract.KeyStableRevision: "def",
			contract.KeyWeight: "10", contract.KeyFailing: "quota", "team": "books",
		}},
		Spec: appsv1.DeploymentSpec{Paused: true, Template: corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "reviews"}},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "reviews", Image: "reviews:v2"}}},
		}},
	}
	unpaused := stored.DeepCopy()
	unpaused.Spec.Paused = false
	unpaused.Annotations[contract.KeyPhase] = string(contract.PhaseSucceeded)
	for _, tc := range []struct {
		name   string
		old    *appsv1.Deployment // default: stored
		change func(d *appsv1.Deployment)
		user   string // default: the controller
		want   bool   // the webhooks are called
	}{
		{name: "status annotations written", change: func(d *appsv1.Deployment) {
			d.Annotations[contract.KeyWeight] = "50"
			d.Annotations[contract.KeyStep] = "2"
			d.Annotations[contract.KeyMessage] = "step 2 of 2"
			d.Annotations[contract.KeyStepStarted] = "2026-12-03T20:00:00Z"
			delete(d.Annotations, contract.KeyFailing)
		}},
		{name: "nothing changed", change: func(*appsv1.Deployment) {}},
		{name: "replicas and labels", change: func(d *appsv1.Deployment) {
			d.Spec.Replicas = new(int32)
			d.Labels = map[string]string{"x": "y"}
		}},
		{name: "paused again", old: unpaused, change: func(d *appsv1.Deployment) { d.Spec.Paused = true }},
		{name: "unpaused", change: func(d *appsv1.Deployment) {
			d.Spec.Paused = false
			d.Annotations[contract.KeyPhase] = string(contract.PhasePromoting)
		}, want: true},
		{name: "template changed", change: func(d *appsv1.Deployment) {
			d.Spec.Template.Spec.Containers[0].Image = "reviews:v3"
		}, want: true},
		{name: "template label added", change: func(d *appsv1.Deployment) {
			d.Spec.Template.Labels["version"] = "v3"
		}, want: true},
		{name: "setting changed", change: func(d *appsv1.Deployment) { d.Annotations[contract.KeySteps] = "5" }, want: true},
		{name: "setting removed", change: func(d *appsv1.Deployment) { delete(d.Annotations, contract.KeySteps) }, want: true},
		{name: "setting added", change: func(d *appsv1.Deployment) { d.Annotations[contract.KeyInterval] = "1s" }, want: true},
		{name: "opted out", change: func(d *appsv1.Deployment) { d.Annotations[contract.KeyEnabled] = "false" }, want: true},
		{name: "control written", change: func(d *appsv1.Deployment) { d.Annotations[contract.KeyAbort] = "1" }, want: true},
		{name: "another annotation changed", change: func(d *appsv1.Deployment) { d.Annotations["team"] = "films" }, want: true},
		{name: "all annotations removed", change: func(d *appsv1.Deployment) { d.Annotations = nil }, want: true},
		{name: "a user's status-only write", user: "jane", change: func(d *appsv1.Deployment) {
			d.Annotations[contract.KeyWeight] = "50"
		}, want: true},
		{name: "another service account", user: "system:serviceaccount:canary-system:canary-controller2", change: func(d *appsv1.Deployment) {
			d.Annotations[contract.KeyWeight] = "50"
		}, want: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			old := tc.old
			if old == nil {
				old = stored
			}
			obj := old.DeepCopy()
			obj.Annotations = maps.Clone(old.Annotations)
			tc.change(obj)
			u := tc.user
			if u == "" {
				u = controller
			}
			got := calls(t, hooks, obj, old, appsv1.SchemeGroupVersion.WithKind("Deployment"), appsv1.SchemeGroupVersion.WithResource("deployments"), u)
			for i, g := range got {
				if g != tc.want {
					t.Errorf("webhook %s called: %v, want %v", hooks[i].GetName(), g, tc.want)
				}
			}
			if !got[0] || !got[1] {
				passedUntouched(t, old, obj)
			}
			// The Go mirror the handler uses to spot a configuration
			// that does not leave the controller's status writes out.
			if u == controller && webhook.StatusWriteOnly(old, obj) == got[0] {
				t.Errorf("StatusWriteOnly %v, but the webhooks are called: %v", webhook.StatusWriteOnly(old, obj), got[0])
			}
		})
	}

	t.Run("many annotations", func(t *testing.T) {
		// 128 annotations in all is the bound.
		for _, tc := range []struct {
			n    int
			want bool
		}{{128, false}, {129, true}, {500, true}} {
			old := stored.DeepCopy()
			for i := range tc.n - len(stored.Annotations) {
				old.Annotations[fmt.Sprintf("example.com/a%d", i)] = "x"
			}
			obj := old.DeepCopy()
			obj.Annotations[contract.KeyWeight] = "50"
			if webhook.StatusWriteOnly(old, obj) == tc.want {
				t.Errorf("%d annotations: StatusWriteOnly %v, want %v", len(old.Annotations), !tc.want, tc.want)
			}
			for i, g := range calls(t, hooks, obj, old, appsv1.SchemeGroupVersion.WithKind("Deployment"), appsv1.SchemeGroupVersion.WithResource("deployments"), controller) {
				if g != tc.want {
					t.Errorf("%d annotations: webhook %s called: %v, want %v", len(old.Annotations), hooks[i].GetName(), g, tc.want)
				}
			}
		}
	})

	t.Run("created by the controller", func(t *testing.T) {
		for i, g := range calls(t, hooks, stored.DeepCopy(), nil, appsv1.SchemeGroupVersion.WithKind("Deployment"), appsv1.SchemeGroupVersion.WithResource("deployments"), controller) {
			if !g {
				t.Errorf("webhook %s not called on a create", hooks[i].GetName())
			}
		}
	})
	t.Run("not opted in", func(t *testing.T) {
		plain := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "plain", Namespace: "shop"}}
		changed := plain.DeepCopy()
		changed.Spec.Paused = true
		for _, u := range []string{controller, "jane"} {
			for i, g := range calls(t, hooks, changed, plain, appsv1.SchemeGroupVersion.WithKind("Deployment"), appsv1.SchemeGroupVersion.WithResource("deployments"), u) {
				if g {
					t.Errorf("webhook %s called for %s on a Deployment not opted in", hooks[i].GetName(), u)
				}
			}
		}
	})
}

// passedUntouched checks that the webhooks would have passed a write the
// apiserver leaves out of them untouched: Mutate changes nothing and
// Validate allows it (the stored settings being valid).
func passedUntouched(t *testing.T, old, obj *appsv1.Deployment) {
	t.Helper()
	req := webhook.Request{Old: old, New: obj, ByController: true, Now: time.Now(), User: controller}
	r := webhook.Mutate(req)
	if r.Denied != "" {
		t.Fatalf("a write the webhooks do not see is one Mutate denies: %s", r.Denied)
	}
	if r.Object.Spec.Paused != obj.Spec.Paused || !maps.Equal(r.Object.Annotations, obj.Annotations) {
		t.Errorf("a write the webhooks do not see is one Mutate changes: paused %v, annotations %v", r.Object.Spec.Paused, r.Object.Annotations)
	}
	if errs, reason := webhook.Validate(req); len(errs) > 0 || reason != "" {
		t.Errorf("a write the webhooks do not see is one Validate refuses: %v %s", errs, reason)
	}
}

// TestServiceWebhookSkipsTheController: the controller's writes to a
// pinned Service (pinning, unpinning) pass untouched (MutateService), so
// the apiserver does not call the webhook for them; it does for anyone
// else's.
func TestServiceWebhookSkipsTheController(t *testing.T) {
	m, v := configurations()
	hooks := accessors(m, v, "services.mutate.canary.io")
	if len(hooks) != 1 {
		t.Fatalf("found %d Service webhooks, want 1", len(hooks))
	}
	old := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "reviews", Namespace: "shop", Annotations: map[string]string{contract.KeyPinned: "abc"}},
		Spec:       corev1.ServiceSpec{Selector: map[string]string{"app": "reviews", appsv1.DefaultDeploymentUniqueLabelKey: "abc"}},
	}
	unpinned := old.DeepCopy()
	unpinned.Annotations = nil
	delete(unpinned.Spec.Selector, appsv1.DefaultDeploymentUniqueLabelKey)
	for _, tc := range []struct {
		user string
		want bool
	}{{controller, false}, {"jane", true}} {
		got := calls(t, hooks, unpinned, old, corev1.SchemeGroupVersion.WithKind("Service"), corev1.SchemeGroupVersion.WithResource("services"), tc.user)
		if got[0] != tc.want {
			t.Errorf("%s unpinning: webhook called %v, want %v", tc.user, got[0], tc.want)
		}
	}
}

// TestStatusWriteSkipCoversEverySystemKey: the condition lists the keys
// the stepper writes: a new system key is skipped like the others.
func TestStatusWriteSkipCoversEverySystemKey(t *testing.T) {
	m, v := configurations()
	hooks := accessors(m, v, "deployments.mutate.canary.io", "deployments.validate.canary.io")
	old := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "reviews", Namespace: "shop", Annotations: map[string]string{contract.KeyEnabled: "true"}}}
	for _, k := range contract.SystemKeys {
		d := old.DeepCopy()
		d.Annotations[k] = "x"
		for i, g := range calls(t, hooks, d, old, appsv1.SchemeGroupVersion.WithKind("Deployment"), appsv1.SchemeGroupVersion.WithResource("deployments"), controller) {
			if g {
				t.Errorf("the controller writing %s: webhook %s called", k, hooks[i].GetName())
			}
		}
	}
}
