package cluster_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	networkingv1 "istio.io/api/networking/v1"
	istionetv1 "istio.io/client-go/pkg/apis/networking/v1"
	istioclient "istio.io/client-go/pkg/clientset/versioned"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/canary-io/canary/e2e/cluster"
	"github.com/canary-io/canary/e2e/kit"
)

var env *cluster.Cluster

func TestMain(m *testing.M) {
	os.Exit(cluster.RunTests(m, cluster.Options{Istiod: true}, func(c *cluster.Cluster) { env = c }))
}

func clients(t *testing.T) (*kubernetes.Clientset, *istioclient.Clientset) {
	t.Helper()
	return kit.Clients(t, env)
}

func namespace(t *testing.T, cs kubernetes.Interface) string {
	t.Helper()
	return kit.Namespace(t, cs, "smoke", nil)
}

func TestServerReportsItsRealVersion(t *testing.T) {
	cs, _ := clients(t)
	v, err := cs.Discovery().ServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	if v.GitVersion != "v1.36.3" {
		t.Fatalf("server version %q, want v1.36.3", v.GitVersion)
	}
}

func TestControllerCredentialIsNotTheAdmin(t *testing.T) {
	cs, err := kubernetes.NewForConfig(env.Controller)
	if err != nil {
		t.Fatal(err)
	}
	review, err := cs.AuthenticationV1().SelfSubjectReviews().Create(t.Context(), &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := review.Status.UserInfo.Username; got != cluster.ControllerUser {
		t.Fatalf("controller credential is user %q, want %q", got, cluster.ControllerUser)
	}
	if slices.Contains(review.Status.UserInfo.Groups, "system:masters") {
		t.Fatalf("controller credential is in system:masters: %v", review.Status.UserInfo.Groups)
	}
}

func TestDeploymentRollsAndEndpointsFollow(t *testing.T) {
	cs, _ := clients(t)
	ctx := t.Context()
	ns := namespace(t, cs)
	labels := map[string]string{"app": "smoke"}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "smoke", Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](3),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "app", Image: "example.com/smoke:v1",
					Ports: []corev1.ContainerPort{{ContainerPort: 8080}},
				}}},
			},
		},
	}
	if _, err := cs.AppsV1().Deployments(ns).Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "smoke", Namespace: ns},
		Spec: corev1.ServiceSpec{
			Selector: labels,
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}},
		},
	}
	if _, err := cs.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	waitRolledOut(t, cs, ns, "smoke", 3)
	v1Pods := waitReadyEndpoints(t, cs, ns, "smoke", podNames(t, cs, ns, "example.com/smoke:v1"))

	d, err := cs.AppsV1().Deployments(ns).Get(ctx, "smoke", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	d.Spec.Template.Spec.Containers[0].Image = "example.com/smoke:v2"
	if _, err := cs.AppsV1().Deployments(ns).Update(ctx, d, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitRolledOut(t, cs, ns, "smoke", 3)
	v2Pods := waitReadyEndpoints(t, cs, ns, "smoke", podNames(t, cs, ns, "example.com/smoke:v2"))
	for _, p := range v2Pods {
		if slices.Contains(v1Pods, p) {
			t.Fatalf("pod %s of v1 is still an endpoint after the update (v1 %v, v2 %v)", p, v1Pods, v2Pods)
		}
	}
}

// waitRolledOut waits until a Deployment's newest generation is fully
// rolled out and Available, as kubectl rollout status does.
func waitRolledOut(t *testing.T, cs kubernetes.Interface, ns, name string, replicas int32) {
	t.Helper()
	kit.Eventually(t, 60*time.Second, "deployment "+name+" rolled out", func(ctx context.Context) error {
		d, err := cs.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		s := d.Status
		if s.ObservedGeneration < d.Generation || s.UpdatedReplicas != replicas || s.Replicas != replicas || s.AvailableReplicas != replicas {
			return fmt.Errorf("status %+v", s)
		}
		for _, c := range s.Conditions {
			if c.Type == appsv1.DeploymentAvailable && c.Status == corev1.ConditionTrue {
				return nil
			}
		}
		return fmt.Errorf("not Available: %+v", s.Conditions)
	})
}

// podNames lists the running pods with an image that have an IP, once
// there are 3.
func podNames(t *testing.T, cs kubernetes.Interface, ns, image string) []string {
	t.Helper()
	var names []string
	kit.Eventually(t, 30*time.Second, "pods of "+image, func(ctx context.Context) error {
		pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		names = nil
		for _, p := range pods.Items {
			if p.Spec.Containers[0].Image == image && p.DeletionTimestamp == nil && p.Status.PodIP != "" {
				names = append(names, p.Name)
			}
		}
		if len(names) != 3 {
			return fmt.Errorf("%d pods with an IP", len(names))
		}
		return nil
	})
	slices.Sort(names)
	return names
}

// waitReadyEndpoints waits until the Service's ready endpoints are exactly
// the given pods, and returns them.
func waitReadyEndpoints(t *testing.T, cs kubernetes.Interface, ns, svc string, want []string) []string {
	t.Helper()
	kit.Eventually(t, 30*time.Second, "endpoints of "+svc, func(ctx context.Context) error {
		list, err := cs.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=" + svc})
		if err != nil {
			return err
		}
		var ready []string
		for _, s := range list.Items {
			for _, e := range s.Endpoints {
				if e.Conditions.Ready != nil && *e.Conditions.Ready && e.TargetRef != nil {
					ready = append(ready, e.TargetRef.Name)
				}
			}
		}
		slices.Sort(ready)
		if strings.Join(ready, ",") != strings.Join(want, ",") {
			return fmt.Errorf("ready endpoints %v, want %v", ready, want)
		}
		return nil
	})
	return want
}

func TestVirtualServiceSchema(t *testing.T) {
	cs, ic := clients(t)
	ctx := t.Context()
	ns := namespace(t, cs)
	vs := &istionetv1.VirtualService{
		ObjectMeta: metav1.ObjectMeta{Name: "reviews", Namespace: ns},
		Spec: networkingv1.VirtualService{
			Hosts: []string{"reviews"},
			Http: []*networkingv1.HTTPRoute{{Route: []*networkingv1.HTTPRouteDestination{
				{Destination: &networkingv1.Destination{Host: "reviews"}, Weight: 80},
				{Destination: &networkingv1.Destination{Host: "reviews-canary"}, Weight: 20},
			}}},
		},
	}
	if _, err := ic.NetworkingV1().VirtualServices(ns).Create(ctx, vs, metav1.CreateOptions{}); err != nil {
		t.Fatalf("valid VirtualService refused: %v", err)
	}

	// The weight policy: weights that do not add up to 100 are refused by
	// the apiserver itself.
	bad := vs.DeepCopy()
	bad.Name = "bad-weights"
	bad.Spec.Http[0].Route[1].Weight = 30
	if _, err := ic.NetworkingV1().VirtualServices(ns).Create(ctx, bad, metav1.CreateOptions{}); err == nil ||
		!strings.Contains(err.Error(), "must add up to 100") {
		t.Fatalf("VirtualService with weights 80+30: got %v, want a refusal by the weight policy", err)
	}
	lone := vs.DeepCopy()
	lone.Name = "lone"
	lone.Spec.Http[0].Route = lone.Spec.Http[0].Route[:1]
	lone.Spec.Http[0].Route[0].Weight = 0
	if _, err := ic.NetworkingV1().VirtualServices(ns).Create(ctx, lone, metav1.CreateOptions{}); err != nil {
		t.Fatalf("a lone destination without a weight was refused: %v", err)
	}

	dyn, err := dynamic.NewForConfig(env.Admin)
	if err != nil {
		t.Fatal(err)
	}
	gvr := schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "virtualservices"}
	invalid := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
		"metadata": map[string]any{"name": "invalid", "namespace": ns},
		"spec": map[string]any{
			"hosts": []any{"reviews"},
			"http": []any{map[string]any{"route": []any{
				map[string]any{"destination": map[string]any{"host": "reviews"}, "weight": "eighty"},
			}}},
		},
	}}
	_, err = dyn.Resource(gvr).Namespace(ns).Create(ctx, invalid, metav1.CreateOptions{})
	if err == nil || !strings.Contains(err.Error(), "weight") {
		t.Fatalf("VirtualService with a string weight: got error %v, want a schema error naming the weight", err)
	}
}

func TestPrometheusScrapesItsTargets(t *testing.T) {
	// A target of the test's own, added the way tests and the demo add them.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "smoke_up 1")
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	if err := env.AddScrapeTarget("smoke", []string{l.Addr().String()}, map[string]string{"suite": "smoke"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.RemoveScrapeTarget("smoke") })

	kit.Eventually(t, 30*time.Second, "every Prometheus target up", func(ctx context.Context) error {
		var resp struct {
			Data struct {
				ActiveTargets []struct {
					Labels    map[string]string `json:"labels"`
					Health    string            `json:"health"`
					LastError string            `json:"lastError"`
				} `json:"activeTargets"`
			} `json:"data"`
		}
		if err := getJSON(ctx, env.PrometheusURL+"/api/v1/targets?state=active", &resp); err != nil {
			return err
		}
		jobs := map[string]bool{}
		for _, tg := range resp.Data.ActiveTargets {
			if tg.Health != "up" {
				return fmt.Errorf("target %v is %s: %s", tg.Labels, tg.Health, tg.LastError)
			}
			jobs[tg.Labels["job"]] = true
		}
		for _, job := range []string{"prometheus", "etcd", "istiod", "smoke"} {
			if !jobs[job] {
				return fmt.Errorf("no up target of job %s among %v", job, jobs)
			}
		}
		return nil
	})
	kit.Eventually(t, 30*time.Second, "the test target's series", func(ctx context.Context) error {
		var resp struct {
			Data struct {
				Result []json.RawMessage `json:"result"`
			} `json:"data"`
		}
		if err := getJSON(ctx, env.PrometheusURL+`/api/v1/query?query=smoke_up{suite="smoke"}`, &resp); err != nil {
			return err
		}
		if len(resp.Data.Result) != 1 {
			return fmt.Errorf("%d series", len(resp.Data.Result))
		}
		return nil
	})
}

func TestIstiodSeesServices(t *testing.T) {
	cs, _ := clients(t)
	ns := namespace(t, cs)
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "reviews", Namespace: ns},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": "reviews"},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 9080}},
		},
	}
	if _, err := cs.CoreV1().Services(ns).Create(t.Context(), svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	host := fmt.Sprintf("reviews.%s.svc.cluster.local", ns)
	kit.Eventually(t, 30*time.Second, "istiod registry lists "+host, func(ctx context.Context) error {
		body, err := get(ctx, "http://"+env.IstiodHTTPAddr+"/debug/registryz")
		if err != nil {
			return err
		}
		if !strings.Contains(string(body), `"`+host+`"`) {
			return fmt.Errorf("%s not in istiod's registry", host)
		}
		return nil
	})
}

func get(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return body, nil
}

func getJSON(ctx context.Context, url string, v any) error {
	body, err := get(ctx, url)
	if err != nil {
		return err
	}
	return json.Unmarshal(body, v)
}
