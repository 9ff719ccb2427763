package faults_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/canary-io/canary/contract"
	"github.com/canary-io/canary/e2e/bookinfo"
	"github.com/canary-io/canary/e2e/cluster"
	"github.com/canary-io/canary/e2e/kit"
	"github.com/canary-io/canary/stepper"
)

var shBlock = regexp.MustCompile("(?s)```sh\n(.*?)```")

// TestUninstallMidAnalysis removes the controller while a canary takes 25 %
// of the traffic, following docs/uninstall.md as written: every sh block,
// in order (the commands on the namespace canary-system excepted: here the
// controller is a process, which the test stops instead). The user's
// Service must keep ready endpoints throughout, no mesh request may reach
// the canary once the doc routed it away, and nothing the system added may
// remain.
func TestUninstallMidAnalysis(t *testing.T) {
	cs, ic := clients(t)
	root, err := cluster.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(filepath.Join(root, "docs", "uninstall.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks := shBlock.FindAllStringSubmatch(string(doc), -1)
	if len(blocks) < 6 {
		t.Fatalf("docs/uninstall.md has %d sh blocks, want the steps", len(blocks))
	}
	version := nextVersion(t, true)
	mon := startMonitor(t)
	applyUntilFirstStep(t, cs, version)
	_, before := traffic.LastMesh(stepper.CanaryName("reviews"))
	kit.Eventually(t, 30*time.Second, "mesh requests reaching the canary", func(context.Context) error {
		if _, n := traffic.LastMesh(stepper.CanaryName("reviews")); n <= before+10 {
			return fmt.Errorf("%d mesh requests reached the canary", n-before)
		}
		return nil
	})
	t.Cleanup(func() { reinstall(t) })

	ctrl.Stop() // step 1's scale to zero
	var routedAway time.Time
	bin := filepath.Dir(env.Kubectl(t.Context()).Path)
	for i, b := range blocks {
		script := b[1]
		var lines []string
		for _, l := range strings.Split(script, "\n") {
			if !strings.Contains(l, "-n canary-system") {
				lines = append(lines, l)
			}
		}
		script = strings.Join(lines, "\n")
		if strings.Contains(script, "rollout resume") {
			// Keep the stable version: its manifest applied again first.
			kubectl(t, reviews(stable), "apply", "-f", "-")
		}
		cmd := exec.CommandContext(t.Context(), "bash", "-euo", "pipefail", "-c", script)
		cmd.Env = append(os.Environ(), "NS="+ns, "DEPLOY=reviews", "SVC=reviews", "PROXY_WAIT=3",
			"KUBECONFIG="+env.AdminKubeconfig, "PATH="+bin+":"+os.Getenv("PATH"))
		out, err := cmd.CombinedOutput()
		t.Logf("step block %d:\n%s\n%s", i+1, script, out)
		if err != nil {
			t.Fatalf("docs/uninstall.md, sh block %d failed: %v\n%s\n%s", i+1, err, script, out)
		}
		if strings.Contains(script, "delete virtualservice") {
			routedAway = time.Now()
		}
	}
	if routedAway.IsZero() {
		t.Fatal("no block of docs/uninstall.md routes the traffic away")
	}
	time.Sleep(meshLag)
	samples := mon.end()
	for _, b := range verdict(samples, meshLag) {
		t.Error(b)
	}
	if last, _ := traffic.LastMesh(stepper.CanaryName("reviews")); last.After(routedAway.Add(meshLag)) {
		t.Errorf("a mesh request reached the canary at %s, %s after the doc routed it away", last.Format("15:04:05.000"), last.Sub(routedAway).Round(time.Millisecond))
	}

	d := checkUserObjects(t, cs, bookinfo.Image(stable))
	for k := range d.Annotations {
		if strings.HasPrefix(k, "canary.io/") {
			t.Errorf("annotation %s left on the Deployment", k)
		}
	}
	if d.Spec.Paused {
		t.Error("the Deployment is still paused")
	}
	svc, err := cs.CoreV1().Services(ns).Get(t.Context(), "reviews", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := svc.Spec.Selector[appsv1.DefaultDeploymentUniqueLabelKey]; ok {
		t.Errorf("the Service is still pinned: selector %v", svc.Spec.Selector)
	}
	for k := range svc.Annotations {
		if strings.HasPrefix(k, "canary.io/") {
			t.Errorf("annotation %s left on the Service", k)
		}
	}
	if _, err := ic.NetworkingV1().VirtualServices(ns).Get(t.Context(), "reviews", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the generated VirtualService is left (err %v)", err)
	}
	waitNoCanary(t, cs)
	pods, err := cs.CoreV1().Pods(ns).List(t.Context(), metav1.ListOptions{LabelSelector: "app=reviews"})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods.Items {
		if img := p.Spec.Containers[0].Image; p.DeletionTimestamp == nil && img != bookinfo.Image(stable) {
			t.Errorf("pod %s runs %s, want the stable %s", p.Name, img, bookinfo.Image(stable))
		}
	}
}

// reinstall starts the controller again (it registers its webhooks) and
// opts reviews in again at the stable version.
func reinstall(t *testing.T) {
	cs, _ := clients(t)
	restartController(t)
	kubectl(t, reviews(stable), "apply", "-f", "-")
	kit.WaitDeployment(t, cs, ns, "reviews", time.Minute, "reviews opted in again, Idle", func(d *appsv1.Deployment) bool {
		return d.Annotations[contract.KeyPhase] == string(contract.PhaseIdle) && !d.Spec.Paused
	})
}
