package faults_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/canary-io/canary/contract"
	"github.com/canary-io/canary/e2e/kit"
)

// TestNewSeriesOfErrorsIsNotAPass: the real Prometheus at 5 s scrapes;
// the canary's first 5xx answers arrive in a new series, scraped once
// just before its step's checks. rate() needs two samples of a series,
// so Prometheus' success rate reads 100 % beside it. The check must wait
// for the next scrape, saying why, and the version is then judged on its
// errors and rolled back: a step never passes on a success rate that
// leaves out errors Prometheus already holds.
//
// The source of the metrics is the test's own, so that the series appear
// exactly when the test says; the first sample of the errors carries its
// timestamp, repeated, until the controller has judged the step, so the
// next scrape cannot race the checks.
func TestNewSeriesOfErrorsIsNotAPass(t *testing.T) {
	cs, _ := clients(t)
	const scrape = 5 * time.Second
	if err := env.SetScrapeInterval(t.Context(), scrape); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := env.SetScrapeInterval(context.Background(), time.Second); err != nil {
			t.Errorf("scrape interval back to 1s: %v", err)
		}
	})
	team := kit.Namespace(t, cs, "new-errors", nil)
	src := &errorSource{ns: team, scrape: scrape}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: src, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	if err := env.AddScrapeTarget("new-errors", []string{l.Addr().String()}, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.RemoveScrapeTarget("new-errors") })

	kit.Kubectl(t, env, kit.Service(team, "reviews", "reviews", 9080), "apply", "-f", "-")
	const interval = 15 * time.Second
	annotations := []string{`canary.io/enabled: "true"`, `canary.io/steps: "50"`, fmt.Sprintf(`canary.io/interval: "%s"`, interval),
		`canary.io/threshold: "1"`, `canary.io/confidence: "off"`, `canary.io/progress-deadline: "2m"`}
	kit.Kubectl(t, env, kit.Reviews(team, "v1", "reviews:v1", 2, annotations, nil), "apply", "-f", "-")
	kit.WaitDeployment(t, cs, team, "reviews", time.Minute, "v1 Idle", func(d *appsv1.Deployment) bool {
		return d.Annotations[contract.KeyPhase] == string(contract.PhaseIdle) && d.Status.AvailableReplicas == 2
	})
	kit.Kubectl(t, env, kit.Reviews(team, "v2", "reviews:v2", 2, annotations, nil), "apply", "-f", "-")
	d := kit.WaitDeployment(t, cs, team, "reviews", time.Minute, "the canary at 50%", func(d *appsv1.Deployment) bool {
		return d.Annotations[contract.KeyWeight] == "50" && d.Annotations[contract.KeyStepStarted] != ""
	})
	started, err := time.Parse(time.RFC3339, d.Annotations[contract.KeyStepStarted])
	if err != nil {
		t.Fatal(err)
	}
	due := started.Add(interval)
	src.setDue(due)

	var messages []string
	hidden := false
	for end := due.Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("not rolled back a minute after step 1's checks were due; messages %q", messages)
		}
		d, err := cs.AppsV1().Deployments(team).Get(t.Context(), "reviews", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		m := d.Annotations[contract.KeyMessage]
		if len(messages) == 0 || messages[len(messages)-1] != m {
			messages = append(messages, m)
		}
		if p := d.Annotations[contract.KeyStepsPassed]; p != "" && p != "0" {
			t.Fatalf("step 1 passed while the canary's errors were in a series with one sample (steps passed %s): %q", p, messages)
		}
		if strings.Contains(m, "rate() cannot count yet") {
			hidden = true
		}
		errorsAt, frozen := src.errorsFirstScraped()
		if frozen && (hidden || time.Since(errorsAt) > 2*scrape+5*time.Second) {
			src.thaw() // the checks have seen the single sample: the next scrape brings the second
		}
		if contract.Phase(d.Annotations[contract.KeyPhase]) == contract.PhaseRolledBack {
			break
		}
	}
	t.Logf("messages: %q", messages)
	if errorsAt, _ := src.errorsFirstScraped(); errorsAt.IsZero() {
		t.Fatal("the source never exposed the errors: the test did not run its case")
	}
	if !hidden {
		t.Errorf("no message said the success rate waits for the new series of errors: %q", messages)
	}
	if !strings.Contains(strings.Join(messages, "\n"), "success rate") {
		t.Errorf("no message names the success rate: %q", messages)
	}
}

// errorSource exports Istio's request metrics for reviews and
// reviews-canary in ns, 20 requests per scrape each, all under 50 ms. From
// the last scrape before due, the canary also answers 20 errors per scrape
// in a series of its own (response_code 503); its first sample keeps its
// timestamp until thawed.
type errorSource struct {
	ns     string
	scrape time.Duration

	mu                     sync.Mutex
	due, errorsAt          time.Time
	frozen                 bool
	canary, stable, errors float64
}

func (e *errorSource) setDue(due time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.due = due
}

func (e *errorSource) errorsFirstScraped() (time.Time, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.errorsAt, e.frozen
}

func (e *errorSource) thaw() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.frozen = false
}

func (e *errorSource) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := time.Now()
	e.canary += 20
	e.stable += 20
	switch {
	case e.errorsAt.IsZero() && !e.due.IsZero() && now.Before(e.due) && e.due.Sub(now) < e.scrape:
		e.errorsAt, e.frozen, e.errors = now, true, 20
	case !e.errorsAt.IsZero() && !e.frozen:
		e.errors += 20
	}
	var b strings.Builder
	labels := func(workload, code string) string {
		return fmt.Sprintf(`reporter="destination",destination_workload_namespace=%q,destination_workload=%q,response_code=%q`, e.ns, workload, code)
	}
	b.WriteString("# TYPE istio_requests_total counter\n")
	fmt.Fprintf(&b, "istio_requests_total{%s} %g\n", labels("reviews", "200"), e.stable)
	fmt.Fprintf(&b, "istio_requests_total{%s} %g\n", labels("reviews-canary", "200"), e.canary)
	if !e.errorsAt.IsZero() {
		if e.frozen {
			fmt.Fprintf(&b, "istio_requests_total{%s} %g %d\n", labels("reviews-canary", "503"), e.errors, e.errorsAt.UnixMilli())
		} else {
			fmt.Fprintf(&b, "istio_requests_total{%s} %g\n", labels("reviews-canary", "503"), e.errors)
		}
	}
	b.WriteString("# TYPE istio_request_duration_milliseconds histogram\n")
	for _, wl := range []struct {
		name  string
		count float64
	}{{"reviews", e.stable}, {"reviews-canary", e.canary}} {
		for _, le := range []string{"50", "100", "+Inf"} {
			fmt.Fprintf(&b, "istio_request_duration_milliseconds_bucket{%s,le=%q} %g\n", labels(wl.name, "200"), le, wl.count)
		}
		fmt.Fprintf(&b, "istio_request_duration_milliseconds_sum{%s} %g\n", labels(wl.name, "200"), 20*wl.count)
		fmt.Fprintf(&b, "istio_request_duration_milliseconds_count{%s} %g\n", labels(wl.name, "200"), wl.count)
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	_, _ = w.Write([]byte(b.String()))
}
