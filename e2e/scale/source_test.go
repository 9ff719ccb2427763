package scale

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// The Source's exposition parses as Prometheus' text format, holds every
// workload's series with Istio's labels, and its counters grow with the
// clock at the configured rate.
func TestSourceExportsIstioMetrics(t *testing.T) {
	now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	s := &Source{RPS: 10, ErrorRate: 0.1, Now: func() time.Time { return now }}
	s.Add(Workload{"team-1", "app-1", "latest"}, Workload{"team-1", "app-1-canary", "latest"})
	scrape := func() map[string]*model.Sample {
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		p := expfmt.NewTextParser(model.LegacyValidation)
		families, err := p.TextToMetricFamilies(strings.NewReader(rec.Body.String()))
		if err != nil {
			t.Fatalf("not Prometheus' text format: %v\n%s", err, rec.Body.String())
		}
		out := map[string]*model.Sample{}
		for _, mf := range families {
			vec, err := expfmt.ExtractSamples(&expfmt.DecodeOptions{Timestamp: model.Now()}, mf)
			if err != nil {
				t.Fatal(err)
			}
			for _, smp := range vec {
				out[smp.Metric.String()] = smp
			}
		}
		return out
	}
	first := scrape()
	now = now.Add(10 * time.Second)
	second := scrape()
	key := `istio_requests_total{destination_canonical_revision="latest", destination_workload="app-1-canary", destination_workload_namespace="team-1", reporter="destination", response_code="200"}`
	if second[key] == nil {
		t.Fatalf("no series %s in %v", key, second)
	}
	if got := float64(second[key].Value); got != 90 {
		t.Errorf("after 10s at 10 requests/s with 10%% errors: %v successful requests, want 90", got)
	}
	if first[key] != nil && first[key].Value != 0 {
		t.Errorf("at the start the counter is %v", first[key].Value)
	}
	buckets := 0
	for k := range second {
		if strings.HasPrefix(k, "istio_request_duration_milliseconds_bucket{") && strings.Contains(k, `destination_workload="app-1"`) {
			buckets++
		}
	}
	if buckets != len(Buckets)+1 {
		t.Errorf("%d buckets for app-1, want %d (Istio's edges and +Inf)", buckets, len(Buckets)+1)
	}
}
