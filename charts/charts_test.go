package charts_test

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/canary-io/canary/charts"
	"github.com/canary-io/canary/e2e/cluster"
	"github.com/canary-io/canary/hack/releasebuild"
	"github.com/canary-io/canary/manifests"
	"github.com/canary-io/canary/stepper/notify"
	"github.com/canary-io/canary/webhook"
)

const namespace = "canary-system"

func key(o manifests.Object) string { return o.Kind + " " + o.Namespace + "/" + o.Name }

func render(t *testing.T, ns string, values map[string]any) map[string]manifests.Object {
	t.Helper()
	objs, err := charts.Render(ns, values)
	if err != nil {
		t.Fatalf("render the chart with %v: %v", values, err)
	}
	return byKey(t, objs)
}

func byKey(t *testing.T, objs []manifests.Object) map[string]manifests.Object {
	t.Helper()
	m := map[string]manifests.Object{}
	for _, o := range objs {
		if _, dup := m[key(o)]; dup {
			t.Errorf("%s rendered twice", key(o))
		}
		m[key(o)] = o
	}
	return m
}

func decode(t *testing.T, o manifests.Object) map[string]any {
	t.Helper()
	var m map[string]any
	if err := yaml.Unmarshal(o.YAML, &m); err != nil {
		t.Fatalf("decode %s: %v", key(o), err)
	}
	return m
}

// subset checks that the chart's labels or annotations (at path) hold
// every one of the manifests', with the same value, and removes both:
// the chart adds Helm's usual labels (instance, version, chart,
// managed-by) and nothing else may differ.
func subset(t *testing.T, what string, manifest, chart map[string]any, path ...string) {
	t.Helper()
	parent := func(m map[string]any) map[string]any {
		for _, p := range path[:len(path)-1] {
			next, _ := m[p].(map[string]any)
			if next == nil {
				return nil
			}
			m = next
		}
		return m
	}
	last := path[len(path)-1]
	mp, cp := parent(manifest), parent(chart)
	if mp == nil || cp == nil {
		return
	}
	want, _ := mp[last].(map[string]any)
	got, _ := cp[last].(map[string]any)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %s %s is %v in the chart, %v in the manifests", what, strings.Join(path, "."), k, got[k], v)
		}
	}
	delete(mp, last)
	delete(cp, last)
}

// sameObjects checks that the chart describes the same objects as the
// kustomize manifests: the same kinds and names, and, but for Helm's
// labels and the image tag, the same content (RBAC rules, webhook rules
// and match conditions, the controller's args, probes and security
// context). The manifests' Namespace is not the chart's: helm install
// --create-namespace makes it.
func sameObjects(t *testing.T, kustomized []byte, chart map[string]manifests.Object) {
	t.Helper()
	objs, err := manifests.Split(kustomized)
	if err != nil {
		t.Fatal(err)
	}
	want := byKey(t, objs)
	for k, m := range want {
		if m.Kind == "Namespace" {
			continue
		}
		c, ok := chart[k]
		if !ok {
			t.Errorf("the chart lacks %s", k)
			continue
		}
		mm, cm := decode(t, m), decode(t, c)
		for _, path := range [][]string{
			{"metadata", "labels"}, {"metadata", "annotations"},
			{"spec", "template", "metadata", "labels"}, {"spec", "template", "metadata", "annotations"},
		} {
			subset(t, k, mm, cm, path...)
		}
		if m.Kind == "Deployment" {
			for _, d := range []map[string]any{mm, cm} {
				c := d["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)["containers"].([]any)[0].(map[string]any)
				c["image"] = regexp.MustCompile(`[:@].*$`).ReplaceAllString(c["image"].(string), "")
			}
		}
		if diff := cmp.Diff(mm, cm); diff != "" {
			t.Errorf("%s drifted (-manifests +chart):\n%s", k, diff)
		}
	}
	for k := range chart {
		if _, ok := want[k]; !ok {
			t.Errorf("the chart adds %s, which the manifests lack", k)
		}
	}
}

func TestDefaultsMatchTheManifests(t *testing.T) {
	out, err := manifests.Render()
	if err != nil {
		t.Fatal(err)
	}
	sameObjects(t, out, render(t, namespace, nil))
}

func TestNamespacedMatchesTheOverlay(t *testing.T) {
	out, err := manifests.RenderOverlay("overlays/namespaced")
	if err != nil {
		t.Fatal(err)
	}
	sameObjects(t, out, render(t, namespace, map[string]any{
		"namespaced": map[string]any{"enabled": true, "namespaces": []any{"team-a"}},
	}))
}

// TestLint: helm lint --strict has nothing to say, not even an INFO.
func TestLint(t *testing.T) {
	for name, values := range map[string]map[string]any{"defaults": nil, "every option": charts.EveryOption()} {
		res, err := charts.Lint(namespace, values)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range res.Messages {
			t.Errorf("helm lint, %s: %s", name, m)
		}
		if len(res.Errors) > 0 || res.TotalChartsLinted != 1 {
			t.Errorf("helm lint --strict, %s: %d charts linted, errors %v", name, res.TotalChartsLinted, res.Errors)
		}
	}
}

func deployment(t *testing.T, objs map[string]manifests.Object, ns string) *appsv1.Deployment {
	t.Helper()
	o, ok := objs["Deployment "+ns+"/canary-controller"]
	if !ok {
		t.Fatalf("no Deployment canary-controller in %s", ns)
	}
	var d appsv1.Deployment
	if err := yaml.UnmarshalStrict(o.YAML, &d); err != nil {
		t.Fatal(err)
	}
	return &d
}

// controllerFlags is the flags canary-controller defines, from its
// --help.
func controllerFlags(t *testing.T) map[string]bool {
	t.Helper()
	root, err := cluster.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "canary-controller")
	build := releasebuild.Command(t.Context(), root, "", "", bin, "./cmd/canary-controller")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build canary-controller: %v\n%s", err, out)
	}
	out, _ := exec.Command(bin, "--help").CombinedOutput() // flag's --help exits 0 or 2
	flags := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s+-([a-z0-9-]+)`).FindAllStringSubmatch(string(out), -1) {
		flags[m[1]] = true
	}
	if !flags["prometheus-url"] {
		t.Fatalf("canary-controller --help lists no --prometheus-url:\n%s", out)
	}
	return flags
}

// TestEveryOption renders every value and checks what each one does,
// and that every flag the chart writes is one the controller has.
func TestEveryOption(t *testing.T) {
	const ns = "platform"
	objs := render(t, ns, charts.EveryOption())
	d := deployment(t, objs, ns)
	pod := d.Spec.Template.Spec
	c := pod.Containers[0]
	if want := "registry.example/canary@sha256:" + strings.Repeat("ab", 32); c.Image != want {
		t.Errorf("image %s, want %s", c.Image, want)
	}
	if *d.Spec.Replicas != 3 || pod.ImagePullSecrets == nil || pod.PriorityClassName != "system-cluster-critical" ||
		pod.NodeSelector["kubernetes.io/os"] != "linux" || len(pod.Tolerations) != 1 ||
		d.Spec.Template.Annotations["team"] != "platform" || d.Spec.Template.Labels["cost-center"] != "42" {
		t.Errorf("replicas, pull secrets, priority class, node selector, tolerations or pod metadata not applied:\n%s", objs[key(manifests.Object{Kind: "Deployment", Namespace: ns, Name: "canary-controller"})].YAML)
	}
	wantArgs := []string{
		"--controller-identity=system:serviceaccount:platform:canary-controller",
		"--prometheus-url=https://prom.example:9090",
		"--scrape-interval=15s",
		"--prometheus-http-config=/etc/canary/prometheus/http-config.yaml",
		"--allow-hook-destinations=10.0.0.0/8,*.svc.cluster.local",
		"--allow-prometheus-destinations=none",
		"--notification-providers=/etc/canary/notify/providers.yaml",
		"--workers=8", "--query-timeout=5s", "--comparison-period=10s", "--propagation-delay=3s",
		"--canary-removal-delay=1m", "--max-hook-timeout=30s", "--zap-log-level=debug",
		"--namespaces=team-b,team-c",
		"--scrape-interval-refresh=2m",
	}
	for _, a := range wantArgs {
		if !slices.Contains(c.Args, a) {
			t.Errorf("args lack %s: %v", a, c.Args)
		}
	}
	flags := controllerFlags(t)
	for _, a := range c.Args {
		name := strings.TrimPrefix(strings.SplitN(a, "=", 2)[0], "--")
		if !flags[name] {
			t.Errorf("the chart writes %s, a flag canary-controller does not have", a)
		}
	}

	// Mounts: the Prometheus http_config Secret, and the providers'
	// ConfigMap with the URL Secret in one directory.
	mounts := map[string]string{}
	for _, m := range c.VolumeMounts {
		mounts[m.Name] = m.MountPath
	}
	vols := map[string]corev1.Volume{}
	for _, v := range pod.Volumes {
		vols[v.Name] = v
	}
	if mounts["prometheus-http-config"] != "/etc/canary/prometheus" || vols["prometheus-http-config"].Secret == nil || vols["prometheus-http-config"].Secret.SecretName != "prom-auth" {
		t.Errorf("the Prometheus http_config Secret is not mounted at /etc/canary/prometheus: %v %v", mounts, vols["prometheus-http-config"])
	}
	notifyVol := vols["notification-providers"]
	if mounts["notification-providers"] != "/etc/canary/notify" || notifyVol.Projected == nil || len(notifyVol.Projected.Sources) != 2 ||
		notifyVol.Projected.Sources[0].ConfigMap == nil || notifyVol.Projected.Sources[0].ConfigMap.Name != "canary-notification-providers" ||
		notifyVol.Projected.Sources[1].Secret == nil || notifyVol.Projected.Sources[1].Secret.Name != "chat-urls" {
		t.Errorf("the providers and their URLs are not mounted together at /etc/canary/notify: %v %+v", mounts, notifyVol)
	}
	if d.Spec.Template.Annotations["checksum/notification-providers"] == "" {
		t.Error("a change of the providers does not restart the pods (no checksum annotation)")
	}

	// The providers file the chart writes is one the controller loads,
	// with the URL Secret's file beside it.
	cm, ok := objs["ConfigMap "+ns+"/canary-notification-providers"]
	if !ok {
		t.Fatal("no ConfigMap canary-notification-providers")
	}
	var configMap corev1.ConfigMap
	if err := yaml.UnmarshalStrict(cm.YAML, &configMap); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "providers.yaml"), []byte(configMap.Data["providers.yaml"]), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "slack-url"), []byte("https://hooks.slack.example/T0/B0/x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	providers, err := notify.Load(filepath.Join(dir, "providers.yaml"))
	if err != nil {
		t.Fatalf("the controller refuses the chart's providers file: %v\n%s", err, configMap.Data["providers.yaml"])
	}
	if len(providers) != 2 || providers["team-chat"].Name != "team-chat" || providers["ops"].Name != "ops" {
		t.Errorf("providers loaded: %+v", providers)
	}

	// Namespaced: a Role and a RoleBinding in each namespace, no
	// ClusterRole, the webhooks called there only, under their own name.
	for _, k := range []string{"Role team-b/canary-controller", "RoleBinding team-b/canary-controller", "Role team-c/canary-controller", "RoleBinding team-c/canary-controller", "Role platform/canary-controller-leader-election"} {
		if _, ok := objs[k]; !ok {
			t.Errorf("no %s", k)
		}
	}
	for k := range objs {
		if strings.HasPrefix(k, "ClusterRole") {
			t.Errorf("the namespaced chart renders %s", k)
		}
	}
	webhooks := map[string]map[string]any{}
	for _, kind := range []string{"MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"} {
		o, ok := objs[kind+" /canary.io-team-b"]
		if !ok {
			t.Fatalf("no %s canary.io-team-b", kind)
		}
		webhooks[kind] = decode(t, o)
	}
	// cert-manager off: the chart's own CA and certificate for the
	// webhook Service, the CA in every webhook configuration.
	for k := range objs {
		if strings.Contains(k, "Certificate") || strings.Contains(k, "Issuer") {
			t.Errorf("certManager.enabled=false renders %s", k)
		}
	}
	secret, ok := objs["Secret "+ns+"/canary-webhook-tls"]
	if !ok {
		t.Fatal("certManager.enabled=false renders no Secret canary-webhook-tls")
	}
	var s corev1.Secret
	if err := yaml.UnmarshalStrict(secret.YAML, &s); err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(s.Data["ca.crt"]) {
		t.Fatalf("ca.crt holds no certificate: %q", s.Data["ca.crt"])
	}
	block, _ := pem.Decode(s.Data["tls.crt"])
	if block == nil {
		t.Fatal("tls.crt holds no PEM block")
	}
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "canary-webhook.platform.svc", Roots: roots}); err != nil {
		t.Errorf("the chart's serving certificate does not verify for canary-webhook.platform.svc: %v", err)
	}
	caBundle := base64.StdEncoding.EncodeToString(s.Data["ca.crt"])
	// The match conditions name the release's controller identity: its
	// status writes skip the webhooks, as webhook.Configurations has it.
	codeM, codeV := webhook.Configurations(func(string) admissionregistrationv1.WebhookClientConfig {
		return admissionregistrationv1.WebhookClientConfig{}
	}, "system:serviceaccount:"+ns+":canary-controller")
	wantConditions := map[string]any{}
	for _, h := range codeM.Webhooks {
		wantConditions[h.Name] = toYAML(t, h.MatchConditions)
	}
	for _, h := range codeV.Webhooks {
		wantConditions[h.Name] = toYAML(t, h.MatchConditions)
	}
	for kind, w := range webhooks {
		for _, h := range w["webhooks"].([]any) {
			h := h.(map[string]any)
			if got := toYAML(t, h["matchConditions"]); got != wantConditions[h["name"].(string)] {
				t.Errorf("%s %s: match conditions\n%s\nwant\n%s", kind, h["name"], got, wantConditions[h["name"].(string)])
			}
		}
	}
	for kind, w := range webhooks {
		if _, ok := w["metadata"].(map[string]any)["annotations"]; ok {
			t.Errorf("%s asks cert-manager to inject a CA while certManager.enabled=false", kind)
		}
		for _, h := range w["webhooks"].([]any) {
			h := h.(map[string]any)
			cc := h["clientConfig"].(map[string]any)
			if cc["caBundle"] != caBundle {
				t.Errorf("%s %s: caBundle is not the Secret's ca.crt", kind, h["name"])
			}
			if cc["service"].(map[string]any)["namespace"] != ns {
				t.Errorf("%s %s calls a Service outside %s: %v", kind, h["name"], ns, cc["service"])
			}
			sel, _ := h["namespaceSelector"].(map[string]any)
			if got := toYAML(t, sel); !strings.Contains(got, "- team-b\n") || !strings.Contains(got, "- team-c\n") || !strings.Contains(got, "operator: In") {
				t.Errorf("%s %s is not limited to team-b and team-c: %s", kind, h["name"], got)
			}
		}
	}
	if _, ok := objs["ServiceMonitor "+ns+"/canary-controller"]; !ok {
		t.Error("serviceMonitor.enabled renders no ServiceMonitor")
	}
	if !strings.Contains(string(objs["ServiceMonitor "+ns+"/canary-controller"].YAML), "release: kube-prometheus") {
		t.Error("the ServiceMonitor lacks serviceMonitor.labels")
	}
	if !strings.Contains(string(objs["PodDisruptionBudget "+ns+"/canary-controller"].YAML), "minAvailable: 2") {
		t.Error("the PDB ignores pdb.minAvailable")
	}
}

func toYAML(t *testing.T, v any) string {
	t.Helper()
	b, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestYourOwnCertificate: certManager.enabled=false with a Secret of the
// user's: it is mounted, and its CA is in the webhook configurations.
func TestYourOwnCertificate(t *testing.T) {
	const ca = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
	objs := render(t, namespace, map[string]any{
		"certManager": map[string]any{"enabled": false},
		"webhook":     map[string]any{"tls": map[string]any{"existingSecret": "my-tls", "caBundle": ca}},
	})
	for k := range objs {
		if strings.HasPrefix(k, "Secret ") || strings.HasPrefix(k, "Certificate ") {
			t.Errorf("renders %s beside the user's Secret", k)
		}
	}
	pod := deployment(t, objs, namespace).Spec.Template.Spec
	if pod.Volumes[0].Secret == nil || pod.Volumes[0].Secret.SecretName != "my-tls" {
		t.Errorf("the webhook's volume is %+v, want the Secret my-tls", pod.Volumes[0])
	}
	if !strings.Contains(string(objs["ValidatingWebhookConfiguration /canary.io"].YAML), "caBundle: "+base64.StdEncoding.EncodeToString([]byte(ca))) {
		t.Errorf("the webhook configuration lacks the user's CA:\n%s", objs["ValidatingWebhookConfiguration /canary.io"].YAML)
	}
}

// TestBadValuesAreRefused: a mistake in the values is an error that
// names it, never a chart installed with a default in its place.
func TestBadValuesAreRefused(t *testing.T) {
	for _, tc := range []struct {
		name   string
		values map[string]any
		want   string
	}{
		{"misspelled key", map[string]any{"replica": 3}, "replica"},
		{"duration", map[string]any{"controller": map[string]any{"queryTimeout": "10 seconds"}}, "queryTimeout"},
		{"provider type", map[string]any{"notifications": map[string]any{"providers": []any{map[string]any{"name": "x", "type": "pagerduty"}}}}, "type"},
		{"no Prometheus", map[string]any{"prometheus": map[string]any{"url": ""}}, "/prometheus/url"},
		{"namespaced without namespaces", map[string]any{"namespaced": map[string]any{"enabled": true}}, "namespaced.namespaces"},
		{"own certificate without its CA", map[string]any{"certManager": map[string]any{"enabled": false}, "webhook": map[string]any{"tls": map[string]any{"existingSecret": "my-tls"}}}, "webhook.tls.caBundle"},
		{"digest", map[string]any{"image": map[string]any{"repository": "r", "digest": "latest"}}, "digest"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := charts.Render(namespace, tc.values)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("values %v: error %v, want one naming %s", tc.values, err, tc.want)
			}
		})
	}
}
