package stepper

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
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
	v, err := p.query(ctx, "comparison", promql, at)
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
		comparisonSamples.Add(float64(len(s.Samples)))
	}
	return out, nil
}

// comparison is one analysis' continuous comparison, kept between
// passes: the e-processes after the intervals counted so far and the
// counters' baselines, so that a pass reads only the samples since its
// last interval (and a lookback), not the whole analysis. It is rebuilt
// from the analysis' start, replaying every interval, when the
// controller starts (or takes the lease over) and whenever what it was
// built for changes: the replay gives the same e-processes, so alpha is
// never spent twice.
type comparison struct {
	// built names what it was built for: the analysis' start, the
	// revision, the workloads and every setting of the test.
	built   string
	rollout sequential.Rollout
	// closed is the number of intervals counted.
	closed int
	// counters are the canary's (0) and stable's (1) counters: requests,
	// 5xx, the histogram's _count, its fast bucket.
	counters [2][4]sequential.Counter
}

// compare runs the continuous canary-vs-stable comparison of error rates
// and of slow-request rates (alpha split between the two) over the
// analysis so far, continuing c (a zero comparison, or one built for
// another analysis, starts from the analysis' start): the raw samples of
// istio_requests_total and of the request-duration histogram of both
// workloads since the last interval counted (and lookback before it, so
// that a series seen for the first time has a starting value: at least
// two scrape intervals, see comparisonLookback), differenced into
// intervals of period (sequential.Counter), each interval added to one
// e-process per rate. c changes only when every read succeeded.
//
// The canary arm counts only the series of the revision under test
// (canaryRevision, its pods' canonical revision, or series without that
// label, for meshes that drop it): the canary's workload name outlives
// its revisions, and the previous canary's pods may have served a last
// few requests, through the Service, that were not scraped before the
// start.
func compare(ctx context.Context, q SampleQuerier, c *comparison, s contract.Settings, namespace, canary, stable, canaryRevision string, start, now time.Time, period, lookback time.Duration) (sequential.Verdict, error) {
	edge := slowEdge(s.MaxLatency)
	built := fmt.Sprintf("%d %s %s/%s/%s %v %v %v %v", start.UnixNano(), canaryRevision, namespace, canary, stable, s.Confidence, s.Tolerance, edge, period)
	ends := sequential.Bounds(start, period, now.Add(-time.Second))
	if c.built != built || c.closed > len(ends) {
		r, err := sequential.NewRollout(sequential.Settings{
			Confidence: s.Confidence, Tolerance: s.Tolerance,
			Latency: true, SlowerThan: time.Duration(edge * float64(time.Millisecond)),
		})
		if err != nil {
			return sequential.Verdict{}, err
		}
		*c = comparison{built: built, rollout: r}
	}
	from := start
	if c.closed > 0 {
		from = ends[c.closed-1]
	}
	ends = ends[c.closed:]
	if len(ends) == 0 {
		return c.rollout.Decide(), nil
	}
	window := now.Sub(from) + lookback
	window = window.Truncate(time.Second) + time.Second
	read := func(metric, workload, extra string) ([]sequential.Series, error) {
		if workload == canary {
			extra += fmt.Sprintf(`,destination_canonical_revision=~%q`, regexp.QuoteMeta(canaryRevision)+"|")
		}
		return q.Samples(ctx, fmt.Sprintf(`%s{reporter="destination",destination_workload_namespace=%q,destination_workload=%q%s}[%s]`,
			metric, namespace, workload, extra, contract.PromDuration(window)), now)
	}
	le := fmt.Sprintf(`,le=~%q`, leMatch(edge))
	// The eight reads at once: a pass waits for the slowest, not the sum.
	var series [2][4][]sequential.Series
	var failed [2][4]error
	var wg sync.WaitGroup
	for i, wl := range []string{canary, stable} {
		for j, sel := range [4][2]string{
			{"istio_requests_total", ""}, {"istio_requests_total", `,response_code=~"5.."`},
			{"istio_request_duration_milliseconds_count", ""}, {"istio_request_duration_milliseconds_bucket", le},
		} {
			wg.Go(func() { series[i][j], failed[i][j] = read(sel[0], wl, sel[1]) })
		}
	}
	wg.Wait()
	for i := range failed {
		for _, err := range failed[i] {
			if err != nil {
				return sequential.Verdict{}, err
			}
		}
	}
	// Every read succeeded: count them.
	var errs, slow [2][]sequential.Arm
	for i := range series {
		var n [4][]sequential.Count
		for j := range series[i] {
			n[j] = c.counters[i][j].Advance(series[i][j], from, ends)
		}
		errs[i] = sequential.ArmsOf(n[0], n[1])
		slow[i] = sequential.SlowArmsOf(n[2], n[3])
	}
	errIntervals := sequential.Intervals(errs[0], errs[1], from, ends)
	slowIntervals := sequential.Intervals(slow[0], slow[1], from, ends)
	for i := range errIntervals {
		c.rollout = c.rollout.Update(errIntervals[i], slowIntervals[i])
	}
	c.closed += len(ends)
	return c.rollout.Decide(), nil
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
