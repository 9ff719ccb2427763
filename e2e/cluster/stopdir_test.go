package cluster

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// TestStopDirStopsToolsBesideTheCluster: make cluster-down (StopDir) stops
// a tool started beside the cluster (StartTool, e.g. Flagger's load
// tester, whose name is not one of the cluster's components) as well as
// the components.
func TestStopDirStopsToolsBesideTheCluster(t *testing.T) {
	dir := t.TempDir()
	logs := filepath.Join(dir, "logs")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		t.Fatal(err)
	}
	pids := map[string]int{}
	for _, name := range []string{"flagger-loadtester", "etcd"} {
		p, err := startProcess(name, logs, true, nil, "sleep", "600")
		if err != nil {
			t.Fatal(err)
		}
		pids[name] = p.pid()
	}
	t.Cleanup(func() {
		for _, pid := range pids {
			stopGroup(pid, 0, func() bool { return !Alive(pid) })
		}
	})
	data, err := json.Marshal(State{Owner: os.Getpid(), Detached: true, PIDs: pids})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, stateFile), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := StopDir(dir); err != nil {
		t.Fatalf("StopDir: %v", err)
	}
	for name, pid := range pids {
		if Alive(pid) {
			t.Errorf("%s (pid %d) still runs after StopDir", name, pid)
		}
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the run directory is still there (err %v)", err)
	}
}
