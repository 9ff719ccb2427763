package scenario

import (
	"context"
	"fmt"
	"io"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/canary-io/canary/contract"
	"github.com/canary-io/canary/e2e/cluster"
	"github.com/canary-io/canary/stepper"
	"github.com/canary-io/canary/trafficgen"
)

// The request profiles of the A/B story: an insider header, a cookie, and
// plain requests (the rest).
const (
	ProfileInsider = "insider"
	ProfileCookie  = "cookie"
)

// ABIterations is the story's canary.io/iterations.
const ABIterations = 2

// ABMatch is the story's canary.io/match: the insider header, or the
// canary=always cookie.
const ABMatch = `[{"headers": {"x-canary": {"exact": "insider"}}}, {"headers": {"cookie": {"regex": "^(.*?;)?(canary=always)(;.*)?$"}}}]`

// StoryResult is what a story of one strategy saw.
type StoryResult struct {
	// Report is one line per fact, for people.
	Report []string
	// Failures are the broken promises; empty when the story passed.
	Failures []string
}

func (r *StoryResult) fail(format string, args ...any) {
	r.Failures = append(r.Failures, fmt.Sprintf(format, args...))
}

// ABResult is what the A/B story saw.
type ABResult struct {
	StoryResult
	// Served counts, by profile ("" plain) and answering workload, the
	// mesh requests sent while the iterations ran, from a propagation
	// delay after the match route was recorded until the promotion.
	Served map[string]map[string]int64
}

// RunAB plays, in namespace ns, reviews v1 → v2 as an A/B analysis (canary.io/strategy:
// ab, ABIterations iterations of interval) on a running cluster whose controller is
// running: productpage's stand-in sends a fifth of its requests with the
// insider header, a fifth with the canary=always cookie, the rest plain.
// Only the matching requests may reach the canary while the iterations
// run; then v2 is promoted. annotations are more settings (the router).
func RunAB(ctx context.Context, c *cluster.Cluster, ns string, interval time.Duration, annotations map[string]string, out io.Writer) (*ABResult, error) {
	if out == nil {
		out = io.Discard
	}
	cs, err := kubernetes.NewForConfig(c.Admin)
	if err != nil {
		return nil, err
	}
	all := map[string]string{contract.KeyStrategy: string(contract.StrategyAB), contract.KeyIterations: fmt.Sprint(ABIterations), contract.KeyMatch: ABMatch}
	for k, v := range annotations {
		all[k] = v
	}
	s := &story{ns: ns, c: c, cs: cs, o: Options{Interval: interval, Out: out, Annotations: all}, res: &Result{}}
	if err := s.deploy(ctx); err != nil {
		return nil, err
	}
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	profiles := []trafficgen.Profile{
		{Name: ProfileInsider, Share: 0.2, Headers: map[string]string{"x-canary": "insider"}},
		{Name: ProfileCookie, Share: 0.2, Cookies: map[string]string{"canary": "always"}},
	}
	if s.traffic, err = StartTrafficWith(ctx, c, cs, ns, TrafficOptions{Profiles: profiles}); err != nil {
		return nil, err
	}
	res := &ABResult{}
	fail := res.fail
	fmt.Fprintln(out, "\nv1 → v2 (A/B): kubectl apply -f reviews-v2.yaml")
	start := time.Now()
	if err := s.kubectl(ctx, s.reviews("v2", ""), "apply", "-f", "-"); err != nil {
		return nil, err
	}
	routed, err := s.waitDeployment(ctx, 2*time.Minute, func(d *appsv1.Deployment) bool {
		return d.Annotations[contract.KeyWeight] == "100"
	})
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "%s: %s\n", time.Since(start).Round(100*time.Millisecond), routed.Annotations[contract.KeyMessage])
	// The route reaches the generator within the propagation delay (1 s
	// here); count from two seconds on.
	from := time.Now().Add(2 * time.Second)
	var to time.Time
	d, err := s.waitDeployment(ctx, 3*time.Minute+3*interval, func(d *appsv1.Deployment) bool {
		phase := contract.Phase(d.Annotations[contract.KeyPhase])
		if to.IsZero() && phase != contract.PhaseProgressing {
			to = time.Now().Add(-time.Second) // the poll's own lag
		}
		return phase == contract.PhaseSucceeded && rolledOut(d) || phase == contract.PhaseRolledBack
	})
	if err != nil {
		return nil, err
	}
	res.Report = append(res.Report, fmt.Sprintf("v1 → v2 (A/B, %d iterations of %s): %s after %s; %s", ABIterations, interval,
		d.Annotations[contract.KeyPhase], time.Since(start).Round(100*time.Millisecond), d.Annotations[contract.KeyMessage]))
	if d.Annotations[contract.KeyPhase] != string(contract.PhaseSucceeded) {
		fail("the A/B analysis ended %s: %s", d.Annotations[contract.KeyPhase], d.Annotations[contract.KeyMessage])
	}
	res.Served = s.traffic.Served(from, to)
	canary := stepper.CanaryName("reviews")
	for _, p := range []string{ProfileInsider, ProfileCookie, ""} {
		got := res.Served[p]
		name := p
		if name == "" {
			name = "plain"
		}
		res.Report = append(res.Report, fmt.Sprintf("%s requests during the iterations: %d to %s, %d to reviews, %d to none",
			name, got[canary], canary, got["reviews"], got[""]))
		switch {
		case p != "" && (got[canary] == 0 || got["reviews"] > 0):
			fail("%s requests matching canary.io/match: %d to the canary, %d to stable, want all to the canary", name, got[canary], got["reviews"])
		case p == "" && (got["reviews"] == 0 || got[canary] > 0):
			fail("plain requests: %d to the canary, %d to stable, want none to the canary", got[canary], got["reviews"])
		}
		if got[""] > 0 {
			fail("%d %s requests reached no pod", got[""], name)
		}
	}
	if n, _ := s.traffic.Unrouted(); n > 0 {
		fail("%d mesh requests met an empty destination", n)
	}
	return res, nil
}
