package stepper

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/canary-io/canary/contract"
	"github.com/canary-io/canary/stepper/plan"
)

// Metrics are the stepper's own metrics, per opted-in Deployment: what
// canary.io's annotations say, as time series, for dashboards and alerts.
type Metrics struct {
	weight       *prometheus.GaugeVec
	step         *prometheus.GaugeVec
	phase        *prometheus.GaugeVec
	failedChecks *prometheus.GaugeVec
	checkValue   *prometheus.GaugeVec
	eValue       *prometheus.GaugeVec
	errorRate    *prometheus.GaugeVec
	stepSeconds  *prometheus.HistogramVec
	stepLateness prometheus.Histogram
	weightLate   prometheus.Histogram
	readyRouted  prometheus.Histogram
	actions      *prometheus.HistogramVec
	rollout      *prometheus.HistogramVec
	outcomes     *prometheus.CounterVec
	hookCalls    *prometheus.CounterVec
	skipped      *prometheus.CounterVec
}

// prometheusQueries, comparisonSamples, checkRoundSeconds and
// checkRoundWaitSeconds measure the controller's work on Prometheus,
// whichever Deployment it is for; NewMetrics registers them.
var (
	prometheusQueries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "canary_prometheus_queries_total",
		Help: "Queries sent to Prometheus, by purpose: check (threshold checks and custom metrics), comparison (raw samples of the continuous comparison), workloads, scrape-interval.",
	}, []string{"purpose"})
	comparisonSamples = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "canary_comparison_samples_total",
		Help: "Raw samples the continuous comparison read from Prometheus: it reads only those since its last period, so the rate does not grow with the analyses' length.",
	})
	checkRoundSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "canary_check_round_seconds",
		Help: "How long a round of end-of-step checks took to hand an analysis its results: the batched reads, its custom metrics, and the comparison read beside them or in flight.",
		// 10ms to about 82s.
		Buckets: prometheus.ExponentialBuckets(0.01, 2, 14),
	})
	checkRoundWaitSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "canary_check_round_comparison_wait_seconds",
		Help:    "The part of canary_check_round_seconds after an analysis' checks were read: the wait for its comparison, read beside them or in flight.",
		Buckets: prometheus.ExponentialBuckets(0.01, 2, 14),
	})
)

// latenessBuckets are the buckets of the lateness histograms, 10 ms to
// 80 s, with edges at a quarter, half, three quarters and one second, so
// that the share of steps on time within a second is read exactly (an
// alert on it, the scale benchmark's bound), not interpolated.
var latenessBuckets = []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2.5, 5, 10, 20, 40, 80}

// The phases reported by canary_phase.
var phases = []contract.Phase{
	contract.PhaseIdle, contract.PhaseProgressing, contract.PhasePaused,
	contract.PhasePromoting, contract.PhaseSucceeded, contract.PhaseRolledBack,
}

// NewMetrics creates the metrics and registers them on reg (the
// controller registers them on controller-runtime's registry, served on
// its metrics endpoint).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	dep := []string{"namespace", "deployment"}
	m := &Metrics{
		weight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "canary_weight", Help: "Percent of traffic on the canary now (canary.io/weight).",
		}, dep),
		step: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "canary_step", Help: "The step in progress, 1-based, as canary.io/step counts it (2 while the second step runs; the number of steps once all passed).",
		}, dep),
		phase: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "canary_phase", Help: "1 for the Deployment's current canary.io/phase, 0 for the others.",
		}, append(dep, "phase")),
		failedChecks: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "canary_failed_checks", Help: "Failed threshold checks of the analysis in flight (canary.io/failed-checks).",
		}, dep),
		checkValue: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "canary_check_value", Help: "Last measured value of each threshold check, for the canary and the stable workload (arm).",
		}, append(dep, "check", "arm")),
		eValue: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "canary_comparison_evalue", Help: "E-value of the continuous canary-vs-stable comparison of error rates; the canary is rolled back when it reaches 1/alpha.",
		}, dep),
		errorRate: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "canary_comparison_error_rate", Help: "Error rate (fraction) of the canary and the stable workload (arm) over the analysis so far, as the continuous comparison counts it.",
		}, append(dep, "arm")),
		stepSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "canary_step_duration_seconds", Help: "Time from a step's weight taking effect to its checks passing.",
			Buckets: prometheus.ExponentialBuckets(5, 2, 10),
		}, []string{"namespace"}),
		stepLateness: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "canary_step_lateness_seconds",
			Help:    "How long after its due time (the step's start plus canary.io/interval) a step's checks were judged and it passed: the controller's own delay, Prometheus' answer time included.",
			Buckets: latenessBuckets,
		}),
		weightLate: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "canary_weight_lateness_seconds",
			Help:    "How long after an analysis' first weight could move (its canary pods ready for the propagation delay, as the controller saw them) the pass that moves it recorded it: the controller's own delay, before its writes.",
			Buckets: latenessBuckets,
		}),
		readyRouted: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "canary_ready_to_routed_seconds",
			Help:    "From an analysis' canary pods ready (as the controller counts them: its pod watch's sighting, or the Ready condition's next second if sooner) to its first weight routed (the route's write returned): the propagation delay, the controller's delay and its writes.",
			Buckets: []float64{0.5, 1, 1.5, 2, 2.25, 2.5, 2.75, 3, 3.5, 4, 5, 7.5, 10, 20, 40, 80},
		}),
		actions: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "canary_action_duration_seconds",
			Help: "How long each part of a pass took: reading what it decides on (gather: the cache, the answers the background reads left) and each action it took (WriteState, SetWeight, ...: the controller's writes, as the apiserver answered them, admission webhooks included).",
			// 5ms to about 82s.
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 15),
		}, []string{"action"}),
		rollout: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "canary_rollout_duration_seconds", Help: "Time from the analysis start to its end, by outcome (Succeeded, RolledBack).",
			Buckets: prometheus.ExponentialBuckets(10, 2, 10),
		}, []string{"namespace", "outcome"}),
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "canary_rollouts_total", Help: "Analyses ended, by outcome (Succeeded, RolledBack) and the reason of the last Event.",
		}, []string{"namespace", "outcome", "reason"}),
		hookCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "canary_hook_calls_total", Help: "Calls of the user's hooks (canary.io/webhooks) by type and outcome: success (status 200-202) or failure.",
		}, append(dep, "type", "outcome")),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "canary_analysis_skipped_total", Help: "Templates rolled out without analysis through canary.io/skip-analysis (the emergency path); who did it is in the Deployment's message and the AnalysisSkipped Event.",
		}, dep),
	}
	for _, c := range m.own() {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	for _, c := range shared {
		// Shared by every Metrics: a registry that has them already is fine.
		var already prometheus.AlreadyRegisteredError
		if err := reg.Register(c); err != nil && !errors.As(err, &already) {
			return nil, err
		}
	}
	return m, nil
}

// own are the collectors of one Metrics.
func (m *Metrics) own() []prometheus.Collector {
	return []prometheus.Collector{m.weight, m.step, m.phase, m.failedChecks, m.checkValue, m.eValue, m.errorRate, m.stepSeconds, m.stepLateness, m.weightLate, m.readyRouted, m.actions, m.rollout, m.outcomes, m.hookCalls, m.skipped}
}

// shared are the collectors every Metrics registers.
var shared = []prometheus.Collector{prometheusQueries, comparisonSamples, checkRoundSeconds, checkRoundWaitSeconds}

// analysisSkipped counts a skip-analysis rollout of Deployment name in ns.
func (m *Metrics) analysisSkipped(ns, name string) {
	if m != nil {
		m.skipped.WithLabelValues(ns, name).Inc()
	}
}

// hookAnswered counts one hook call of Deployment name in ns.
func (m *Metrics) hookAnswered(ns, name string, t contract.HookType, ok bool) {
	if m == nil {
		return
	}
	outcome := "failure"
	if ok {
		outcome = "success"
	}
	m.hookCalls.WithLabelValues(ns, name, string(t), outcome).Inc()
}

// observe records one pass that was acted on.
func (m *Metrics) observe(w *world, dec plan.Decision, now time.Time) {
	if m == nil {
		return
	}
	ns, name := w.deployment.Namespace, w.deployment.Name
	next := dec.Next
	m.weight.WithLabelValues(ns, name).Set(float64(next.Weight))
	if n := len(w.spec.Steps); n > 0 {
		m.step.WithLabelValues(ns, name).Set(float64(plan.StepShown(next.Step, n)))
	}
	for _, p := range phases {
		v := 0.0
		if next.Phase == p {
			v = 1
		}
		m.phase.WithLabelValues(ns, name, string(p)).Set(v)
	}
	m.failedChecks.WithLabelValues(ns, name).Set(float64(next.FailedChecks))
	for _, c := range w.obs.Checks {
		if c.Hook {
			continue // a hook has an answer, not a value
		}
		if c.HasData {
			m.checkValue.WithLabelValues(ns, name, c.Name, "canary").Set(c.Canary)
		}
		if c.StableHasData {
			m.checkValue.WithLabelValues(ns, name, c.Name, "stable").Set(c.Stable)
		}
	}
	if v := w.comparison; v != nil {
		m.eValue.WithLabelValues(ns, name).Set(v.Errors.EValue)
		m.errorRate.WithLabelValues(ns, name, "canary").Set(v.Errors.CanaryRate)
		m.errorRate.WithLabelValues(ns, name, "stable").Set(v.Errors.StableRate)
	}
	// The first weight only: a later step's weight may move from the
	// end of the step before, a moment no state records.
	if at, ok := plan.MovesAt(w.spec, w.state, w.obs); ok && firstWeight(w, next) {
		m.weightLate.Observe(max(0, now.Sub(at).Seconds()))
	}
	if next.Step > w.state.Step && !w.state.StepStarted.IsZero() {
		m.stepSeconds.WithLabelValues(ns).Observe(now.Sub(w.state.StepStarted).Seconds())
		m.stepLateness.Observe(max(0, now.Sub(w.state.StepStarted.Add(w.spec.Interval)).Seconds()))
	}
	ended := next.Phase != w.state.Phase && (next.Phase == contract.PhaseSucceeded || next.Phase == contract.PhaseRolledBack)
	if ended {
		reason := ""
		if dec.Event != nil {
			reason = dec.Event.Reason
		}
		m.outcomes.WithLabelValues(ns, string(next.Phase), reason).Inc()
		if !w.analysisStarted.IsZero() {
			m.rollout.WithLabelValues(ns, string(next.Phase)).Observe(now.Sub(w.analysisStarted).Seconds())
		}
	}
}

// routed records, on the pass that routes an analysis' first weight
// (firstWeight), how long after its canary pods were ready the route's
// write returned (now).
func (m *Metrics) routed(w *world, next plan.State, now time.Time) {
	if m == nil || !firstWeight(w, next) || w.obs.CanaryReadySince.IsZero() {
		return
	}
	m.readyRouted.Observe(max(0, now.Sub(w.obs.CanaryReadySince).Seconds()))
}

// firstWeight reports whether the pass of w that records next starts an
// analysis' first step at a weight: its first weight.
func firstWeight(w *world, next plan.State) bool {
	return w.state.Step == 0 && w.state.StepStarted.IsZero() && !next.StepStarted.IsZero() && next.Weight > 0
}

// took records how long a part of a pass took (action: gather, or an
// action's kind).
func (m *Metrics) took(action string, d time.Duration) {
	if m == nil {
		return
	}
	m.actions.WithLabelValues(action).Observe(d.Seconds())
}
