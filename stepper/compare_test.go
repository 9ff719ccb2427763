package stepper

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

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
	var asked []string
	q := samplesFunc(func(promql string) { asked = append(asked, promql) })
	start := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	_, err := compare(context.Background(), q, contract.DefaultSettings(), "bookinfo", "reviews-canary", "reviews", "v4.1", start, start.Add(20*time.Second), 5*time.Second, 30*time.Second)
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
