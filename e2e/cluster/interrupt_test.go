package cluster_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/canary-io/canary/e2e/cluster"
)

// TestNothingLeftBehind runs a test binary that brings a cluster up (with
// istiod), then interrupts it as Ctrl-C in a terminal would (SIGINT to the
// whole foreground process group: go, the test binary), or lets it panic,
// or sends it SIGTERM, and checks that none of the components outlives it.
func TestNothingLeftBehind(t *testing.T) {
	root, err := cluster.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		mode string
		sig  syscall.Signal // sent to the process group; 0: none (the child panics)
	}{
		{"interrupt", syscall.SIGINT},
		{"terminate", syscall.SIGTERM},
		{"panic", 0},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			ready := filepath.Join(t.TempDir(), "pids.json")
			cmd := exec.CommandContext(t.Context(), "go", "test", "-tags", "sigchild", "-count=1", "-v",
				"-run", "^TestWaitForTheEnd$", "./e2e/cluster/internal/sigchild/")
			cmd.Dir = root
			cmd.Env = append(os.Environ(), "SIGCHILD_READY="+ready, "SIGCHILD_MODE="+tc.mode)
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			var out strings.Builder
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan struct{})
			var waitErr error
			go func() { waitErr = cmd.Wait(); close(done) }()

			pids := waitForPIDs(t, ready, done, &out)
			if tc.sig != 0 {
				if err := syscall.Kill(-cmd.Process.Pid, tc.sig); err != nil {
					t.Fatal(err)
				}
			}
			select {
			case <-done:
				if waitErr == nil {
					t.Fatalf("child passed; want it interrupted or panicked\n%s", out.String())
				}
			case <-time.After(60 * time.Second):
				_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				t.Fatalf("child still running 60s after %s\n%s", tc.mode, out.String())
			}
			// Parent-death signals and Stop are both prompt; allow a moment.
			deadline := time.Now().Add(10 * time.Second)
			for {
				var alive []string
				for name, pid := range pids {
					if cluster.Alive(pid) {
						alive = append(alive, fmt.Sprintf("%s (pid %d)", name, pid))
					}
				}
				if len(alive) == 0 {
					break
				}
				if time.Now().After(deadline) {
					for _, pid := range pids {
						_ = syscall.Kill(-pid, syscall.SIGKILL)
					}
					t.Fatalf("after %s these outlived the test binary: %v\n%s", tc.mode, alive, out.String())
				}
				time.Sleep(100 * time.Millisecond)
			}
			if len(pids) != 7 {
				t.Fatalf("child reported %d components, want all 7 (etcd, Prometheus, kube-apiserver, kube-controller-manager, kube-scheduler, kwok, istiod): %v", len(pids), pids)
			}
		})
	}
}

// waitForPIDs waits for the child to report its components. done is
// closed when the child exits.
func waitForPIDs(t *testing.T, path string, done <-chan struct{}, out fmt.Stringer) map[string]int {
	t.Helper()
	deadline := time.After(5 * time.Minute) // includes compiling the child
	for {
		// Read first: a child that panics may exit right after writing.
		if data, err := os.ReadFile(path); err == nil {
			var pids map[string]int
			if json.Unmarshal(data, &pids) == nil {
				return pids
			}
		} else if !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		select {
		case <-done:
			if data, err := os.ReadFile(path); err == nil && len(data) > 0 {
				continue // written just before exiting
			}
			t.Fatalf("child exited before its cluster was up\n%s", out.String())
		case <-deadline:
			t.Fatalf("child's cluster not up within 5 minutes\n%s", out.String())
		case <-time.After(200 * time.Millisecond):
		}
	}
}
