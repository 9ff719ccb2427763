package stepper

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"regexp"
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

// TestCompareSelectsTheRevisionUnderTest: the canary arm reads only the
// series of the revision under test, or without the label; the stable arm
// all of its workload's.
func TestCompareSelectsTheRevisionUnderTest(t *testing.T) {
	var mu sync.Mutex
	var asked []string
	q := samplesFunc(func(promql string) {
		mu.Lock()
		defer mu.Unlock()
		asked = append(asked, promql)
	})
	start := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	_, err := compare(context.Background(), q, &comparison{}, contract.DefaultSettings(), "bookinfo", "reviews-canary", "reviews", "v4.1", start, start.Add(20*time.Second), 5*time.Second, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for _, promql := range asked {
		canaryArm := strings.Contains(promql, `destination_workload="reviews-canary"`)
		if selects := strings.Contains(promql, `destination_canonical_revision=~"v4\\.1|"`); selects != canaryArm {
			t.Errorf("%s: selects the revision %v, want %v", promql, selects, canaryArm)
		}
	}
	if len(asked) != 8 {
		t.Errorf("%d queries, want 8", len(asked))
	}
}

type samplesFunc func(promql string)

func (f samplesFunc) Samples(_ context.Context, promql string, _ time.Time) ([]sequential.Series, error) {
	f(promql)
	return nil, nil
}

// recorded is Prometheus holding recorded series: a range selector
// returns the samples of the series it names within its window.
type recorded map[string][]sequential.Series // by selector without its window

var windowOf = regexp.MustCompile(`^(.*)\[([0-9a-z]+)\]$`)

func (r recorded) Samples(_ context.Context, promql string, at time.Time) ([]sequential.Series, error) {
	m := windowOf.FindStringSubmatch(promql)
	if m == nil {
		return nil, fmt.Errorf("not a range selector: %s", promql)
	}
	window, err := model.ParseDuration(m[2])
	if err != nil {
		return nil, err
	}
	var out []sequential.Series
	for _, s := range r[m[1]] {
		var in []sequential.Sample
		for _, smp := range s.Samples {
			if smp.At.After(at.Add(-time.Duration(window))) && !smp.At.After(at) {
				in = append(in, smp)
			}
		}
		if len(in) > 0 {
			out = append(out, sequential.Series{ID: s.ID, Samples: in})
		}
	}
	return out, nil
}

// record makes one workload's four counters in Prometheus: pods scraped
// every scrape, serving rps requests a second of which errRate fail and
// slowRate are slow; a pod restarts now and then (its counters reset),
// misses scrapes, and its 5xx series appears only at its first 5xx.
func (r recorded) record(rng *rand.Rand, selector func(metric, extra string) string, le string, start, until time.Time, scrape time.Duration, rps, errRate, slowRate float64) {
	for pod := range 1 + rng.IntN(3) {
		id := fmt.Sprintf("pod-%d", pod)
		var total, failed, slow float64
		for at := start.Add(-2*scrape + time.Duration(rng.Int64N(int64(scrape)))); !at.After(until); at = at.Add(scrape) {
			if rng.IntN(25) == 0 {
				total, failed, slow = 0, 0, 0 // the pod restarted
			}
			n := int(rps * scrape.Seconds() * (0.5 + rng.Float64()))
			total += float64(n)
			for range n {
				if rng.Float64() < errRate {
					failed++
				}
				if rng.Float64() < slowRate {
					slow++
				}
			}
			if rng.IntN(15) == 0 {
				continue // a missed scrape
			}
			add := func(sel string, v float64) {
				ss := r[sel]
				if len(ss) == 0 || ss[len(ss)-1].ID != id {
					ss = append(ss, sequential.Series{ID: id})
				}
				ss[len(ss)-1].Samples = append(ss[len(ss)-1].Samples, sequential.Sample{At: at, Value: v})
				r[sel] = ss
			}
			add(selector("istio_requests_total", ""), total)
			if failed > 0 {
				add(selector("istio_requests_total", `,response_code=~"5.."`), failed)
			}
			add(selector("istio_request_duration_milliseconds_count", ""), total)
			add(selector("istio_request_duration_milliseconds_bucket", le), total-slow)
		}
	}
}

// TestIncrementalComparisonEqualsReplay: the comparison continued from
// pass to pass, reading only the samples since its last interval, gives
// at every pass the verdict (e-values, rates, decision) of a comparison
// rebuilt from the analysis' start, as after a restart; on recorded
// streams with counter resets, 5xx series that appear late, missed
// scrapes, healthy canaries and bad ones.
func TestIncrementalComparisonEqualsReplay(t *testing.T) {
	settings := contract.DefaultSettings()
	start := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	regressions := 0
	for seed := range uint64(40) {
		rng := rand.New(rand.NewPCG(seed, 11))
		scrape := []time.Duration{time.Second, 5 * time.Second, 15 * time.Second}[rng.IntN(3)]
		period := 5 * time.Second
		lookback := comparisonLookback(period, scrape)
		until := start.Add(time.Duration(60+rng.IntN(240)) * time.Second)
		edge := slowEdge(settings.MaxLatency)
		le := fmt.Sprintf(`,le=~%q`, leMatch(edge))
		rec := recorded{}
		for _, arm := range []struct {
			workload, extra string
			errRate         float64
		}{
			{"reviews-canary", `,destination_canonical_revision=~"v2|"`, []float64{0.001, 0.05, 0.3}[rng.IntN(3)]},
			{"reviews", "", 0.001},
		} {
			sel := func(metric, extra string) string {
				return fmt.Sprintf(`%s{reporter="destination",destination_workload_namespace="shop",destination_workload=%q%s%s}`, metric, arm.workload, extra+arm.extra, "")
			}
			rec.record(rng, sel, le, start, until, scrape, 5+rng.Float64()*50, arm.errRate, 0.01)
		}
		var c comparison
		for now := start.Add(time.Second); !now.After(until); now = now.Add(time.Duration(1000+rng.IntN(9000)) * time.Millisecond) {
			got, err := compare(context.Background(), rec, &c, settings, "shop", "reviews-canary", "reviews", "v2", start, now, period, lookback)
			if err != nil {
				t.Fatal(err)
			}
			want, err := compare(context.Background(), rec, &comparison{}, settings, "shop", "reviews-canary", "reviews", "v2", start, now, period, lookback)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("seed %d, %v into the analysis (scrapes %v): incremental and rebuilt verdicts differ\n incremental %+v\n rebuilt     %+v", seed, now.Sub(start), scrape, got, want)
			}
			if got.Regression {
				regressions++
				break
			}
		}
	}
	if regressions == 0 {
		t.Error("no stream had a regression: the test compares only healthy verdicts")
	}
	t.Logf("%d of 40 streams ended in a regression", regressions)
}
