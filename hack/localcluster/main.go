// Command localcluster starts and stops the project's local cluster in the
// background, for a person to use with kubectl (make cluster-up and make
// cluster-down).
//
//	localcluster up     start it; write .local/kubeconfig and .local/prometheus-url
//	localcluster down   stop it and remove its state
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/canary-io/canary/e2e/cluster"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "localcluster:", err)
		os.Exit(1)
	}
}

func run() error {
	root, err := cluster.RepoRoot()
	if err != nil {
		return err
	}
	local := filepath.Join(root, ".local")
	fs := flag.NewFlagSet("localcluster", flag.ExitOnError)
	dir := fs.String("dir", filepath.Join(local, "cluster"), "run directory of the cluster")
	nodes := fs.Int("nodes", 3, "number of kwok nodes")
	istiod := fs.Bool("istiod", true, "start istiod")
	if len(os.Args) < 2 {
		return errors.New("usage: localcluster up|down [flags]")
	}
	if err := fs.Parse(os.Args[2:]); err != nil {
		return err
	}
	switch os.Args[1] {
	case "up":
		return up(local, cluster.Options{Dir: *dir, Nodes: *nodes, Istiod: *istiod, Detached: true})
	case "down":
		if err := cluster.StopDir(*dir); err != nil {
			return fmt.Errorf("stop cluster in %s: %w", *dir, err)
		}
		for _, f := range []string{"kubeconfig", "prometheus-url"} {
			_ = os.Remove(filepath.Join(local, f))
		}
		fmt.Println("local cluster stopped")
		return nil
	default:
		return fmt.Errorf("unknown command %q: usage: localcluster up|down [flags]", os.Args[1])
	}
}

func up(local string, opts cluster.Options) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	opts.Progress = func(msg string) { fmt.Printf("  %5.1fs  %s\n", time.Since(start).Seconds(), msg) }
	c, err := cluster.Start(ctx, opts)
	if err != nil {
		return err
	}
	if err := c.WriteAccess(local); err != nil {
		c.Stop()
		return err
	}
	fmt.Printf(`local cluster up in %.1fs (logs in %s)

  kubectl --kubeconfig .local/kubeconfig get nodes
  export KUBECONFIG=$PWD/.local/kubeconfig     # or this, for every kubectl
  Prometheus:  %s
`, time.Since(start).Seconds(), c.LogDir(), c.PrometheusURL)
	if c.IstiodGRPCAddr != "" {
		fmt.Printf("  istiod:      xDS %s, debug http://%s/debug/registryz\n", c.IstiodGRPCAddr, c.IstiodHTTPAddr)
	}
	fmt.Println("\nstop it with: make cluster-down")
	return nil
}
