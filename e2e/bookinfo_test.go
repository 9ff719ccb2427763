package e2e_test

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/canary-io/canary/e2e/cluster"
	"github.com/canary-io/canary/e2e/scenario"
)

var (
	env *cluster.Cluster
	// chat receives the controller's notifications.
	chat *scenario.Receiver
)

// TestMain starts the cluster and the controller once for the package.
// The A/B and sticky stories of both routers run two at a time
// (t.Parallel): each in its namespace, with its own traffic generator
// and scrape job, after the serial tests. The rest stay serial:
// TestBookinfo reloads Prometheus (the stories after it rely on its 1 s
// scrapes), and the blue/green stories start Flagger's load tester under
// one name.
func TestMain(m *testing.M) {
	// Prometheus scrapes every 15 s, as Istio's addon (samples/addons)
	// that users install does; the story reloads it with 1 s scrapes for
	// its last two rollouts.
	os.Exit(cluster.RunTests(m, cluster.Options{Istiod: true, ScrapeInterval: 15 * time.Second}, func(c *cluster.Cluster) {
		env = c
		var err error
		if chat, _, err = scenario.StartController(c); err != nil {
			fmt.Fprintln(os.Stderr, "start canary-controller:", err)
			os.Exit(1)
		}
	}))
}

// TestBookinfo is the job the project exists for: reviews canaried v1 →
// v2 → v3, each promoted through weights 20, 40, 60, then a bad v4 rolled
// back, judged by the real Prometheus on traffic routed by the real
// istiod's configuration; all with the README's 10 s steps and 15 s
// scrapes, so the checks read 1m windows. Then Prometheus is reloaded
// with 1 s scrapes: a slow-only v5 is rolled back by the comparison's
// slow-request test, and v6's checks read 10 s windows.
func TestBookinfo(t *testing.T) {
	var live strings.Builder
	res, err := scenario.Run(t.Context(), env, scenario.Options{Interval: 10 * time.Second, Out: &live, ThenScrape: time.Second, Notifications: chat})
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
	if len(res.Rollouts) != 5 {
		t.Errorf("%d rollouts recorded, want 5", len(res.Rollouts))
	}
	for _, f := range res.Failures {
		t.Error(f)
	}
	if t.Failed() {
		t.Logf("live view:\n%s", live.String())
	}
}

// strategyInterval is the interval of the A/B, blue/green and sticky
// stories: long enough for a few hundred requests per step at the
// generator's 50 rps and six scrapes of the cluster's Prometheus.
const strategyInterval = 6 * time.Second

// playStory plays a story of one strategy, prints its report as BENCH
// lines after prefix, and fails the test with each broken promise,
// showing the story's live view.
func playStory(t *testing.T, prefix string, play func(out io.Writer) (*scenario.StoryResult, error)) {
	t.Helper()
	var live strings.Builder
	res, err := play(&live)
	if err != nil {
		t.Fatalf("%v\nlive view:\n%s", err, live.String())
	}
	for _, line := range res.Report {
		fmt.Println("BENCH " + prefix + " " + line)
	}
	for _, f := range res.Failures {
		t.Error(f)
	}
	if t.Failed() {
		t.Logf("live view:\n%s", live.String())
	}
}

// TestBlueGreenWithMirroring: two blue/green analyses with a mirror
// through the VirtualService: a pre-rollout load test, iterations in
// which users reach stable only while the canary gets the mirrored
// copies, one switch and the promotion; then a bad version caught on the
// copies alone (scenario.RunBlueGreen).
func TestBlueGreenWithMirroring(t *testing.T) {
	playStory(t, "blue-green", func(out io.Writer) (*scenario.StoryResult, error) {
		return scenario.RunBlueGreen(t.Context(), env, "bluegreen-istio", strategyInterval, nil, false, out)
	})
}

// TestStickyCanary: a weighted analysis with canary.io/sticky through
// the VirtualService, with simulated clients keeping their cookies: no
// client the canary answered is answered by stable again before the
// analysis ends (scenario.RunSticky).
func TestStickyCanary(t *testing.T) {
	t.Parallel()
	playStory(t, "sticky", func(out io.Writer) (*scenario.StoryResult, error) {
		return scenario.RunSticky(t.Context(), env, "sticky-istio", strategyInterval, nil, out)
	})
}

// TestABTesting: reviews v1 → v2 as an A/B analysis through the generated
// VirtualService: while its iterations run, the requests with the
// insider header or the canary=always cookie reach the canary and no
// other request does, as counted at the traffic generator that follows
// istiod's routes; then v2 is promoted.
func TestABTesting(t *testing.T) {
	t.Parallel()
	playStory(t, "ab", func(out io.Writer) (*scenario.StoryResult, error) {
		res, err := scenario.RunAB(t.Context(), env, "ab-istio", strategyInterval, nil, out)
		if err != nil {
			return nil, err
		}
		return &res.StoryResult, nil
	})
}
