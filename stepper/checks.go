package stepper

import (
	"context"
	"fmt"
	"math"
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

// Prometheus queries a Prometheus server's HTTP API.
type Prometheus struct {
	api promv1.API
}

// NewPrometheus is a Querier for the Prometheus at url.
func NewPrometheus(url string) (*Prometheus, error) {
	c, err := api.NewClient(api.Config{Address: url})
	if err != nil {
		return nil, fmt.Errorf("prometheus client for %s: %w", url, err)
	}
	return &Prometheus{api: promv1.NewAPI(c)}, nil
}

// Query implements Querier. A vector must hold one sample (a query that
// aggregates with sum() does); a scalar is taken as it is.
func (p *Prometheus) Query(ctx context.Context, promql string, at time.Time) (float64, bool, error) {
	v, _, err := p.api.Query(ctx, promql, at)
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
			return 0, false, fmt.Errorf("query prometheus: %d series, want one (aggregate with sum)", len(r))
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
// the step interval: it must span at least four Prometheus scrapes.
const (
	successRateQuery = `sum(rate(istio_requests_total{reporter="destination",destination_workload_namespace="{{namespace}}",destination_workload=~"{{workload}}",response_code!~"5.*"}[{{interval}}])) / sum(rate(istio_requests_total{reporter="destination",destination_workload_namespace="{{namespace}}",destination_workload=~"{{workload}}"}[{{interval}}])) * 100`
	latencyQuery     = `histogram_quantile(0.99, sum(rate(istio_request_duration_milliseconds_bucket{reporter="destination",destination_workload_namespace="{{namespace}}",destination_workload=~"{{workload}}"}[{{interval}}])) by (le))`
)

// builtinQuery renders a built-in query for one workload.
//
// Example: namespace "bookinfo", workload "reviews-canary", interval 1m →
// destination_workload_namespace="bookinfo", destination_workload=~"reviews-canary", [1m].
func builtinQuery(q, namespace, workload string, interval time.Duration) string {
	r := strings.NewReplacer("{{namespace}}", namespace, "{{workload}}", workload, "{{interval}}", contract.PromDuration(interval))
	return r.Replace(q)
}

// runChecks measures every threshold check for the canary and, beside it,
// the stable workload. The queries run at once under one timeout: a slow
// Prometheus makes results without data after at most timeout, never a
// stuck pass.
func runChecks(ctx context.Context, q Querier, s contract.Settings, namespace, canary, stable string, now time.Time, timeout time.Duration) []plan.CheckResult {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	type check struct {
		result           plan.CheckResult
		canaryQ, stableQ string
	}
	minRate := s.MinSuccessRate
	maxMs := float64(s.MaxLatency) / float64(time.Millisecond)
	checks := []*check{
		{result: plan.CheckResult{Name: plan.CheckSuccessRate, Unit: plan.UnitPercent, Min: &minRate},
			canaryQ: builtinQuery(successRateQuery, namespace, canary, s.Interval), stableQ: builtinQuery(successRateQuery, namespace, stable, s.Interval)},
		{result: plan.CheckResult{Name: plan.CheckLatency, Unit: plan.UnitMilliseconds, Max: &maxMs},
			canaryQ: builtinQuery(latencyQuery, namespace, canary, s.Interval), stableQ: builtinQuery(latencyQuery, namespace, stable, s.Interval)},
	}
	for _, m := range s.Metrics {
		checks = append(checks, &check{
			result:  plan.CheckResult{Name: m.Name, Unit: plan.UnitNone, Min: m.Min, Max: m.Max},
			canaryQ: contract.RenderQuery(m.Query, contract.QueryVars{Namespace: namespace, Canary: canary, Stable: stable, Interval: s.Interval}),
			// The stable value: the same query about the stable workload.
			stableQ: contract.RenderQuery(m.Query, contract.QueryVars{Namespace: namespace, Canary: stable, Stable: stable, Interval: s.Interval}),
		})
	}
	var wg sync.WaitGroup
	for _, c := range checks {
		wg.Go(func() {
			v, ok, err := q.Query(ctx, c.canaryQ, now)
			c.result.Canary, c.result.HasData = v, ok
			if err != nil {
				c.result.Detail = err.Error()
			}
		})
		wg.Go(func() {
			c.result.Stable, c.result.StableHasData, _ = q.Query(ctx, c.stableQ, now)
		})
	}
	wg.Wait()
	out := make([]plan.CheckResult, len(checks))
	for i, c := range checks {
		out[i] = c.result
	}
	return out
}
