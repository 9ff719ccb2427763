package stepper

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
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

// compare runs the continuous canary-vs-stable comparison over the
// analysis so far, of error rates and of slow-request rates (alpha split
// between the two): the raw samples of istio_requests_total and of the
// request-duration histogram of both workloads since start (and lookback
// before, so every series alive at start has a starting value: at least
// two scrape intervals, see comparisonLookback), differenced into
// intervals of period, replayed into one e-process each. Replaying from
// the stored start on every pass, and after a restart, gives the same
// e-processes: alpha is never spent twice.
//
// The canary arm counts only the series of the revision under test
// (canaryRevision, its pods' canonical revision, or series without that
// label, for meshes that drop it): the canary's workload name outlives
// its revisions, and the previous canary's pods may have served a last
// few requests, through the Service, that were not scraped before the
// start.
func compare(ctx context.Context, q SampleQuerier, s contract.Settings, namespace, canary, stable, canaryRevision string, start, now time.Time, period, lookback time.Duration) (sequential.Verdict, error) {
	window := now.Sub(start) + lookback
	window = window.Truncate(time.Second) + time.Second
	read := func(metric, workload, extra string) ([]sequential.Series, error) {
		if workload == canary {
			extra += fmt.Sprintf(`,destination_canonical_revision=~%q`, regexp.QuoteMeta(canaryRevision)+"|")
		}
		return q.Samples(ctx, fmt.Sprintf(`%s{reporter="destination",destination_workload_namespace=%q,destination_workload=%q%s}[%s]`,
			metric, namespace, workload, extra, contract.PromDuration(window)), now)
	}
	edge := slowEdge(s.MaxLatency)
	le := fmt.Sprintf(`,le=~%q`, leMatch(edge))
	var errs, slow [2][]sequential.Arm
	ends := sequential.Bounds(start, period, now.Add(-time.Second))
	for i, wl := range []string{canary, stable} {
		all, err := read("istio_requests_total", wl, "")
		if err != nil {
			return sequential.Verdict{}, err
		}
		failed, err := read("istio_requests_total", wl, `,response_code=~"5.."`)
		if err != nil {
			return sequential.Verdict{}, err
		}
		errs[i] = sequential.ArmCounts(all, failed, start, ends)
		count, err := read("istio_request_duration_milliseconds_count", wl, "")
		if err != nil {
			return sequential.Verdict{}, err
		}
		fast, err := read("istio_request_duration_milliseconds_bucket", wl, le)
		if err != nil {
			return sequential.Verdict{}, err
		}
		slow[i] = sequential.SlowCounts(count, fast, start, ends)
	}
	r, err := sequential.NewRollout(sequential.Settings{
		Confidence: s.Confidence, Tolerance: s.Tolerance,
		Latency: true, SlowerThan: time.Duration(edge * float64(time.Millisecond)),
	})
	if err != nil {
		return sequential.Verdict{}, err
	}
	errIntervals := sequential.Intervals(errs[0], errs[1], start, ends)
	slowIntervals := sequential.Intervals(slow[0], slow[1], start, ends)
	for i := range errIntervals {
		r = r.Update(errIntervals[i], slowIntervals[i])
	}
	return r.Decide(), nil
}

// canonicalRevision is the revision Istio reports for a pod with these
// labels (destination_canonical_revision): service.istio.io/canonical-revision,
// app.kubernetes.io/version or version, the first set, else "latest".
//
// Example: {app: reviews, version: v2} → "v2"; {app: reviews} → "latest".
func canonicalRevision(labels map[string]string) string {
	for _, k := range []string{"service.istio.io/canonical-revision", "app.kubernetes.io/version", "version"} {
		if v := labels[k]; v != "" {
			return v
		}
	}
	return "latest"
}

// comparisonLookback is how far before the analysis' start the comparison
// reads samples: two comparison periods, and at least two scrape
// intervals, so that every series alive at the start has a sample before
// it. A series without one counts from zero (sequential.Increments): with
// 15 s scrapes and a lookback of 10 s, a third of the live series would
// have their whole history counted as requests of this analysis.
//
// Example: period 5s, scrapes every 15s → 30s; scrapes every 1s → 10s.
func comparisonLookback(period, scrape time.Duration) time.Duration {
	return max(2*period, 2*scrape)
}

// leMatch is a regular expression matching every way a bucket's le label
// may spell edge: as the exporter wrote it ("250", "2.5e+03") and as
// Prometheus 3 stores classic histograms' le values, normalised to a
// float ("250.0"). Matching one spelling only finds nothing on the other
// Prometheus.
//
// Example: 250 → `250|250\.0|2\.5e\+02`; 3600000 →
// `3600000|3600000\.0|3\.6e\+06`.
func leMatch(edge float64) string {
	var forms []string
	for _, f := range []string{
		strconv.FormatFloat(edge, 'f', -1, 64),
		strconv.FormatFloat(edge, 'f', 1, 64),
		strconv.FormatFloat(edge, 'e', -1, 64),
		strconv.FormatFloat(edge, 'g', -1, 64),
	} {
		if q := regexp.QuoteMeta(f); !slices.Contains(forms, q) {
			forms = append(forms, q)
		}
	}
	return strings.Join(forms, "|")
}

// istioBuckets are the edges (ms) of Istio's default request-duration
// histogram.
var istioBuckets = []float64{1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000}

// slowEdge is the bucket edge above which the comparison counts a request
// as slow: canary.io/max-latency rounded up to an edge of Istio's default
// buckets. It comes from the frozen settings, so it is fixed when the
// template is held, never chosen after seeing the data.
//
// Example: 500ms → 500; 300ms → 500; 2s → 2500; 2h → 3600000.
func slowEdge(max time.Duration) float64 {
	ms := float64(max) / float64(time.Millisecond)
	for _, b := range istioBuckets {
		if b >= ms {
			return b
		}
	}
	return istioBuckets[len(istioBuckets)-1]
}
