// Package charts holds the Helm chart (charts/canary) and renders it with
// Helm's Go SDK, as helm template and helm lint do, for the tests that
// keep it from drifting from the kustomize manifests.
package charts

import (
	"fmt"
	"path/filepath"
	"strings"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"

	"github.com/canary-io/canary/e2e/cluster"
	"github.com/canary-io/canary/manifests"
)

// ReleaseName is the release name the tests render the chart with.
const ReleaseName = "canary"

// Dir is the chart's directory in the checkout.
func Dir() (string, error) {
	root, err := cluster.RepoRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, "charts", "canary"), nil
}

// Render renders the chart as `helm template --namespace namespace` with
// these values (nil: the defaults) would: an install, without a cluster
// (lookup finds nothing).
func Render(namespace string, values map[string]any) ([]manifests.Object, error) {
	dir, err := Dir()
	if err != nil {
		return nil, err
	}
	chart, err := loader.Load(dir)
	if err != nil {
		return nil, fmt.Errorf("load chart %s: %w", dir, err)
	}
	install := action.NewInstall(&action.Configuration{Log: func(string, ...any) {}})
	install.ClientOnly = true
	install.DryRun = true
	install.ReleaseName = ReleaseName
	install.Namespace = namespace
	install.KubeVersion = &chartutil.KubeVersion{Version: "v1.36.0", Major: "1", Minor: "36"}
	if values == nil {
		values = map[string]any{}
	}
	rel, err := install.Run(chart, values)
	if err != nil {
		return nil, err
	}
	return manifests.Split([]byte(rel.Manifest))
}

// Lint is `helm lint` of the chart with these values: every message of
// every severity.
func Lint(namespace string, values map[string]any) (*action.LintResult, error) {
	dir, err := Dir()
	if err != nil {
		return nil, err
	}
	lint := action.NewLint()
	lint.Namespace = namespace
	lint.Strict = true
	return lint.Run([]string{dir}, values), nil
}

// EveryOption is a value for every option of values.yaml (namespace
// "platform" serving team-b and team-c, without cert-manager, with a
// ServiceMonitor), which the tests render, lint and dry-run.
func EveryOption() map[string]any {
	return map[string]any{
		"image":            map[string]any{"repository": "registry.example/canary", "digest": "sha256:" + strings.Repeat("ab", 32)},
		"imagePullSecrets": []any{map[string]any{"name": "pull"}},
		"replicas":         3,
		"prometheus":       map[string]any{"url": "https://prom.example:9090", "httpConfigSecret": "prom-auth", "scrapeInterval": "15s"},
		"controller": map[string]any{
			"workers": 8, "queryTimeout": "5s", "comparisonPeriod": "10s", "propagationDelay": "3s",
			"canaryRemovalDelay": "1m", "maxHookTimeout": "30s", "logLevel": "debug",
		},
		"egress": map[string]any{
			"allowHookDestinations":       []any{"10.0.0.0/8", "*.svc.cluster.local"},
			"allowPrometheusDestinations": []any{"none"},
		},
		"notifications": map[string]any{
			"providers": []any{
				map[string]any{"name": "team-chat", "type": "slack", "urlFile": "slack-url", "severity": "warn"},
				map[string]any{"name": "ops", "type": "webhook", "url": "http://alerts.ops.svc:8080/canary"},
			},
			"urlSecret": "chat-urls",
		},
		"certManager":       map[string]any{"enabled": false},
		"webhook":           map[string]any{"configurationName": "canary.io-team-b"},
		"pdb":               map[string]any{"enabled": true, "minAvailable": 2},
		"serviceMonitor":    map[string]any{"enabled": true, "interval": "15s", "labels": map[string]any{"release": "kube-prometheus"}},
		"namespaced":        map[string]any{"enabled": true, "namespaces": []any{"team-b", "team-c"}},
		"extraArgs":         []any{"--scrape-interval-refresh=2m"},
		"podAnnotations":    map[string]any{"team": "platform"},
		"podLabels":         map[string]any{"cost-center": "42"},
		"nodeSelector":      map[string]any{"kubernetes.io/os": "linux"},
		"tolerations":       []any{map[string]any{"key": "infra", "operator": "Exists", "effect": "NoSchedule"}},
		"priorityClassName": "system-cluster-critical",
	}
}
