package faults_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/canary-io/canary/contract"
	"github.com/canary-io/canary/e2e/bookinfo"
	"github.com/canary-io/canary/stepper"
)

// TestCrashAtEveryWrite kills the controller (SIGKILL, from inside, at a
// crash point of package stepper/crash) right after every write it makes
// during an analysis: after each restart the controller dies after its
// first write, so that every write of the analysis is followed by a crash
// and the next write is made by a new process that knows only what the
// cluster recorded. A good version must still be promoted and a bad one
// rolled back, with the invariants holding throughout.
func TestCrashAtEveryWrite(t *testing.T) {
	t.Run("promotion", func(t *testing.T) { crashAtEveryWrite(t, true) })
	t.Run("rollback", func(t *testing.T) { crashAtEveryWrite(t, false) })
	// The Gateway API router's writes, and blue/green's switch (recorded
	// before it is routed) with its mirror, under the same crashes.
	t.Run("blue-green promotion through an HTTPRoute", func(t *testing.T) {
		crashAtEveryWrite(t, true, `canary.io/router: gateway-api`, `canary.io/strategy: blue-green`, `canary.io/iterations: "2"`, `canary.io/mirror: "50"`)
	})
}

var crashLine = regexp.MustCompile(`CRASH after "([^"]+)"`)

func crashAtEveryWrite(t *testing.T, good bool, settings ...string) {
	cs, ic := clients(t)
	version := nextVersion(t, good)
	want := contract.PhaseSucceeded
	if !good {
		want = contract.PhaseRolledBack
	}
	mon := startMonitor(t)
	kubectl(t, reviews(version, settings...), "apply", "-f", "-")
	start := time.Now()

	ctrl.Stop()
	ctrl.Env = []string{"CANARY_CRASH_AT=*#1"}
	t.Cleanup(func() { restartController(t) })
	var points []string
	logStart := logSize()
	ended := func() bool {
		d, err := cs.AppsV1().Deployments(ns).Get(t.Context(), "reviews", metav1.GetOptions{})
		if err != nil || contract.Phase(d.Annotations[contract.KeyPhase]) != want {
			return false
		}
		svc, err := cs.CoreV1().Services(ns).Get(t.Context(), "reviews", metav1.GetOptions{})
		if err != nil {
			return false
		}
		_, pinned := svc.Spec.Selector[appsv1.DefaultDeploymentUniqueLabelKey]
		pods, err := cs.CoreV1().Pods(ns).List(t.Context(), metav1.ListOptions{LabelSelector: stepper.LabelCanary + "=true"})
		return err == nil && !pinned && len(pods.Items) == 0 && (!good || d.Status.UpdatedReplicas == 3 && d.Status.AvailableReplicas == 3 && d.Status.Replicas == 3)
	}
	deadline := time.Now().Add(4 * time.Minute)
	for !ended() {
		if time.Now().After(deadline) {
			t.Fatalf("the analysis did not end %s within 4 minutes, after %d crashes (last: %v)", want, len(points), last(points))
		}
		if err := ctrl.Launch(flags...); err != nil {
			t.Fatal(err)
		}
		select {
		case <-ctrl.Exited():
			log := readLogFrom(logStart)
			m := crashLine.FindAllStringSubmatch(log, -1)
			if len(m) == 0 {
				t.Fatalf("the controller exited without a crash point:\n%s", tail(log, 3000))
			}
			points = append(points, m[len(m)-1][1])
			logStart = logSize()
		case <-time.After(20 * time.Second):
			// No write for 20 s: the analysis is waiting, or done.
			ctrl.Stop()
		}
	}
	took := time.Since(start)
	samples := mon.end()
	for _, b := range verdict(samples, meshLag) {
		t.Error(b)
	}
	distinct := map[string]bool{}
	for _, p := range points {
		distinct[p] = true
	}
	fmt.Printf("BENCH crash at every write (%s): %d crashes at %d distinct write points, %s from apply to the end\n",
		want, len(points), len(distinct), took.Round(100*time.Millisecond))
	t.Logf("crash points, in order: %s", strings.Join(points, "; "))
	if len(points) < 5 {
		t.Errorf("only %d crashes: the crash points are not reached (%v)", len(points), points)
	}
	restartController(t)
	d := checkEnded(t, cs, ic, want)
	msg := d.Annotations[contract.KeyMessage]
	if good {
		checkUserObjects(t, cs, bookinfo.Image(version))
		if !strings.HasPrefix(msg, "promoted: revision") {
			t.Errorf("I3: message %q, want the promotion's", msg)
		}
		stable = version
		return
	}
	checkUserObjects(t, cs, bookinfo.Image(version))
	if !strings.HasPrefix(msg, "rolled back: ") {
		t.Errorf("I3: message %q, want the rollback's", msg)
	}
	if d.Annotations[contract.KeyRejectedRevision] != d.Annotations[contract.KeyRevision] {
		t.Errorf("I3: rejected-revision %q, want the revision %q", d.Annotations[contract.KeyRejectedRevision], d.Annotations[contract.KeyRevision])
	}
	backToStable(t)
}

func last(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return s[len(s)-1]
}

func logPath() string { return filepath.Join(env.LogDir(), ctrl.LogName) }

func logSize() int64 {
	fi, err := os.Stat(logPath())
	if err != nil {
		return 0
	}
	return fi.Size()
}

func readLogFrom(off int64) string {
	data, _ := os.ReadFile(logPath())
	if int64(len(data)) < off {
		return string(data)
	}
	return string(data[off:])
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}
