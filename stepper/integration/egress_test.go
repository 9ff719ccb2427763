package integration

import (
	"strings"
	"testing"

	"github.com/canary-io/canary/e2e/kit"
)

// TestHookURLOutsideTheAllowList: the controller runs with
// --allow-hook-destinations=127.0.0.0/8 (the tests' hook servers); a hook
// pointing at the cloud metadata address is denied at admission with its
// field and the reason, and nothing is stored.
func TestHookURLOutsideTheAllowList(t *testing.T) {
	t.Parallel()
	ns, _, _ := setup(t)
	hooks := webhooksSetting(t, map[string]any{"name": "metadata", "type": "rollout", "url": "http://169.254.169.254/latest/meta-data"})
	out, err := kit.TryKubectl(t.Context(), env, manifest(ns, "v2", hooks), "apply", "-f", "-")
	want := `metadata.annotations[canary.io/webhooks][0].url: Forbidden: hook metadata: 169.254.169.254 is a link-local address`
	if err == nil || !strings.Contains(out, want) {
		t.Fatalf("kubectl apply: %v\n%s\nwant the denial %q", err, out, want)
	}
	if got := kubectl(t, "", "-n", ns, "get", "deployment", "reviews", "-o", "jsonpath={.spec.template.spec.containers[0].image}"); got != "reviews:v1" {
		t.Errorf("the refused apply was stored: image %s", got)
	}
}
