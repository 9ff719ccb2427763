package clustertest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/canary-io/canary/charts"
	"github.com/canary-io/canary/e2e/cluster"
	"github.com/canary-io/canary/e2e/kit"
	"github.com/canary-io/canary/manifests"
)

// certManagerVersion is the cert-manager release whose CRDs the dry run
// installs (from its Go module: deploy/crds).
const certManagerVersion = "v1.17.2"

// prometheusOperatorVersion is the Prometheus Operator release whose
// ServiceMonitor CRD the chart's dry run installs (from its Go module).
const prometheusOperatorVersion = "v0.85.0"

var env *cluster.Cluster

func TestMain(m *testing.M) {
	os.Exit(cluster.RunTests(m, cluster.Options{}, func(c *cluster.Cluster) {
		env = c
		// The local cluster binds its controller credential to
		// cluster-admin under the name the manifests' ClusterRoleBinding
		// takes: here the manifests' RBAC replaces it.
		cs, err := kubernetes.NewForConfig(c.Admin)
		if err == nil {
			err = cs.RbacV1().ClusterRoleBindings().Delete(context.Background(), cluster.ControllerUser, metav1.DeleteOptions{})
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "delete the local cluster's cluster-admin binding:", err)
			os.Exit(1)
		}
	}))
}

func admin(t *testing.T) *kubernetes.Clientset {
	t.Helper()
	cs, _ := kit.Clients(t, env)
	return cs
}

func kubectl(t *testing.T, stdin []byte, args ...string) string {
	t.Helper()
	return kit.Kubectl(t, env, string(stdin), args...)
}

// applyFiles applies manifests/base/<file> for real.
func applyFiles(t *testing.T, files ...string) {
	t.Helper()
	dir, err := manifests.Dir()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		kubectl(t, nil, "apply", "-f", filepath.Join(dir, "base", f))
	}
}

// installCertManagerCRDs installs cert-manager's Issuer and Certificate
// CRDs from its Go module.
func installCertManagerCRDs(t *testing.T) {
	t.Helper()
	installCRDs(t, "github.com/cert-manager/cert-manager@"+certManagerVersion, "deploy/crds/crd-issuers.yaml", "deploy/crds/crd-certificates.yaml")
}

// installCRDs installs CRDs from files of a Go module (downloaded into
// the module cache, this go.mod untouched) and waits until they are
// established.
func installCRDs(t *testing.T, module string, files ...string) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), "go", "mod", "download", "-json", module)
	cmd.Dir = t.TempDir() // outside this module: go.mod is not touched
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go mod download %s: %v\n%s", module, err, out)
	}
	var mod struct{ Dir string }
	if err := json.Unmarshal(out, &mod); err != nil || mod.Dir == "" {
		t.Fatalf("go mod download %s: no directory in %s", module, out)
	}
	ax, err := apiextensionsclient.NewForConfig(env.Admin)
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range files {
		data, err := os.ReadFile(filepath.Join(mod.Dir, file))
		if err != nil {
			t.Fatal(err)
		}
		var crd apiextensionsv1.CustomResourceDefinition
		if err := yaml.Unmarshal(data, &crd); err != nil {
			t.Fatalf("decode %s: %v", file, err)
		}
		// cert-manager's files are Helm templates: their labels hold
		// template text (everything else templated is in comments).
		crd.Labels, crd.Annotations = nil, nil
		if _, err := ax.ApiextensionsV1().CustomResourceDefinitions().Create(t.Context(), &crd, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatalf("create the CRD of %s: %v", file, err)
		}
		err = wait.PollUntilContextTimeout(t.Context(), 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
			got, err := ax.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, crd.Name, metav1.GetOptions{})
			if err != nil {
				return false, nil
			}
			for _, c := range got.Status.Conditions {
				if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
					return true, nil
				}
			}
			return false, nil
		})
		if err != nil {
			t.Fatalf("CRD %s not established within 30s: %v", crd.Name, err)
		}
	}
}

// dryRun applies objects with kubectl apply --dry-run=server and checks
// that the apiserver took every one.
func dryRun(t *testing.T, objs []manifests.Object) {
	t.Helper()
	var stream []string
	for _, o := range objs {
		stream = append(stream, string(o.YAML))
	}
	got := kubectl(t, []byte(strings.Join(stream, "\n---\n")), "apply", "--dry-run=server", "-f", "-")
	if lines := strings.Count(strings.TrimSpace(got), "\n") + 1; lines != len(objs) {
		t.Errorf("dry run reported %d objects, want %d:\n%s", lines, len(objs), got)
	}
	t.Logf("server dry run of %d objects:\n%s", len(objs), got)
}

// Every rendered object passes the apiserver's validation and admission
// in a server-side dry run, cert-manager's kinds too.
func TestServerSideDryRun(t *testing.T) {
	out, err := manifests.Render()
	if err != nil {
		t.Fatal(err)
	}
	objs, err := manifests.Split(out)
	if err != nil {
		t.Fatal(err)
	}
	installCertManagerCRDs(t)
	// The namespace exists for real: a dry run of the namespace does not
	// create it for the namespaced objects.
	applyFiles(t, "namespace.yaml")
	dryRun(t, objs)
	dir, err := manifests.Dir()
	if err != nil {
		t.Fatal(err)
	}
	got := kubectl(t, nil, "apply", "--dry-run=server", "-f", filepath.Join(dir, "policies"))
	for _, want := range []string{"networkpolicy.networking.k8s.io/canary-controller-egress", "validatingadmissionpolicy.admissionregistration.k8s.io/canary-skip-analysis-admins"} {
		if !strings.Contains(got, want) {
			t.Errorf("the optional policies' dry run lacks %s:\n%s", want, got)
		}
	}
}

// sar asks the apiserver whether the controller's ServiceAccount may do a.
func sar(t *testing.T, cs kubernetes.Interface, user string, groups []string, a manifests.Access, ns string) bool {
	t.Helper()
	review, err := cs.AuthorizationV1().SubjectAccessReviews().Create(t.Context(), &authorizationv1.SubjectAccessReview{
		Spec: authorizationv1.SubjectAccessReviewSpec{
			User: user, Groups: groups,
			ResourceAttributes: &authorizationv1.ResourceAttributes{
				Namespace: ns, Verb: a.Verb, Group: a.Group, Resource: a.Resource, Subresource: a.Subresource,
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return review.Status.Allowed
}

var saGroups = []string{"system:serviceaccounts", "system:serviceaccounts:" + manifests.Namespace, "system:authenticated"}

// The RBAC applied for real allows every access the controller makes, in
// any namespace (leader election: in canary-system only), and denies
// Secrets and what it never does.
func TestRBACAllowsTheStepperAndDeniesSecrets(t *testing.T) {
	cs := admin(t)
	applyFiles(t, "namespace.yaml", "serviceaccount.yaml", "rbac.yaml")
	for _, a := range manifests.Needs {
		ns := a.Namespace
		if ns == "" {
			ns = "some-app"
		}
		if !sar(t, cs, manifests.ServiceAccount, saGroups, a, ns) {
			t.Errorf("%s: denied in namespace %s", a, ns)
		}
	}
	for _, a := range []manifests.Access{
		{Resource: "secrets", Verb: "get"}, {Resource: "secrets", Verb: "list"}, {Resource: "secrets", Verb: "watch"},
		{Resource: "secrets", Verb: "create"}, {Resource: "configmaps", Verb: "get"},
		{Resource: "pods", Verb: "delete"}, {Resource: "pods", Verb: "create"}, {Resource: "pods", Subresource: "exec", Verb: "create"},
		{Group: "apps", Resource: "deployments", Verb: "patch"}, {Group: "apps", Resource: "replicasets", Verb: "delete"},
		{Group: "coordination.k8s.io", Resource: "leases", Verb: "update"},
		{Group: "admissionregistration.k8s.io", Resource: "mutatingwebhookconfigurations", Verb: "update"},
		{Group: "rbac.authorization.k8s.io", Resource: "clusterroles", Verb: "escalate"},
	} {
		for _, ns := range []string{"some-app", manifests.Namespace, "kube-system"} {
			if a.Resource == "leases" && ns == manifests.Namespace {
				continue
			}
			if sar(t, cs, manifests.ServiceAccount, saGroups, a, ns) {
				t.Errorf("%s: allowed in namespace %s", a, ns)
			}
		}
	}
	// kubectl auth can-i agrees (what an operator would run).
	cmd := env.Kubectl(t.Context(), "auth", "can-i", "get", "secrets", "-n", manifests.Namespace, "--as="+manifests.ServiceAccount)
	if out, err := cmd.CombinedOutput(); err == nil || strings.TrimSpace(string(out)) != "no" {
		t.Errorf("kubectl auth can-i get secrets as the controller: %q (%v), want no", out, err)
	}
}

// TestSkipAnalysisPolicy: the example policy reserves turning
// canary.io/skip-analysis on to the group canary-emergency: another user
// who may edit the Deployment is refused with the policy's message, a
// member is not.
func TestSkipAnalysisPolicy(t *testing.T) {
	dir, err := manifests.Dir()
	if err != nil {
		t.Fatal(err)
	}
	policy := filepath.Join(dir, "policies", "skip-analysis-admins.yaml")
	kubectl(t, nil, "apply", "-f", policy)
	t.Cleanup(func() { kubectl(t, nil, "delete", "-f", policy, "--ignore-not-found") })
	cs := admin(t)
	ns := kit.Namespace(t, cs, "policy", nil)
	for _, who := range []string{"alice", "bob"} {
		kubectl(t, nil, "-n", ns, "create", "rolebinding", who+"-edit", "--clusterrole=edit", "--user="+who)
	}
	kubectl(t, []byte(kit.Reviews(ns, "v1", "reviews:v1", 1, []string{`canary.io/enabled: "true"`}, nil)), "apply", "-f", "-")
	as := func(user string, groups ...string) *kubernetes.Clientset {
		cfg := rest.CopyConfig(env.Admin)
		cfg.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: append(groups, "system:authenticated")}
		c, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	skip := []byte(`{"metadata":{"annotations":{"canary.io/skip-analysis":"true"}}}`)
	var last error
	err = wait.PollUntilContextTimeout(t.Context(), 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		_, last = as("alice").AppsV1().Deployments(ns).Patch(ctx, "reviews", types.MergePatchType, skip, metav1.PatchOptions{DryRun: []string{metav1.DryRunAll}})
		return last != nil && strings.Contains(last.Error(), "reserved to the group canary-emergency"), nil
	})
	if err != nil {
		t.Fatalf("alice (edit, not in canary-emergency) turning skip-analysis on: %v, want the policy's refusal", last)
	}
	if _, err := as("bob", "canary-emergency").AppsV1().Deployments(ns).Patch(t.Context(), "reviews", types.MergePatchType, skip, metav1.PatchOptions{}); err != nil {
		t.Errorf("bob (canary-emergency) turning skip-analysis on: %v", err)
	}
	// Kept as it is (a manifest from git applied again): allowed to anyone.
	keep := []byte(`{"metadata":{"annotations":{"team":"books","canary.io/skip-analysis":"true"}}}`)
	if _, err := as("alice").AppsV1().Deployments(ns).Patch(t.Context(), "reviews", types.MergePatchType, keep, metav1.PatchOptions{}); err != nil {
		t.Errorf("alice keeping skip-analysis as it is: %v", err)
	}
}

// The Helm chart, rendered with its defaults and with every option, passes
// the apiserver's validation and admission in a server-side dry run
// (cert-manager's and the Prometheus Operator's CRDs installed).
func TestChartServerSideDryRun(t *testing.T) {
	installCertManagerCRDs(t)
	installCRDs(t, "github.com/prometheus-operator/prometheus-operator@"+prometheusOperatorVersion,
		"example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml")
	for _, ns := range []string{manifests.Namespace, "platform", "team-b", "team-c"} {
		if _, err := admin(t).CoreV1().Namespaces().Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name, namespace string
		values          map[string]any
	}{
		{"defaults", manifests.Namespace, nil},
		{"every option", "platform", charts.EveryOption()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs, err := charts.Render(tc.namespace, tc.values)
			if err != nil {
				t.Fatal(err)
			}
			dryRun(t, objs)
		})
	}
}
