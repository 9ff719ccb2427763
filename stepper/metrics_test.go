package stepper

import (
	"encoding/json"
	"math"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/canary-io/canary/contract"
	"github.com/canary-io/canary/stepper/plan"
)

func TestMetricsObserveAPass(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	w := &world{
		deployment:      &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "reviews", Namespace: "bookinfo"}},
		state:           plan.State{Phase: contract.PhaseProgressing, Step: 2, Weight: 60, StepStarted: now.Add(-10 * time.Second)},
		spec:            plan.Spec{Interval: 8 * time.Second},
		analysisStarted: now.Add(-40 * time.Second),
		obs: plan.Observations{Checks: []plan.CheckResult{
			{Name: plan.CheckSuccessRate, Canary: 99.5, HasData: true, Stable: 99.9, StableHasData: true},
		}},
	}
	dec := plan.Decision{Next: plan.State{Phase: contract.PhasePromoting, Step: 3}, Event: &plan.Event{Reason: plan.ReasonPromoting}}
	m.observe(w, dec, now)
	if got := testutil.ToFloat64(m.weight.WithLabelValues("bookinfo", "reviews")); got != 0 {
		t.Errorf("canary_weight = %v, want 0 (promoting)", got)
	}
	if got := testutil.ToFloat64(m.phase.WithLabelValues("bookinfo", "reviews", "Promoting")); got != 1 {
		t.Errorf("canary_phase{phase=Promoting} = %v, want 1", got)
	}
	if got := testutil.ToFloat64(m.phase.WithLabelValues("bookinfo", "reviews", "Progressing")); got != 0 {
		t.Errorf("canary_phase{phase=Progressing} = %v, want 0", got)
	}
	if got := testutil.ToFloat64(m.checkValue.WithLabelValues("bookinfo", "reviews", plan.CheckSuccessRate, "stable")); got != 99.9 {
		t.Errorf("stable success rate = %v", got)
	}
	if n := testutil.CollectAndCount(m.stepSeconds); n != 1 {
		t.Errorf("step durations: %d series, want 1 (the last step passed)", n)
	}
	// The step was due 8s after its start and passed 10s after: 2s late.
	var lateness dto.Metric
	if err := m.stepLateness.Write(&lateness); err != nil {
		t.Fatal(err)
	}
	if h := lateness.GetHistogram(); h.GetSampleCount() != 1 || h.GetSampleSum() != 2 {
		t.Errorf("canary_step_lateness_seconds: %d samples summing to %v, want 1 of 2s", h.GetSampleCount(), h.GetSampleSum())
	}
	// The end of an analysis counts its outcome once.
	w.state, dec = dec.Next, plan.Decision{Next: plan.State{Phase: contract.PhaseSucceeded}, Event: &plan.Event{Reason: plan.ReasonSucceeded}}
	m.observe(w, dec, now.Add(5*time.Second))
	if got := testutil.ToFloat64(m.outcomes.WithLabelValues("bookinfo", "Succeeded", plan.ReasonSucceeded)); got != 1 {
		t.Errorf("canary_rollouts_total{Succeeded} = %v, want 1", got)
	}
	m.hookAnswered("bookinfo", "reviews", contract.HookPreRollout, false)
	m.hookAnswered("bookinfo", "reviews", contract.HookPreRollout, true)
	m.hookAnswered("bookinfo", "reviews", contract.HookPreRollout, true)
	if got := testutil.ToFloat64(m.hookCalls.WithLabelValues("bookinfo", "reviews", "pre-rollout", "success")); got != 2 {
		t.Errorf("canary_hook_calls_total{pre-rollout, success} = %v, want 2", got)
	}
	if got := testutil.ToFloat64(m.hookCalls.WithLabelValues("bookinfo", "reviews", "pre-rollout", "failure")); got != 1 {
		t.Errorf("canary_hook_calls_total{pre-rollout, failure} = %v, want 1", got)
	}
}

// TestWeightLateness: an analysis' first weight that could move at its
// canary's readiness plus the propagation delay and was recorded later
// counts how much later; a pass that moves nothing counts nothing, nor
// does a later step's weight.
func TestWeightLateness(t *testing.T) {
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	w := &world{
		deployment: &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "reviews", Namespace: "bookinfo"}},
		state:      plan.State{Phase: contract.PhaseProgressing, Step: 0, Weight: 0},
		spec:       plan.Spec{Steps: []int32{20, 40}, Interval: time.Minute, Replicas: 1, PropagationDelay: 2 * time.Second},
		obs:        plan.Observations{Now: now, CanaryReady: 1, CanaryReadySince: now.Add(-2500 * time.Millisecond)},
	}
	m.observe(w, plan.Decision{Next: plan.State{Phase: contract.PhaseProgressing, Weight: 20, StepStarted: now}}, now)
	m.observe(w, plan.Decision{Next: w.state}, now) // waits: no weight moved
	// A later step's weight, its pods ready since long before: it could
	// move only from the previous step's end, which no state records.
	later := *w
	later.state = plan.State{Phase: contract.PhaseProgressing, Step: 1, Weight: 20}
	later.obs.CanaryReadySince = now.Add(-time.Minute)
	m.observe(&later, plan.Decision{Next: plan.State{Phase: contract.PhaseProgressing, Step: 1, Weight: 40, StepStarted: now}}, now)
	var late dto.Metric
	if err := m.weightLate.Write(&late); err != nil {
		t.Fatal(err)
	}
	if h := late.GetHistogram(); h.GetSampleCount() != 1 || h.GetSampleSum() != 0.5 {
		t.Errorf("canary_weight_lateness_seconds: %d samples summing to %v, want 1 of 0.5s", h.GetSampleCount(), h.GetSampleSum())
	}
	// Its route written 300ms after the pass began: routed 2.8s after the
	// pods were ready. Neither the later step's route nor a pass that
	// routes the same weight again counts.
	m.routed(w, plan.State{Phase: contract.PhaseProgressing, Weight: 20, StepStarted: now}, now.Add(300*time.Millisecond))
	m.routed(&later, plan.State{Phase: contract.PhaseProgressing, Step: 1, Weight: 40, StepStarted: now}, now)
	again := *w
	again.state = plan.State{Phase: contract.PhaseProgressing, Weight: 20, StepStarted: now}
	m.routed(&again, again.state, now.Add(time.Second))
	var routed dto.Metric
	if err := m.readyRouted.Write(&routed); err != nil {
		t.Fatal(err)
	}
	if h := routed.GetHistogram(); h.GetSampleCount() != 1 || math.Abs(h.GetSampleSum()-2.8) > 1e-9 {
		t.Errorf("canary_ready_to_routed_seconds: %d samples summing to %v, want 1 of 2.8s", h.GetSampleCount(), h.GetSampleSum())
	}
}

// TestDashboardLoads checks the Grafana dashboard in manifests/: valid
// JSON, the documented panels, and only metrics that exist.
func TestDashboardLoads(t *testing.T) {
	data, err := os.ReadFile("../manifests/grafana/canary-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Title  string `json:"title"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("not valid JSON: %v", err)
	}
	var titles []string
	names := regexp.MustCompile(`\b(canary_[a-z_]+|istio_[a-z_]+)`)
	known := []string{
		"canary_weight", "canary_phase", "canary_failed_checks", "canary_check_value", "canary_comparison_evalue",
		"canary_comparison_error_rate", "canary_step_duration_seconds_bucket", "canary_rollout_duration_seconds_bucket",
		"canary_rollouts_total", "canary_webhook_decisions_total", "canary_hook_calls_total", "istio_requests_total", "istio_request_duration_milliseconds_bucket",
	}
	for _, p := range dash.Panels {
		titles = append(titles, p.Title)
		for _, tg := range p.Targets {
			for _, name := range names.FindAllString(tg.Expr, -1) {
				if !slices.Contains(known, name) {
					t.Errorf("panel %q queries %s, which nothing exports", p.Title, name)
				}
			}
		}
	}
	for _, want := range []string{"Canary weight", "Phase", "Success rate, canary vs stable (Istio)", "p99 latency, canary vs stable (Istio)",
		"Threshold checks, last values", "Failed checks", "Continuous comparison: e-value", "Rollouts by outcome", "Webhook decisions", "Hook calls by type and outcome"} {
		if !slices.Contains(titles, want) {
			t.Errorf("the dashboard lacks the panel %q (has %s)", want, strings.Join(titles, ", "))
		}
	}
}

// TestStepMetricCountsAsTheAnnotation: canary_step is the numerator of
// canary.io/step in the same pass, for every number of steps passed.
func TestStepMetricCountsAsTheAnnotation(t *testing.T) {
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	spec := plan.Spec{Steps: []int32{20, 40, 60}, Threshold: 3}
	w := &world{deployment: &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "reviews", Namespace: "bookinfo"}}, spec: spec}
	for passed := 0; passed <= 3; passed++ {
		next := plan.State{Phase: contract.PhaseProgressing, Step: passed}
		m.observe(w, plan.Decision{Next: next}, time.Now())
		annotation := plan.Encode(spec, next)[contract.KeyStep]
		got := testutil.ToFloat64(m.step.WithLabelValues("bookinfo", "reviews"))
		if want := strings.Split(annotation, "/")[0]; strconv.FormatFloat(got, 'f', -1, 64) != want {
			t.Errorf("%d passed: canary_step = %v, canary.io/step %q", passed, got, annotation)
		}
	}
}

// Every metric the controller serves is in docs/troubleshooting.md's
// table of metrics.
func TestEveryMetricIsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../docs/troubleshooting.md")
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	fqName := regexp.MustCompile(`fqName: "([a-z_]+)"`)
	n := 0
	for _, c := range append(m.own(), shared...) {
		ch := make(chan *prometheus.Desc, 4)
		c.Describe(ch)
		close(ch)
		for d := range ch {
			name := fqName.FindStringSubmatch(d.String())
			if name == nil {
				t.Fatalf("no name in %s", d)
			}
			n++
			if !strings.Contains(string(doc), "| `"+name[1]+"` |") {
				t.Errorf("%s is not in docs/troubleshooting.md's table of metrics", name[1])
			}
		}
	}
	if n < 15 {
		t.Errorf("%d metrics described, want every one", n)
	}
}
