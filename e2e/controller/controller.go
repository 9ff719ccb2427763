// Package controller runs the real canary-controller binary against a
// local cluster, for the integration and end-to-end tests: built once per
// test binary, started as the controller's own credential, with its
// webhook served over TLS on loopback and registered in the apiserver.
package controller

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/canary-io/canary/e2e/cluster"
	"github.com/canary-io/canary/hack/releasebuild"
)

// Process is one canary-controller process.
type Process struct {
	// Bin is the built binary.
	Bin string
	// Dir holds its webhook certificates.
	Dir string
	// Webhook, Probe and Metrics are its loopback ports.
	Webhook, Probe, Metrics int
	// LogName is its log file in the cluster's log directory.
	LogName string
	// Env is added to its environment (CANARY_CRASH_AT, say).
	Env []string
	// Args are its flags beyond the cluster-given ones (credential,
	// identity, ports, certificates). Nil: register the webhook and run
	// the stepper without leader election.
	Args []string

	cluster *cluster.Cluster
	cmd     *exec.Cmd
	exited  chan struct{}
}

// Build compiles cmd/canary-controller into a directory of the cluster's
// run directory and returns a Process ready to Start, with its own ports.
func Build(c *cluster.Cluster) (*Process, error) {
	return BuildWithTags(c)
}

// BuildWithTags is Build with build tags (faultinject: the crash points
// of package stepper/crash).
func BuildWithTags(c *cluster.Cluster, tags ...string) (*Process, error) {
	dir, err := os.MkdirTemp(c.Dir, "controller-")
	if err != nil {
		return nil, err
	}
	root, err := cluster.RepoRoot()
	if err != nil {
		return nil, err
	}
	p := &Process{Bin: filepath.Join(dir, "canary-controller"), Dir: dir, LogName: "canary-controller.log", cluster: c}
	var extra []string
	if len(tags) > 0 {
		extra = []string{"-tags", strings.Join(tags, ",")}
	}
	// Built as the release builds it: see package releasebuild.
	build := releasebuild.Command(context.Background(), root, "", "", p.Bin, "./cmd/canary-controller", extra...)
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build canary-controller: %v\n%s", err, out)
	}
	if err := p.choosePorts(); err != nil {
		return nil, err
	}
	return p, nil
}

// Replica is another process of the same binary and certificates, with
// ports of its own.
func (p *Process) Replica(logName string, args ...string) (*Process, error) {
	r := &Process{Bin: p.Bin, Dir: p.Dir, LogName: logName, Args: args, cluster: p.cluster}
	return r, r.choosePorts()
}

func (p *Process) choosePorts() error {
	ports, err := FreePorts(3)
	if err != nil {
		return err
	}
	p.Webhook, p.Probe, p.Metrics = ports[0], ports[1], ports[2]
	return nil
}

// Start starts the process and waits until it is ready (its webhook
// serving, and registered when it registers it).
func (p *Process) Start(extra ...string) error {
	if err := p.Launch(extra...); err != nil {
		return err
	}
	return p.WaitReady()
}

// Exited is closed when the process has exited.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Launch starts the process without waiting for it to be ready.
func (p *Process) Launch(extra ...string) error {
	log, err := os.OpenFile(filepath.Join(p.cluster.LogDir(), p.LogName), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer log.Close()
	args := []string{
		"--kubeconfig=" + p.cluster.ControllerKubeconfig, "--controller-identity=" + cluster.ControllerUser,
		"--webhook-host=127.0.0.1", fmt.Sprintf("--webhook-port=%d", p.Webhook),
		"--webhook-cert-dir=" + filepath.Join(p.Dir, "certs"),
		fmt.Sprintf("--health-probe-bind-address=127.0.0.1:%d", p.Probe),
		fmt.Sprintf("--metrics-bind-address=127.0.0.1:%d", p.Metrics),
		"--zap-log-level=1",
		// The tests' hook servers and Prometheus run on loopback, which the
		// controller refuses unless its allow-lists hold it.
		"--allow-hook-destinations=127.0.0.0/8", "--allow-prometheus-destinations=127.0.0.0/8",
	}
	if p.Args == nil {
		args = append(args, p.RegisterFlag(), "--leader-elect=false")
	}
	args = append(append(args, p.Args...), extra...)
	p.cmd = exec.Command(p.Bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = log, log
	if len(p.Env) > 0 {
		p.cmd.Env = append(os.Environ(), p.Env...)
	}
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		return fmt.Errorf("start canary-controller: %w", err)
	}
	p.exited = make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(p.exited) }()
	return nil
}

// WaitReady waits until the process is ready, for at most a minute.
func (p *Process) WaitReady() error {
	return wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 60*time.Second, true, func(context.Context) (bool, error) {
		if !p.Running() {
			return false, fmt.Errorf("canary-controller exited; its log: %s", filepath.Join(p.cluster.LogDir(), p.LogName))
		}
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", p.Probe))
		if err != nil {
			return false, nil
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
}

// RegisterFlag is the flag that makes the process register its own
// webhook server in the apiserver.
func (p *Process) RegisterFlag() string {
	return fmt.Sprintf("--register-webhook-url=https://127.0.0.1:%d", p.Webhook)
}

// Pid is the process id, 0 before Launch.
func (p *Process) Pid() int {
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// MetricsURL is the process' metrics endpoint.
func (p *Process) MetricsURL() string { return fmt.Sprintf("http://127.0.0.1:%d/metrics", p.Metrics) }

// Scrape reads the process' metrics endpoint (the text exposition format).
func (p *Process) Scrape(ctx context.Context) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.MetricsURL(), nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("scrape %s: %w", p.MetricsURL(), err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return "", fmt.Errorf("scrape %s: %w", p.MetricsURL(), err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("scrape %s: %s", p.MetricsURL(), resp.Status)
	}
	return string(body), nil
}

// Running reports whether the process is still running.
func (p *Process) Running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return p.exited != nil
	}
}

// Kill ends the process at once, as a crash or an evicted pod would.
func (p *Process) Kill() {
	if p.Running() {
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// Stop ends the process gracefully (SIGTERM), or kills it after 10 s.
func (p *Process) Stop() {
	if !p.Running() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		p.Kill()
	}
}

// Log is what the process has logged so far.
func (p *Process) Log() string {
	data, _ := os.ReadFile(filepath.Join(p.cluster.LogDir(), p.LogName))
	return string(data)
}

// FreePorts returns n distinct free loopback ports: each listener is held
// until all are chosen, then released for the process to bind.
func FreePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
