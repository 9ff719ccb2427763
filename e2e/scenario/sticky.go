package scenario

import (
	"context"
	"fmt"
	"io"
	"maps"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/canary-io/canary/contract"
	"github.com/canary-io/canary/e2e/cluster"
	"github.com/canary-io/canary/stepper"
)

// StickyCookie is the sticky story's canary.io/sticky.
const StickyCookie = "canary-session"

// StickyClients is the number of simulated clients of the sticky story.
const StickyClients = 40

// StickySteps is the sticky story's canary.io/steps.
const StickySteps = "30,60"

// RunSticky plays, in namespace ns, reviews v1 → v2 as a sticky canary
// (canary.io/sticky: StickyCookie, StickySteps of interval) on a
// running cluster whose controller is running, with StickyClients
// simulated clients, each keeping its cookies: once the canary answered
// a client, stable must not answer it again until the analysis ends.
// annotations are more settings (the router).
func RunSticky(ctx context.Context, c *cluster.Cluster, ns string, interval time.Duration, annotations map[string]string, out io.Writer) (*StoryResult, error) {
	if out == nil {
		out = io.Discard
	}
	cs, err := kubernetes.NewForConfig(c.Admin)
	if err != nil {
		return nil, err
	}
	all := map[string]string{contract.KeySticky: StickyCookie, contract.KeySteps: StickySteps}
	maps.Copy(all, annotations)
	s := &story{ns: ns, c: c, cs: cs, o: Options{Interval: interval, Out: out, Annotations: all}, res: &Result{}}
	if err := s.deploy(ctx); err != nil {
		return nil, err
	}
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	if s.traffic, err = StartTrafficWith(ctx, c, cs, ns, TrafficOptions{Clients: StickyClients}); err != nil {
		return nil, err
	}
	res := &StoryResult{}
	fail := res.fail
	title := fmt.Sprintf("v1 → v2 (sticky cookie %s, steps %s of %s, %d clients)", StickyCookie, StickySteps, interval, StickyClients)
	fmt.Fprintf(out, "\n%s: kubectl apply -f reviews-v2.yaml\n", title)
	start := time.Now()
	if err := s.kubectl(ctx, s.reviews("v2", ""), "apply", "-f", "-"); err != nil {
		return nil, err
	}
	// The analysis with traffic on the canary: from the first weight
	// until it ends.
	a, err := s.follow(ctx, start, 3*time.Minute+4*interval, func(d *appsv1.Deployment) bool {
		w := d.Annotations[contract.KeyWeight]
		return w != "0" && w != ""
	})
	if err != nil {
		return nil, err
	}
	d, from, to := a.d, a.from, a.to
	phase := contract.Phase(d.Annotations[contract.KeyPhase])
	res.Report = append(res.Report, a.report(title, start))
	if phase != contract.PhaseSucceeded {
		fail("%s ended %s: %s", title, phase, d.Annotations[contract.KeyMessage])
		return res, nil
	}
	if from.IsZero() || !to.After(from) {
		fail("%s: no step ran long enough to count (from %v to %v)", title, from, to)
		return res, nil
	}
	canary := stepper.CanaryName("reviews")
	onCanary, broken := s.traffic.StickyBreaks(from, to, canary, "reviews")
	users := s.traffic.Served(from, to)[""]
	res.Report = append(res.Report, fmt.Sprintf("%s, during the steps (%s): %d requests to %s, %d to reviews, %d to none; %d of %d clients reached the canary, %d of them were later served by stable",
		title, to.Sub(from).Round(100*time.Millisecond), users[canary], canary, users["reviews"], users[""], onCanary, StickyClients, len(broken)))
	switch {
	case onCanary == 0:
		fail("%s: no client reached the canary during the steps", title)
	case len(broken) > 0:
		fail("%s: %d clients served by the canary were later served by stable (clients %v)", title, len(broken), broken)
	}
	if users[""] > 0 {
		fail("%s: %d requests reached no pod", title, users[""])
	}
	stats := s.traffic.gen.Stats()
	res.Report = append(res.Report, fmt.Sprintf("mesh: %d requests, %d to an empty destination", stats.Mesh.Requests, stats.Mesh.EmptyDestination))
	if stats.Mesh.EmptyDestination > 0 {
		fail("%d mesh requests met an empty destination", stats.Mesh.EmptyDestination)
	}
	return res, nil
}
