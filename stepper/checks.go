package stepper

import (
	"context"
	"fmt"
	"math"
	"strings"
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
// the stable workload. Each query has its own timeout: a slow Prometheus
// makes a result without data, never a stuck pass.
func runChecks(ctx context.Context, q Querier, s contract.Settings, namespace, canary, stable string, now time.Time, timeout time.Duration) []plan.CheckResult {
	measure := func(canaryQuery, stableQuery string) (c, st float64, ok, stOK bool, detail string) {
		qctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		c, ok, err := q.Query(qctx, canaryQuery, now)
		if err != nil {
			detail = err.Error()
		}
		st, stOK, _ = q.Query(qctx, stableQuery, now)
		return c, st, ok, stOK, detail
	}
	var out []plan.CheckResult
	builtin := func(name string, unit plan.Unit, query string, min, max *float64) {
		c, st, ok, stOK, detail := measure(
			builtinQuery(query, namespace, canary, s.Interval),
			builtinQuery(query, namespace, stable, s.Interval))
		out = append(out, plan.CheckResult{Name: name, Unit: unit, Canary: c, HasData: ok, Stable: st, StableHasData: stOK, Min: min, Max: max, Detail: detail})
	}
	minRate := s.MinSuccessRate
	builtin(plan.CheckSuccessRate, plan.UnitPercent, successRateQuery, &minRate, nil)
	maxMs := float64(s.MaxLatency) / float64(time.Millisecond)
	builtin(plan.CheckLatency, plan.UnitMilliseconds, latencyQuery, nil, &maxMs)
	for _, m := range s.Metrics {
		vars := contract.QueryVars{Namespace: namespace, Canary: canary, Stable: stable, Interval: s.Interval}
		c, st, ok, stOK, detail := measure(contract.RenderQuery(m.Query, vars),
			// The stable value: the same query with the roles swapped.
			contract.RenderQuery(m.Query, contract.QueryVars{Namespace: namespace, Canary: stable, Stable: stable, Interval: s.Interval}))
		out = append(out, plan.CheckResult{Name: m.Name, Unit: plan.UnitNone, Canary: c, HasData: ok, Stable: st, StableHasData: stOK, Min: m.Min, Max: m.Max, Detail: detail})
	}
	return out
}
