package scenario

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/canary-io/canary/contract"
	"github.com/canary-io/canary/e2e/bookinfo"
	"github.com/canary-io/canary/e2e/cluster"
	"github.com/canary-io/canary/stepper"
	"github.com/canary-io/canary/trafficgen"
)

// BlueGreenIterations is the blue/green story's canary.io/iterations.
const BlueGreenIterations = 2

// BlueGreenMirror is the blue/green story's canary.io/mirror.
const BlueGreenMirror = 50

// RunBlueGreen plays, in namespace ns, two blue/green analyses
// (canary.io/strategy: blue-green, BlueGreenIterations iterations of
// interval, BlueGreenMirror % of stable's requests mirrored to the
// canary) on a running cluster whose controller is running:
//
//   - reviews v1 → v2: a pre-rollout load test of the canary (Flagger's
//     load tester, through the mesh), then iterations in which users are
//     served by stable only while the canary receives the mirrored copies
//     (counted at the traffic generator, which follows istiod's routes),
//     then one switch of all traffic to v2 and the promotion;
//   - v2 → v4, a version that fails 10 % of its requests (no load test):
//     caught on the mirrored copies and rolled back before any user
//     request reached it.
//
// annotations are more settings (the router). brief plays the first
// analysis only.
func RunBlueGreen(ctx context.Context, c *cluster.Cluster, ns string, interval time.Duration, annotations map[string]string, brief bool, out io.Writer) (*StoryResult, error) {
	if out == nil {
		out = io.Discard
	}
	cs, err := kubernetes.NewForConfig(c.Admin)
	if err != nil {
		return nil, err
	}
	all := map[string]string{contract.KeyStrategy: string(contract.StrategyBlueGreen),
		contract.KeyIterations: fmt.Sprint(BlueGreenIterations), contract.KeyMirror: fmt.Sprint(BlueGreenMirror)}
	maps.Copy(all, annotations)
	s := &story{ns: ns, c: c, cs: cs, o: Options{Interval: interval, Out: out, Annotations: all}, res: &Result{}}
	if err := s.deploy(ctx); err != nil {
		return nil, err
	}
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	bad := []trafficgen.BadImage{{Image: bookinfo.Image(badVersion), ErrorShare: 0.10}}
	if s.traffic, err = StartTraffic(ctx, c, cs, ns, bad); err != nil {
		return nil, err
	}
	h, err := s.startHooks(ctx)
	if err != nil {
		return nil, err
	}
	res := &StoryResult{}
	fail := res.fail
	canary := stepper.CanaryName("reviews")

	type run struct {
		from, to string
		webhooks string
		want     contract.Phase
	}
	runs := []run{{"v1", "v2", h.preRolloutLoadTest(), contract.PhaseSucceeded}, {"v2", badVersion, "", contract.PhaseRolledBack}}
	if brief {
		runs = runs[:1]
	}
	for _, run := range runs {
		title := fmt.Sprintf("%s → %s (blue/green, %d iterations of %s, %d%% mirrored)", run.from, run.to, BlueGreenIterations, interval, BlueGreenMirror)
		fmt.Fprintf(out, "\n%s: kubectl apply -f reviews-%s.yaml\n", title, run.to)
		start := time.Now()
		if err := s.kubectl(ctx, s.reviews(run.to, run.webhooks), "apply", "-f", "-"); err != nil {
			return nil, err
		}
		// The iterations: from the first one's start until the analysis
		// ends or switches.
		a, err := s.follow(ctx, start, 3*time.Minute+4*interval, func(d *appsv1.Deployment) bool {
			msg := d.Annotations[contract.KeyMessage]
			return strings.Contains(msg, "iteration 1/") && strings.Contains(msg, "running")
		})
		if err != nil {
			return nil, err
		}
		d, weights, from, to := a.d, a.weights, a.from, a.to
		phase := contract.Phase(d.Annotations[contract.KeyPhase])
		res.Report = append(res.Report, a.report(title, start))
		if phase != run.want {
			fail("%s ended %s, want %s: %s", title, phase, run.want, d.Annotations[contract.KeyMessage])
			continue
		}
		if from.IsZero() || !to.After(from) {
			fail("%s: no iteration ran long enough to count (from %v to %v)", title, from, to)
			continue
		}
		users := s.traffic.Served(from, to)[""]
		copies, failed := s.traffic.Mirrored(from, to)
		share := 100 * float64(copies[canary]) / float64(max(users["reviews"], 1))
		res.Report = append(res.Report, fmt.Sprintf("%s, during the iterations (%s): users served by reviews %d, by %s %d, by none %d; copies mirrored to %s: %d (%.0f%% of stable's requests), %d of them failed",
			title, to.Sub(from).Round(100*time.Millisecond), users["reviews"], canary, users[canary], users[""], canary, copies[canary], share, failed[canary]))
		switch {
		case users[canary] > 0 || users["reviews"] == 0:
			fail("%s: users served by %s %d times and by reviews %d times during the iterations, want stable only", title, canary, users[canary], users["reviews"])
		case share < BlueGreenMirror-15 || share > BlueGreenMirror+15:
			fail("%s: %d copies mirrored to %s for %d requests to stable (%.0f%%), want about %d%%", title, copies[canary], canary, users["reviews"], share, BlueGreenMirror)
		case copies[""] > 0:
			fail("%s: %d mirrored copies reached no pod", title, copies[""])
		}
		switch run.want {
		case contract.PhaseSucceeded:
			if !slices.Equal(weights, []string{"0", "100", "0"}) {
				fail("%s: canary.io/weight went through %v, want one switch: 0, 100, 0", title, weights)
			}
			loads := h.runs()
			if len(loads) == 0 || loads[0].service != canary || loads[0].weight != "0" || loads[0].failed > 0 || loads[0].requests == 0 {
				fail("%s: the pre-rollout load test did not run on the canary before the iterations: %+v", title, loads)
			} else {
				res.Report = append(res.Report, fmt.Sprintf("%s: the pre-rollout load test sent %d requests to %s at weight %s, %d failed",
					title, loads[0].requests, loads[0].service, loads[0].weight, loads[0].failed))
			}
		case contract.PhaseRolledBack:
			if slices.Contains(weights, "100") {
				fail("%s: the bad version took all traffic (weights %v)", title, weights)
			}
			if failed[canary] == 0 {
				fail("%s: rolled back with no failed mirrored copy at %s: not caught on the mirrored traffic", title, canary)
			}
		}
		if err := s.waitGone(ctx); err != nil {
			return nil, err
		}
	}
	if n, _ := s.traffic.Unrouted(); n > 0 {
		fail("%d mesh requests met an empty destination", n)
	}
	stats := s.traffic.gen.Stats()
	res.Report = append(res.Report, fmt.Sprintf("mesh: %d requests, %d to an empty destination", stats.Mesh.Requests, stats.Mesh.EmptyDestination))
	if stats.Mesh.EmptyDestination > 0 {
		fail("%d mesh requests met an empty destination", stats.Mesh.EmptyDestination)
	}
	return res, nil
}
