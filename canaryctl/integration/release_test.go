package integration

import (
	"strings"
	"testing"

	networkingv1 "istio.io/api/networking/v1"
	istionetv1 "istio.io/client-go/pkg/apis/networking/v1"
	istioclient "istio.io/client-go/pkg/clientset/versioned"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/canary-io/canary/contract"
	"github.com/canary-io/canary/e2e/kit"
	"github.com/canary-io/canary/stepper"
)

// TestRelease: kubectl canary release hands a Deployment whose analysis
// was in flight when the controller went away back to plain Kubernetes:
// the generated VirtualService deleted, the canary's route taken out of
// the user's own VirtualService (its other routes untouched), the canary's
// objects deleted (never another owner's), the Service unpinned, the
// canary.io annotations removed, the template and pause left to the user.
// While the controller's webhooks are registered it refuses.
func TestRelease(t *testing.T) {
	ns := namespace(t)
	ic := istioclient.NewForConfigOrDie(env.Admin)
	annotations := step1()
	annotations[contract.KeyVirtualService] = "shop"
	d := createDeployment(t, ns, "web", annotations)
	// The deployment controller writes its status meanwhile: pause the
	// latest version.
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		latest, err := cs.AppsV1().Deployments(ns).Get(t.Context(), "web", metav1.GetOptions{})
		if err != nil {
			return err
		}
		latest.Spec.Paused = true
		d, err = cs.AppsV1().Deployments(ns).Update(t.Context(), latest, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	owner := []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: d.Name, UID: d.UID, Controller: ptr.To(true)}}
	mustCreate := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	_, err = cs.CoreV1().Services(ns).Create(t.Context(), &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Annotations: map[string]string{contract.KeyPinned: "abc123", contract.KeyPinnedBy: "web/" + string(d.UID)}},
		Spec:       corev1.ServiceSpec{Selector: map[string]string{"app": "web", "pod-template-hash": "abc123"}, Ports: []corev1.ServicePort{{Port: 80}}},
	}, metav1.CreateOptions{})
	mustCreate(err)
	_, err = cs.CoreV1().Services(ns).Create(t.Context(), &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web-canary", Labels: map[string]string{stepper.LabelCanary: "true"}, OwnerReferences: owner},
		Spec:       corev1.ServiceSpec{Selector: map[string]string{"app": "web", stepper.LabelCanary: "true"}, Ports: []corev1.ServicePort{{Port: 80}}},
	}, metav1.CreateOptions{})
	mustCreate(err)
	labels := map[string]string{"app": "web", stepper.LabelCanary: "true"}
	_, err = cs.AppsV1().Deployments(ns).Create(t.Context(), &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web-canary", Labels: map[string]string{stepper.LabelCanary: "true"}, OwnerReferences: owner},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1), Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "example.com/app:v2"}}}},
		},
	}, metav1.CreateOptions{})
	mustCreate(err)
	rule := &istionetv1.DestinationRule{ObjectMeta: metav1.ObjectMeta{Name: "web-canary", OwnerReferences: owner}}
	rule.Spec.Host = "web-canary"
	_, err = ic.NetworkingV1().DestinationRules(ns).Create(t.Context(), rule, metav1.CreateOptions{})
	mustCreate(err)
	user := &istionetv1.VirtualService{ObjectMeta: metav1.ObjectMeta{Name: "shop", Annotations: map[string]string{stepper.AnnotationWeight: "20"}}}
	user.Spec.Hosts = []string{"web", "shop.example.com"}
	user.Spec.Http = []*networkingv1.HTTPRoute{
		{Name: "static", Route: []*networkingv1.HTTPRouteDestination{{Destination: &networkingv1.Destination{Host: "static"}}}},
		{Name: "web", Route: []*networkingv1.HTTPRouteDestination{
			{Destination: &networkingv1.Destination{Host: "web"}, Weight: 80},
			{Destination: &networkingv1.Destination{Host: "web-canary"}, Weight: 20},
		}},
	}
	_, err = ic.NetworkingV1().VirtualServices(ns).Create(t.Context(), user, metav1.CreateOptions{})
	mustCreate(err)

	// The gateway-api router's routes: a generated HTTPRoute, and a user's
	// steered at 20% (the rule scaled by 100).
	rc := kit.RouteClient(t, env)
	generated := &gwv1.HTTPRoute{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns, OwnerReferences: owner, Annotations: map[string]string{stepper.AnnotationWeight: "20"}}}
	generated.Spec.ParentRefs = []gwv1.ParentReference{{Group: ptr.To(gwv1.Group("")), Kind: ptr.To(gwv1.Kind("Service")), Name: "web"}}
	generated.Spec.Rules = []gwv1.HTTPRouteRule{{BackendRefs: []gwv1.HTTPBackendRef{backendRef("web", 80), backendRef("web-canary", 20)}}}
	mustCreate(rc.Create(t.Context(), generated))
	userRoute := &gwv1.HTTPRoute{ObjectMeta: metav1.ObjectMeta{Name: "shop-route", Namespace: ns, Annotations: map[string]string{stepper.AnnotationWeight: "20"}}}
	userRoute.Spec.ParentRefs = []gwv1.ParentReference{{Name: "shop-gateway"}}
	userRoute.Spec.Rules = []gwv1.HTTPRouteRule{
		{BackendRefs: []gwv1.HTTPBackendRef{backendRef("static", 0)}},
		{BackendRefs: []gwv1.HTTPBackendRef{backendRef("web", 240), backendRef("web-canary", 60), backendRef("legacy", 100)}},
	}
	mustCreate(rc.Create(t.Context(), userRoute))

	// Refused while the controller's webhooks are registered, under the
	// manifests' name or the one the Helm chart was given; a
	// configuration of the same name without the controller's webhook is
	// not the controller's.
	for _, tc := range []struct {
		name    string
		webhook string
		refused bool
	}{
		{"canary.io", "deployments.validate.canary.io", true},
		{"canary.io-team-b", "deployments.validate.canary.io", true},
		{"canary.io", "something.else.example.com", false},
	} {
		if !tc.refused {
			// Registered during the release below, which it must not stop.
			defer func() {
				_ = cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Delete(t.Context(), tc.name, metav1.DeleteOptions{})
			}()
		}
		url := "https://127.0.0.1:1/never-called"
		vwc := &admissionregistrationv1.ValidatingWebhookConfiguration{
			ObjectMeta: metav1.ObjectMeta{Name: tc.name},
			Webhooks: []admissionregistrationv1.ValidatingWebhook{{
				Name:                    tc.webhook,
				ClientConfig:            admissionregistrationv1.WebhookClientConfig{URL: &url},
				AdmissionReviewVersions: []string{"v1"},
				SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
				FailurePolicy:           ptr.To(admissionregistrationv1.Ignore),
				// Nothing is ever sent to it: no such resource.
				Rules: []admissionregistrationv1.RuleWithOperations{{
					Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
					Rule:       admissionregistrationv1.Rule{APIGroups: []string{"example.invalid"}, APIVersions: []string{"v1"}, Resources: []string{"nothing"}},
				}},
			}},
		}
		if _, err := cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(t.Context(), vwc, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if !tc.refused {
			break
		}
		out, err := run(t, "release", "web", "-n", ns, "--proxy-wait", "0s")
		refused := err != nil && strings.Contains(err.Error(), "the controller's webhooks ("+tc.name+") are registered")
		if refused != tc.refused {
			t.Errorf("release with the configuration %s holding %s: refused %v, want %v (%v)\n%s", tc.name, tc.webhook, refused, tc.refused, err, out)
		}
		if err := cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Delete(t.Context(), tc.name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	out, err := run(t, "release", "web", "-n", ns, "--proxy-wait", "10ms")
	if err != nil {
		t.Fatalf("release: %v\n%s", err, out)
	}
	t.Logf("kubectl canary release printed:\n%s", out)
	for _, want := range []string{
		"virtualservice.networking.istio.io/shop patched (the canary's routes merged back into web)",
		"httproute.gateway.networking.k8s.io/web deleted (generated for the analysis: the mesh routes to Service web)",
		"httproute.gateway.networking.k8s.io/shop-route patched (the canary's backendRefs merged back into web)",
		"deployment.apps/web-canary deleted", "service/web-canary deleted", "destinationrule.networking.istio.io/web-canary deleted",
		"service/web unpinned (pod-template-hash abc123 removed from its selector)",
		"deployment.apps/web released:", "it is paused with the template held for analysis (revision 7f9c4d)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	vs, err := ic.NetworkingV1().VirtualServices(ns).Get(t.Context(), "shop", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(vs.Spec.Http); n != 2 || vs.Spec.Http[0].Route[0].Destination.Host != "static" {
		t.Errorf("the user's other route changed: %v", vs.Spec.Http)
	}
	if r := vs.Spec.Http[1].Route; len(r) != 1 || r[0].Destination.Host != "web" {
		t.Errorf("the user's web route after release: %v, want web alone", r)
	}
	if _, ok := vs.Annotations[stepper.AnnotationWeight]; ok {
		t.Errorf("the weight record is left on the user's VirtualService")
	}
	var route gwv1.HTTPRoute
	if err := rc.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: "shop-route"}, &route); err != nil {
		t.Fatal(err)
	}
	if got := kit.Backends(route.Spec.Rules[0].BackendRefs); got != "static" {
		t.Errorf("the user's other HTTPRoute rule changed: %s", got)
	}
	if got := kit.Backends(route.Spec.Rules[1].BackendRefs); got != "web=3 legacy" {
		t.Errorf("the user's web rule after release: %s, want web=3 legacy (3:1 as written)", got)
	}
	if _, ok := route.Annotations[stepper.AnnotationWeight]; ok {
		t.Errorf("the weight record is left on the user's HTTPRoute")
	}
	if err := rc.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: "web"}, &route); !apierrors.IsNotFound(err) {
		t.Errorf("the generated HTTPRoute is left (err %v)", err)
	}
	svc, err := cs.CoreV1().Services(ns).Get(t.Context(), "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(svc.Spec.Selector) != 1 || len(svc.Annotations) != 0 {
		t.Errorf("the Service after release: selector %v, annotations %v", svc.Spec.Selector, svc.Annotations)
	}
	got, err := cs.AppsV1().Deployments(ns).Get(t.Context(), "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for k := range got.Annotations {
		if strings.HasPrefix(k, contract.Prefix) {
			t.Errorf("annotation %s left on the Deployment", k)
		}
	}
	if !got.Spec.Paused || got.Spec.Template.Spec.Containers[0].Image != "example.com/app:v2" {
		t.Errorf("release changed the template or the pause: paused %v, image %s", got.Spec.Paused, got.Spec.Template.Spec.Containers[0].Image)
	}
	for _, gone := range []error{
		func() error {
			_, err := cs.AppsV1().Deployments(ns).Get(t.Context(), "web-canary", metav1.GetOptions{})
			return err
		}(),
		func() error {
			_, err := cs.CoreV1().Services(ns).Get(t.Context(), "web-canary", metav1.GetOptions{})
			return err
		}(),
		func() error {
			_, err := ic.NetworkingV1().DestinationRules(ns).Get(t.Context(), "web-canary", metav1.GetOptions{})
			return err
		}(),
	} {
		if !apierrors.IsNotFound(gone) {
			t.Errorf("a canary object is left (err %v)", gone)
		}
	}
	// Released twice: nothing more to do, no error.
	if out, err := run(t, "release", "web", "-n", ns, "--proxy-wait", "0s"); err != nil {
		t.Errorf("release again: %v\n%s", err, out)
	}
}

// backendRef is a backendRef to a Service on port 80, of weight w (0:
// unset).
func backendRef(name string, w int32) gwv1.HTTPBackendRef {
	r := gwv1.HTTPBackendRef{BackendRef: gwv1.BackendRef{BackendObjectReference: gwv1.BackendObjectReference{Name: gwv1.ObjectName(name), Port: ptr.To(int32(80))}}}
	if w != 0 {
		r.Weight = ptr.To(w)
	}
	return r
}
