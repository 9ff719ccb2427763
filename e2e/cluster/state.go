package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"
)

// stateFile, in a run directory, records who started the cluster and the
// process ids of its components, so that an orphaned cluster can be found
// and a detached one stopped.
const stateFile = "state.json"

// State is what a run directory records of its cluster.
type State struct {
	// Owner is the process that started the cluster; its components die
	// with it unless Detached.
	Owner    int            `json:"owner"`
	Detached bool           `json:"detached"`
	PIDs     map[string]int `json:"pids"`

	APIServerURL         string `json:"apiserverURL"`
	AdminKubeconfig      string `json:"adminKubeconfig"`
	ControllerKubeconfig string `json:"controllerKubeconfig"`
	PrometheusURL        string `json:"prometheusURL"`
	IstiodGRPCAddr       string `json:"istiodGRPCAddr,omitempty"`
	IstiodHTTPAddr       string `json:"istiodHTTPAddr,omitempty"`
}

// DefaultBaseDir holds the run directories of test clusters.
func DefaultBaseDir() string { return filepath.Join(os.TempDir(), "canary-clusters") }

func (c *Cluster) writeState() error {
	s := State{
		Owner: os.Getpid(), Detached: c.opts.Detached, PIDs: c.PIDs(),
		APIServerURL: c.APIServerURL, AdminKubeconfig: c.AdminKubeconfig, ControllerKubeconfig: c.ControllerKubeconfig,
		PrometheusURL: c.PrometheusURL, IstiodGRPCAddr: c.IstiodGRPCAddr, IstiodHTTPAddr: c.IstiodHTTPAddr,
	}
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encode cluster state: %w", err)
	}
	if err := os.WriteFile(filepath.Join(c.Dir, stateFile), data, 0o644); err != nil {
		return fmt.Errorf("write cluster state: %w", err)
	}
	return nil
}

// ReadState reads the state of the cluster whose run directory is dir.
func ReadState(dir string) (State, error) {
	var s State
	data, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(data, &s); err != nil {
		return s, fmt.Errorf("decode %s: %w", filepath.Join(dir, stateFile), err)
	}
	return s, nil
}

// alive lists the components of s that still run, as "name (pid N)".
func (s State) alive() []string {
	var out []string
	for name, pid := range s.PIDs {
		if Alive(pid) {
			out = append(out, fmt.Sprintf("%s (pid %d)", name, pid))
		}
	}
	sort.Strings(out)
	return out
}

// prepareDir creates the run directory, refusing to start next to a
// cluster that is still running without its owner: it would compete for
// the machine and hide the leak.
func prepareDir(opts *Options) error {
	if opts.Dir != "" {
		if s, err := ReadState(opts.Dir); err == nil {
			if alive := s.alive(); len(alive) > 0 {
				return fmt.Errorf("a cluster is already running in %s: %s; stop it first (make cluster-down)",
					opts.Dir, strings.Join(alive, ", "))
			}
		}
		// What is left of a stopped cluster is not reused.
		if err := os.RemoveAll(opts.Dir); err != nil {
			return fmt.Errorf("clear run directory: %w", err)
		}
		return os.MkdirAll(opts.Dir, 0o755)
	}
	base := DefaultBaseDir()
	if err := os.MkdirAll(base, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", base, err)
	}
	if err := checkOrphans(base); err != nil {
		return err
	}
	dir, err := os.MkdirTemp(base, time.Now().Format("run-20060102-150405-"))
	if err != nil {
		return fmt.Errorf("create run directory: %w", err)
	}
	opts.Dir = dir
	return nil
}

// checkOrphans looks at the run directories under base: a cluster whose
// owner has died but whose components still run is refused; one whose
// components are all gone is removed (a crashed run that left files).
func checkOrphans(base string) error {
	entries, err := os.ReadDir(base)
	if err != nil {
		return fmt.Errorf("read %s: %w", base, err)
	}
	var orphans []string
	for _, e := range entries {
		dir := filepath.Join(base, e.Name())
		s, err := ReadState(dir)
		if errors.Is(err, os.ErrNotExist) {
			continue // being created, or kept logs of a stopped cluster
		} else if err != nil {
			continue
		}
		if s.Owner != 0 && Alive(s.Owner) {
			continue // another test process's cluster, in use
		}
		if alive := s.alive(); len(alive) > 0 {
			orphans = append(orphans, fmt.Sprintf("%s: %s", dir, strings.Join(alive, ", ")))
			continue
		}
		// A crashed or failed run: keep its logs a day for a person to read,
		// but not its data.
		_ = os.Remove(filepath.Join(dir, stateFile))
		removeData(dir)
		if info, err := e.Info(); err == nil && time.Since(info.ModTime()) > 24*time.Hour {
			_ = os.RemoveAll(dir)
		}
	}
	if len(orphans) > 0 {
		return fmt.Errorf("a previous cluster is still running without the process that started it; "+
			"stop it with `go run ./hack/localcluster down -dir DIR` or kill its processes: %s", strings.Join(orphans, "; "))
	}
	return nil
}

// removeData deletes the bulky parts of a stopped cluster's run directory
// (etcd's and Prometheus' data), keeping logs and certificates.
func removeData(dir string) {
	_ = os.RemoveAll(filepath.Join(dir, "etcd"))
	_ = os.RemoveAll(filepath.Join(dir, "prometheus", "data"))
}

// StopDir stops the cluster whose run directory is dir (started detached,
// or orphaned) and removes the directory.
func StopDir(dir string) error {
	s, err := ReadState(dir)
	if errors.Is(err, os.ErrNotExist) {
		return os.RemoveAll(dir)
	} else if err != nil {
		return err
	}
	// Newest first, as Stop does: tools started beside the cluster
	// (StartTool), then the apiserver's clients, the apiserver, etcd last.
	order := []string{"istiod", "kwok", "kube-scheduler", "kube-controller-manager", "kube-apiserver", "prometheus", "etcd"}
	var tools []string
	for name := range s.PIDs {
		if !slices.Contains(order, name) {
			tools = append(tools, name)
		}
	}
	slices.Sort(tools)
	for _, name := range append(tools, order...) {
		if pid, ok := s.PIDs[name]; ok && Alive(pid) {
			stopGroup(pid, 10*time.Second, func() bool { return !Alive(pid) })
		}
	}
	if alive := s.alive(); len(alive) > 0 {
		return fmt.Errorf("still running after SIGKILL: %s", strings.Join(alive, ", "))
	}
	return os.RemoveAll(dir)
}

// WriteAccess writes what a person needs to reach the cluster into dir
// (the checkout's .local): kubeconfig, the admin's, and prometheus-url.
func (c *Cluster) WriteAccess(dir string) error {
	kubeconfig, err := os.ReadFile(c.AdminKubeconfig)
	if err != nil {
		return fmt.Errorf("read kubeconfig: %w", err)
	}
	for path, data := range map[string][]byte{
		filepath.Join(dir, "kubeconfig"):     kubeconfig,
		filepath.Join(dir, "prometheus-url"): []byte(c.PrometheusURL + "\n"),
	} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
	}
	return nil
}

// tools locates the binaries and data files hack/tools.sh provides.
type tools struct{ dir string }

func (t tools) bin(name string) string   { return filepath.Join(t.dir, "bin", name) }
func (t tools) share(name string) string { return filepath.Join(t.dir, "share", name) }

// findTools finds the tools directory: dir, else $CANARY_TOOLS_DIR, else
// the .local directory of the checkout this process runs in.
func findTools(dir string) (tools, error) {
	if dir == "" {
		dir = os.Getenv("CANARY_TOOLS_DIR")
	}
	if dir == "" {
		root, err := RepoRoot()
		if err != nil {
			return tools{}, err
		}
		dir = filepath.Join(root, ".local")
	}
	t := tools{dir: dir}
	for _, b := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "prometheus", "pilot-discovery"} {
		if _, err := os.Stat(t.bin(b)); err != nil {
			return tools{}, fmt.Errorf("%s is missing from %s: build the tools first with hack/tools.sh (make tools)", b, filepath.Join(dir, "bin"))
		}
	}
	for _, f := range []string{"istio-crds.yaml", "gateway-api-crds.yaml", "kwok-stages.yaml"} {
		if _, err := os.Stat(t.share(f)); err != nil {
			return tools{}, fmt.Errorf("%s is missing from %s: run hack/tools.sh (make tools)", f, filepath.Join(dir, "share"))
		}
	}
	return t, nil
}

// RepoRoot is the root of the checkout: the nearest directory upwards from
// the working directory that holds hack/tools.sh.
func RepoRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "hack", "tools.sh")); err == nil {
			return dir, nil
		}
		if dir == filepath.Dir(dir) {
			return "", fmt.Errorf("no checkout of this project above %s (looked for hack/tools.sh)", wd)
		}
	}
}
