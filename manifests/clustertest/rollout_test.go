package clustertest

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/yaml"

	"github.com/canary-io/canary/contract"
	"github.com/canary-io/canary/e2e/cluster"
	"github.com/canary-io/canary/e2e/controller"
	"github.com/canary-io/canary/e2e/kit"
	"github.com/canary-io/canary/manifests"
	"github.com/canary-io/canary/webhook"
)

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

	rolloutUnderRBAC(t, kit.Namespace(t, cs, "rbac-rollout", nil))
}

// rolloutUnderRBAC runs the controller as the manifests run it (leader
// election on, args added) with the access the test granted its
// credential, and takes an opted-in Deployment in ns through an analysis
// to Succeeded, with no "forbidden" in the controller's log.
func rolloutUnderRBAC(t *testing.T, ns string, args ...string) {
	ctx := t.Context()
	cs := admin(t)
	// The controller as the manifests run it (leader election on), with
	// the webhook registered by the admin as cert-manager and the manifests
	// would: the role cannot write webhook configurations.
	p, err := controller.Build(env)
	if err != nil {
		t.Fatal(err)
	}
	p.Args = append([]string{"--leader-elect=true", "--leader-election-namespace=" + manifests.Namespace, "--propagation-delay=500ms"}, args...)
	ca, err := webhook.WriteSelfSignedCert(filepath.Join(p.Dir, "certs"), "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	prom, err := kit.StartPromStandIn()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start("--prometheus-url="+prom.URL, "--scrape-interval=1s", "--canary-removal-delay=1s"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	if err := webhook.Register(ctx, cs, webhook.URLClientConfig(fmt.Sprintf("https://127.0.0.1:%d", p.Webhook), ca), cluster.ControllerUser); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		bg := context.Background()
		_ = cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(bg, webhook.ConfigurationName, metav1.DeleteOptions{})
		_ = cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Delete(bg, webhook.ConfigurationName, metav1.DeleteOptions{})
	})

	prom.Set(ns, kit.Healthy)
	kubectl(t, []byte(fmt.Sprintf(`apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: %s, labels: {app: reviews}}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 9080}]
`, ns)), "apply", "-f", "-")
	kubectl(t, deployment(ns, "v1"), "apply", "-f", "-")
	waitFor(t, ns, 60*time.Second, "v1 rolled out and Idle", func(d *appsv1.Deployment) bool {
		return d.Annotations[contract.KeyPhase] == "Idle" && d.Status.AvailableReplicas == 2 && d.Status.UpdatedReplicas == 2
	})
	kubectl(t, deployment(ns, "v2"), "apply", "-f", "-")
	d := waitFor(t, ns, 90*time.Second, "v2 analysed and promoted", func(d *appsv1.Deployment) bool {
		if ph := d.Annotations[contract.KeyPhase]; ph == "RolledBack" {
			t.Fatalf("rolled back: %s", d.Annotations[contract.KeyMessage])
		}
		return d.Annotations[contract.KeyPhase] == "Succeeded"
	})
	waitFor(t, ns, 30*time.Second, "v2 rolled out", func(d *appsv1.Deployment) bool {
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
	return []byte(kit.Reviews(ns, version, "reviews:"+version, 2, []string{`canary.io/enabled: "true"`, `canary.io/steps: "50"`,
		`canary.io/interval: "2s"`, `canary.io/progress-deadline: "60s"`}, nil))
}

// waitFor polls the reviews Deployment until cond holds, and returns it.
func waitFor(t *testing.T, ns string, timeout time.Duration, what string, cond func(*appsv1.Deployment) bool) *appsv1.Deployment {
	t.Helper()
	return kit.WaitDeployment(t, admin(t), ns, "reviews", timeout, what, cond)
}

// TestRolloutNamespaced: the controller of overlays/namespaced, with only
// that overlay's Role in the namespace it serves (its ClusterRole binding
// gone) and the leader lease's Role, takes an analysis to Succeeded there
// with no "forbidden" in its log.
func TestRolloutNamespaced(t *testing.T) {
	ctx := t.Context()
	cs := admin(t)
	applyFiles(t, "namespace.yaml", "serviceaccount.yaml", "rbac.yaml")
	// No cluster-wide access: the earlier test's binding (if any) goes.
	_ = cs.RbacV1().ClusterRoleBindings().Delete(ctx, "canary-controller-test-user", metav1.DeleteOptions{})
	user := rbacv1.Subject{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: cluster.ControllerUser}
	lease := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "canary-controller-test-user", Namespace: manifests.Namespace},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "canary-controller-leader-election"},
		Subjects:   []rbacv1.Subject{user},
	}
	if _, err := cs.RbacV1().RoleBindings(manifests.Namespace).Create(ctx, lease, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	ns := kit.Namespace(t, cs, "tenant", nil)
	out, err := manifests.RenderOverlay("overlays/namespaced")
	if err != nil {
		t.Fatal(err)
	}
	objs, err := manifests.Split(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if o.Kind != "Role" || o.Name != "canary-controller" {
			continue
		}
		var role rbacv1.Role
		if err := yaml.Unmarshal(o.YAML, &role); err != nil {
			t.Fatal(err)
		}
		role.Namespace = ns
		if _, err := cs.RbacV1().Roles(ns).Create(ctx, &role, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cs.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "canary-controller-test-user", Namespace: ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "canary-controller"},
		Subjects:   []rbacv1.Subject{user},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	elsewhere := manifests.Access{Group: "apps", Resource: "deployments", Verb: "list"}
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		return !sar(t, cs, cluster.ControllerUser, nil, elsewhere, "default") && sar(t, cs, cluster.ControllerUser, nil, elsewhere, ns), nil
	})
	if err != nil {
		t.Fatal("the controller's credential is not limited to the tenant's namespace")
	}
	rolloutUnderRBAC(t, ns, "--namespaces="+ns)
}
