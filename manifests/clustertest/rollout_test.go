package clustertest

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/canary-io/canary/contract"
	"github.com/canary-io/canary/e2e/cluster"
	"github.com/canary-io/canary/e2e/controller"
	"github.com/canary-io/canary/manifests"
	"github.com/canary-io/canary/webhook"
)

// promStandIn answers every Prometheus instant query with a healthy
// value: p99 120 ms for histogram queries, 100 (percent of successes, or a
// counter) for the rest.
func promStandIn(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		v := "100"
		if strings.Contains(r.Form.Get("query"), "histogram_quantile") {
			v = "120"
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"status": "success", "data": map[string]any{
			"resultType": "vector",
			"result":     []any{map[string]any{"metric": map[string]string{}, "value": []any{float64(time.Now().Unix()), v}}},
		}})
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + l.Addr().String()
}

// The controller, limited to the manifests' RBAC (the local cluster's
// cluster-admin binding of its credential removed), with leader election
// in canary-system as in the manifests, takes an opted-in Deployment
// through a full analysis to Succeeded.
func TestRolloutUnderTheManifestsRBAC(t *testing.T) {
	ctx := t.Context()
	cs := admin(t)
	applyFiles(t, "namespace.yaml", "serviceaccount.yaml", "rbac.yaml")

	// The local cluster's controller credential is a user, not the
	// ServiceAccount: bind the manifests' roles to it (TestMain deleted
	// its cluster-admin binding).
	user := rbacv1.Subject{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: cluster.ControllerUser}
	if _, err := cs.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "canary-controller-test-user"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "canary-controller"},
		Subjects:   []rbacv1.Subject{user},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.RbacV1().RoleBindings(manifests.Namespace).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "canary-controller-test-user", Namespace: manifests.Namespace},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "canary-controller-leader-election"},
		Subjects:   []rbacv1.Subject{user},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	secrets := manifests.Access{Resource: "secrets", Verb: "list"}
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		return !sar(t, cs, cluster.ControllerUser, nil, secrets, "default"), nil
	})
	if err != nil {
		t.Fatal("the controller's credential can still list secrets after its cluster-admin binding was deleted")
	}

	// The controller as the manifests run it (leader election on), with
	// the webhook registered by the admin as cert-manager and the manifests
	// would: the role cannot write webhook configurations.
	p, err := controller.Build(env)
	if err != nil {
		t.Fatal(err)
	}
	p.Args = []string{"--leader-elect=true", "--leader-election-namespace=" + manifests.Namespace, "--propagation-delay=500ms"}
	ca, err := webhook.WriteSelfSignedCert(filepath.Join(p.Dir, "certs"), "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start("--prometheus-url=" + promStandIn(t)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	if err := webhook.Register(ctx, cs, webhook.URLClientConfig(fmt.Sprintf("https://127.0.0.1:%d", p.Webhook), ca)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		bg := context.Background()
		_ = cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(bg, webhook.ConfigurationName, metav1.DeleteOptions{})
		_ = cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Delete(bg, webhook.ConfigurationName, metav1.DeleteOptions{})
	})

	ns, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "rbac-rollout-"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	kubectl(t, []byte(fmt.Sprintf(`apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: %s, labels: {app: reviews}}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 9080}]
`, ns.Name)), "apply", "-f", "-")
	kubectl(t, deployment(ns.Name, "v1"), "apply", "-f", "-")
	waitFor(t, ns.Name, 60*time.Second, "v1 rolled out and Idle", func(d *appsv1.Deployment) bool {
		return d.Annotations[contract.KeyPhase] == "Idle" && d.Status.AvailableReplicas == 2 && d.Status.UpdatedReplicas == 2
	})
	kubectl(t, deployment(ns.Name, "v2"), "apply", "-f", "-")
	d := waitFor(t, ns.Name, 90*time.Second, "v2 analysed and promoted", func(d *appsv1.Deployment) bool {
		if ph := d.Annotations[contract.KeyPhase]; ph == "RolledBack" {
			t.Fatalf("rolled back: %s", d.Annotations[contract.KeyMessage])
		}
		return d.Annotations[contract.KeyPhase] == "Succeeded"
	})
	waitFor(t, ns.Name, 30*time.Second, "v2 rolled out", func(d *appsv1.Deployment) bool {
		return !d.Spec.Paused && d.Status.UpdatedReplicas == 2 && d.Status.AvailableReplicas == 2 && d.Status.Replicas == 2
	})
	t.Logf("Succeeded: %s", d.Annotations[contract.KeyMessage])
	if log := p.Log(); strings.Contains(log, "forbidden") {
		var lines []string
		for _, l := range strings.Split(log, "\n") {
			if strings.Contains(l, "forbidden") {
				lines = append(lines, l)
			}
		}
		t.Errorf("the controller was refused access during the rollout:\n%s", strings.Join(lines, "\n"))
	}
}

func deployment(ns, version string) []byte {
	return []byte(fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: reviews
  namespace: %s
  labels: {app: reviews}
  annotations:
    canary.io/enabled: "true"
    canary.io/steps: "50"
    canary.io/interval: "2s"
    canary.io/progress-deadline: "60s"
spec:
  replicas: 2
  selector: {matchLabels: {app: reviews}}
  template:
    metadata:
      labels: {app: reviews, version: %s}
    spec:
      containers:
      - name: reviews
        image: reviews:%s
        ports: [{containerPort: 9080}]
`, ns, version, version))
}

// waitFor polls the reviews Deployment until cond holds, and returns it.
func waitFor(t *testing.T, ns string, timeout time.Duration, what string, cond func(*appsv1.Deployment) bool) *appsv1.Deployment {
	t.Helper()
	cs := admin(t)
	var last *appsv1.Deployment
	err := wait.PollUntilContextTimeout(t.Context(), 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		d, err := cs.AppsV1().Deployments(ns).Get(ctx, "reviews", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		last = d
		return cond(d), nil
	})
	if err != nil {
		var ann map[string]string
		if last != nil {
			ann = last.Annotations
		}
		t.Fatalf("%s: %v\nannotations: %v", what, err, ann)
	}
	return last
}
