package integration

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/canary-io/canary/canaryctl"
	"github.com/canary-io/canary/contract"
)

// TestKubectlFlagsAndJSON: the plugin takes kubectl's flags: with a
// kubeconfig whose current context points nowhere, --context picks the
// right one; -A lists every namespace; -o json carries the status
// annotations under the contract's names, as stored.
func TestKubectlFlagsAndJSON(t *testing.T) {
	ns := namespace(t)
	d := createDeployment(t, ns, "web", step1())
	cfg, err := clientcmd.LoadFromFile(env.AdminKubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	local := cfg.Contexts[cfg.CurrentContext]
	if local == nil {
		t.Fatalf("the admin kubeconfig has no current context")
	}
	cfg.Contexts["local"] = local.DeepCopy()
	cfg.Clusters["nowhere"] = cfg.Clusters[local.Cluster].DeepCopy()
	cfg.Clusters["nowhere"].Server = "https://127.0.0.1:1"
	cfg.Contexts["nowhere"] = local.DeepCopy()
	cfg.Contexts["nowhere"].Cluster = "nowhere"
	cfg.CurrentContext = "nowhere"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	plugin := func(args ...string) (string, error) {
		var out, errOut bytes.Buffer
		p := &canaryctl.Plugin{Out: &out, ErrOut: &errOut, Now: time.Now}
		err := p.Run(t.Context(), append(args, "--kubeconfig", path))
		return out.String() + errOut.String(), err
	}
	if out, err := plugin("list", "-A"); err == nil {
		t.Errorf("the current context points nowhere, yet list worked:\n%s", out)
	}
	out, err := plugin("list", "-A", "-o", "json", "--context", "local")
	if err != nil {
		t.Fatalf("list -A -o json --context local: %v\n%s", err, out)
	}
	var list canaryctl.StatusList
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	var found *canaryctl.Status
	for i := range list.Items {
		if it := &list.Items[i]; it.Namespace == ns && it.Name == "web" {
			found = it
		}
	}
	if found == nil {
		t.Fatalf("the Deployment of namespace %s is not in the list of every namespace:\n%s", ns, out)
	}
	for _, k := range contract.StatusKeys {
		if want, ok := d.Annotations[k]; ok && found.Status[k] != want {
			t.Errorf("%s = %q, stored %q", k, found.Status[k], want)
		}
	}
	if len(found.Status) == 0 || found.Status[contract.KeyPhase] != "Progressing" {
		t.Errorf("status %v", found.Status)
	}
	out, err = plugin("get", "web", "-n", ns, "-o", "yaml", "--context", "local")
	if err != nil || !bytes.Contains([]byte(out), []byte("canary.io/phase: Progressing")) {
		t.Errorf("get -o yaml: %v\n%s", err, out)
	}
}

// TestHistory: kubectl canary history reads the analyses from the
// Events the controller records (events.k8s.io) and the annotations,
// and prints them as JSON.
func TestHistory(t *testing.T) {
	ns := namespace(t)
	d := createDeployment(t, ns, "web", step1())
	recordEvent(t, d, "Held", "revision aaa111 held for canary analysis against stable revision 000000")
	recordEvent(t, d, "CanaryWorse", "rolled back: canary worse than stable")
	recordEvent(t, d, "Held", "revision 7f9c4d held for canary analysis against stable revision 5b6a21")
	out, err := run(t, "history", "web", "-n", ns, "-o", "json")
	if err != nil {
		t.Fatalf("history: %v\n%s", err, out)
	}
	var h canaryctl.History
	if err := json.Unmarshal([]byte(out), &h); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if len(h.Analyses) != 2 || h.Analyses[0].Revision != "aaa111" || h.Analyses[0].Outcome != canaryctl.OutcomeRolledBack ||
		h.Analyses[0].Reason != "CanaryWorse" || h.Analyses[1].Revision != "7f9c4d" || h.Analyses[1].Outcome != "Progressing" ||
		h.Analyses[1].Message != "step 1/3 started: weight 20%" {
		t.Errorf("history:\n%s", out)
	}
	out, err = run(t, "history", "web", "-n", ns)
	if err != nil || !strings.Contains(out, "aaa111    000000  RolledBack") {
		t.Errorf("history table: %v\n%s", err, out)
	}
}
