package e2e_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/canary-io/canary/e2e/cluster"
	"github.com/canary-io/canary/e2e/controller"
	"github.com/canary-io/canary/e2e/scenario"
)

var env *cluster.Cluster

func TestMain(m *testing.M) {
	os.Exit(cluster.RunTests(m, cluster.Options{Istiod: true}, func(c *cluster.Cluster) {
		env = c
		p, err := controller.Build(c)
		if err == nil {
			err = p.Start("--prometheus-url="+c.PrometheusURL, "--propagation-delay=1s")
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "start canary-controller:", err)
			os.Exit(1)
		}
	}))
}

// TestBookinfo is the job the project exists for: reviews canaried v1 →
// v2 → v3, each promoted through weights 20, 40, 60, then a bad v4 rolled
// back, judged by the real Prometheus on traffic routed by the real
// istiod's configuration.
func TestBookinfo(t *testing.T) {
	var live strings.Builder
	res, err := scenario.Run(t.Context(), env, scenario.Options{Interval: 10 * time.Second, Out: &live})
	if err != nil {
		t.Fatalf("%v\nlive view:\n%s", err, live.String())
	}
	for _, line := range res.Report {
		fmt.Println("BENCH " + line)
	}
	chart := filepath.Join(env.Dir, "rollouts.svg")
	if err := os.WriteFile(chart, scenario.RenderSVG(res.Rollouts), 0o644); err != nil {
		t.Fatal(err)
	}
	if len(res.Rollouts) != 3 {
		t.Errorf("%d rollouts recorded, want 3", len(res.Rollouts))
	}
	for _, f := range res.Failures {
		t.Error(f)
	}
	if t.Failed() {
		t.Logf("live view:\n%s", live.String())
	}
}
