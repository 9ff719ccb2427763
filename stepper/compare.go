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

// MatrixQuerier runs range queries (raw samples) and instant queries
// returning many series: the batched reads of the background Reader.
type MatrixQuerier interface {
	// Matrix runs a range selector (istio_requests_total{...}[2m]).
	Matrix(ctx context.Context, promql string, at time.Time) (model.Matrix, error)
	// Vector runs an instant query grouped by labels.
	Vector(ctx context.Context, promql string, at time.Time) (model.Vector, error)
}

// Matrix implements MatrixQuerier.
func (p *Prometheus) Matrix(ctx context.Context, promql string, at time.Time) (model.Matrix, error) {
	v, err := p.query(ctx, "comparison", promql, at)
	if err != nil {
		return nil, fmt.Errorf("query prometheus: %w", err)
	}
	m, ok := v.(model.Matrix)
	if !ok {
		return nil, fmt.Errorf("query prometheus: a %s result, want a matrix of raw samples", v.Type())
	}
	for _, ss := range m {
		comparisonSamples.Add(float64(len(ss.Values)))
	}
	return m, nil
}

// Vector implements MatrixQuerier.
func (p *Prometheus) Vector(ctx context.Context, promql string, at time.Time) (model.Vector, error) {
	v, err := p.query(ctx, "check", promql, at)
	if err != nil {
		return nil, fmt.Errorf("query prometheus: %w", err)
	}
	vec, ok := v.(model.Vector)
	if !ok {
		return nil, fmt.Errorf("query prometheus: a %s result, want a vector", v.Type())
	}
	return vec, nil
}

// comparisonRequest is what one analysis' continuous comparison reads
// and tests: the canary's and stable's counters in one namespace, the
// canary's only for the revision under test, from the analysis' start.
type comparisonRequest struct {
	// url is the Prometheus (canary.io/prometheus, or the controller's).
	url                       string
	namespace, canary, stable string
	// revision is the canary pods' canonical revision.
	revision              string
	start                 time.Time
	confidence, tolerance float64
	// edge is the bucket edge (ms) of a slow request (slowEdge).
	edge float64
	// period is the length of an interval; lookback how far before the
	// first interval a new series finds its baseline
	// (comparisonLookback).
	period, lookback time.Duration
}

// built names what a comparison of a is built for: every setting of the
// test, the analysis' start, the revision and the workloads. The lookback
// is not among them: it only widens the reads.
func (a comparisonRequest) built() string {
	return fmt.Sprintf("%s %d %s %s/%s/%s %v %v %v %v", a.url, a.start.UnixNano(), a.revision, a.namespace, a.canary, a.stable, a.confidence, a.tolerance, a.edge, a.period)
}

// comparison is one analysis' continuous comparison, kept between
// reads: the e-processes after the intervals counted so far and the
// counters' baselines, so that a read needs only the samples since its
// last interval (and a lookback), not the whole analysis. It is rebuilt
// from the analysis' start, replaying every interval, when the
// controller starts (or takes the lease over) and whenever what it was
// built for changes: the replay gives the same e-processes, so alpha is
// never spent twice.
type comparison struct {
	// built is comparisonRequest.built of the analysis it counts.
	built   string
	rollout sequential.Rollout
	// closed is the number of intervals counted.
	closed int
	// counters are the canary's (0) and stable's (1) counters: requests,
	// 5xx, the histogram's _count, its fast bucket.
	counters [2][4]sequential.Counter
}

// from is where the intervals c has yet to count begin for a: the end of
// the last one counted, or a's start when c was built for another
// analysis (or none).
func (c *comparison) from(a comparisonRequest) time.Time {
	if c.built != a.built() || c.closed == 0 {
		return a.start
	}
	return a.start.Add(time.Duration(c.closed) * a.period)
}

// arms are the raw samples one analysis' comparison reads, canary (0)
// and stable (1): requests, 5xx, the histogram's _count, its fast bucket.
type arms [2][4][]sequential.Series

// advance counts the intervals of a that have ended by now (a second of
// margin for the scrape) from the samples read, continuing c (starting
// afresh when it was built for another analysis), and returns the
// verdict. read must hold every sample of a's workloads from
// c.from(a) - a.lookback to now.
func (c *comparison) advance(a comparisonRequest, read arms, now time.Time) (sequential.Verdict, error) {
	ends := sequential.Bounds(a.start, a.period, now.Add(-time.Second))
	if c.built != a.built() || c.closed > len(ends) {
		r, err := sequential.NewRollout(sequential.Settings{
			Confidence: a.confidence, Tolerance: a.tolerance,
			Latency: true, SlowerThan: time.Duration(a.edge * float64(time.Millisecond)),
		})
		if err != nil {
			return sequential.Verdict{}, err
		}
		*c = comparison{built: a.built(), rollout: r}
	}
	from := c.from(a)
	ends = ends[c.closed:]
	if len(ends) == 0 {
		return c.rollout.Decide(), nil
	}
	var errs, slow [2][]sequential.Arm
	for i := range read {
		var n [4][]sequential.Count
		for j := range read[i] {
			n[j] = c.counters[i][j].Advance(read[i][j], from, ends)
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

// The metrics the comparison reads.
const (
	requestsMetric  = "istio_requests_total"
	durationCount   = "istio_request_duration_milliseconds_count"
	durationBuckets = "istio_request_duration_milliseconds_bucket"
)

// groupSelectors are the three range selectors that read the comparison's
// raw samples for a group of analyses at once: every series of their
// workloads (canary and stable) in their namespaces, over window, for the
// requests (all response codes: the 5xx are picked out by fanOut), the
// histogram's _count, and its buckets at the edges the group tests.
// Workload names are matched exactly (quoted in the regular expression).
//
// Example: one analysis, shop/reviews-canary vs reviews, edge 500,
// window 35s → istio_requests_total{reporter="destination",
// destination_workload_namespace=~"shop",
// destination_workload=~"reviews-canary|reviews"}[35s], ... _count ...,
// ..._bucket{...,le=~"500|500\.0|5e\+02"}[35s].
func groupSelectors(group []comparisonRequest, window time.Duration) [3]string {
	var namespaces, workloads names
	var edges []string
	for _, a := range group {
		namespaces.add(a.namespace)
		workloads.add(a.canary, a.stable)
		if m := leMatch(a.edge); !slices.Contains(edges, m) {
			edges = append(edges, m)
		}
	}
	sel := fmt.Sprintf(`{reporter="destination",destination_workload_namespace=~%q,destination_workload=~%q%%s}[%s]`,
		namespaces.match(), workloads.match(), contract.PromDuration(window))
	return [3]string{
		requestsMetric + fmt.Sprintf(sel, ""),
		durationCount + fmt.Sprintf(sel, ""),
		durationBuckets + fmt.Sprintf(sel, fmt.Sprintf(`,le=~%q`, strings.Join(edges, "|"))),
	}
}

// names are the names a batched query matches exactly: each quoted for a
// regular expression, once.
type names []string

func (n *names) add(vs ...string) {
	for _, v := range vs {
		if q := regexp.QuoteMeta(v); !slices.Contains(*n, q) {
			*n = append(*n, q)
		}
	}
}

// match is the regular expression of the names: "a|b\\.c".
func (n names) match() string { return strings.Join(n, "|") }

// groupWindow is the window the group's reads need at now: from the
// earliest interval any of them has yet to count, less the lookback, in
// whole seconds and one more.
func groupWindow(from time.Time, lookback time.Duration, now time.Time) time.Duration {
	w := now.Sub(from) + lookback
	return w.Truncate(time.Second) + time.Second
}

// workloadKey is a workload's namespace and name.
type workloadKey struct{ namespace, workload string }

// readIndex is the answer of a group's three reads, by workload.
type readIndex map[workloadKey][3][]*model.SampleStream

// indexReads sorts the three answers by the workload of each series.
func indexReads(answers [3]model.Matrix) readIndex {
	idx := readIndex{}
	for i, m := range answers {
		for _, ss := range m {
			k := workloadKey{string(ss.Metric["destination_workload_namespace"]), string(ss.Metric["destination_workload"])}
			v := idx[k]
			v[i] = append(v[i], ss)
			idx[k] = v
		}
	}
	return idx
}

// fanOut picks one analysis' samples out of its group's reads: the
// canary's series of the revision under test (or without the label, for
// meshes that drop it) and all of stable's; the 5xx series (a response
// code of three characters starting with 5) among the requests; the
// buckets at the analysis' edge, however Prometheus spells it ("500",
// "500.0"). A workload missing from the reads has no series: its
// intervals are missing, never counted as zero requests.
//
// The canary's workload name outlives its revisions, and the previous
// canary's pods may have served a last few requests, through the Service,
// that were not scraped before the start: they are not this revision's.
func fanOut(idx readIndex, a comparisonRequest) arms {
	var out arms
	for i, wl := range []string{a.canary, a.stable} {
		reads := idx[workloadKey{a.namespace, wl}]
		for _, ss := range reads[0] {
			if i == 0 && !ofRevision(ss.Metric, a.revision) {
				continue
			}
			s := seriesOf(ss)
			out[i][0] = append(out[i][0], s)
			if code := string(ss.Metric["response_code"]); len(code) == 3 && code[0] == '5' {
				out[i][1] = append(out[i][1], s)
			}
		}
		for _, ss := range reads[1] {
			if i == 0 && !ofRevision(ss.Metric, a.revision) {
				continue
			}
			out[i][2] = append(out[i][2], seriesOf(ss))
		}
		for _, ss := range reads[2] {
			if i == 0 && !ofRevision(ss.Metric, a.revision) {
				continue
			}
			if le, err := strconv.ParseFloat(string(ss.Metric["le"]), 64); err == nil && le == a.edge {
				out[i][3] = append(out[i][3], seriesOf(ss))
			}
		}
	}
	return out
}

// ofRevision reports whether a series of the canary's workload is of the
// revision under test: its destination_canonical_revision is it, or is
// not set.
func ofRevision(m model.Metric, revision string) bool {
	r := string(m["destination_canonical_revision"])
	return r == "" || r == revision
}

// seriesOf is a series' samples, named by its labels.
func seriesOf(ss *model.SampleStream) sequential.Series {
	s := sequential.Series{ID: ss.Metric.String(), Samples: make([]sequential.Sample, 0, len(ss.Values))}
	for _, p := range ss.Values {
		s.Samples = append(s.Samples, sequential.Sample{At: p.Timestamp.Time(), Value: float64(p.Value)})
	}
	return s
}

// readGroup runs a group's three reads at once (a read waits for the
// slowest answer, not the sum) and indexes them; any read failing fails
// the group: no analysis in it gets data, none passes.
func readGroup(ctx context.Context, q MatrixQuerier, group []comparisonRequest, window time.Duration, now time.Time) (readIndex, error) {
	sels := groupSelectors(group, window)
	var answers [3]model.Matrix
	var failed [3]error
	var wg sync.WaitGroup
	for i, sel := range sels {
		wg.Go(func() { answers[i], failed[i] = q.Matrix(ctx, sel, now) })
	}
	wg.Wait()
	for _, err := range failed {
		if err != nil {
			return nil, err
		}
	}
	return indexReads(answers), nil
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
