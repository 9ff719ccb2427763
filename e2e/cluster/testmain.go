package cluster

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"testing"
	"time"
)

// RunTests is the body of a TestMain that needs a cluster: it starts one
// with opts, hands it to use, runs the tests and stops it, and returns the
// exit code for os.Exit.
//
// SIGINT and SIGTERM (Ctrl-C during make test) stop the cluster before the
// process exits; a panic or a kill leaves the parent-death signal to end
// the components. When tests fail the run directory is kept and named, so
// the components' logs can be read.
func RunTests(m *testing.M, opts Options, use func(*Cluster)) int {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var (
		mu      sync.Mutex
		c       *Cluster
		started = make(chan struct{})
	)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		sig := <-sigs
		fmt.Fprintf(os.Stderr, "cluster: %v: stopping the local cluster\n", sig)
		cancel()
		<-started // Start cleans up after itself when its context ends
		mu.Lock()
		if c != nil {
			c.Stop()
		}
		os.Exit(130)
	}()

	if opts.Progress == nil {
		begin := time.Now()
		opts.Progress = func(msg string) {
			fmt.Fprintf(os.Stderr, "cluster: %5.1fs %s\n", time.Since(begin).Seconds(), msg)
		}
	}
	begin := time.Now()
	started1, err := Start(ctx, opts)
	mu.Lock()
	c = started1
	mu.Unlock()
	close(started)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cluster:", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "cluster: up in %.1fs (run directory %s)\n", time.Since(begin).Seconds(), c.Dir)
	use(c)

	code := m.Run()

	mu.Lock()
	defer mu.Unlock()
	if code != 0 {
		c.StopKeepLogs()
		fmt.Fprintf(os.Stderr, "cluster: tests failed; component logs kept in %s\n", c.LogDir())
	} else {
		c.Stop()
	}
	return code
}
