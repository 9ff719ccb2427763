package stepper

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/canary-io/canary/contract"
	"github.com/canary-io/canary/stepper/plan"
)

// Querier runs an instant PromQL query and returns its single value; ok is
// false when the result is empty or NaN (no data).
type Querier interface {
	Query(ctx context.Context, promql string, at time.Time) (value float64, ok bool, err error)
}

// failingQuerier answers every query with its error: the checks of a
// Deployment whose Prometheus cannot be queried at all (no URL) are failed
// queries, never passes.
type failingQuerier struct{ err error }

func (f failingQuerier) Query(context.Context, string, time.Time) (float64, bool, error) {
	return 0, false, f.err
}

// Prometheus queries a Prometheus server's HTTP API.
type Prometheus struct {
	api    promv1.API
	client api.Client
}

// NewPrometheus is a Querier for the Prometheus at url.
func NewPrometheus(url string) (*Prometheus, error) {
	return NewPrometheusWith(url, nil)
}

// NewPrometheusWith is NewPrometheus with the transport rt (nil: the
// default). Redirects are never followed: one could take the query
// somewhere the controller's allow-list did not check.
func NewPrometheusWith(url string, rt http.RoundTripper) (*Prometheus, error) {
	if rt == nil {
		rt = api.DefaultRoundTripper
	}
	c, err := api.NewClient(api.Config{Address: url, Client: NoRedirects(&http.Client{Transport: rt})})
	if err != nil {
		return nil, fmt.Errorf("prometheus client for %s: %w", url, err)
	}
	return &Prometheus{api: promv1.NewAPI(c), client: c}, nil
}

// query runs an instant query, counted in canary_prometheus_queries_total
// under purpose.
func (p *Prometheus) query(ctx context.Context, purpose, promql string, at time.Time) (model.Value, error) {
	prometheusQueries.WithLabelValues(purpose).Inc()
	v, _, err := p.api.Query(ctx, promql, at)
	return v, err
}

// Query implements Querier. A vector must hold one sample (a query that
// aggregates with sum() does); a scalar is taken as it is.
func (p *Prometheus) Query(ctx context.Context, promql string, at time.Time) (float64, bool, error) {
	v, err := p.query(ctx, "check", promql, at)
	if err != nil {
		return 0, false, fmt.Errorf("query prometheus: %w", err)
	}
	var f float64
	switch r := v.(type) {
	case model.Vector:
		if len(r) == 0 {
			return 0, false, nil
		}
		if len(r) > 1 {
			return 0, false, fmt.Errorf("the query returns %d series, want one: aggregate them (sum, max, ...)", len(r))
		}
		f = float64(r[0].Value)
	case *model.Scalar:
		f = float64(r.Value)
	default:
		return 0, false, fmt.Errorf("query prometheus: a %s result, want a vector or scalar", v.Type())
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, false, nil
	}
	return f, true, nil
}

// The built-in checks' PromQL, the same as Flagger's request-success-rate
// and request-duration for Istio, so that dashboards agree. The window is
// contract.Window: the step interval, or four scrape intervals when that
// is longer.
const (
	successRateQuery = `sum(rate(istio_requests_total{reporter="destination",destination_workload_namespace="{{namespace}}",destination_workload=~"{{workload}}",response_code!~"5.*"}[{{interval}}])) / sum(rate(istio_requests_total{reporter="destination",destination_workload_namespace="{{namespace}}",destination_workload=~"{{workload}}"}[{{interval}}])) * 100`
	latencyQuery     = `histogram_quantile(0.99, sum(rate(istio_request_duration_milliseconds_bucket{reporter="destination",destination_workload_namespace="{{namespace}}",destination_workload=~"{{workload}}"}[{{interval}}])) by (le))`
)

// hiddenErrorsQuery counts the workload's series of 5xx answers that
// rate() cannot count yet: one sample in the window, and live now (the
// instant selector: a series whose target went away is marked stale and
// drops out). Such a series began since the last scrape (a new pod's
// first errors, a new response code): while there is one, the success
// rate read beside it counts the workload's successes but not those
// errors, and reads too high; the check waits for the next scrape
// (plan.HiddenErrors).
const hiddenErrorsQuery = `count((count_over_time(istio_requests_total{reporter="destination",destination_workload_namespace="{{namespace}}",destination_workload=~"{{workload}}",response_code=~"5.*"}[{{interval}}]) == 1) and istio_requests_total{reporter="destination",destination_workload_namespace="{{namespace}}",destination_workload=~"{{workload}}",response_code=~"5.*"})`

// builtinQuery renders a built-in query for one workload.
//
// Example: namespace "bookinfo", workload "reviews-canary", window 1m →
// destination_workload_namespace="bookinfo", destination_workload=~"reviews-canary", [1m].
func builtinQuery(q, namespace, workload string, window time.Duration) string {
	r := strings.NewReplacer("{{namespace}}", namespace, "{{workload}}", workload, "{{interval}}", contract.PromDuration(window))
	return r.Replace(q)
}

// checkRun is one round of threshold checks of one Deployment.
type checkRun struct {
	settings          contract.Settings
	namespace, canary string
	stable            string
	// window is the query window (contract.Window); scrape the scrape
	// interval it was derived from.
	window, scrape time.Duration
	// comparedRequests is what the continuous comparison counted for the
	// canary, negative when it did not run.
	comparedRequests float64
}

// runChecks measures every threshold check for the canary and, beside it,
// the stable workload, over the run's window. The queries run at once
// under one timeout: a slow Prometheus makes results without data after
// at most timeout, never a stuck read. known, when not nil, holds the
// built-in checks' answers (batched by the Reader, being read while the
// custom metrics are), by the query they stand for. When a built-in
// check has no data, a few reads of the raw counters say why
// (plan.ExplainNoData).
func runChecks(ctx context.Context, q Querier, run checkRun, now time.Time, timeout time.Duration, known *answers) []plan.CheckResult {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	type check struct {
		result           plan.CheckResult
		canaryQ, stableQ string
	}
	s, namespace, canary, stable, window := run.settings, run.namespace, run.canary, run.stable, run.window
	minRate := s.MinSuccessRate
	maxMs := float64(s.MaxLatency) / float64(time.Millisecond)
	checks := []*check{
		{result: plan.CheckResult{Name: plan.CheckSuccessRate, Unit: plan.UnitPercent, Min: &minRate, Window: window},
			canaryQ: builtinQuery(successRateQuery, namespace, canary, window), stableQ: builtinQuery(successRateQuery, namespace, stable, window)},
		{result: plan.CheckResult{Name: plan.CheckLatency, Unit: plan.UnitMilliseconds, Max: &maxMs, Window: window},
			canaryQ: builtinQuery(latencyQuery, namespace, canary, window), stableQ: builtinQuery(latencyQuery, namespace, stable, window)},
	}
	builtins := len(checks)
	for _, m := range s.Metrics {
		checks = append(checks, &check{
			result:  plan.CheckResult{Name: m.Name, Unit: plan.UnitNone, Min: m.Min, Max: m.Max, Window: window},
			canaryQ: contract.RenderQuery(m.Query, contract.QueryVars{Namespace: namespace, Canary: canary, Stable: stable, Interval: window}),
			// The stable value: the same query about the stable workload.
			stableQ: contract.RenderQuery(m.Query, contract.QueryVars{Namespace: namespace, Canary: stable, Stable: stable, Interval: window}),
		})
	}
	var wg sync.WaitGroup
	var hidden measured
	wg.Go(func() {
		promql := builtinQuery(hiddenErrorsQuery, namespace, canary, window)
		if m, ok := known.lookup(ctx, promql); ok {
			hidden = m
			return
		}
		hidden.value, hidden.ok, hidden.err = q.Query(ctx, promql, now)
	})
	for i, c := range checks {
		query := func(promql string) (float64, bool, error) {
			if i < builtins {
				if m, ok := known.lookup(ctx, promql); ok {
					return m.value, m.ok, m.err
				}
			}
			return q.Query(ctx, promql, now)
		}
		wg.Go(func() {
			v, ok, err := query(c.canaryQ)
			c.result.Canary, c.result.HasData = v, ok
			if err != nil {
				c.result.Detail, c.result.QueryFailed, c.result.HasData = err.Error(), true, false
			}
		})
		wg.Go(func() {
			c.result.Stable, c.result.StableHasData, _ = query(c.stableQ)
		})
	}
	wg.Wait()
	if sr := &checks[0].result; sr.HasData {
		// Fail closed: a success rate that cannot see some of the
		// canary's errors is no data, not a pass.
		switch {
		case hidden.err != nil:
			sr.HasData, sr.QueryFailed, sr.Detail = false, true, "counting the canary's new series of 5xx answers: "+hidden.err.Error()
		case hidden.ok && hidden.value > 0:
			sr.HasData, sr.Pending, sr.Detail = false, true, plan.HiddenErrors(int(hidden.value), window, run.scrape)
		}
	}
	unexplained := false
	for _, c := range checks[:builtins] {
		unexplained = unexplained || (!c.result.HasData && c.result.Detail == "")
	}
	if unexplained {
		if why := explainNoData(ctx, q, run, now); why != "" {
			for _, c := range checks[:builtins] {
				if !c.result.HasData && c.result.Detail == "" {
					c.result.Detail = why
				}
			}
		}
	}
	out := make([]plan.CheckResult, len(checks))
	for i, c := range checks {
		out[i] = c.result
	}
	return out
}

// LabelQuerier reads the values one label takes across the series of an
// instant query's result.
type LabelQuerier interface {
	LabelValues(ctx context.Context, promql, label string, at time.Time) ([]string, error)
}

// LabelValues implements LabelQuerier: the distinct values, sorted.
func (p *Prometheus) LabelValues(ctx context.Context, promql, label string, at time.Time) ([]string, error) {
	v, err := p.query(ctx, "workloads", promql, at)
	if err != nil {
		return nil, fmt.Errorf("query prometheus: %w", err)
	}
	vec, ok := v.(model.Vector)
	if !ok {
		return nil, fmt.Errorf("query prometheus: a %s result, want a vector", v.Type())
	}
	var out []string
	for _, s := range vec {
		if l := string(s.Metric[model.LabelName(label)]); l != "" && !slices.Contains(out, l) {
			out = append(out, l)
		}
	}
	slices.Sort(out)
	return out, nil
}

// maxWorkloadsShown bounds the workloads a no-data message names.
const maxWorkloadsShown = 5

// explainNoData reads the raw counters behind the built-in checks when
// they had no data, and says why (plan.ExplainNoData); "" when the reads
// fail or explain nothing. A message only: the no-data policy decides.
func explainNoData(ctx context.Context, q Querier, run checkRun, now time.Time) string {
	live := fmt.Sprintf(`istio_requests_total{reporter="destination",destination_workload_namespace=%q,destination_workload=%q}`, run.namespace, run.canary)
	sel := live + "[" + contract.PromDuration(run.window) + "]"
	f := plan.NoDataFacts{Namespace: run.namespace, Canary: run.canary, Window: run.window, Scrape: run.scrape, ComparedRequests: run.comparedRequests}
	series, _, err := q.Query(ctx, "count(count_over_time("+sel+"))", now)
	if err != nil {
		return ""
	}
	f.Series = int(series)
	if f.Series > 0 {
		samples, _, err := q.Query(ctx, "max(count_over_time("+sel+"))", now)
		if err != nil {
			return ""
		}
		f.MaxSamples = int(samples)
		// Live series only: a gone pod's last sample is no new series.
		single, _, err := q.Query(ctx, "count((count_over_time("+sel+") == 1) and "+live+")", now)
		if err != nil {
			return ""
		}
		f.SingleSample = int(single)
		if f.Requests, _, err = q.Query(ctx, "sum(increase("+sel+"))", now); err != nil {
			return ""
		}
	} else if lq, ok := q.(LabelQuerier); ok {
		workloads, err := lq.LabelValues(ctx, fmt.Sprintf(`count by (destination_workload) (count_over_time(istio_requests_total{reporter="destination",destination_workload_namespace=%q}[%s]))`,
			run.namespace, contract.PromDuration(run.window)), "destination_workload", now)
		if err != nil {
			return ""
		}
		if len(workloads) > maxWorkloadsShown {
			workloads = append(workloads[:maxWorkloadsShown], "...")
		}
		f.Workloads = workloads
	}
	return plan.ExplainNoData(f)
}
