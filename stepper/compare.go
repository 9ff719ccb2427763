package stepper

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/common/model"

	"github.com/canary-io/canary/contract"
	"github.com/canary-io/canary/stepper/sequential"
)

// SampleQuerier reads the raw samples of counters: the continuous
// comparison differences them itself, because rate() and increase()
// extrapolate to fractional, inflated counts.
type SampleQuerier interface {
	Samples(ctx context.Context, promql string, at time.Time) ([]sequential.Series, error)
}

// Samples implements SampleQuerier: promql must be a range selector (a
// matrix), e.g. istio_requests_total{...}[2m].
func (p *Prometheus) Samples(ctx context.Context, promql string, at time.Time) ([]sequential.Series, error) {
	v, _, err := p.api.Query(ctx, promql, at)
	if err != nil {
		return nil, fmt.Errorf("query prometheus: %w", err)
	}
	m, ok := v.(model.Matrix)
	if !ok {
		return nil, fmt.Errorf("query prometheus: a %s result, want a matrix of raw samples", v.Type())
	}
	out := make([]sequential.Series, 0, len(m))
	for _, ss := range m {
		s := sequential.Series{ID: ss.Metric.String()}
		for _, p := range ss.Values {
			s.Samples = append(s.Samples, sequential.Sample{At: p.Timestamp.Time(), Value: float64(p.Value)})
		}
		out = append(out, s)
	}
	return out, nil
}

// compare runs the continuous canary-vs-stable comparison of error rates
// over the analysis so far: the raw samples of istio_requests_total of
// both workloads since start (and a period before, so every series has a
// starting value), differenced into intervals of period, replayed into one
// e-process. Replaying from the stored start on every pass, and after a
// restart, gives the same e-process: alpha is never spent twice.
func compare(ctx context.Context, q SampleQuerier, s contract.Settings, namespace, canary, stable string, start, now time.Time, period time.Duration) (sequential.Verdict, error) {
	window := now.Sub(start) + 2*period
	window = window.Truncate(time.Second) + time.Second
	read := func(workload, extra string) ([]sequential.Series, error) {
		return q.Samples(ctx, fmt.Sprintf(`istio_requests_total{reporter="destination",destination_workload_namespace=%q,destination_workload=%q%s}[%s]`,
			namespace, workload, extra, contract.PromDuration(window)), now)
	}
	var arms [2][]sequential.Arm
	ends := sequential.Bounds(start, period, now.Add(-time.Second))
	for i, wl := range []string{canary, stable} {
		all, err := read(wl, "")
		if err != nil {
			return sequential.Verdict{}, err
		}
		failed, err := read(wl, `,response_code=~"5.."`)
		if err != nil {
			return sequential.Verdict{}, err
		}
		arms[i] = sequential.ArmCounts(all, failed, start, ends)
	}
	r, err := sequential.NewRollout(sequential.Settings{Confidence: s.Confidence, Tolerance: s.Tolerance})
	if err != nil {
		return sequential.Verdict{}, err
	}
	for _, iv := range sequential.Intervals(arms[0], arms[1], start, ends) {
		r = r.Update(iv, sequential.Interval{})
	}
	return r.Decide(), nil
}
