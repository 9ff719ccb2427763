//go:build sigchild

package sigchild

import (
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/canary-io/canary/e2e/cluster"
)

var env *cluster.Cluster

func TestMain(m *testing.M) {
	os.Exit(cluster.RunTests(m, cluster.Options{Istiod: true, Nodes: 1}, func(c *cluster.Cluster) { env = c }))
}

// TestWaitForTheEnd reports the components' pids in $SIGCHILD_READY, then
// waits: for a signal, or, with SIGCHILD_MODE=panic, panics.
func TestWaitForTheEnd(t *testing.T) {
	data, err := json.Marshal(env.PIDs())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(os.Getenv("SIGCHILD_READY"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if os.Getenv("SIGCHILD_MODE") == "panic" {
		panic("sigchild: panicking with the cluster up, as a failing test might")
	}
	time.Sleep(5 * time.Minute)
	t.Fatal("not interrupted within 5 minutes")
}
