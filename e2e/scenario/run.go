package scenario

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/canary-io/canary/contract"
	"github.com/canary-io/canary/e2e/bookinfo"
	"github.com/canary-io/canary/e2e/cluster"
	"github.com/canary-io/canary/stepper"
	"github.com/canary-io/canary/trafficgen"
)

// Namespace is where the scenario deploys bookinfo.
const Namespace = "bookinfo"

// badVersion is the version of reviews that answers 10 % of requests with
// 5xx, slowly.
const badVersion = "v4"

// slowVersion is the version of reviews that answers every request well
// but slowly (600-900ms, over canary.io/max-latency's 500ms), and
// lastVersion the healthy version the story ends with.
const (
	slowVersion = "v5"
	lastVersion = "v6"
)

// Options configure a run.
type Options struct {
	// Interval is each step's length (canary.io/interval).
	Interval time.Duration
	// Out receives the live view, one line per sample; nil for none.
	Out io.Writer
	// Notifications receives what the controller tells the team's chat
	// (reviews names scenario.ChatProvider in canary.io/notify); the
	// controller runs with its Flag. Required.
	Notifications *Receiver
	// ThenScrape, when set, is the scrape interval Prometheus is reloaded
	// with before the last two rollouts (the slow v5, then v6): the
	// controller must discover it and the next analysis read windows
	// derived from it. Zero keeps the cluster's.
	ThenScrape time.Duration
	// Annotations are more settings on reviews, e.g. canary.io/router:
	// gateway-api to play the story through an HTTPRoute.
	Annotations map[string]string
	// Brief plays v1 → v2 (promoted) and the bad v4 (rolled back) only.
	Brief bool
	// Namespace is where the story plays (default Namespace); the full
	// story's hooks need Namespace.
	Namespace string
}

// Result is what a run saw.
type Result struct {
	// Rollouts are the timelines of v1→v2, v2→v3 and v3→v4.
	Rollouts []Rollout
	// Report is one line per rollout and per check, for people.
	Report []string
	// Failures are the broken promises; empty when the scenario passed.
	Failures []string
	// BadCanaryFailed is how many failed requests the bad canary served
	// before the rollback.
	BadCanaryFailed int64
	// EmptyDestination counts mesh requests routed to a destination
	// without a healthy endpoint over the whole run.
	EmptyDestination int64
}

func (r *Result) fail(format string, args ...any) {
	r.Failures = append(r.Failures, fmt.Sprintf(format, args...))
}

// Run plays the story on a running cluster whose controller is running:
// bookinfo deployed, traffic from productpage's stand-in sidecar, reviews
// canaried v1 → v2 → v3 (each promoted; v3 with Flagger-format hooks
// served by Flagger's load tester: a pre-rollout load test of the canary
// and a confirm-promotion gate the story opens once the promotion waits
// at it), then a bad v4 rolled back, v3
// applied again (the hold ends, nothing rolls) and v4 applied again (held
// without a new analysis). An error means the scenario could not run;
// broken promises are in Result.Failures.
func Run(ctx context.Context, c *cluster.Cluster, o Options) (*Result, error) {
	if o.Out == nil {
		o.Out = io.Discard
	}
	cs, err := kubernetes.NewForConfig(c.Admin)
	if err != nil {
		return nil, err
	}
	s := &story{ns: cmp.Or(o.Namespace, Namespace), c: c, cs: cs, o: o, res: &Result{}}
	if err := s.deploy(ctx); err != nil {
		return nil, err
	}
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	bad := []trafficgen.BadImage{
		{Image: bookinfo.Image(badVersion), ErrorShare: 0.10},
		{Image: bookinfo.Image(slowVersion), Latency: trafficgen.Latency{Min: 600 * time.Millisecond, Max: 900 * time.Millisecond}},
	}
	if s.traffic, err = StartTraffic(ctx, c, cs, s.ns, bad); err != nil {
		return nil, err
	}
	if s.prom, err = stepper.NewPrometheus(c.PrometheusURL); err != nil {
		return nil, err
	}
	h, err := s.startHooks(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.rollout(ctx, "v1", "v2", contract.PhaseSucceeded, nil); err != nil {
		return nil, err
	}
	good := "v2"
	if !o.Brief {
		if err := s.rollout(ctx, "v2", "v3", contract.PhaseSucceeded, h); err != nil {
			return nil, err
		}
		good = "v3"
	}
	before := s.traffic.failedBy(stepper.CanaryName("reviews"))
	if err := s.rollout(ctx, good, badVersion, contract.PhaseRolledBack, nil); err != nil {
		return nil, err
	}
	s.res.BadCanaryFailed = s.traffic.failedBy(stepper.CanaryName("reviews")) - before
	s.res.Report = append(s.res.Report, fmt.Sprintf("the bad canary served %d failed requests before the rollback", s.res.BadCanaryFailed))
	if !o.Brief {
		if err := s.afterRollback(ctx); err != nil {
			return nil, err
		}
		if err := s.slowAndLast(ctx); err != nil {
			return nil, err
		}
	}
	stats := s.traffic.gen.Stats()
	s.res.EmptyDestination = stats.Mesh.EmptyDestination
	if stats.Mesh.EmptyDestination > 0 {
		s.res.fail("%d mesh requests met an empty destination", stats.Mesh.EmptyDestination)
	}
	s.res.Report = append(s.res.Report, fmt.Sprintf("mesh: %d requests, %d to an empty destination, %d to an unwarmed cluster; bypass: %d requests",
		stats.Mesh.Requests, stats.Mesh.EmptyDestination, stats.Mesh.NoCluster, stats.Bypass.Requests))
	return s.res, nil
}

// story is one run's state.
type story struct {
	ns      string // the namespace the story plays in
	c       *cluster.Cluster
	cs      kubernetes.Interface
	o       Options
	res     *Result
	traffic *Traffic
	prom    stepper.Querier
	// lastOutput is what the last kubectl printed (the admission
	// warnings of an apply).
	lastOutput string
	// lastApply is what the last rollout's apply printed.
	lastApply string
}

func (s *story) kubectl(ctx context.Context, stdin string, args ...string) error {
	cmd := s.c.Kubectl(ctx, append([]string{"-n", s.ns}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	s.lastOutput = string(out)
	if err != nil {
		return fmt.Errorf("kubectl %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// reviews is the reviews manifest at version, with the story's settings
// and webhooks (empty for none).
func (s *story) reviews(version, webhooks string) string {
	return bookinfo.ReviewsFrom(bookinfo.ReviewsOptions{Version: version, Interval: s.o.Interval, Webhooks: webhooks, Annotations: s.o.Annotations})
}

// window is the window the checks read now: the step interval, or four
// scrapes of the cluster's Prometheus when that is longer.
func (s *story) window() time.Duration {
	return contract.Window(s.o.Interval, 0, s.c.ScrapeInterval())
}

// deploy creates the namespace and bookinfo with reviews v1, and waits
// until reviews is rolled out and Idle and productpage runs.
func (s *story) deploy(ctx context.Context) error {
	_, err := s.cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name: s.ns, Labels: map[string]string{"istio-injection": "enabled"},
	}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace %s: %w", s.ns, err)
	}
	if err := s.kubectl(ctx, bookinfo.App, "apply", "-f", "-"); err != nil {
		return err
	}
	if err := s.kubectl(ctx, s.reviews("v1", ""), "apply", "-f", "-"); err != nil {
		return err
	}
	fmt.Fprintln(s.o.Out, "bookinfo deployed; reviews v1 rolling out")
	_, err = s.waitDeployment(ctx, 2*time.Minute, func(d *appsv1.Deployment) bool {
		return d.Annotations[contract.KeyPhase] == string(contract.PhaseIdle) && rolledOut(d)
	})
	return err
}

// rollout applies reviews at version to and follows it to want, sampling
// the timeline and checking the promises on the way. With h, the
// Deployment carries h's hooks: the story checks that the pre-rollout
// load test ran before any traffic moved, and opens the gate once the
// promotion has waited at it for gateHeld.
func (s *story) rollout(ctx context.Context, from, to string, want contract.Phase, h *hooks) error {
	title := fmt.Sprintf("%s → %s", from, to)
	switch to {
	case badVersion:
		title += " (bad)"
	case slowVersion:
		title += " (slow)"
	}
	fmt.Fprintf(s.o.Out, "\n%s: kubectl apply -f reviews-%s.yaml\n", title, to)
	start := time.Now()
	manifest := s.reviews(to, "")
	if h != nil {
		manifest = s.reviews(to, h.webhooks())
	}
	if err := s.kubectl(ctx, manifest, "apply", "-f", "-"); err != nil {
		return err
	}
	s.lastApply = s.lastOutput
	r := Rollout{Title: title}
	var gateSeen, gateOpened time.Time
	var weights []string
	var d *appsv1.Deployment
	deadline := time.Now().Add(4 * time.Minute)
	for {
		var err error
		if d, err = s.cs.AppsV1().Deployments(s.ns).Get(ctx, "reviews", metav1.GetOptions{}); err != nil {
			return err
		}
		sample := s.sample(ctx, d, time.Since(start))
		r.Samples = append(r.Samples, sample)
		if w := d.Annotations[contract.KeyWeight]; w != "0" && w != "" && (len(weights) == 0 || weights[len(weights)-1] != w) {
			weights = append(weights, w)
		}
		fmt.Fprintln(s.o.Out, liveLine(to, d, sample))
		phase := contract.Phase(d.Annotations[contract.KeyPhase])
		if h != nil && gateOpened.IsZero() && strings.Contains(d.Annotations[contract.KeyMessage], "waiting for the confirm-promotion gate") {
			switch {
			case gateSeen.IsZero():
				gateSeen = time.Now()
				fmt.Fprintf(s.o.Out, "the promotion waits at the confirm-promotion gate; opening it in %s\n", gateHeld)
			case time.Since(gateSeen) >= gateHeld:
				if phase != contract.PhaseProgressing || d.Annotations[contract.KeyStep] != "3/3" || !d.Spec.Paused {
					s.res.fail("%s: with the gate closed, phase %s at step %s, paused %v; want Progressing at 3/3, held",
						title, phase, d.Annotations[contract.KeyStep], d.Spec.Paused)
				}
				if err := h.openGate(ctx); err != nil {
					return err
				}
				gateOpened = time.Now()
				fmt.Fprintln(s.o.Out, "gate opened: POST /gate/open to Flagger's load tester")
			}
		}
		if phase == want && (want != contract.PhaseSucceeded || rolledOut(d)) {
			break
		}
		if phase == contract.PhaseRolledBack && want != contract.PhaseRolledBack {
			s.res.fail("%s rolled back: %s", title, d.Annotations[contract.KeyMessage])
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not %s after 4 minutes (phase %s: %s)", title, want, phase, d.Annotations[contract.KeyMessage])
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	took := time.Since(start)
	steps := 3 * s.o.Interval
	r.Outcome = fmt.Sprintf("%s in %s (steps %s)", d.Annotations[contract.KeyPhase], took.Round(time.Second), steps)
	s.res.Rollouts = append(s.res.Rollouts, r)
	s.res.Report = append(s.res.Report, fmt.Sprintf("%s: %s after %s (the steps alone: %s); weights %s; %s",
		title, d.Annotations[contract.KeyPhase], took.Round(100*time.Millisecond), steps, strings.Join(weights, ", "), d.Annotations[contract.KeyMessage]))
	s.checkRouted(title, start, weights)
	s.checkBypass(r, start, to)
	if h != nil {
		s.checkHooks(title, h, gateSeen, gateOpened)
	}
	if want == contract.PhaseSucceeded {
		s.checkWindows(ctx, title, start)
		if strings.Join(weights, ",") != "20,40,60" {
			s.res.fail("%s: weights %v, want 20, 40, 60 in order", title, weights)
		}
		if img := d.Spec.Template.Spec.Containers[0].Image; d.Spec.Paused || img != bookinfo.Image(to) {
			s.res.fail("%s: after promotion paused %v, image %s", title, d.Spec.Paused, img)
		}
		if _, err := s.cs.AppsV1().Deployments(s.ns).Get(ctx, stepper.CanaryName("reviews"), metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			if err := s.waitGone(ctx); err != nil {
				s.res.fail("%s: the canary objects remain after promotion", title)
			}
		}
	}
	return nil
}

// afterRollback checks the rolled-back state, then applies v3 again (the
// hold ends, nothing rolls) and v4 again (held without a new analysis).
func (s *story) afterRollback(ctx context.Context) error {
	d, err := s.cs.AppsV1().Deployments(s.ns).Get(ctx, "reviews", metav1.GetOptions{})
	if err != nil {
		return err
	}
	msg := d.Annotations[contract.KeyMessage]
	// The continuous comparison catches it (within a step), long before
	// the threshold checks could fail four times.
	if !strings.Contains(msg, "the canary is worse than stable") || !strings.Contains(msg, "error rate") {
		s.res.fail("the rollback's message %q is not the continuous comparison's error-rate test", msg)
	}
	s.checkCompared(msg)
	s.checkNotified(ctx, d)
	if d.Annotations[contract.KeyRejectedRevision] == "" {
		s.res.fail("canary.io/rejected-revision is not set after the rollback")
	}
	if err := s.allPodsRun(ctx, "v3"); err != nil {
		s.res.fail("after the rollback: %v", err)
	}
	status := s.c.Kubectl(ctx, "-n", s.ns, "rollout", "status", "deployment/reviews", "--timeout=30s")
	if out, err := status.CombinedOutput(); err == nil {
		s.res.fail("kubectl rollout status succeeded after the rollback:\n%s", out)
	}

	fmt.Fprintln(s.o.Out, "\nv3 applied again: the hold ends")
	if err := s.kubectl(ctx, s.reviews("v3", ""), "apply", "-f", "-"); err != nil {
		return err
	}
	d, err = s.waitDeployment(ctx, time.Minute, func(d *appsv1.Deployment) bool {
		return d.Annotations[contract.KeyPhase] == string(contract.PhaseIdle) && !d.Spec.Paused
	})
	if err != nil {
		return err
	}
	time.Sleep(2 * time.Second)
	if err := s.allPodsRun(ctx, "v3"); err != nil {
		s.res.fail("after v3 was applied again: %v", err)
	}
	s.res.Report = append(s.res.Report, "v3 applied again: "+d.Annotations[contract.KeyMessage])

	// The rolled-back canary goes after the removal delay; then applying
	// v4 again must not bring one back.
	if err := s.waitGone(ctx); err != nil {
		s.res.fail("after the rollback and v3 applied again: %v", err)
	}
	fmt.Fprintln(s.o.Out, "v4 applied again: held without a new analysis")
	if err := s.kubectl(ctx, s.reviews(badVersion, ""), "apply", "-f", "-"); err != nil {
		return err
	}
	d, err = s.waitDeployment(ctx, time.Minute, func(d *appsv1.Deployment) bool {
		return d.Annotations[contract.KeyPhase] == string(contract.PhaseRolledBack) && d.Spec.Paused
	})
	if err != nil {
		return err
	}
	time.Sleep(2 * time.Second)
	if _, err := s.cs.AppsV1().Deployments(s.ns).Get(ctx, stepper.CanaryName("reviews"), metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		s.res.fail("v4 applied again started a canary (err %v)", err)
	}
	s.res.Report = append(s.res.Report, "v4 applied again: "+d.Annotations[contract.KeyMessage])
	return nil
}

// checkNotified checks that the team's chat (a warn provider) was told of
// the rollback of d's revision once, with its reason and numbers, and of
// no info transition.
func (s *story) checkNotified(ctx context.Context, d *appsv1.Deployment) {
	rev := d.Annotations[contract.KeyRevision]
	var rollbacks []string
	deadline := time.Now().Add(15 * time.Second)
	for {
		rollbacks = nil
		for _, n := range s.o.Notifications.Received() {
			if n.Severity != "warn" {
				s.res.fail("the warn-only provider was told of an info notification: %+v", n)
			}
			if n.Namespace == s.ns && n.Deployment == "reviews" && n.Revision == rev && n.Phase == string(contract.PhaseRolledBack) {
				rollbacks = append(rollbacks, n.Reason+": "+n.Message)
			}
		}
		if len(rollbacks) > 0 || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if len(rollbacks) != 1 || !strings.HasPrefix(rollbacks[0], "CanaryWorse: rolled back: the canary is worse than stable") {
		s.res.fail("the rollback of %s sent %d notifications to the team's chat, want one (CanaryWorse): %q", rev, len(rollbacks), rollbacks)
		return
	}
	s.res.Report = append(s.res.Report, "notification (warn) to "+ChatProvider+": "+rollbacks[0])
}

// slowAndLast reloads Prometheus with Options.ThenScrape, applies the
// slow v5 (every request well answered, but over canary.io/max-latency),
// which the continuous comparison's slow-request test must roll back
// before the first step's checks, then the healthy v6, whose checks must
// read windows derived from the new scrape interval.
func (s *story) slowAndLast(ctx context.Context) error {
	if d := s.o.ThenScrape; d > 0 && d != s.c.ScrapeInterval() {
		fmt.Fprintf(s.o.Out, "\nPrometheus reloaded: it scrapes every %s now (was %s)\n", d, s.c.ScrapeInterval())
		if err := s.c.SetScrapeInterval(ctx, d); err != nil {
			return err
		}
		// The controller asks Prometheus again within its refresh
		// (--scrape-interval-refresh); the apply's warning shows when.
		time.Sleep(3 * time.Second)
	}
	if err := s.rollout(ctx, "v3", slowVersion, contract.PhaseRolledBack, nil); err != nil {
		return err
	}
	d, err := s.cs.AppsV1().Deployments(s.ns).Get(ctx, "reviews", metav1.GetOptions{})
	if err != nil {
		return err
	}
	msg := d.Annotations[contract.KeyMessage]
	if !strings.Contains(msg, "the canary is worse than stable") || !strings.Contains(msg, "slow-request rate") {
		s.res.fail("v3 → v5 (slow): rolled back with %q; want the continuous comparison's slow-request test", msg)
	}
	s.checkCompared(msg)
	// Two comparison periods (10 s) of traffic at most: the first step's
	// checks (10 s after its weight took effect) never ran.
	if fc := d.Annotations[contract.KeyFailedChecks]; fc != "0/3" {
		s.res.fail("v3 → v5 (slow): %s failed checks at the rollback; the comparison should have decided before the first step's checks", fc)
	}
	var first, ended time.Duration = -1, -1
	for _, sample := range s.res.Rollouts[len(s.res.Rollouts)-1].Samples {
		if first < 0 && sample.Weight > 0 {
			first = sample.At
		}
		if ended < 0 && sample.Phase == string(contract.PhaseRolledBack) {
			ended = sample.At
		}
	}
	s.res.Report = append(s.res.Report, fmt.Sprintf("v3 → v5 (slow, no errors): rolled back by the slow-request comparison %s after the first canary weight was seen (samples every 500ms)", (ended-first).Round(100*time.Millisecond)))
	return s.rollout(ctx, slowVersion, lastVersion, contract.PhaseSucceeded, nil)
}

// checkWindows: every step of a promoted rollout passed on data, and its
// Event (StepPassed, or Promoting for the last step without a gate) names
// the window the checks read: at most four scrapes or the step interval,
// whichever is longer, never reaching back before the analysis started,
// and at least two scrapes (else rate() has no data). The apply's
// admission warning says so when the interval is shorter than two
// scrapes.
func (s *story) checkWindows(ctx context.Context, title string, start time.Time) {
	rule, scrape := s.window(), s.c.ScrapeInterval()
	events, err := s.cs.EventsV1().Events(s.ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		s.res.fail("%s: list events: %v", title, err)
		return
	}
	passed := map[string]bool{}
	var windows []string
	for _, e := range events.Items {
		at := e.EventTime.Time
		if at.IsZero() {
			at = e.CreationTimestamp.Time
		}
		if e.Regarding.Name != "reviews" || (e.Reason != "StepPassed" && e.Reason != "Promoting") || at.Before(start.Add(-time.Second)) {
			continue
		}
		m := stepPassedRe.FindStringSubmatch(e.Note)
		if m == nil {
			continue
		}
		passed[m[1]] = true
		window, err := time.ParseDuration(m[2])
		// Two samples need a window longer than one scrape interval.
		if strings.Contains(e.Note, "no data") || err != nil || window > rule || window <= scrape {
			s.res.fail("%s: %q; want values read over a window longer than %s, at most %s", title, e.Note, scrape, rule)
		}
		windows = append(windows, m[1]+": "+m[2])
	}
	if len(passed) != 3 {
		s.res.fail("%s: steps %v passed on data, want 1, 2 and 3", title, passed)
	}
	warned := strings.Contains(s.lastApply, "is shorter than two scrapes of Prometheus")
	if want := s.o.Interval < 2*scrape; warned != want {
		s.res.fail("%s: the apply warned of a short interval: %v, want %v (interval %s, scrapes every %s); kubectl printed:\n%s",
			title, warned, want, s.o.Interval, scrape, s.lastApply)
	}
	slices.Sort(windows)
	s.res.Report = append(s.res.Report, fmt.Sprintf("%s: the 3 steps passed on data read over windows %s (Prometheus scrapes every %s; at most %s)",
		title, strings.Join(windows, ", "), scrape, contract.PromDuration(rule)))
}

// stepPassedRe finds a passed step and the window its success rate read:
// "step 2/3 passed: success rate 100.0% over 1m (...".
var stepPassedRe = regexp.MustCompile(`step (\d)/3 passed: success rate [0-9.]+% over ([0-9hms]+) `)

// comparedRe finds the comparison's count in a message: "after 82 canary
// requests in 10 s".
var comparedRe = regexp.MustCompile(`after (\d+) canary requests in (\d+) s`)

// checkCompared: the comparison counted no more canary requests than the
// whole mesh sent in that time (a series counted from zero that was alive
// before the analysis, say, would add its whole history).
func (s *story) checkCompared(msg string) {
	m := comparedRe.FindStringSubmatch(msg)
	if m == nil {
		return
	}
	n, _ := strconv.Atoi(m[1]) // digits, as the pattern matched
	secs, _ := strconv.Atoi(m[2])
	if limit := meshRate * (secs + 1); n > limit {
		s.res.fail("the comparison counted %d canary requests in %d s, more than the %d the whole mesh sent: %q", n, secs, limit, msg)
	}
}

// gateHeld is how long the story leaves the promotion waiting at the
// closed gate before it opens it.
const gateHeld = 5 * time.Second

// checkHooks: the pre-rollout load test ran once the canary was ready and
// before any traffic moved, sent its requests through the mesh to the
// canary without a failure, and the promotion waited at the gate until
// the story opened it.
func (s *story) checkHooks(title string, h *hooks, gateSeen, gateOpened time.Time) {
	runs := h.runs()
	if len(runs) == 0 {
		s.res.fail("%s: the pre-rollout load test never ran", title)
	}
	for _, run := range runs {
		if run.weight != "0" || run.service != "reviews-canary" || run.failed > 0 || run.requests != 100 {
			s.res.fail("%s: pre-rollout load test at weight %s: %d requests to %s, %d failed; want 100 to reviews-canary at weight 0, none failed",
				title, run.weight, run.requests, run.service, run.failed)
		}
	}
	if gateOpened.IsZero() {
		s.res.fail("%s: the promotion never waited at the confirm-promotion gate", title)
		return
	}
	s.res.Report = append(s.res.Report, fmt.Sprintf("%s hooks (Flagger's load tester): %d pre-rollout load test(s) of 100 requests to reviews-canary at weight 0, none failed; the promotion waited at the gate %s until it was opened",
		title, len(runs), gateOpened.Sub(gateSeen).Round(100*time.Millisecond)))
}

// checkRouted checks that every weight the Deployment recorded reached
// the routes istiod pushed to the generator (the xDS configuration, not
// only the route object), and reports the weights routed.
func (s *story) checkRouted(title string, start time.Time, recorded []string) {
	routed := s.traffic.RoutedWeights(start)
	for deadline := time.Now().Add(3 * time.Second); (len(routed) == 0 || routed[len(routed)-1] != 0) && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond) // the last change's propagation
		routed = s.traffic.RoutedWeights(start)
	}
	seen := map[string]bool{}
	var shown []string
	for _, w := range routed {
		seen[fmt.Sprint(w)] = true
		shown = append(shown, fmt.Sprint(w))
	}
	s.res.Report = append(s.res.Report, fmt.Sprintf("%s: the canary's weights in istiod's routes to the generator: %s", title, strings.Join(shown, ", ")))
	for _, w := range recorded {
		if !seen[w] {
			s.res.fail("%s: weight %s was recorded but never reached the routes istiod pushed (%s)", title, w, strings.Join(shown, ", "))
		}
	}
	if len(routed) == 0 || routed[len(routed)-1] != 0 {
		s.res.fail("%s: istiod's routes still send %v%% to the canary after the analysis ended", title, shown)
	}
}

// checkBypass: during an analysis (phase Progressing or Paused before and
// after the request), traffic that bypasses the mesh reaches only stable
// pods.
func (s *story) checkBypass(r Rollout, start time.Time, newVersion string) {
	inFlight := func(p string) bool { return p == "Progressing" || p == "Paused" }
	bad := 0
	for _, req := range s.traffic.bypassSince(start) {
		at := req.Time.Sub(start)
		for i := 0; i+1 < len(r.Samples); i++ {
			a, b := r.Samples[i], r.Samples[i+1]
			if a.At <= at && at < b.At && inFlight(a.Phase) && inFlight(b.Phase) {
				if req.Pod.Workload != "reviews" || req.Pod.Image == bookinfo.Image(newVersion) {
					bad++
				}
			}
		}
	}
	if bad > 0 {
		s.res.fail("%s: %d requests that bypassed the mesh reached a canary pod during the analysis", r.Title, bad)
	}
}

// sample reads the Deployment's state and each arm's success rate and p99
// over the last interval from Prometheus.
func (s *story) sample(ctx context.Context, d *appsv1.Deployment, at time.Duration) Sample {
	w := math.NaN()
	if v, err := parseFloat(d.Annotations[contract.KeyWeight]); err == nil {
		w = v
	}
	out := Sample{At: at, Weight: w, Phase: d.Annotations[contract.KeyPhase]}
	window := contract.PromDuration(s.window())
	query := func(q string) float64 {
		qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		v, ok, err := s.prom.Query(qctx, q, time.Now())
		if err != nil || !ok {
			return math.NaN()
		}
		return v
	}
	success := `sum(rate(istio_requests_total{reporter="destination",destination_workload_namespace="%[3]s",destination_workload="%[1]s",response_code!~"5.*"}[%[2]s])) / sum(rate(istio_requests_total{reporter="destination",destination_workload_namespace="%[3]s",destination_workload="%[1]s"}[%[2]s])) * 100`
	p99 := `histogram_quantile(0.99, sum(rate(istio_request_duration_milliseconds_bucket{reporter="destination",destination_workload_namespace="%[3]s",destination_workload="%[1]s"}[%[2]s])) by (le))`
	out.CanarySuccess = query(fmt.Sprintf(success, "reviews-canary", window, s.ns))
	out.StableSuccess = query(fmt.Sprintf(success, "reviews", window, s.ns))
	out.CanaryP99 = query(fmt.Sprintf(p99, "reviews-canary", window, s.ns))
	out.StableP99 = query(fmt.Sprintf(p99, "reviews", window, s.ns))
	return out
}

func (s *story) waitDeployment(ctx context.Context, timeout time.Duration, cond func(*appsv1.Deployment) bool) (*appsv1.Deployment, error) {
	deadline := time.Now().Add(timeout)
	for {
		d, err := s.cs.AppsV1().Deployments(s.ns).Get(ctx, "reviews", metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		if cond(d) {
			return d, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("reviews: waited %s; phase %s: %s", timeout, d.Annotations[contract.KeyPhase], d.Annotations[contract.KeyMessage])
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// followed is what following one analysis saw.
type followed struct {
	// d is the Deployment once the analysis ended: Succeeded and rolled
	// out, or RolledBack.
	d *appsv1.Deployment
	// weights are the values canary.io/weight took, each change once.
	weights []string
	// from and to bound the requests to count: from the propagation
	// delay (1 s here, and a second of margin) after the analysis first
	// met counting, until it left Progressing (less the poll's lag).
	from, to time.Time
}

// report is the analysis' outcome in one line of the story's report:
// its phase, its time since start, the weights it went through and its
// last message.
func (a *followed) report(title string, start time.Time) string {
	return fmt.Sprintf("%s: %s after %s; weights %s; %s", title, a.d.Annotations[contract.KeyPhase],
		time.Since(start).Round(100*time.Millisecond), strings.Join(a.weights, ", "), a.d.Annotations[contract.KeyMessage])
}

// follow watches reviews from start until its analysis ends (within
// timeout), printing each change of weight, and bounds the requests to
// count (see followed).
func (s *story) follow(ctx context.Context, start time.Time, timeout time.Duration, counting func(*appsv1.Deployment) bool) (*followed, error) {
	a := &followed{}
	d, err := s.waitDeployment(ctx, timeout, func(d *appsv1.Deployment) bool {
		phase := contract.Phase(d.Annotations[contract.KeyPhase])
		if w := d.Annotations[contract.KeyWeight]; len(a.weights) == 0 || a.weights[len(a.weights)-1] != w {
			a.weights = append(a.weights, w)
			fmt.Fprintf(s.o.Out, "%s: phase %s, weight %s: %s\n", time.Since(start).Round(100*time.Millisecond), phase, w, d.Annotations[contract.KeyMessage])
		}
		if a.from.IsZero() && counting(d) {
			a.from = time.Now().Add(2 * time.Second)
		}
		if !a.from.IsZero() && a.to.IsZero() && phase != contract.PhaseProgressing {
			a.to = time.Now().Add(-time.Second) // the poll's own lag
		}
		return phase == contract.PhaseSucceeded && rolledOut(d) || phase == contract.PhaseRolledBack
	})
	a.d = d
	return a, err
}

func (s *story) waitGone(ctx context.Context) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := s.cs.AppsV1().Deployments(s.ns).Get(ctx, stepper.CanaryName("reviews"), metav1.GetOptions{}); apierrors.IsNotFound(err) {
			return nil
		}
		time.Sleep(250 * time.Millisecond)
	}
	return fmt.Errorf("reviews-canary still exists")
}

// allPodsRun checks that every live pod of reviews runs a version.
func (s *story) allPodsRun(ctx context.Context, version string) error {
	pods, err := s.cs.CoreV1().Pods(s.ns).List(ctx, metav1.ListOptions{LabelSelector: "app=reviews,!" + stepper.LabelCanary})
	if err != nil {
		return err
	}
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil && p.Spec.Containers[0].Image != bookinfo.Image(version) {
			return fmt.Errorf("pod %s runs %s, want %s", p.Name, p.Spec.Containers[0].Image, version)
		}
	}
	return nil
}

// rolledOut: every replica runs the Deployment's template and is
// available, and no old pod is left.
func rolledOut(d *appsv1.Deployment) bool {
	s, want := d.Status, int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	return s.ObservedGeneration >= d.Generation && s.UpdatedReplicas == want && s.Replicas == want && s.AvailableReplicas == want
}

func parseFloat(s string) (float64, error) {
	var v float64
	_, err := fmt.Sscanf(s, "%g", &v)
	return v, err
}

// liveLine is the live view's line for a sample: phase, step, a weight
// bar, and both arms' success rate and p99.
//
// Example: "[v2] Progressing step 2/3 [########............] 40%  success canary 99.8% stable 99.9%  p99 canary 28ms stable 25ms"
func liveLine(version string, d *appsv1.Deployment, s Sample) string {
	bar := ""
	if !math.IsNaN(s.Weight) {
		n := int(s.Weight / 5)
		bar = strings.Repeat("#", n) + strings.Repeat(".", 20-n)
	} else {
		bar = strings.Repeat(".", 20)
	}
	f := func(v float64, unit string) string {
		if math.IsNaN(v) {
			return "  -  "
		}
		return fmt.Sprintf("%.1f%s", v, unit)
	}
	return fmt.Sprintf("[%s] %-11s step %-4s [%s] %3.0f%%  success canary %s stable %s  p99 canary %s stable %s",
		version, d.Annotations[contract.KeyPhase], d.Annotations[contract.KeyStep], bar, nanZero(s.Weight),
		f(s.CanarySuccess, "%"), f(s.StableSuccess, "%"), f(s.CanaryP99, "ms"), f(s.StableP99, "ms"))
}

func nanZero(v float64) float64 {
	if math.IsNaN(v) {
		return 0
	}
	return v
}
