package integration

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/canary-io/canary/stepper"
)

// TestScrapeIntervalFollowsAReload discovers the scrape interval of the
// real Prometheus (3.x, the cluster's) from its targets API, for the job
// that exports istio_requests_total, and follows a reload with a new
// interval, as an operator editing Prometheus' configuration would.
func TestScrapeIntervalFollowsAReload(t *testing.T) {
	ctx := t.Context()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, `istio_requests_total{reporter="destination",destination_workload="web",destination_workload_namespace="scrape",response_code="200"} 7`)
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	if err := env.AddScrapeTarget("scrape-sidecars", []string{l.Addr().String()}, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = env.RemoveScrapeTarget("scrape-sidecars")
		if err := env.SetScrapeInterval(context.Background(), time.Second); err != nil {
			t.Errorf("restore the 1s scrape: %v", err)
		}
	})
	// Refresh of a nanosecond: every Get asks Prometheus.
	s := &stepper.ScrapeIntervals{Default: env.PrometheusURL, Refresh: time.Nanosecond, Timeout: 5 * time.Second}
	for _, want := range []time.Duration{2 * time.Second, 3 * time.Second} {
		if err := env.SetScrapeInterval(ctx, want); err != nil {
			t.Fatal(err)
		}
		var got time.Duration
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			if got, err = s.Get(ctx, ""); err == nil && got == want {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if got != want || err != nil {
			t.Fatalf("after a reload with %s: discovered %v, %v", want, got, err)
		}
		if s.Known() != want {
			t.Errorf("Known() = %v, want %v", s.Known(), want)
		}
	}
}
