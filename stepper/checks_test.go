package stepper

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/canary-io/canary/contract"
)

// fakeProm answers queries by the first rule whose substring the query
// contains; no rule is no data.
type fakeProm struct {
	rules  []fakeRule
	labels []string
	mu     sync.Mutex
	asked  []string
}

type fakeRule struct {
	contains string
	value    float64
}

func (f *fakeProm) Query(_ context.Context, q string, _ time.Time) (float64, bool, error) {
	f.mu.Lock()
	f.asked = append(f.asked, q)
	f.mu.Unlock()
	for _, r := range f.rules {
		if strings.Contains(q, r.contains) {
			return r.value, true, nil
		}
	}
	return 0, false, nil
}

func (f *fakeProm) LabelValues(context.Context, string, string, time.Time) ([]string, error) {
	return f.labels, nil
}

func TestRunChecksReadsTheWindow(t *testing.T) {
	s := contract.DefaultSettings()
	s.Interval = 10 * time.Second
	s.Metrics = []contract.Metric{{Name: "errors", Query: `sum(rate(x{w="{{canary}}"}[{{interval}}]))`, Max: new(float64)}}
	p := &fakeProm{rules: []fakeRule{{`sum(rate(x{`, 0}, {"histogram_quantile", 42}, {"* 100", 99.9}}}
	run := checkRun{settings: s, namespace: "bookinfo", canary: "reviews-canary", stable: "reviews",
		scrape: 15 * time.Second, window: contract.Window(s.Interval, 0, 15*time.Second), comparedRequests: -1}
	got := runChecks(context.Background(), p, run, time.Now(), time.Second, nil)
	for _, q := range p.asked {
		if !strings.Contains(q, "[1m]") || strings.Contains(q, "[10s]") {
			t.Errorf("query %s does not read the 1m window", q)
		}
	}
	want := []string{
		"success rate 99.9% over 1m (min 99%, stable 99.9%)",
		"p99 42ms over 1m (max 500ms, stable 42ms)",
		"errors 0 over 1m (max 0, stable 0)",
	}
	for i, c := range got {
		if c.String() != want[i] {
			t.Errorf("check %d reads %q, want %q", i, c.String(), want[i])
		}
	}
}

func TestRunChecksExplainsNoData(t *testing.T) {
	s := contract.DefaultSettings()
	run := checkRun{settings: s, namespace: "bookinfo", canary: "reviews-canary", stable: "reviews",
		scrape: 15 * time.Second, window: time.Minute, comparedRequests: 1431}
	for _, tc := range []struct {
		name   string
		prom   *fakeProm
		detail string
	}{
		{"one scrape so far", &fakeProm{rules: []fakeRule{{"count(count_over_time", 2}, {"max(count_over_time", 1}}},
			"the canary's series have 1 sample in the 1m window"},
		{"the mesh names the workload otherwise", &fakeProm{labels: []string{"reviews", "reviews-v2"}},
			`no series of istio_requests_total has destination_workload="reviews-canary" in namespace bookinfo over 1m, though the comparison counted 1431 canary requests; the namespace's series name the workloads reviews, reviews-v2`},
	} {
		got := runChecks(context.Background(), tc.prom, run, time.Now(), time.Second, nil)
		for _, c := range got[:2] {
			if c.HasData || !strings.Contains(c.Detail, tc.detail) {
				t.Errorf("%s: %s: detail %q, want it to say %q", tc.name, c.Name, c.Detail, tc.detail)
			}
			if c.Passed() {
				t.Errorf("%s: %s passed without data", tc.name, c.Name)
			}
		}
	}
}

// TestRunChecksWaitsForHiddenErrors: while a series of the canary's 5xx
// answers has a single sample in the window, rate() counts none of its
// errors and the success rate reads too high: the check has no data (it
// waits for the next scrape), never a pass; a failed count is a failed
// query.
func TestRunChecksWaitsForHiddenErrors(t *testing.T) {
	s := contract.DefaultSettings()
	run := checkRun{settings: s, namespace: "bookinfo", canary: "reviews-canary", stable: "reviews",
		scrape: 15 * time.Second, window: time.Minute, comparedRequests: -1}
	healthy := []fakeRule{{"histogram_quantile", 42}, {"* 100", 100}}
	for _, tc := range []struct {
		name    string
		prom    Querier
		passed  bool
		failed  bool
		message string
	}{
		{"no new series of errors", &fakeProm{rules: healthy}, true, false, "success rate 100.0% over 1m"},
		{"a new series of errors, one sample", &fakeProm{rules: append([]fakeRule{{`response_code=~"5.*"}[1m]) == 1) and istio_requests_total{`, 1}}, healthy...)},
			false, false, "success rate no data over 1m: the canary answered 5xx errors that rate() cannot count yet: 1 series of them has 1 sample in the 1m window (Prometheus scrapes every 15s)"},
		{"the count fails", failOn{&fakeProm{rules: healthy}, `response_code=~"5.*"`},
			false, true, "counting the canary's new series of 5xx answers: query prometheus: boom"},
	} {
		got := runChecks(context.Background(), tc.prom, run, time.Now(), time.Second, nil)
		sr := got[0]
		if sr.Passed() != tc.passed || sr.QueryFailed != tc.failed || sr.Pending != (!tc.passed && !tc.failed) || !strings.Contains(sr.String(), tc.message) {
			t.Errorf("%s: %q (passed %v, query failed %v), want passed %v, failed %v, saying %q", tc.name, sr.String(), sr.Passed(), sr.QueryFailed, tc.passed, tc.failed, tc.message)
		}
	}
	p := &fakeProm{rules: healthy}
	runChecks(context.Background(), p, run, time.Now(), time.Second, nil)
	want := `count((count_over_time(istio_requests_total{reporter="destination",destination_workload_namespace="bookinfo",destination_workload=~"reviews-canary",response_code=~"5.*"}[1m]) == 1) and istio_requests_total{reporter="destination",destination_workload_namespace="bookinfo",destination_workload=~"reviews-canary",response_code=~"5.*"})`
	if !slices.Contains(p.asked, want) {
		t.Errorf("the canary's new series of errors were not counted: asked %q", p.asked)
	}
}

// failOn fails every query containing text.
type failOn struct {
	Querier
	text string
}

func (f failOn) Query(ctx context.Context, q string, at time.Time) (float64, bool, error) {
	if strings.Contains(q, f.text) {
		return 0, false, errors.New("query prometheus: boom")
	}
	return f.Querier.Query(ctx, q, at)
}

// TestFrozenSettingsFailClosed: settings that cannot be read are an
// error (which stops an analysis), never defaults standing in silently.
func TestFrozenSettingsFailClosed(t *testing.T) {
	for _, tc := range []struct {
		name, frozen, err string
	}{
		{"readable", `{"canary.io/enabled":"true","canary.io/interval":"30s"}`, ""},
		{"not JSON", `{"canary.io/interval":`, "cannot be read"},
		{"a value this version refuses", `{"canary.io/interval":"soon"}`, `canary.io/interval`},
	} {
		d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{
			contract.KeyEnabled: "true", contract.KeyAnalysisSettings: tc.frozen}}}
		s, err := contract.FrozenSettings(d.Annotations)
		switch {
		case tc.err == "" && (err != nil || s.Interval != 30*time.Second):
			t.Errorf("%s: %v, interval %v", tc.name, err, s.Interval)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%s: error %v, want it to say %q", tc.name, err, tc.err)
		}
	}
}

// TestChecksWindow: the checks never read the canary's series from before
// the analysis started (an earlier canary's under the same name).
func TestChecksWindow(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		window  time.Duration
		started time.Time
		want    time.Duration
	}{
		{time.Minute, now.Add(-14600 * time.Millisecond), 14 * time.Second},
		{time.Minute, now.Add(-5 * time.Minute), time.Minute},
		{time.Minute, time.Time{}, time.Minute},
		{time.Minute, now.Add(-300 * time.Millisecond), time.Second},
		{10 * time.Second, now.Add(-time.Minute), 10 * time.Second},
	} {
		if got := checksWindow(tc.window, tc.started, now); got != tc.want {
			t.Errorf("checksWindow(%v, started %v before) = %v, want %v", tc.window, now.Sub(tc.started), got, tc.want)
		}
	}
}
