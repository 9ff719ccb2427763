package integration

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/canary-io/canary/contract"
)

// list shows opted-in Deployments only, in one namespace or in all.
func TestList(t *testing.T) {
	ns := namespace(t)
	createDeployment(t, ns, "web", step1())
	createDeployment(t, ns, "plain", nil)

	out, err := run(t, "list", "-n", ns)
	if err != nil {
		t.Fatalf("list: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || strings.Fields(lines[0])[0] != "NAME" {
		t.Fatalf("list printed\n%s\nwant a header and one row", out)
	}
	if got, want := strings.Fields(lines[1]), []string{"web", "Progressing", "20", "1/3", "7f9c4d", "5b6a21"}; strings.Join(got[:6], " ") != strings.Join(want, " ") {
		t.Errorf("row %q, want it to start with %q", lines[1], want)
	}

	out, err = run(t, "list", "-A")
	if err != nil || !strings.HasPrefix(out, "NAMESPACE") || !strings.Contains(out, ns+" ") || strings.Contains(out, "plain") {
		t.Errorf("list -A: %v\n%s", err, out)
	}

	empty := namespace(t)
	if out, err := run(t, "list", "-n", empty); err != nil || !strings.Contains(out, "No Deployments with canary.io/enabled=true found in namespace "+empty) {
		t.Errorf("list of an empty namespace: %v\n%s", err, out)
	}
}

// A rollout progressing live: get --watch prints a view, and a new one when
// the system moves to the next step.
func TestGetWatch(t *testing.T) {
	ns := namespace(t)
	d := createDeployment(t, ns, "web", step1())
	recordEvent(t, d, "StepStarted", "step 1/3 started: weight 20%")

	out, err := run(t, "get", "web", "-n", ns)
	if err != nil || !strings.Contains(out, "[####................] 20%") || !strings.Contains(out, "StepStarted") {
		t.Fatalf("get: %v\n%s", err, out)
	}

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var buf syncBuffer
	done := make(chan error, 1)
	go func() {
		p := pluginWriting(&buf)
		done <- p.Run(ctx, []string{"get", "web", "-n", ns, "--watch", "--kubeconfig", env.AdminKubeconfig})
	}()
	waitFor(t, &buf, "the first view", func(s string) bool {
		return strings.Contains(s, "[####................] 20%") && strings.Contains(s, "StepStarted")
	})

	patchAnnotations(t, ns, "web", map[string]string{
		contract.KeyWeight:  "40",
		contract.KeyStep:    "2/3",
		contract.KeyMessage: "step 1/3 passed: success rate 99.8% (min 99%, stable 99.9%), p99 212ms (max 500ms, stable 198ms); weight 40%",
	})
	recordEvent(t, d, "StepPassed", "step 1/3 passed")
	waitFor(t, &buf, "a view at 40% with the StepPassed event", func(s string) bool {
		last := views(s)[len(views(s))-1]
		return strings.Contains(last, "[########............] 40%") && strings.Contains(last, "Step:            2/3") &&
			strings.Contains(last, "stable 99.9%") && strings.Contains(last, "StepPassed")
	})
	out = buf.String()
	if strings.Contains(out, "\x1b[") {
		t.Errorf("terminal sequences written to a buffer:\n%q", out)
	}
	if first := views(out)[0]; !strings.Contains(first, "20%") || strings.Contains(first, "40%") {
		t.Errorf("first view is not the step 1 view:\n%s", first)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("watch ended with %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("watch did not end when its context did")
	}
}

// The controls write what the contract says; each promote, abort and retry
// writes a new value.
func TestControls(t *testing.T) {
	ns := namespace(t)
	createDeployment(t, ns, "web", step1())
	createDeployment(t, ns, "plain", nil)
	annotations := func() map[string]string {
		d, err := cs.AppsV1().Deployments(ns).Get(t.Context(), "web", metav1.GetOptions{})
		if err != nil {
			t.Fatalf("get deployment: %v", err)
		}
		return d.Annotations
	}

	for _, c := range []struct{ cmd, key string }{
		{"promote", contract.KeyPromote}, {"abort", contract.KeyAbort}, {"retry", contract.KeyRetry},
	} {
		var values []string
		for range 2 {
			out, err := run(t, c.cmd, "web", "-n", ns)
			if err != nil {
				t.Fatalf("%s: %v\n%s", c.cmd, err, out)
			}
			v := annotations()[c.key]
			if _, err := time.Parse(time.RFC3339Nano, v); err != nil || len(v) != len("2026-05-01T10:00:00.000000000Z") {
				t.Errorf("%s wrote %s=%q, want an RFC 3339 time with nanoseconds", c.cmd, c.key, v)
			}
			if want := "deployment.apps/web " + c.cmd + " requested (" + c.key + "=" + v + ")\n"; out != want {
				t.Errorf("%s printed %q, want %q", c.cmd, out, want)
			}
			values = append(values, v)
		}
		if values[0] == values[1] {
			t.Errorf("%s wrote %q twice; each request must be a new value", c.cmd, values[0])
		}
	}

	if out, err := run(t, "pause", "web", "-n", ns); err != nil || out != "deployment.apps/web paused (canary.io/pause=true)\n" {
		t.Errorf("pause: %v %q", err, out)
	}
	if v := annotations()[contract.KeyPause]; v != "true" {
		t.Errorf("after pause %s=%q, want \"true\"", contract.KeyPause, v)
	}
	if out, err := run(t, "resume", "web", "-n", ns); err != nil || out != "deployment.apps/web resumed (canary.io/pause removed)\n" {
		t.Errorf("resume: %v %q", err, out)
	}
	a := annotations()
	if v, ok := a[contract.KeyPause]; ok {
		t.Errorf("after resume %s=%q, want it removed", contract.KeyPause, v)
	}
	if a[contract.KeyPhase] != string(contract.PhaseProgressing) || a[contract.KeyWeight] != "20" {
		t.Errorf("controls changed the status annotations: %v", a)
	}

	if out, err := run(t, "promote", "plain", "-n", ns); err == nil || !strings.Contains(err.Error(), "not opted in") {
		t.Errorf("promote of a Deployment that is not opted in: %v %q", err, out)
	}
	if _, err := run(t, "abort", "missing", "-n", ns); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("abort of a missing Deployment: %v", err)
	}
}

// The built binary works on its own and as `kubectl canary`.
func TestBinary(t *testing.T) {
	ns := namespace(t)
	createDeployment(t, ns, "web", step1())

	dir := t.TempDir()
	bin := filepath.Join(dir, "kubectl-canary")
	if out, err := exec.CommandContext(t.Context(), "go", "build", "-o", bin, "github.com/canary-io/canary/cmd/kubectl-canary").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.CommandContext(t.Context(), bin, "list", "--kubeconfig", env.AdminKubeconfig, "-n", ns).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "web   Progressing  20") {
		t.Errorf("kubectl-canary list: %v\n%s", err, out)
	}

	kubectl := env.Kubectl(t.Context()).Path
	cmd := exec.CommandContext(t.Context(), kubectl, "canary", "get", "web", "-n", ns, "--kubeconfig", env.AdminKubeconfig)
	cmd.Env = append(cmd.Environ(), "PATH="+dir)
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "[####................] 20%") {
		t.Errorf("kubectl canary get: %v\n%s", err, out)
	}

	if err := exec.CommandContext(t.Context(), bin, "frobnicate").Run(); err == nil {
		t.Error("an unknown command exited 0")
	}

	// Shell completion through kubectl's plugin completion: the script
	// kubectl canary completion prints, on PATH as
	// kubectl_complete-canary, and kubectl's own __complete (what its
	// bash, zsh and fish completions call).
	script, err := exec.CommandContext(t.Context(), bin, "completion").Output()
	if err != nil {
		t.Fatalf("kubectl-canary completion: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "kubectl_complete-canary"), script, 0o755); err != nil {
		t.Fatal(err)
	}
	createDeployment(t, ns, "api", step1())
	createDeployment(t, ns, "not-opted-in", nil)
	complete := func(args ...string) []string {
		t.Helper()
		cmd := exec.CommandContext(t.Context(), kubectl, append([]string{"__complete", "canary"}, args...)...)
		cmd.Env = append(cmd.Environ(), "PATH="+dir+":"+filepath.Dir(kubectl)+":/usr/bin:/bin")
		var stderr strings.Builder
		cmd.Stderr = &stderr // kubectl's [Debug] lines
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("kubectl __complete canary %q: %v\n%s%s", args, err, out, stderr.String())
		}
		var candidates []string
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if !strings.HasPrefix(l, ":") {
				candidates = append(candidates, strings.SplitN(l, "\t", 2)[0])
			}
		}
		return candidates
	}
	if got := complete("pro"); strings.Join(got, " ") != "promote" {
		t.Errorf("kubectl canary pro<TAB>: %q, want promote", got)
	}
	if got := complete("promote", "--kubeconfig", env.AdminKubeconfig, "-n", ns, ""); strings.Join(got, " ") != "api web" {
		t.Errorf("kubectl canary promote -n %s <TAB>: %q, want the opted-in Deployments api web", ns, got)
	}
	if got := complete("get", "--kubeconfig", env.AdminKubeconfig, "-n", ""); !slices.Contains(got, ns) {
		t.Errorf("kubectl canary get -n <TAB>: %q lacks namespace %s", got, ns)
	}
}
