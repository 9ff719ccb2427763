package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Names of the credentials the cluster issues.
const (
	// AdminUser is the admin credential's user, in group system:masters.
	AdminUser = "canary-admin"
	// ControllerUser is the user the project's controller runs as: a
	// credential distinct from the admin's, so that tests of "refused for
	// users, allowed for the controller" can fail.
	ControllerUser = "canary-controller"
)

// Ranges sized for scale tests: thousands of Services and pods.
const (
	serviceCIDR = "10.96.0.0/16"
	podCIDR     = "10.244.0.1/16"
)

// Options configure a local cluster. The zero value is a test cluster of
// three nodes without istiod.
type Options struct {
	// Dir is the run directory (state, certificates, logs). Empty: a new
	// directory under DefaultBaseDir.
	Dir string
	// ToolsDir holds bin/ and share/ as hack/tools.sh lays them out. Empty:
	// $CANARY_TOOLS_DIR, else the .local directory of this checkout.
	ToolsDir string
	// Nodes is the number of kwok nodes (default 3).
	Nodes int
	// Istiod starts istiod against the cluster.
	Istiod bool
	// ScrapeInterval is Prometheus' scrape and evaluation interval
	// (default 1s, so that analysis windows of seconds have data).
	ScrapeInterval time.Duration
	// Detached leaves the components running after this process exits
	// (make cluster-up); Stop and StopDir end them.
	Detached bool
	// Progress receives one line per start-up step; nil discards them.
	Progress func(msg string)
}

// Cluster is a running local cluster.
type Cluster struct {
	// Dir is the run directory; logs are under Dir/logs.
	Dir string
	// APIServerURL is kube-apiserver's https URL.
	APIServerURL string
	// AdminKubeconfig and ControllerKubeconfig are kubeconfig files for
	// the admin and for the controller's credential (ControllerUser).
	AdminKubeconfig, ControllerKubeconfig string
	// Admin and Controller are rest configs for the same credentials.
	Admin, Controller *rest.Config
	// CAFile is the cluster CA's certificate (PEM).
	CAFile string
	// PrometheusURL is the Prometheus server's URL.
	PrometheusURL string
	// IstiodGRPCAddr (plaintext xDS) and IstiodHTTPAddr (debug endpoints,
	// /ready) are empty without istiod.
	IstiodGRPCAddr, IstiodHTTPAddr string

	opts      Options
	tools     tools
	procs     []*process
	stopOnce  sync.Once
	targetsMu sync.Mutex
	promPorts ports
}

// LogDir is where each component's log is kept.
func (c *Cluster) LogDir() string { return filepath.Join(c.Dir, "logs") }

// Start starts a cluster and waits until it is ready: the apiserver ready,
// nodes Ready, the controllers working, Prometheus (and istiod) ready, and
// Istio's CRDs established. On error nothing is left running and the error
// names the run directory that holds the logs.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	if opts.Nodes == 0 {
		opts.Nodes = 3
	}
	if opts.ScrapeInterval == 0 {
		opts.ScrapeInterval = time.Second
	}
	if opts.Progress == nil {
		opts.Progress = func(string) {}
	}
	t, err := findTools(opts.ToolsDir)
	if err != nil {
		return nil, err
	}
	if err := prepareDir(&opts); err != nil {
		return nil, err
	}
	c := &Cluster{Dir: opts.Dir, opts: opts, tools: t}
	if err := c.start(ctx); err != nil {
		c.stopProcesses()
		return nil, fmt.Errorf("local cluster did not come up (logs in %s): %w", c.LogDir(), err)
	}
	return c, nil
}

// ports are the loopback ports of the components.
type ports struct {
	etcdClient, etcdPeer, apiserver, prometheus, kwok int
	istiodHTTP, istiodGRPC, istiodMonitoring          int
	istiodHTTPS, istiodCtrlz                          int
}

func (c *Cluster) start(ctx context.Context) error {
	p, err := freePorts(10)
	if err != nil {
		return err
	}
	pt := ports{p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9]}
	for _, d := range []string{"logs", "pki", "etcd", "prometheus/targets", "prometheus/data"} {
		if err := os.MkdirAll(filepath.Join(c.Dir, d), 0o755); err != nil {
			return fmt.Errorf("create run directory: %w", err)
		}
	}
	c.APIServerURL = fmt.Sprintf("https://127.0.0.1:%d", pt.apiserver)
	c.PrometheusURL = fmt.Sprintf("http://127.0.0.1:%d", pt.prometheus)
	if c.opts.Istiod {
		c.IstiodGRPCAddr = fmt.Sprintf("127.0.0.1:%d", pt.istiodGRPC)
		c.IstiodHTTPAddr = fmt.Sprintf("127.0.0.1:%d", pt.istiodHTTP)
	}
	pki, err := c.writePKI()
	if err != nil {
		return err
	}
	if err := c.writeState(); err != nil {
		return err
	}

	c.opts.Progress("starting etcd and Prometheus")
	if err := c.run("etcd", nil, c.tools.bin("etcd"), etcdArgs(c.Dir, pt)...); err != nil {
		return err
	}
	if err := c.startPrometheus(pt); err != nil {
		return err
	}
	if err := c.waitHTTP(ctx, "etcd", fmt.Sprintf("http://127.0.0.1:%d/health", pt.etcdClient), nil); err != nil {
		return err
	}

	c.opts.Progress("starting kube-apiserver")
	if err := c.run("kube-apiserver", nil, c.tools.bin("kube-apiserver"), apiserverArgs(c.Dir, pt, pki)...); err != nil {
		return err
	}
	admin, err := clientcmd.BuildConfigFromFlags("", c.AdminKubeconfig)
	if err != nil {
		return fmt.Errorf("load admin kubeconfig: %w", err)
	}
	c.Admin = admin
	if c.Controller, err = clientcmd.BuildConfigFromFlags("", c.ControllerKubeconfig); err != nil {
		return fmt.Errorf("load controller kubeconfig: %w", err)
	}
	if err := c.waitAPIServer(ctx); err != nil {
		return err
	}

	c.opts.Progress("starting kube-controller-manager, kube-scheduler and kwok")
	if err := c.run("kube-controller-manager", nil, c.tools.bin("kube-controller-manager"), controllerManagerArgs(c.Dir, pki)...); err != nil {
		return err
	}
	schedulerConfig, err := writeSchedulerConfig(c.Dir, pki.scheduler)
	if err != nil {
		return err
	}
	if err := c.run("kube-scheduler", nil, c.tools.bin("kube-scheduler"), "--config="+schedulerConfig, "--secure-port=0", "--v=1"); err != nil {
		return err
	}
	if err := c.run("kwok", nil, c.tools.bin("kwok"), kwokArgs(c.AdminKubeconfig, c.tools.share("kwok-stages.yaml"), pt)...); err != nil {
		return err
	}

	cs, err := kubernetes.NewForConfig(admin)
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	c.opts.Progress(fmt.Sprintf("creating %d kwok nodes, RBAC, Istio's and the Gateway API's CRDs", c.opts.Nodes))
	if err := bootstrap(ctx, cs, c.opts.Nodes); err != nil {
		return err
	}
	// The Gateway API's CRDs come before istiod starts, as on a cluster
	// that has them installed: istiod serves HTTPRoutes from its start.
	for _, f := range []string{"istio-crds.yaml", "gateway-api-crds.yaml"} {
		if err := installCRDs(ctx, admin, c.tools.share(f)); err != nil {
			return err
		}
	}
	if err := installWeightPolicy(ctx, cs); err != nil {
		return err
	}
	if c.opts.Istiod {
		c.opts.Progress("starting istiod")
		if err := c.run("istiod", istiodEnv(), c.tools.bin("pilot-discovery"), istiodArgs(c.AdminKubeconfig, pt)...); err != nil {
			return err
		}
	}

	c.opts.Progress("waiting for nodes, controllers and Prometheus")
	if err := c.waitReady(ctx, cs); err != nil {
		return err
	}
	if err := c.waitHTTP(ctx, "prometheus", c.PrometheusURL+"/-/ready", nil); err != nil {
		return err
	}
	if c.opts.Istiod {
		if err := c.waitHTTP(ctx, "istiod", "http://"+c.IstiodHTTPAddr+"/ready", nil); err != nil {
			return err
		}
	}
	return c.writeState()
}

// run starts a component and records it.
func (c *Cluster) run(name string, env []string, bin string, args ...string) error {
	p, err := startProcess(name, c.LogDir(), c.opts.Detached, env, bin, args...)
	if err != nil {
		return err
	}
	c.procs = append(c.procs, p)
	return c.writeState()
}

// Pid is the process id of the component name ("prometheus",
// "kube-apiserver", ...), 0 if it is not running here.
func (c *Cluster) Pid(name string) int {
	for _, p := range c.procs {
		if p.name == name {
			return p.pidv
		}
	}
	return 0
}

// StartTool starts a binary that hack/tools.sh provides (Flagger's load
// tester, say) beside the cluster's components, stopped with them: its own
// process group, its output in LogDir()/name.log. With a health URL it
// waits until that answers 200.
func (c *Cluster) StartTool(ctx context.Context, name, tool, health string, args ...string) error {
	bin := c.tools.bin(tool)
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("%s is missing from %s: build the tools first with hack/tools.sh (make tools)", tool, filepath.Dir(bin))
	}
	if err := c.run(name, nil, bin, args...); err != nil {
		return err
	}
	if health == "" {
		return nil
	}
	return c.waitHTTP(ctx, name, health, nil)
}

// checkProcesses reports the first attached component that has exited.
func (c *Cluster) checkProcesses() error {
	if c.opts.Detached {
		for _, p := range c.procs {
			if !Alive(p.pid()) {
				return fmt.Errorf("%s exited; its log: %s", p.name, p.logPath)
			}
		}
		return nil
	}
	for _, p := range c.procs {
		if err := p.checkRunning(); err != nil {
			return err
		}
	}
	return nil
}

// Stop ends every component, newest first, and removes the run directory.
// It is safe to call more than once.
func (c *Cluster) Stop() {
	c.stopOnce.Do(func() {
		c.stopProcesses()
		_ = os.RemoveAll(c.Dir)
	})
}

// StopKeepLogs ends every component and keeps the run directory (logs,
// state) for a person to read, e.g. after a failed test.
func (c *Cluster) StopKeepLogs() {
	c.stopOnce.Do(func() {
		c.stopProcesses()
		removeData(c.Dir)
	})
}

func (c *Cluster) stopProcesses() {
	for i := len(c.procs) - 1; i >= 0; i-- {
		p := c.procs[i]
		if c.opts.Detached {
			pid := p.pid()
			stopGroup(pid, 10*time.Second, func() bool { return !Alive(pid) })
		} else {
			p.stop(10 * time.Second)
		}
	}
	_ = os.Remove(filepath.Join(c.Dir, stateFile))
}

// PIDs lists the process ids of the components by name.
func (c *Cluster) PIDs() map[string]int {
	pids := make(map[string]int, len(c.procs))
	for _, p := range c.procs {
		pids[p.name] = p.pid()
	}
	return pids
}

// freePorts asks the kernel for n distinct free loopback ports.
func freePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// poll calls check every interval until it returns nil or ctx ends, or a
// component exits; the error says what it last waited for.
func (c *Cluster) poll(ctx context.Context, what string, timeout time.Duration, check func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		if err := c.checkProcesses(); err != nil {
			return err
		}
		if last = check(ctx); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: not ready after %s: %w", what, timeout, errors.Join(last, ctx.Err()))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// Kubectl is a kubectl command (the pinned v1.36.3 build) run as the admin.
func (c *Cluster) Kubectl(ctx context.Context, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, c.tools.bin("kubectl"), append([]string{"--kubeconfig=" + c.AdminKubeconfig}, args...)...)
}
