package stepper

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"github.com/canary-io/canary/contract"
	"github.com/canary-io/canary/stepper/sequential"
)

func TestSlowEdge(t *testing.T) {
	for _, tt := range []struct {
		max  time.Duration
		want float64
	}{
		{500 * time.Millisecond, 500}, {300 * time.Millisecond, 500}, {500*time.Millisecond + time.Microsecond, 1000},
		{2 * time.Second, 2500}, {time.Millisecond, 1}, {2 * time.Hour, 3600000},
	} {
		if got := slowEdge(tt.max); got != tt.want {
			t.Errorf("slowEdge(%v) = %v, want %v", tt.max, got, tt.want)
		}
	}
}

// TestLeMatch: the slow-request bucket is found however its le label is
// spelled: as Istio's exporters write it and as Prometheus 3 stores it.
func TestLeMatch(t *testing.T) {
	for _, tt := range []struct {
		edge        float64
		match, miss []string
	}{
		{250, []string{"250", "250.0", "2.5e+02"}, []string{"2500", "25", "250.5", "2500.0", "1250"}},
		{1, []string{"1", "1.0", "1e+00"}, []string{"10", "0.1", "+Inf"}},
		{3600000, []string{"3600000", "3600000.0", "3.6e+06"}, []string{"360000", "36000000"}},
	} {
		// Prometheus anchors label regular expressions at both ends.
		re := regexp.MustCompile("^(?:" + leMatch(tt.edge) + ")$")
		for _, s := range tt.match {
			if !re.MatchString(s) {
				t.Errorf("leMatch(%v) = %s does not match le=%q", tt.edge, leMatch(tt.edge), s)
			}
		}
		for _, s := range tt.miss {
			if re.MatchString(s) {
				t.Errorf("leMatch(%v) = %s matches le=%q", tt.edge, leMatch(tt.edge), s)
			}
		}
	}
}

func TestComparisonLookback(t *testing.T) {
	for _, tc := range []struct{ period, scrape, want time.Duration }{
		{5 * time.Second, 15 * time.Second, 30 * time.Second},
		{5 * time.Second, time.Second, 10 * time.Second},
		{5 * time.Second, time.Minute, 2 * time.Minute},
	} {
		if got := comparisonLookback(tc.period, tc.scrape); got != tc.want {
			t.Errorf("comparisonLookback(%v, %v) = %v, want %v", tc.period, tc.scrape, got, tc.want)
		}
	}
}

func TestCanonicalRevision(t *testing.T) {
	for _, tc := range []struct {
		labels map[string]string
		want   string
	}{
		{map[string]string{"app": "reviews", "version": "v2"}, "v2"},
		{map[string]string{"app": "reviews", "version": "v2", "app.kubernetes.io/version": "2.1"}, "2.1"},
		{map[string]string{"version": "v2", "service.istio.io/canonical-revision": "blue"}, "blue"},
		{map[string]string{"app": "reviews"}, "latest"},
	} {
		if got := canonicalRevision(tc.labels); got != tc.want {
			t.Errorf("canonicalRevision(%v) = %q, want %q", tc.labels, got, tc.want)
		}
	}
}

// store is Prometheus holding recorded series: a range selector returns
// the samples within its window of the series whose labels its matchers
// match (=, =~, !=, !~; regular expressions anchored, as Prometheus
// anchors them).
type store struct {
	mu      sync.Mutex
	series  []*model.SampleStream
	queries []string
	fail    func(promql string) error
}

var (
	selectorOf = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)\{(.*)\}\[([0-9a-z]+)\]$`)
	matcherOf  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)(=~|!~|!=|=)("(?:[^"\\]|\\.)*")`)
)

func (st *store) Matrix(_ context.Context, promql string, at time.Time) (model.Matrix, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.queries = append(st.queries, promql)
	if st.fail != nil {
		if err := st.fail(promql); err != nil {
			return nil, err
		}
	}
	m := selectorOf.FindStringSubmatch(promql)
	if m == nil {
		return nil, fmt.Errorf("not a range selector: %s", promql)
	}
	window, err := model.ParseDuration(m[3])
	if err != nil {
		return nil, err
	}
	type matcher struct {
		label, op string
		re        *regexp.Regexp
		value     string
	}
	var ms []matcher
	for _, x := range matcherOf.FindAllStringSubmatch(m[2], -1) {
		v, err := strconv.Unquote(x[3])
		if err != nil {
			return nil, err
		}
		ms = append(ms, matcher{x[1], x[2], regexp.MustCompile("^(?:" + v + ")$"), v})
	}
	var out model.Matrix
	for _, ss := range st.series {
		if string(ss.Metric[model.MetricNameLabel]) != m[1] {
			continue
		}
		match := true
		for _, x := range ms {
			v := string(ss.Metric[model.LabelName(x.label)])
			switch x.op {
			case "=":
				match = match && v == x.value
			case "!=":
				match = match && v != x.value
			case "=~":
				match = match && x.re.MatchString(v)
			case "!~":
				match = match && !x.re.MatchString(v)
			}
		}
		if !match {
			continue
		}
		var in []model.SamplePair
		for _, p := range ss.Values {
			if p.Timestamp.Time().After(at.Add(-time.Duration(window))) && !p.Timestamp.Time().After(at) {
				in = append(in, p)
			}
		}
		if len(in) > 0 {
			out = append(out, &model.SampleStream{Metric: ss.Metric, Values: in})
		}
	}
	return out, nil
}

func (st *store) Vector(context.Context, string, time.Time) (model.Vector, error) {
	return nil, fmt.Errorf("not recorded")
}

func (st *store) asked() []string {
	st.mu.Lock()
	defer st.mu.Unlock()
	return slices.Clone(st.queries)
}

// record adds one workload's series to the store, as Istio's sidecars
// export them: pods scraped every scrape, serving rps requests a second
// of which errRate fail (code 503, a series that appears at the first
// 5xx) and slowRate are slower than 500 ms; a pod restarts now and then
// (its counters reset) and misses scrapes. The duration histogram has
// buckets at 250 and 500 (le spelled as Prometheus 3 stores it, "500.0").
func (st *store) record(rng *rand.Rand, namespace, workload, revision string, start, until time.Time, scrape time.Duration, rps, errRate, slowRate float64) {
	for pod := range 1 + rng.IntN(3) {
		labels := func(metric string, extra ...string) model.Metric {
			m := model.Metric{model.MetricNameLabel: model.LabelValue(metric), "reporter": "destination",
				"destination_workload_namespace": model.LabelValue(namespace), "destination_workload": model.LabelValue(workload),
				"pod": model.LabelValue(fmt.Sprintf("%s-%d", workload, pod))}
			if revision != "" {
				m["destination_canonical_revision"] = model.LabelValue(revision)
			}
			for i := 0; i < len(extra); i += 2 {
				m[model.LabelName(extra[i])] = model.LabelValue(extra[i+1])
			}
			return m
		}
		series := map[string]*model.SampleStream{}
		add := func(m model.Metric, at time.Time, v float64) {
			k := m.String()
			ss := series[k]
			if ss == nil {
				ss = &model.SampleStream{Metric: m}
				series[k] = ss
				st.series = append(st.series, ss)
			}
			ss.Values = append(ss.Values, model.SamplePair{Timestamp: model.TimeFromUnixNano(at.UnixNano()), Value: model.SampleValue(v)})
		}
		var ok, failed, slow, fast250 float64
		for at := start.Add(-2*scrape + time.Duration(rng.Int64N(int64(scrape)))); !at.After(until); at = at.Add(scrape) {
			at = at.Truncate(time.Millisecond)
			if rng.IntN(25) == 0 {
				ok, failed, slow, fast250 = 0, 0, 0, 0 // the pod restarted
			}
			n := int(rps * scrape.Seconds() * (0.5 + rng.Float64()))
			for range n {
				if rng.Float64() < errRate {
					failed++
				} else {
					ok++
				}
				if rng.Float64() < slowRate {
					slow++
				} else if rng.IntN(2) == 0 {
					fast250++
				}
			}
			if rng.IntN(15) == 0 {
				continue // a missed scrape
			}
			add(labels(requestsMetric, "response_code", "200"), at, ok)
			if failed > 0 {
				add(labels(requestsMetric, "response_code", "503"), at, failed)
			}
			add(labels(durationCount, "response_code", "200"), at, ok+failed)
			add(labels(durationBuckets, "response_code", "200", "le", "250.0"), at, fast250)
			add(labels(durationBuckets, "response_code", "200", "le", "500.0"), at, ok+failed-slow)
		}
	}
}

// TestFanOutPicksEachAnalysisSeries: from one group's reads, each
// analysis gets its canary's series of the revision under test (or
// without the label) and all of stable's, its 5xx among its requests,
// its own edge's bucket however it is spelled; a workload missing from
// the reads has no series.
func TestFanOutPicksEachAnalysisSeries(t *testing.T) {
	s := func(metric, ns, wl string, kv ...string) *model.SampleStream {
		m := model.Metric{model.MetricNameLabel: model.LabelValue(metric), "destination_workload_namespace": model.LabelValue(ns), "destination_workload": model.LabelValue(wl)}
		for i := 0; i < len(kv); i += 2 {
			m[model.LabelName(kv[i])] = model.LabelValue(kv[i+1])
		}
		return &model.SampleStream{Metric: m, Values: []model.SamplePair{{Timestamp: 1000, Value: 1}}}
	}
	idx := indexReads([3]model.Matrix{
		{
			s(requestsMetric, "shop", "reviews-canary", "destination_canonical_revision", "v2", "response_code", "200"),
			s(requestsMetric, "shop", "reviews-canary", "destination_canonical_revision", "v2", "response_code", "503"),
			s(requestsMetric, "shop", "reviews-canary", "destination_canonical_revision", "v1", "response_code", "200"), // the previous canary's
			s(requestsMetric, "shop", "reviews-canary", "response_code", "500"),                                         // no revision label
			s(requestsMetric, "shop", "reviews", "destination_canonical_revision", "v1", "response_code", "200"),
			s(requestsMetric, "shop", "reviews", "destination_canonical_revision", "v1", "response_code", "5000"), // not a 5xx
			s(requestsMetric, "other", "reviews", "response_code", "503"),                                         // another namespace's
			s(requestsMetric, "shop", "ratings", "response_code", "503"),                                          // another analysis'
		},
		{
			s(durationCount, "shop", "reviews-canary", "destination_canonical_revision", "v2"),
			s(durationCount, "shop", "reviews", "destination_canonical_revision", "v1"),
		},
		{
			s(durationBuckets, "shop", "reviews-canary", "destination_canonical_revision", "v2", "le", "500.0"),
			s(durationBuckets, "shop", "reviews-canary", "destination_canonical_revision", "v2", "le", "2500"),
			s(durationBuckets, "shop", "reviews", "le", "500"),
			s(durationBuckets, "shop", "reviews", "le", "5e+02"),
			s(durationBuckets, "shop", "reviews", "le", "+Inf"),
		},
	})
	got := fanOut(idx, comparisonRequest{namespace: "shop", canary: "reviews-canary", stable: "reviews", revision: "v2", edge: 500})
	counts := func(a arms) [2][4]int {
		var n [2][4]int
		for i := range a {
			for j := range a[i] {
				n[i][j] = len(a[i][j])
			}
		}
		return n
	}
	if want := [2][4]int{{3, 2, 1, 1}, {2, 0, 1, 2}}; counts(got) != want {
		t.Errorf("series per arm and counter = %v, want %v", counts(got), want)
	}
	for _, ss := range got[0][0] {
		if strings.Contains(ss.ID, `"v1"`) {
			t.Errorf("the canary arm counts the previous revision's series %s", ss.ID)
		}
	}
	missing := fanOut(idx, comparisonRequest{namespace: "shop", canary: "details-canary", stable: "details", revision: "v2", edge: 500})
	if counts(missing) != ([2][4]int{}) {
		t.Errorf("a workload missing from the reads has series: %v", counts(missing))
	}
}

// TestGroupSelectors: one read per metric for a whole group, workloads
// and namespaces quoted, every edge the group tests.
func TestGroupSelectors(t *testing.T) {
	sels := groupSelectors([]comparisonRequest{
		{namespace: "shop", canary: "reviews-canary", stable: "reviews", edge: 500},
		{namespace: "shop", canary: "a.b-canary", stable: "a.b", edge: 2500},
		{namespace: "bank", canary: "reviews-canary", stable: "reviews", edge: 500},
	}, 35*time.Second)
	want := [3]string{
		`istio_requests_total{reporter="destination",destination_workload_namespace=~"shop|bank",destination_workload=~"reviews-canary|reviews|a\\.b-canary|a\\.b"}[35s]`,
		`istio_request_duration_milliseconds_count{reporter="destination",destination_workload_namespace=~"shop|bank",destination_workload=~"reviews-canary|reviews|a\\.b-canary|a\\.b"}[35s]`,
		`istio_request_duration_milliseconds_bucket{reporter="destination",destination_workload_namespace=~"shop|bank",destination_workload=~"reviews-canary|reviews|a\\.b-canary|a\\.b",le=~"500|500\\.0|5e\\+02|2500|2500\\.0|2\\.5e\\+03"}[35s]`,
	}
	if sels != want {
		t.Errorf("groupSelectors:\n got %q\nwant %q", sels, want)
	}
}

// TestIncrementalComparisonEqualsReplay: comparisons continued from read
// to read in one batch (a group's reads of only the samples since the
// last interval, fanned out) give at every read the verdict (e-values,
// rates, decision) of each comparison rebuilt alone from its analysis'
// start, as after a restart; on recorded streams with counter resets, 5xx
// series that appear late, missed scrapes, the previous revision's
// series, healthy canaries and bad ones.
func TestIncrementalComparisonEqualsReplay(t *testing.T) {
	settings := contract.DefaultSettings()
	start := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	regressions, compared := 0, 0
	for seed := range uint64(25) {
		rng := rand.New(rand.NewPCG(seed, 11))
		scrape := []time.Duration{time.Second, 5 * time.Second, 15 * time.Second}[rng.IntN(3)]
		period := 5 * time.Second
		until := start.Add(time.Duration(60+rng.IntN(240)) * time.Second)
		st := &store{}
		var reqs []comparisonRequest
		for i := range 3 {
			ns := fmt.Sprintf("team-%d", i)
			// Analyses that started at different moments.
			began := start.Add(time.Duration(rng.IntN(20)) * time.Second)
			reqs = append(reqs, comparisonRequest{namespace: ns, canary: "reviews-canary", stable: "reviews", revision: "v2", start: began,
				confidence: settings.Confidence, tolerance: settings.Tolerance, edge: slowEdge(settings.MaxLatency),
				period: period, lookback: comparisonLookback(period, scrape)})
			st.record(rng, ns, "reviews-canary", "v2", began, until, scrape, 5+rng.Float64()*50, []float64{0.001, 0.05, 0.3}[rng.IntN(3)], 0.01)
			st.record(rng, ns, "reviews-canary", "v1", began.Add(-time.Minute), began.Add(20*time.Second), scrape, 20, 0.5, 0.5) // the previous canary
			st.record(rng, ns, "reviews", "v1", began, until, scrape, 5+rng.Float64()*50, 0.001, 0.01)
		}
		cs := make([]comparison, len(reqs))
		done := make([]bool, len(reqs))
		for now := start.Add(25 * time.Second); !now.After(until); now = now.Add(time.Duration(1000+rng.IntN(9000)) * time.Millisecond) {
			var window time.Duration
			for i, a := range reqs {
				window = max(window, groupWindow(cs[i].from(a), a.lookback, now))
			}
			idx, err := readGroup(t.Context(), st, reqs, window, now)
			if err != nil {
				t.Fatal(err)
			}
			for i, a := range reqs {
				got, err := cs[i].advance(a, fanOut(idx, a), now)
				if err != nil {
					t.Fatal(err)
				}
				if done[i] {
					continue
				}
				want, err := compare(t.Context(), st, &comparison{}, a, now)
				if err != nil {
					t.Fatal(err)
				}
				compared++
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("seed %d, analysis %d, %v into it (scrapes %v): batched incremental and rebuilt verdicts differ\n incremental %+v\n rebuilt     %+v", seed, i, now.Sub(a.start), scrape, got, want)
				}
				if got.Regression {
					regressions++
					done[i] = true
				}
			}
		}
	}
	if regressions == 0 {
		t.Error("no stream had a regression: the test compares only healthy verdicts")
	}
	t.Logf("%d verdicts compared; %d of 75 analyses ended in a regression", compared, regressions)
}

// compare reads and counts one analysis alone: the reference the
// incremental reads are checked against (a comparison rebuilt from the
// analysis' start reads this way too, in its catch-up group).
func compare(ctx context.Context, q MatrixQuerier, c *comparison, a comparisonRequest, now time.Time) (sequential.Verdict, error) {
	idx, err := readGroup(ctx, q, []comparisonRequest{a}, groupWindow(c.from(a), a.lookback, now), now)
	if err != nil {
		return sequential.Verdict{}, err
	}
	return c.advance(a, fanOut(idx, a), now)
}
