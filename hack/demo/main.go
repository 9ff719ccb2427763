// Command demo is `make demo`: it starts the local cluster (with istiod
// and Prometheus), the controller and a traffic generator posing as
// bookinfo's productpage sidecar, and runs the bookinfo scenario with a
// live view: reviews canaried v1 → v2 → v3, then a bad v4 rolled back,
// with Prometheus scraping every 15 s as Istio's addon does; then, with
// Prometheus reloaded to scrape every second, a slow-only v5 rolled back
// by the comparison's slow-request test and a healthy v6. It leaves the
// cluster running and a picture of the rollouts behind.
//
// With -router gateway-api (make demo-gateway-api) the same story plays
// through the Gateway API: reviews carries canary.io/router: gateway-api,
// and every weight is carried by the HTTPRoute reviews attached to the
// Service, which istiod turns into the sidecars' routes.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/canary-io/canary/contract"
	"github.com/canary-io/canary/e2e/cluster"
	"github.com/canary-io/canary/e2e/scenario"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run() error {
	router := flag.String("router", string(contract.RouterIstio), `the router reviews uses: "istio" (VirtualService) or "gateway-api" (HTTPRoute)`)
	flag.Parse()
	var annotations map[string]string
	switch contract.Router(*router) {
	case contract.RouterIstio:
	case contract.RouterGatewayAPI:
		annotations = map[string]string{contract.KeyRouter: *router}
	default:
		return fmt.Errorf("-router %q: want %q or %q", *router, contract.RouterIstio, contract.RouterGatewayAPI)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root, err := cluster.RepoRoot()
	if err != nil {
		return err
	}
	local := filepath.Join(root, ".local")
	dir := filepath.Join(local, "cluster")
	if s, err := cluster.ReadState(dir); err == nil && len(s.PIDs) > 0 {
		fmt.Println("stopping the local cluster left running by an earlier demo or make cluster-up")
		if err := cluster.StopDir(dir); err != nil {
			return err
		}
	}
	begin := time.Now()
	c, err := cluster.Start(ctx, cluster.Options{
		Dir: dir, Istiod: true, Detached: true, ScrapeInterval: 15 * time.Second,
		Progress: func(msg string) { fmt.Printf("  %5.1fs  %s\n", time.Since(begin).Seconds(), msg) },
	})
	if err != nil {
		return err
	}
	if err := c.WriteAccess(local); err != nil {
		return err
	}
	fmt.Printf("  %5.1fs  building and starting the controller\n", time.Since(begin).Seconds())
	chat, ctrl, err := scenario.StartController(c)
	if err != nil {
		return err
	}
	defer chat.Close()
	chat.Out = os.Stdout // the team's chat, in the live view
	defer ctrl.Stop()

	res, err := scenario.Run(ctx, c, scenario.Options{Interval: 10 * time.Second, Out: os.Stdout, ThenScrape: time.Second, Notifications: chat, Annotations: annotations})
	if err != nil {
		return err
	}
	fmt.Println("\nWhat happened:")
	for _, line := range res.Report {
		fmt.Println("  " + line)
	}
	for _, f := range res.Failures {
		fmt.Println("  BROKEN PROMISE: " + f)
	}
	picture := filepath.Join(local, "rollouts.svg")
	if err := os.WriteFile(picture, scenario.RenderSVG(res.Rollouts), 0o644); err != nil {
		return err
	}
	fmt.Printf(`
The demo took %s. A picture of the five rollouts (weight, success rate and
p99 of canary and stable over time): %s

The cluster keeps running (the controller and the traffic stopped with the
demo; make run starts the controller again). Look around:

  export KUBECONFIG=$PWD/.local/kubeconfig
  kubectl -n bookinfo get deploy reviews -o yaml      # the canary.io annotations
  kubectl -n bookinfo get events --sort-by=.lastTimestamp
  Prometheus: %s

Stop it with: make cluster-down
`, time.Since(begin).Round(time.Second), picture, c.PrometheusURL)
	if len(res.Failures) > 0 {
		return fmt.Errorf("%d promises broken", len(res.Failures))
	}
	return nil
}
