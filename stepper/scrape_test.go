package stepper

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"
)

func TestLongestScrape(t *testing.T) {
	targets := []target{
		{ScrapePool: "kubernetes-pods", Labels: map[string]string{"job": "kubernetes-pods"}, ScrapeInterval: "15s"},
		{ScrapePool: "kubernetes-pods-slow", Labels: map[string]string{"job": "kubernetes-pods-slow"}, ScrapeInterval: "30s"},
		{ScrapePool: "prometheus", Labels: map[string]string{"job": "prometheus"}, ScrapeInterval: "1m"},
		{ScrapePool: "old", Labels: map[string]string{"job": "old"}}, // an old Prometheus: no scrapeInterval
	}
	for _, tc := range []struct {
		name string
		jobs map[string]bool
		want time.Duration
		err  string
	}{
		{"the jobs exporting Istio's metrics", map[string]bool{"kubernetes-pods": true}, 15 * time.Second, ""},
		{"the longest of them", map[string]bool{"kubernetes-pods": true, "kubernetes-pods-slow": true}, 30 * time.Second, ""},
		{"no Istio series yet: every target", nil, time.Minute, ""},
		{"Istio series from a job with no target (federated): every target", map[string]bool{"federate": true}, time.Minute, ""},
	} {
		got, err := longestScrape(targets, tc.jobs)
		if got != tc.want || (err != nil) != (tc.err != "") {
			t.Errorf("%s: longestScrape = %v, %v; want %v", tc.name, got, err, tc.want)
		}
	}
	if _, err := longestScrape(targets[3:], nil); err == nil || !strings.Contains(err.Error(), "no active target reports a scrape interval") {
		t.Errorf("no intervals reported: err %v", err)
	}
	if _, err := longestScrape([]target{{ScrapePool: "x", ScrapeInterval: "soon"}}, nil); err == nil {
		t.Error("a bad interval: no error")
	}
}

type fakeDiscoverer struct {
	calls    *int
	interval time.Duration
	err      error
}

func (f fakeDiscoverer) ScrapeInterval(context.Context) (time.Duration, error) {
	*f.calls++
	return f.interval, f.err
}

// TestScrapeIntervals: fixed by the flag, discovered and kept for
// Refresh, asked again after it, and a failure keeps the last value or
// assumes Prometheus' default; the webhook's view never waits.
func TestScrapeIntervals(t *testing.T) {
	ctx := context.Background()
	clk := clocktesting.NewFakePassiveClock(time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC))
	calls := 0
	answer := fakeDiscoverer{calls: &calls, interval: 15 * time.Second}
	s := &ScrapeIntervals{Default: "http://prom", Refresh: time.Minute, Clock: clk,
		Discoverer: func(string) (ScrapeDiscoverer, error) { return answer, nil }}

	if got := s.Known(); got != 0 {
		t.Errorf("Known before any discovery = %v, want 0 (unknown)", got)
	}
	// Never waits: the first Get assumes Prometheus' default and asks in
	// the background.
	if got, err := s.Get(ctx, ""); got != AssumedScrapeInterval || err == nil {
		t.Errorf("first Get = %v, %v; want %v and an error saying it is being discovered", got, err, AssumedScrapeInterval)
	}
	s.wait()
	if got, err := s.Get(ctx, ""); got != 15*time.Second || err != nil || calls != 1 {
		t.Errorf("Get once discovered = %v, %v after %d calls; want 15s, nil, 1", got, err, calls)
	}
	if got := s.Known(); got != 15*time.Second {
		t.Errorf("Known = %v, want 15s", got)
	}
	clk.SetTime(clk.Now().Add(59 * time.Second))
	if got, _ := s.Get(ctx, "http://prom"); got != 15*time.Second || calls != 1 {
		t.Errorf("Get within Refresh = %v after %d calls; want 15s from the cache", got, calls)
	}
	// Prometheus reloaded with a new interval: seen after Refresh.
	answer.interval = 30 * time.Second
	clk.SetTime(clk.Now().Add(time.Second))
	if got, _ := s.Get(ctx, ""); got != 15*time.Second {
		t.Errorf("Get after Refresh = %v; want the last value, 15s, while it is asked again", got)
	}
	s.wait()
	if got, _ := s.Get(ctx, ""); got != 30*time.Second || calls != 2 {
		t.Errorf("Get after the refresh = %v after %d calls; want 30s, 2", got, calls)
	}
	// Discovery fails: the last value stays, with the error.
	answer.err = errors.New("connection refused")
	clk.SetTime(clk.Now().Add(time.Minute))
	s.Get(ctx, "")
	s.wait()
	if got, err := s.Get(ctx, ""); got != 30*time.Second || err == nil {
		t.Errorf("failed Get = %v, %v; want the last value 30s and the error", got, err)
	}
	// Never discovered: Prometheus' default, with the error.
	s.Get(ctx, "http://other")
	s.wait()
	if got, err := s.Get(ctx, "http://other"); got != AssumedScrapeInterval || err == nil {
		t.Errorf("Get of a Prometheus never discovered, failing = %v, %v; want %v and the error", got, err, AssumedScrapeInterval)
	}
	fixed := &ScrapeIntervals{Fixed: 20 * time.Second, Discoverer: func(string) (ScrapeDiscoverer, error) { t.Fatal("discovered despite the flag"); return nil, nil }}
	if got, err := fixed.Get(ctx, "http://prom"); got != 20*time.Second || err != nil || fixed.Known() != 20*time.Second {
		t.Errorf("fixed: Get = %v, %v; Known = %v; want 20s", got, err, fixed.Known())
	}
	var none *ScrapeIntervals
	if got, err := none.Get(ctx, ""); got != AssumedScrapeInterval || err == nil || none.Known() != 0 {
		t.Errorf("nil: Get = %v, %v; want %v and an error", got, err, AssumedScrapeInterval)
	}
}

type blockedDiscoverer struct{ release chan struct{} }

func (b blockedDiscoverer) ScrapeInterval(ctx context.Context) (time.Duration, error) {
	select {
	case <-b.release:
		return 10 * time.Second, nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// TestScrapeIntervalsNeverWait: a Prometheus that does not answer never
// holds the caller (a pass): Get returns the last value at once while the
// discovery waits in the background, asked once however often Get is.
func TestScrapeIntervalsNeverWait(t *testing.T) {
	clk := clocktesting.NewFakePassiveClock(time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC))
	b := blockedDiscoverer{release: make(chan struct{})}
	asked := 0
	s := &ScrapeIntervals{Default: "http://prom", Refresh: time.Minute, Clock: clk, Timeout: time.Hour,
		Discoverer: func(string) (ScrapeDiscoverer, error) { asked++; return b, nil }}
	for range 5 {
		if got, err := s.Get(t.Context(), ""); got != AssumedScrapeInterval || err == nil {
			t.Fatalf("Get while discovering = %v, %v", got, err)
		}
	}
	close(b.release)
	s.wait()
	if got, err := s.Get(t.Context(), ""); got != 10*time.Second || err != nil {
		t.Errorf("Get once answered = %v, %v; want 10s", got, err)
	}
	if asked != 1 {
		t.Errorf("%d discoveries for 5 Gets in a row, want 1", asked)
	}
}
