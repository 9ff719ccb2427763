package plan

import (
	"testing"
	"time"
)

func TestExplainNoData(t *testing.T) {
	base := NoDataFacts{Namespace: "bookinfo", Canary: "reviews-canary", Window: time.Minute, Scrape: 15 * time.Second, ComparedRequests: -1}
	with := func(mod func(*NoDataFacts)) NoDataFacts { f := base; mod(&f); return f }
	for _, tc := range []struct {
		name  string
		facts NoDataFacts
		want  string
	}{
		{"first scrape of a new canary", with(func(f *NoDataFacts) { f.Series, f.MaxSamples = 1, 1 }),
			"the canary's series have 1 sample in the 1m window and rate() needs two (Prometheus scrapes every 15s): the next scrape brings the second"},
		{"window shorter than two scrapes (canary.io/window set too short)", with(func(f *NoDataFacts) { f.Window, f.Series, f.MaxSamples = 10*time.Second, 2, 1 }),
			"the canary's series have 1 sample in the 10s window and rate() needs two (Prometheus scrapes every 15s): set canary.io/window to at least 1m, or remove it"},
		{"label mismatch while the comparison counts requests", with(func(f *NoDataFacts) {
			f.Workloads, f.ComparedRequests = []string{"reviews", "reviews-v2"}, 1431
		}), `no series of istio_requests_total has destination_workload="reviews-canary" in namespace bookinfo over 1m, though the comparison counted 1431 canary requests; the namespace's series name the workloads reviews, reviews-v2: if the canary's requests are among them, the mesh labels workloads differently than the checks select them`},
		{"label mismatch, no comparison", with(func(f *NoDataFacts) { f.Workloads = []string{"reviews"} }),
			`no series of istio_requests_total has destination_workload="reviews-canary" in namespace bookinfo over 1m; the namespace's series name the workloads reviews: if the canary's requests are among them, the mesh labels workloads differently than the checks select them`},
		{"nothing scraped in the namespace", base,
			`no series of istio_requests_total (reporter="destination") in namespace bookinfo over 1m: is Prometheus scraping the mesh's sidecars?`},
		{"series, no requests", with(func(f *NoDataFacts) { f.Series, f.MaxSamples = 1, 4 }),
			"the canary took no requests in the 1m window (its counters did not move): is traffic routed to it?"},
		{"older series idle, the new ones with one sample (15 s scrapes, a canary just routed)", with(func(f *NoDataFacts) {
			f.Window, f.Series, f.MaxSamples, f.SingleSample, f.ComparedRequests = 17*time.Second, 3, 2, 2, 170
		}), "2 of the canary's 3 series have 1 sample in the 17s window and rate() needs two (Prometheus scrapes every 15s): the next scrape brings the second"},
		{"series with requests: nothing to explain", with(func(f *NoDataFacts) { f.Series, f.MaxSamples, f.Requests = 1, 4, 120 }), ""},
	} {
		if got := ExplainNoData(tc.facts); got != tc.want {
			t.Errorf("%s:\n got %q\nwant %q", tc.name, got, tc.want)
		}
	}
}

func TestHiddenErrors(t *testing.T) {
	for _, tc := range []struct {
		series int
		want   string
	}{
		{1, "the canary answered 5xx errors that rate() cannot count yet: 1 series of them has 1 sample in the 30s window (Prometheus scrapes every 15s): the next scrape brings the second"},
		{3, "the canary answered 5xx errors that rate() cannot count yet: 3 series of them have 1 sample in the 30s window (Prometheus scrapes every 15s): the next scrape brings the second"},
	} {
		if got := HiddenErrors(tc.series, 30*time.Second, 15*time.Second); got != tc.want {
			t.Errorf("%d series:\n got %q\nwant %q", tc.series, got, tc.want)
		}
	}
}
