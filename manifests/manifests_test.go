package manifests_test

import (
	"cmp"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/canary-io/canary/manifests"
	"github.com/canary-io/canary/webhook"
)

// rendered is the kustomization's output, each object decoded strictly
// into its Go type (a misspelt field fails).
type rendered struct {
	objs       []manifests.Object
	mutating   *admissionregistrationv1.MutatingWebhookConfiguration
	validating *admissionregistrationv1.ValidatingWebhookConfiguration
	deployment *appsv1.Deployment
	services   map[string]*corev1.Service
	pdb        *policyv1.PodDisruptionBudget
	cr         []*rbacv1.ClusterRole
	crb        []*rbacv1.ClusterRoleBinding
	roles      []*rbacv1.Role
	rb         []*rbacv1.RoleBinding
	certs      map[string]map[string]any // Certificate namespace/name -> object
	issuers    map[string]map[string]any // Issuer namespace/name -> object
}

func render(t *testing.T) *rendered {
	t.Helper()
	out, err := manifests.Render()
	if err != nil {
		t.Fatal(err)
	}
	objs, err := manifests.Split(out)
	if err != nil {
		t.Fatal(err)
	}
	r := &rendered{objs: objs, services: map[string]*corev1.Service{}, certs: map[string]map[string]any{}, issuers: map[string]map[string]any{}}
	for _, o := range objs {
		var into any
		switch o.Kind {
		case "MutatingWebhookConfiguration":
			r.mutating = &admissionregistrationv1.MutatingWebhookConfiguration{}
			into = r.mutating
		case "ValidatingWebhookConfiguration":
			r.validating = &admissionregistrationv1.ValidatingWebhookConfiguration{}
			into = r.validating
		case "Deployment":
			r.deployment = &appsv1.Deployment{}
			into = r.deployment
		case "Service":
			s := &corev1.Service{}
			r.services[o.Name], into = s, s
		case "PodDisruptionBudget":
			r.pdb = &policyv1.PodDisruptionBudget{}
			into = r.pdb
		case "ClusterRole":
			x := &rbacv1.ClusterRole{}
			r.cr, into = append(r.cr, x), x
		case "ClusterRoleBinding":
			x := &rbacv1.ClusterRoleBinding{}
			r.crb, into = append(r.crb, x), x
		case "Role":
			x := &rbacv1.Role{}
			r.roles, into = append(r.roles, x), x
		case "RoleBinding":
			x := &rbacv1.RoleBinding{}
			r.rb, into = append(r.rb, x), x
		case "Namespace":
			into = &corev1.Namespace{}
		case "ServiceAccount":
			into = &corev1.ServiceAccount{}
		case "Certificate":
			m := map[string]any{}
			r.certs[o.Namespace+"/"+o.Name], into = m, &m
		case "Issuer":
			m := map[string]any{}
			r.issuers[o.Namespace+"/"+o.Name], into = m, &m
		default:
			t.Errorf("unexpected kind %s %s", o.Kind, o.Name)
			continue
		}
		if err := yaml.UnmarshalStrict(o.YAML, into); err != nil {
			t.Errorf("%s %s: %v", o.Kind, o.Name, err)
		}
		if ns := o.Namespace; ns != "" && ns != manifests.Namespace {
			t.Errorf("%s %s is in namespace %s, want %s", o.Kind, o.Name, ns, manifests.Namespace)
		}
	}
	if r.mutating == nil || r.validating == nil || r.deployment == nil || r.pdb == nil || len(r.cr) != 1 || len(r.roles) != 1 {
		t.Fatalf("missing objects: got %v", objs)
	}
	return r
}

// The webhook configurations are those the code registers, in everything
// but how the apiserver reaches the server.
func TestWebhooksMatchTheCode(t *testing.T) {
	r := render(t)
	wantM, wantV := webhook.Configurations(func(string) admissionregistrationv1.WebhookClientConfig {
		return admissionregistrationv1.WebhookClientConfig{}
	}, manifests.ServiceAccount)
	paths := map[string]string{}
	svc := r.services["canary-webhook"]
	if svc == nil {
		t.Fatal("no Service canary-webhook")
	}
	checkClient := func(name string, cc admissionregistrationv1.WebhookClientConfig) {
		s := cc.Service
		if s == nil || cc.URL != nil || len(cc.CABundle) != 0 {
			t.Errorf("webhook %s: clientConfig %+v, want the Service and no CA bundle (cert-manager injects it)", name, cc)
			return
		}
		if s.Namespace != svc.Namespace || s.Name != svc.Name || s.Port == nil || *s.Port != 443 || s.Path == nil {
			t.Errorf("webhook %s: service %+v, want %s/%s port 443", name, s, svc.Namespace, svc.Name)
			return
		}
		paths[name] = *s.Path
	}
	got := r.mutating.DeepCopy()
	for i := range got.Webhooks {
		checkClient(got.Webhooks[i].Name, got.Webhooks[i].ClientConfig)
		got.Webhooks[i].ClientConfig = admissionregistrationv1.WebhookClientConfig{}
	}
	if got.Name != wantM.Name || !apiequality.Semantic.DeepEqual(got.Webhooks, wantM.Webhooks) {
		t.Errorf("mutating webhooks differ from webhook.Configurations:\n got %s\nwant %s", toYAML(got.Webhooks), toYAML(wantM.Webhooks))
	}
	gotV := r.validating.DeepCopy()
	for i := range gotV.Webhooks {
		checkClient(gotV.Webhooks[i].Name, gotV.Webhooks[i].ClientConfig)
		gotV.Webhooks[i].ClientConfig = admissionregistrationv1.WebhookClientConfig{}
	}
	if gotV.Name != wantV.Name || !apiequality.Semantic.DeepEqual(gotV.Webhooks, wantV.Webhooks) {
		t.Errorf("validating webhooks differ from webhook.Configurations:\n got %s\nwant %s", toYAML(gotV.Webhooks), toYAML(wantV.Webhooks))
	}
	// Each webhook calls the path its handler is registered at.
	wantPaths := map[string]string{}
	codeM, codeV := webhook.Configurations(func(p string) admissionregistrationv1.WebhookClientConfig {
		return admissionregistrationv1.WebhookClientConfig{URL: &p}
	}, manifests.ServiceAccount)
	for _, w := range codeM.Webhooks {
		wantPaths[w.Name] = *w.ClientConfig.URL
	}
	for _, w := range codeV.Webhooks {
		wantPaths[w.Name] = *w.ClientConfig.URL
	}
	if fmt.Sprint(paths) != fmt.Sprint(wantPaths) {
		t.Errorf("webhook paths %v, want %v", paths, wantPaths)
	}

	// The Service sends 443 to the webhook port, the CA comes from the
	// Certificate that names the Service.
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 443 || svc.Spec.Ports[0].TargetPort != intstr.FromString("webhook") {
		t.Errorf("webhook Service ports %+v, want 443 -> webhook", svc.Spec.Ports)
	}
	for _, ann := range []map[string]string{r.mutating.Annotations, r.validating.Annotations} {
		from := ann["cert-manager.io/inject-ca-from"]
		cert := r.certs[from]
		if cert == nil {
			t.Errorf("cert-manager.io/inject-ca-from %q names no Certificate of the manifests", from)
			continue
		}
		spec, _ := cert["spec"].(map[string]any)
		dns := fmt.Sprint(spec["dnsNames"])
		if want := fmt.Sprintf("%s.%s.svc", svc.Name, svc.Namespace); !strings.Contains(dns, want+" ") && !strings.Contains(dns, want+"]") {
			t.Errorf("Certificate %s dnsNames %s lack %s", from, dns, want)
		}
		if s := r.secretVolume(); s == "" || s != spec["secretName"] {
			t.Errorf("the Deployment mounts Secret %q, the Certificate writes %v", s, spec["secretName"])
		}
		r.checkChain(t, from)
	}
}

// checkChain checks that the serving certificate comes from a CA Issuer
// whose Secret is a CA Certificate signed by a self-signed Issuer: a
// renewal of the serving certificate then keeps the ca.crt the apiserver
// trusts.
func (r *rendered) checkChain(t *testing.T, leaf string) {
	t.Helper()
	ns := manifests.Namespace
	issuerOf := func(cert map[string]any) map[string]any {
		spec, _ := cert["spec"].(map[string]any)
		ref, _ := spec["issuerRef"].(map[string]any)
		if ref["kind"] != "Issuer" {
			return nil
		}
		return r.issuers[fmt.Sprintf("%s/%v", ns, ref["name"])]
	}
	caIssuer := issuerOf(r.certs[leaf])
	caSpec, _ := caIssuer["spec"].(map[string]any)
	ca, _ := caSpec["ca"].(map[string]any)
	if ca == nil {
		t.Fatalf("the serving Certificate %s is not issued by a CA Issuer of the manifests", leaf)
	}
	var root map[string]any
	for _, c := range r.certs {
		spec, _ := c["spec"].(map[string]any)
		if spec["secretName"] == ca["secretName"] {
			root = c
		}
	}
	rootSpec, _ := root["spec"].(map[string]any)
	if root == nil || rootSpec["isCA"] != true {
		t.Fatalf("the CA Issuer's Secret %v is not written by a Certificate with isCA: true", ca["secretName"])
	}
	selfSpec, _ := issuerOf(root)["spec"].(map[string]any)
	if _, ok := selfSpec["selfSigned"]; !ok {
		t.Errorf("the CA Certificate is not issued by a self-signed Issuer")
	}
}

func (r *rendered) secretVolume() string {
	for _, v := range r.deployment.Spec.Template.Spec.Volumes {
		if v.Secret != nil {
			return v.Secret.SecretName
		}
	}
	return ""
}

func toYAML(v any) string {
	b, _ := yaml.Marshal(v)
	return string(b)
}

// The ClusterRole and Role grant exactly the access the controller needs
// (each in the right scope), nothing on Secrets, no wildcards, and are
// bound to the controller's ServiceAccount.
func TestRBACIsExactlyWhatTheControllerNeeds(t *testing.T) {
	r := render(t)
	granted := map[manifests.Access]bool{}
	grant := func(ns string, rules []rbacv1.PolicyRule, what string) {
		for _, rule := range rules {
			if len(rule.NonResourceURLs) > 0 || len(rule.ResourceNames) > 0 {
				t.Errorf("%s: unexpected rule %+v", what, rule)
			}
			for _, g := range rule.APIGroups {
				for _, res := range rule.Resources {
					if res == "secrets" || strings.Contains(res, "*") || g == "*" {
						t.Errorf("%s grants %q in group %q", what, res, g)
					}
					name, sub, _ := strings.Cut(res, "/")
					for _, v := range rule.Verbs {
						if v == "*" {
							t.Errorf("%s grants verb *", what)
						}
						granted[manifests.Access{Group: g, Resource: name, Subresource: sub, Verb: v, Namespace: ns}] = true
					}
				}
			}
		}
	}
	for _, cr := range r.cr {
		grant("", cr.Rules, "ClusterRole "+cr.Name)
	}
	for _, role := range r.roles {
		grant(role.Namespace, role.Rules, "Role "+role.Name)
	}
	needed := map[manifests.Access]bool{}
	for _, a := range manifests.Needs {
		needed[a] = true
		if !granted[a] {
			t.Errorf("the controller needs %s; not granted", a)
		}
	}
	for a := range granted {
		if !needed[a] {
			t.Errorf("granted %s, which the controller does not need", a)
		}
	}
	sa := manifests.ServiceAccount
	bound := func(subjects []rbacv1.Subject) bool {
		return slices.ContainsFunc(subjects, func(s rbacv1.Subject) bool {
			return s.Kind == rbacv1.ServiceAccountKind && "system:serviceaccount:"+s.Namespace+":"+s.Name == sa
		})
	}
	for _, cr := range r.cr {
		if !slices.ContainsFunc(r.crb, func(b *rbacv1.ClusterRoleBinding) bool {
			return b.RoleRef.Kind == "ClusterRole" && b.RoleRef.Name == cr.Name && bound(b.Subjects)
		}) {
			t.Errorf("ClusterRole %s is not bound to %s", cr.Name, sa)
		}
	}
	for _, role := range r.roles {
		if !slices.ContainsFunc(r.rb, func(b *rbacv1.RoleBinding) bool {
			return b.Namespace == role.Namespace && b.RoleRef.Kind == "Role" && b.RoleRef.Name == role.Name && bound(b.Subjects)
		}) {
			t.Errorf("Role %s is not bound to %s", role.Name, sa)
		}
	}
	if sa := r.deployment.Spec.Template.Spec.ServiceAccountName; "system:serviceaccount:"+r.deployment.Namespace+":"+sa != manifests.ServiceAccount {
		t.Errorf("the Deployment runs as service account %q", sa)
	}
}

// The Deployment: two replicas, hardened, probed, with requests, its flags
// and ports agreeing with the Service, the webhook and the PDB.
func TestDeploymentIsHardened(t *testing.T) {
	r := render(t)
	d := r.deployment
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 2 {
		t.Errorf("replicas %v, want 2", d.Spec.Replicas)
	}
	pod := d.Spec.Template.Spec
	if psc := pod.SecurityContext; psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
		t.Errorf("pod securityContext %+v: want runAsNonRoot", psc)
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(pod.Containers))
	}
	c := pod.Containers[0]
	sc := c.SecurityContext
	switch {
	case sc == nil:
		t.Fatal("no container securityContext")
	case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
		t.Error("root filesystem not read-only")
	case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
		t.Error("privilege escalation allowed")
	case sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0:
		t.Errorf("capabilities %+v, want all dropped", sc.Capabilities)
	case sc.Privileged != nil && *sc.Privileged:
		t.Error("privileged")
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() {
		t.Errorf("requests %v, want cpu and memory", c.Resources.Requests)
	}
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	if ports["webhook"] != 9443 || ports["metrics"] != 8080 || ports["probes"] != 8081 {
		t.Errorf("container ports %v, want webhook 9443, metrics 8080, probes 8081", ports)
	}
	for what, p := range map[string]*corev1.Probe{"/healthz": c.LivenessProbe, "/readyz": c.ReadinessProbe} {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != what || ports[p.HTTPGet.Port.StrVal] != 8081 {
			t.Errorf("probe %s: %+v, want an HTTP GET on :8081", what, p)
		}
	}
	args := map[string]string{}
	for _, a := range c.Args {
		k, v, _ := strings.Cut(a, "=")
		args[k] = v
	}
	mountedAt := ""
	for _, m := range c.VolumeMounts {
		if slices.ContainsFunc(pod.Volumes, func(v corev1.Volume) bool { return v.Name == m.Name && v.Secret != nil }) {
			mountedAt = m.MountPath
			if !m.ReadOnly {
				t.Error("the certificate is mounted writable")
			}
		}
	}
	want := map[string]string{
		"--leader-elect":              "true",
		"--controller-identity":       manifests.ServiceAccount,
		"--prometheus-url":            "http://prometheus.istio-system:9090",
		"--webhook-port":              "9443",
		"--webhook-cert-dir":          mountedAt,
		"--metrics-bind-address":      ":8080",
		"--health-probe-bind-address": ":8081",
	}
	for k, v := range want {
		if args[k] != v {
			t.Errorf("flag %s=%q, want %q", k, args[k], v)
		}
	}
	if _, ok := args["--register-webhook-url"]; ok {
		t.Error("--register-webhook-url: in cluster the manifests register the webhooks")
	}
	if r.pdb.Spec.MinAvailable == nil || r.pdb.Spec.MinAvailable.IntValue() != 1 {
		t.Errorf("PDB minAvailable %v, want 1", r.pdb.Spec.MinAvailable)
	}
	labels := d.Spec.Template.Labels
	for what, sel := range map[string]map[string]string{
		"PDB": r.pdb.Spec.Selector.MatchLabels, "Deployment": d.Spec.Selector.MatchLabels,
		"Service canary-webhook": r.services["canary-webhook"].Spec.Selector,
	} {
		for k, v := range sel {
			if labels[k] != v {
				t.Errorf("%s selector %v does not select the pods (labels %v)", what, sel, labels)
			}
		}
	}
}

// TestNamespacedOverlay: overlays/namespaced replaces the ClusterRole and
// its binding with a Role and a RoleBinding in the tenant's namespace
// whose rules are the ClusterRole's, serves only that namespace
// (--namespaces), and has every webhook called only for it.
func TestNamespacedOverlay(t *testing.T) {
	base, err := manifests.Render()
	if err != nil {
		t.Fatal(err)
	}
	out, err := manifests.RenderOverlay("overlays/namespaced")
	if err != nil {
		t.Fatal(err)
	}
	var clusterRules []rbacv1.PolicyRule
	baseObjs, err := manifests.Split(base)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range baseObjs {
		if o.Kind == "ClusterRole" && o.Name == "canary-controller" {
			var cr rbacv1.ClusterRole
			if err := yaml.UnmarshalStrict(o.YAML, &cr); err != nil {
				t.Fatal(err)
			}
			clusterRules = cr.Rules
		}
	}
	objs, err := manifests.Split(out)
	if err != nil {
		t.Fatal(err)
	}
	var role *rbacv1.Role
	var binding *rbacv1.RoleBinding
	var deployment appsv1.Deployment
	webhooks := 0
	for _, o := range objs {
		switch {
		case o.Kind == "ClusterRole" || o.Kind == "ClusterRoleBinding":
			t.Errorf("the overlay keeps %s %s", o.Kind, o.Name)
		case o.Kind == "Role" && o.Name == "canary-controller":
			role = &rbacv1.Role{}
			if err := yaml.UnmarshalStrict(o.YAML, role); err != nil {
				t.Fatal(err)
			}
		case o.Kind == "RoleBinding" && o.Name == "canary-controller":
			binding = &rbacv1.RoleBinding{}
			if err := yaml.UnmarshalStrict(o.YAML, binding); err != nil {
				t.Fatal(err)
			}
		case o.Kind == "Deployment":
			if err := yaml.UnmarshalStrict(o.YAML, &deployment); err != nil {
				t.Fatal(err)
			}
		case o.Kind == "MutatingWebhookConfiguration" || o.Kind == "ValidatingWebhookConfiguration":
			// Both kinds share the fields read here.
			var c struct {
				Webhooks []struct {
					Name              string
					NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector"`
				}
			}
			if err := yaml.Unmarshal(o.YAML, &c); err != nil {
				t.Fatal(err)
			}
			for _, w := range c.Webhooks {
				webhooks++
				if !onlyIn(t, w.NamespaceSelector, "team-a") {
					t.Errorf("webhook %s is called outside team-a: %v", w.Name, w.NamespaceSelector)
				}
			}
		}
	}
	if role == nil || role.Namespace != "team-a" || binding == nil || binding.Namespace != "team-a" || binding.RoleRef.Kind != "Role" {
		t.Fatalf("no Role and RoleBinding canary-controller in team-a: %v %v", role, binding)
	}
	if fmt.Sprint(role.Rules) != fmt.Sprint(clusterRules) {
		t.Errorf("the Role's rules drifted from the ClusterRole's:\n role %v\n base %v", role.Rules, clusterRules)
	}
	if !slices.Contains(deployment.Spec.Template.Spec.Containers[0].Args, "--namespaces=team-a") {
		t.Errorf("the controller's args lack --namespaces=team-a: %v", deployment.Spec.Template.Spec.Containers[0].Args)
	}
	if webhooks != 3 {
		t.Errorf("%d webhooks, want 3", webhooks)
	}
}

// onlyIn reports whether a webhook's namespaceSelector selects namespace
// ns and no other.
func onlyIn(t *testing.T, sel *metav1.LabelSelector, ns string) bool {
	t.Helper()
	if sel == nil {
		return false
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		t.Fatalf("namespaceSelector %v: %v", sel, err)
	}
	name := "kubernetes.io/metadata.name"
	return s.Matches(labels.Set{name: ns}) && !s.Matches(labels.Set{name: ns + "-other"}) && !s.Matches(labels.Set{})
}

// TestWebhooksNameTheControllersIdentity: in the base and every overlay,
// the webhooks' match conditions name the identity the controller runs as
// (its ServiceAccount, and --controller-identity): a condition that named
// another would leave that other identity's status writes unjudged.
func TestWebhooksNameTheControllersIdentity(t *testing.T) {
	overlays := []string{""}
	dirs, err := filepath.Glob("overlays/*")
	if err != nil {
		t.Fatal(err)
	}
	overlays = append(overlays, dirs...)
	for _, overlay := range overlays {
		t.Run(cmp.Or(overlay, "base"), func(t *testing.T) {
			out, err := manifests.RenderOverlay(overlay)
			if err != nil {
				t.Fatal(err)
			}
			objs, err := manifests.Split(out)
			if err != nil {
				t.Fatal(err)
			}
			var identity, serviceAccount string
			var conditions []admissionregistrationv1.MatchCondition
			for _, o := range objs {
				switch o.Kind {
				case "Deployment":
					var d appsv1.Deployment
					if err := yaml.Unmarshal(o.YAML, &d); err != nil {
						t.Fatal(err)
					}
					serviceAccount = "system:serviceaccount:" + d.Namespace + ":" + d.Spec.Template.Spec.ServiceAccountName
					for _, a := range d.Spec.Template.Spec.Containers[0].Args {
						if v, ok := strings.CutPrefix(a, "--controller-identity="); ok {
							identity = v
						}
					}
				case "MutatingWebhookConfiguration":
					var m admissionregistrationv1.MutatingWebhookConfiguration
					if err := yaml.Unmarshal(o.YAML, &m); err != nil {
						t.Fatal(err)
					}
					for _, h := range m.Webhooks {
						conditions = append(conditions, h.MatchConditions...)
					}
				case "ValidatingWebhookConfiguration":
					var v admissionregistrationv1.ValidatingWebhookConfiguration
					if err := yaml.Unmarshal(o.YAML, &v); err != nil {
						t.Fatal(err)
					}
					for _, h := range v.Webhooks {
						conditions = append(conditions, h.MatchConditions...)
					}
				}
			}
			if identity == "" || identity != serviceAccount {
				t.Fatalf("--controller-identity is %q, the controller runs as %q", identity, serviceAccount)
			}
			named := 0
			for _, c := range conditions {
				if !strings.Contains(c.Expression, "request.userInfo.username") {
					continue
				}
				named++
				if !strings.Contains(c.Expression, strconv.Quote(identity)) {
					t.Errorf("match condition %s does not name %s:\n%s", c.Name, identity, c.Expression)
				}
			}
			if named != 3 {
				t.Errorf("%d match conditions name a user, want 3 (the Deployment webhooks' and the Service webhook's)", named)
			}
		})
	}
}
