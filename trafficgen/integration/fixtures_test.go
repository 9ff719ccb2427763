package integration_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"testing"
	"time"

	networkingv1 "istio.io/api/networking/v1"
	istionetv1 "istio.io/client-go/pkg/apis/networking/v1"
	istioclient "istio.io/client-go/pkg/clientset/versioned"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/canary-io/canary/e2e/kit"
)

// clients returns the admin's Kubernetes and Istio clients.
func clients(t *testing.T) (*kubernetes.Clientset, *istioclient.Clientset) {
	t.Helper()
	return kit.Clients(t, env)
}

// namespace creates a namespace of the test's own.
func namespace(t *testing.T, cs kubernetes.Interface) string {
	t.Helper()
	return kit.Namespace(t, cs, "trafficgen", map[string]string{"istio-injection": "enabled"})
}

// deployment is a Deployment of replicas pods with labels and an image
// listening on 9080.
func deployment(ns, name string, replicas int32, labels map[string]string, image string) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: name, Image: image,
					Ports: []corev1.ContainerPort{{ContainerPort: 9080}},
				}}},
			},
		},
	}
}

// service is a Service on port 9080 (named http, so Istio speaks HTTP).
func service(ns, name string, selector map[string]string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.ServiceSpec{
			Selector: selector,
			Ports:    []corev1.ServicePort{{Name: "http", Port: 9080, TargetPort: intstr.FromInt32(9080)}},
		},
	}
}

// virtualService routes host reviews to reviews and reviews-canary with
// the given weights.
func virtualService(ns string, stable, canary int32) *istionetv1.VirtualService {
	return &istionetv1.VirtualService{
		ObjectMeta: metav1.ObjectMeta{Name: "reviews", Namespace: ns},
		Spec: networkingv1.VirtualService{
			Hosts: []string{"reviews"},
			Http: []*networkingv1.HTTPRoute{{Route: []*networkingv1.HTTPRouteDestination{
				{Destination: &networkingv1.Destination{Host: "reviews"}, Weight: stable},
				{Destination: &networkingv1.Destination{Host: "reviews-canary"}, Weight: canary},
			}}},
		},
	}
}

// waitAvailable waits until a Deployment has replicas available pods.
func waitAvailable(t *testing.T, cs kubernetes.Interface, ns, name string, replicas int32) {
	t.Helper()
	kit.Eventually(t, 60*time.Second, "deployment "+name+" available", func(ctx context.Context) error {
		d, err := cs.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if s := d.Status; s.ObservedGeneration < d.Generation || s.AvailableReplicas != replicas || s.Replicas != replicas {
			return fmt.Errorf("status %+v", s)
		}
		return nil
	})
}

// promQuery runs an instant query and returns the number of series.
func promQuery(ctx context.Context, query string) (int, error) {
	u := env.PrometheusURL + "/api/v1/query?query=" + url.QueryEscape(query)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("query %s: %s: %s", query, resp.Status, body)
	}
	var r struct {
		Data struct {
			Result []json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return 0, err
	}
	return len(r.Data.Result), nil
}
