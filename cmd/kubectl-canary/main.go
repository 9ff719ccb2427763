// Command kubectl-canary is the kubectl plugin `kubectl canary`: it lists
// canary analyses, shows one (optionally live), and promotes, aborts,
// retries, pauses or resumes it through the canary.io control annotations.
// Put it on PATH and run `kubectl canary help`. The logic is in package
// canaryctl.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/canary-io/canary/canaryctl"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	p := &canaryctl.Plugin{Out: os.Stdout, ErrOut: os.Stderr, Now: time.Now}
	err := p.Run(ctx, os.Args[1:])
	stop()
	switch {
	case errors.Is(err, canaryctl.ErrUsage):
		os.Exit(2)
	case err != nil:
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}
