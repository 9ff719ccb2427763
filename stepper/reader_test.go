package stepper

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"k8s.io/utils/clock"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/canary-io/canary/contract"
	"github.com/canary-io/canary/stepper/plan"
)

// startReader runs rd until the test ends or stop is called; stop
// returns once every read in flight has ended.
func startReader(t *testing.T, rd *Reader) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := rd.Start(ctx); err != nil {
			t.Error(err)
		}
	}()
	stop = func() { cancel(); <-done }
	t.Cleanup(stop)
	// Start has set up the reader once Compare stops refusing.
	for {
		rd.mu.Lock()
		running := rd.ctx != nil
		rd.mu.Unlock()
		if running {
			return stop
		}
		time.Sleep(time.Millisecond)
	}
}

// storeQuerier is a store as a Querier.
type storeQuerier struct{ *store }

func (storeQuerier) Query(context.Context, string, time.Time) (float64, bool, error) {
	return 0, false, nil
}

func request(namespace string, start time.Time) comparisonRequest {
	s := contract.DefaultSettings()
	return comparisonRequest{url: "http://prometheus:9090", namespace: namespace, canary: "reviews-canary", stable: "reviews", revision: "v2",
		start: start, confidence: s.Confidence, tolerance: s.Tolerance, edge: slowEdge(s.MaxLatency), period: 20 * time.Millisecond, lookback: time.Second}
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("not within 5s: %s", what)
}

// TestReaderBatchesComparisons: however many analyses are in flight on one
// Prometheus, each period reads it with three queries; each analysis
// waits (pending) until its first read has ended, is then woken, and
// gets its verdict.
func TestReaderBatchesComparisons(t *testing.T) {
	for _, n := range []int{1, 40} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			st := &store{}
			var mu sync.Mutex
			woken := map[string]int{}
			rd := &Reader{Period: 20 * time.Millisecond, QueryTimeout: time.Second, Clock: clock.RealClock{},
				Querier: func(string) (Querier, error) { return storeQuerier{st}, nil },
				Wake: func(key string) {
					mu.Lock()
					defer mu.Unlock()
					woken[key]++
				}}
			stop := startReader(t, rd)
			now := time.Now()
			for i := range n {
				if _, pending, err := rd.Compare(fmt.Sprintf("ns-%d/reviews", i), request(fmt.Sprintf("ns-%d", i), now), true, now); !pending || err != nil {
					t.Fatalf("before any read: pending %v, err %v; want pending", pending, err)
				}
			}
			waitFor(t, "every analysis woken", func() bool {
				mu.Lock()
				defer mu.Unlock()
				return len(woken) == n
			})
			for i := range n {
				v, pending, err := rd.Compare(fmt.Sprintf("ns-%d/reviews", i), request(fmt.Sprintf("ns-%d", i), now), true, time.Now())
				if v == nil || pending || err != nil {
					t.Fatalf("after the first read: verdict %v, pending %v, err %v", v, pending, err)
				}
			}
			time.Sleep(100 * time.Millisecond)
			stop()
			asked := st.asked()
			perMetric := map[string]int{}
			for _, q := range asked {
				perMetric[q[:strings.Index(q, "{")]]++
			}
			if len(perMetric) != 3 || perMetric[requestsMetric] != perMetric[durationCount] || perMetric[requestsMetric] != perMetric[durationBuckets] {
				t.Fatalf("queries per metric %v, want one of each per period", perMetric)
			}
			for _, q := range asked {
				if got := strings.Count(q, "ns-"); got != n {
					t.Errorf("a read names %d of the %d namespaces: %s", got, n, q)
				}
			}
			t.Logf("%d analyses: %d queries", n, len(asked))
		})
	}
}

// TestReaderBatchFailureFailsEveryone: one of a batch's reads failing
// leaves every analysis in it without a verdict and says why: never a
// pass, never pending for ever.
func TestReaderBatchFailureFailsEveryone(t *testing.T) {
	st := &store{fail: func(promql string) error {
		if strings.HasPrefix(promql, durationBuckets) {
			return errors.New("query prometheus: server error: 503")
		}
		return nil
	}}
	rd := &Reader{Period: 20 * time.Millisecond, QueryTimeout: time.Second, Clock: clock.RealClock{},
		Querier: func(string) (Querier, error) { return storeQuerier{st}, nil }}
	startReader(t, rd)
	now := time.Now()
	keys := []string{"a/reviews", "b/reviews", "c/reviews"}
	for _, k := range keys {
		rd.Compare(k, request(strings.Split(k, "/")[0], now), true, now)
	}
	waitFor(t, "every analysis failed", func() bool {
		for _, k := range keys {
			if _, _, err := rd.Compare(k, request(strings.Split(k, "/")[0], now), true, time.Now()); err == nil {
				return false
			}
		}
		return true
	})
	for _, k := range keys {
		v, pending, err := rd.Compare(k, request(strings.Split(k, "/")[0], now), true, time.Now())
		if v != nil || pending || err == nil || !strings.Contains(err.Error(), "503") {
			t.Errorf("%s: verdict %v, pending %v, err %v; want the read's failure", k, v, pending, err)
		}
	}
}

// TestReaderReadsFarBehindAlone: an analysis whose comparison must be
// rebuilt from a start long ago (after a restart) is read alone, so that
// its long window is not every analysis' window; the others share one
// batch.
func TestReaderReadsFarBehindAlone(t *testing.T) {
	st := &store{}
	rd := &Reader{Period: 20 * time.Millisecond, QueryTimeout: time.Second, Clock: clock.RealClock{},
		Querier: func(string) (Querier, error) { return storeQuerier{st}, nil }}
	stop := startReader(t, rd)
	now := time.Now()
	rd.Compare("old/reviews", request("old", now.Add(-10*time.Minute)), true, now)
	rd.Compare("new/reviews", request("new", now), true, now)
	waitFor(t, "both read", func() bool {
		_, p1, _ := rd.Compare("old/reviews", request("old", now.Add(-10*time.Minute)), true, time.Now())
		_, p2, _ := rd.Compare("new/reviews", request("new", now), true, time.Now())
		return !p1 && !p2
	})
	stop()
	long := 0
	for _, q := range st.asked() {
		if rangeOf(t, q) >= 10*time.Minute {
			long++
			if strings.Contains(q, "new") {
				t.Errorf("the rebuild's long window is read for the batch too: %s", q)
			}
		}
	}
	// Once rebuilt, the old analysis is up to date and joins the batch.
	if long != 3 {
		t.Errorf("%d reads reached back to the old analysis' start, want its three reads alone, once", long)
	}
}

// checkProm answers the batched built-in checks with vectors, and counts
// every query.
type checkProm struct {
	mu                sync.Mutex
	vectors, singles  int
	success, latency  model.Vector
	hidden            model.Vector
	hiddenErr         error
	vectorErr         error
	singleValue       float64
	lastSuccess, last string
	lastAt            time.Time // the last success rate's evaluation time
	lastCalled        time.Time // and when it was asked
}

func (p *checkProm) Matrix(context.Context, string, time.Time) (model.Matrix, error) {
	return nil, nil
}

func (p *checkProm) Vector(_ context.Context, promql string, at time.Time) (model.Vector, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.vectors++
	if p.vectorErr != nil {
		return nil, p.vectorErr
	}
	if strings.HasPrefix(promql, "histogram_quantile") {
		return p.latency, nil
	}
	if strings.Contains(promql, `response_code=~"5.*"`) {
		return p.hidden, p.hiddenErr
	}
	p.lastSuccess, p.lastAt, p.lastCalled = promql, at, time.Now()
	return p.success, nil
}

func (p *checkProm) Query(_ context.Context, promql string, _ time.Time) (float64, bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.singles++
	p.last = promql
	return p.singleValue, true, nil
}

func sample(ns, wl string, v float64) *model.Sample {
	return &model.Sample{Metric: model.Metric{"destination_workload_namespace": model.LabelValue(ns), "destination_workload": model.LabelValue(wl)}, Value: model.SampleValue(v)}
}

// TestReaderBatchesChecks: the checks asked for within CheckDelay share
// one query per built-in check; each analysis gets its own workloads'
// values, no data where its workload is missing from the answer or its
// value is not a number, and its custom metrics read alone.
func TestReaderBatchesChecks(t *testing.T) {
	p := &checkProm{
		latency:     model.Vector{sample("ns-0", "reviews-canary", 120), sample("ns-1", "reviews-canary", 900)},
		hidden:      model.Vector{sample("ns-4", "reviews-canary", 2)},
		success:     model.Vector{sample("ns-0", "reviews-canary", 99.5), sample("ns-0", "reviews", 100), sample("ns-1", "reviews-canary", 80), sample("ns-2", "reviews-canary", math.NaN()), sample("ns-4", "reviews-canary", 100)},
		singleValue: 7,
	}
	rd := &Reader{QueryTimeout: time.Second, Clock: clock.RealClock{}, CheckDelay: 20 * time.Millisecond,
		Querier: func(string) (Querier, error) { return p, nil }}
	startReader(t, rd)
	settings := contract.DefaultSettings()
	withCustom := settings
	five := 5.0
	withCustom.Metrics = []contract.Metric{{Name: "queue", Query: `sum(queue{workload="{{workload}}"})`, Max: &five}}
	run := func(i int) checkRun {
		s := settings
		if i == 3 {
			s = withCustom
		}
		return checkRun{settings: s, namespace: fmt.Sprintf("ns-%d", i), canary: "reviews-canary", stable: "reviews", window: 40 * time.Second, scrape: 5 * time.Second, comparedRequests: -1}
	}
	now := time.Now()
	for i := range 30 {
		if _, ok := rd.Checks(fmt.Sprintf("ns-%d/reviews", i), "step 1", run(i), "http://prometheus:9090", now); ok {
			t.Fatal("checks in before any read")
		}
	}
	results := map[int][]plan.CheckResult{}
	waitFor(t, "every analysis' checks in", func() bool {
		for i := range 30 {
			if _, ok := results[i]; ok {
				continue
			}
			if r, ok := rd.Checks(fmt.Sprintf("ns-%d/reviews", i), "step 1", run(i), "http://prometheus:9090", now); ok {
				results[i] = r
			}
		}
		return len(results) == 30
	})
	p.mu.Lock()
	defer p.mu.Unlock()
	oneRound(t, p, 30)
	byName := func(rs []plan.CheckResult, name string) plan.CheckResult {
		for _, r := range rs {
			if r.Name == name {
				return r
			}
		}
		t.Fatalf("no check %q in %+v", name, rs)
		return plan.CheckResult{}
	}
	if r := byName(results[0], plan.CheckSuccessRate); !r.HasData || r.Canary != 99.5 || !r.StableHasData || r.Stable != 100 {
		t.Errorf("ns-0 success rate: %+v", r)
	}
	if r := byName(results[1], plan.CheckLatency); !r.HasData || r.Canary != 900 || r.StableHasData {
		t.Errorf("ns-1 latency: %+v", r)
	}
	if r := byName(results[2], plan.CheckSuccessRate); r.HasData {
		t.Errorf("ns-2 success rate (NaN) has data: %+v", r)
	}
	if r := byName(results[4], plan.CheckSuccessRate); r.HasData || r.Passed() || !strings.Contains(r.Detail, "2 series of them have 1 sample") {
		t.Errorf("ns-4 (100%% read beside 2 new series of errors): %+v, want no data saying why", r)
	}
	if r := byName(results[6], plan.CheckSuccessRate); r.HasData {
		t.Errorf("ns-6 (missing from every answer) has data: %+v", r)
	}
	if r := byName(results[5], plan.CheckSuccessRate); r.HasData || r.QueryFailed {
		t.Errorf("ns-5 (missing from the answer): %+v, want no data, not a failed query", r)
	}
	if r := byName(results[3], "queue"); !r.HasData || r.Canary != 7 {
		t.Errorf("ns-3's custom metric: %+v", r)
	}
	if !strings.Contains(p.last, "queue") && p.singles < 2 {
		t.Errorf("the custom metric was not read alone (%d single queries)", p.singles)
	}
	p.mu.Unlock()
	// Handed out once: asked again, the checks are read again.
	if _, ok := rd.Checks("ns-0/reviews", "step 1", run(0), "http://prometheus:9090", now); ok {
		t.Error("the same results handed out twice: a pass waiting for data would never see new data")
	}
	p.mu.Lock()
}

// oneRound checks that p was asked one round of batched built-in checks
// (success rate, latency, new series of errors) naming the namespaces of
// n analyses, each in the two selectors of the success rate (p locked).
func oneRound(t *testing.T, p *checkProm, n int) {
	t.Helper()
	if p.vectors != 3 {
		t.Errorf("%d batched queries for %d analyses' built-in checks, want 3 (one round: success rate, latency, new series of errors)", p.vectors, n)
	}
	if got := strings.Count(p.lastSuccess, "ns-"); got != 2*n {
		t.Errorf("the batched query names %d namespaces, want the %d in each of its two selectors: %s", got, n, p.lastSuccess)
	}
}

// TestBuiltinsOfFailureIsNoDataForAll: a batched check query that fails is
// a failed query for every workload it was for: never a pass.
func TestBuiltinsOfFailureIsNoDataForAll(t *testing.T) {
	p := &checkProm{vectorErr: errors.New("query prometheus: timeout")}
	var runs []checkRun
	for i := range 5 {
		runs = append(runs, checkRun{settings: contract.DefaultSettings(), namespace: fmt.Sprintf("ns-%d", i), canary: "reviews-canary", stable: "reviews", window: time.Minute, comparedRequests: -1})
	}
	known := &answers{done: make(chan struct{}), m: builtinsOf(t.Context(), p, runs, time.Now(), time.Second)}
	close(known.done)
	for _, r := range runs {
		results := runChecks(t.Context(), p, r, time.Now(), time.Second, known)
		for _, c := range results[:2] {
			if c.HasData || !c.QueryFailed || !strings.Contains(c.Detail, "timeout") {
				t.Errorf("%s %s: %+v, want a failed query", r.namespace, c.Name, c)
			}
		}
	}
	if p.singles != 0 {
		t.Errorf("%d single queries: the failed batch was asked again one by one", p.singles)
	}
}

// TestBatchedHiddenCountFailing: when the batched count of the canaries'
// new series of errors fails, every success rate in the batch is a failed
// query, never a pass, though the success rates themselves were read.
func TestBatchedHiddenCountFailing(t *testing.T) {
	p := &checkProm{hiddenErr: errors.New("query prometheus: timeout")}
	var runs []checkRun
	for i := range 3 {
		ns := fmt.Sprintf("ns-%d", i)
		p.success = append(p.success, sample(ns, "reviews-canary", 100))
		p.latency = append(p.latency, sample(ns, "reviews-canary", 10))
		runs = append(runs, checkRun{settings: contract.DefaultSettings(), namespace: ns, canary: "reviews-canary", stable: "reviews", window: time.Minute, comparedRequests: -1})
	}
	known := &answers{done: make(chan struct{}), m: builtinsOf(t.Context(), p, runs, time.Now(), time.Second)}
	close(known.done)
	for _, r := range runs {
		results := runChecks(t.Context(), p, r, time.Now(), time.Second, known)
		if sr := results[0]; sr.Passed() || !sr.QueryFailed || !strings.Contains(sr.Detail, "timeout") {
			t.Errorf("%s success rate: %+v, want a failed query", r.namespace, sr)
		}
		if l := results[1]; !l.Passed() {
			t.Errorf("%s latency: %+v, want it read and passed", r.namespace, l)
		}
	}
}

// TestChecksReadTheComparisonBeside: when a step's checks are read, the
// analysis' comparison is read again at the same moment, so that the
// step is judged on the comparison as of its checks, not on the last
// period's.
func TestChecksReadTheComparisonBeside(t *testing.T) {
	st := &store{}
	rd := &Reader{Period: time.Hour, QueryTimeout: time.Second, Clock: clock.RealClock{}, CheckDelay: 10 * time.Millisecond,
		Querier: func(string) (Querier, error) { return storeQuerier{st}, nil }}
	startReader(t, rd)
	start := time.Now()
	a := request("shop", start)
	rd.Compare("shop/reviews", a, false, start)
	rd.tick(t.Context(), start) // the period's read (the ticker's is an hour away)
	waitFor(t, "the first verdict", func() bool {
		v, _, _ := rd.Compare("shop/reviews", a, false, time.Now())
		return v != nil
	})
	if n := len(st.asked()); n != 3 {
		t.Fatalf("%d reads after the period's, want 3", n)
	}
	rd.mu.Lock()
	first := rd.readings["shop/reviews"].read
	rd.mu.Unlock()
	time.Sleep(1100 * time.Millisecond)
	run := checkRun{settings: contract.DefaultSettings(), namespace: "shop", canary: "reviews-canary", stable: "reviews", window: time.Minute, comparedRequests: -1}
	waitFor(t, "the checks", func() bool {
		_, ok := rd.Checks("shop/reviews", "step 1", run, a.url, time.Now())
		return ok
	})
	if n := len(st.asked()); n != 6 {
		t.Errorf("%d comparison reads after the checks, want 6: the comparison was not read beside them", n)
	}
	rd.mu.Lock()
	again := rd.readings["shop/reviews"].read
	rd.mu.Unlock()
	if !again.After(first) {
		t.Errorf("the verdict was read at %v, as before the checks", again)
	}
}

// TestExpectedChecksReadAtTheirMoment: checks the Reader was told of
// (Expect) are read in one round checkLead before they fall due,
// evaluated at their moment (the window that ends then), without their
// passes asking; in before then, they wake no one (the step is not over)
// and each pass due at the moment gets its results without another read.
// Checks forgotten (Unexpect, Drop) are not read; nor are those whose
// comparison has no verdict yet (the pass asks once it has one); nor
// twice those whose pass asked first.
func TestExpectedChecksReadAtTheirMoment(t *testing.T) {
	p := &checkProm{success: model.Vector{sample("ns-0", "reviews-canary", 99.5), sample("ns-0", "reviews", 100)}}
	var mu sync.Mutex
	woken := map[string]time.Time{}
	rd := &Reader{QueryTimeout: time.Second, Clock: clock.RealClock{}, CheckDelay: 20 * time.Millisecond,
		Querier: func(string) (Querier, error) { return p, nil },
		Wake: func(key string) {
			mu.Lock()
			defer mu.Unlock()
			woken[key] = time.Now()
		}}
	startReader(t, rd)
	run := func(i int) checkRun {
		return checkRun{settings: contract.DefaultSettings(), namespace: fmt.Sprintf("ns-%d", i), canary: "reviews-canary", stable: "reviews", window: 40 * time.Second, scrape: 5 * time.Second, comparedRequests: -1}
	}
	key := func(i int) string { return fmt.Sprintf("ns-%d/reviews", i) }
	const url = "http://prometheus:9090"
	now := time.Now()
	at := now.Add(checkLead + 700*time.Millisecond).Truncate(time.Millisecond)
	for i := range 14 {
		rd.Expect(key(i), "step 1", run(i), url, at)
	}
	rd.Unexpect(key(10))
	rd.Drop(key(11))
	rd.Compare(key(12), request("ns-12", now), false, now) // no verdict yet: pending
	// ns-13's pass asks first (again after no data, say): its request is
	// read at once, in a round of its own, and not again at the moment.
	if _, ok := rd.Checks(key(13), "step 1", run(13), url, now); ok {
		t.Fatal("ns-13's checks in before any read")
	}
	waitFor(t, "ns-13's checks read", func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.vectors == 3
	})
	p.mu.Lock()
	if !strings.Contains(p.lastSuccess, `"ns-13"`) || !p.lastAt.Before(at) {
		t.Errorf("ns-13's round: %s at %v, want ns-13 alone, evaluated when asked", p.lastSuccess, p.lastAt)
	}
	p.mu.Unlock()
	time.Sleep(time.Until(at.Add(-checkLead - 100*time.Millisecond)))
	p.mu.Lock()
	early := p.vectors
	p.mu.Unlock()
	if early != 3 {
		t.Fatalf("%d queries more than checkLead before the checks fell due", early-3)
	}
	expected := []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}
	stored := map[int]time.Time{}
	waitFor(t, "the expected round's results", func() bool {
		rd.mu.Lock()
		defer rd.mu.Unlock()
		for _, i := range expected {
			if c := rd.rounds[key(i)]; c != nil && c.done {
				stored[i] = c.stored
			}
		}
		return len(stored) == len(expected)
	})
	time.Sleep(time.Until(at))
	mu.Lock()
	for _, i := range expected {
		if when, ok := woken[key(i)]; ok && stored[i].Before(at) {
			t.Errorf("%s woken at %v by results stored at %v, before its checks fell due at %v", key(i), when, stored[i], at)
		}
	}
	for _, i := range []int{10, 11, 12} {
		if _, ok := woken[key(i)]; ok {
			t.Errorf("%s woken: its expected checks were read", key(i))
		}
	}
	mu.Unlock()
	for _, i := range expected {
		rs, ok := rd.Checks(key(i), "step 1", run(i), url, time.Now())
		if !ok || len(rs) == 0 {
			t.Fatalf("%s: no results at its moment (%v, %v)", key(i), rs, ok)
		}
		if i == 0 && (!rs[0].HasData || rs[0].Canary != 99.5) {
			t.Errorf("ns-0's success rate: %+v", rs[0])
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.vectors -= 3 // ns-13's round
	oneRound(t, p, len(expected))
	if !p.lastAt.Equal(at) {
		t.Errorf("the expected round evaluated at %v, want at the checks' moment %v", p.lastAt, at)
	}
	if !p.lastCalled.Before(at) {
		t.Errorf("the expected round read at %v, not before the checks' moment %v: the pass due then would wait for it", p.lastCalled, at)
	}
	for _, i := range []int{10, 11, 12, 13} {
		if strings.Contains(p.lastSuccess, fmt.Sprintf(`ns-%d"`, i)) || strings.Contains(p.lastSuccess, fmt.Sprintf("ns-%d|", i)) {
			t.Errorf("ns-%d's forgotten, pending or already read checks were read: %s", i, p.lastSuccess)
		}
	}
}

// TestLateResultsReadAgain: results read at a step's end go to a pass
// that comes late only while they still cover part of the window that
// ends when it asks; later, the checks are read again.
func TestLateResultsReadAgain(t *testing.T) {
	p := &checkProm{success: model.Vector{sample("shop", "reviews-canary", 99.5), sample("shop", "reviews", 100)}}
	woken := make(chan string, 4)
	rd := &Reader{QueryTimeout: time.Second, Clock: clock.RealClock{}, CheckDelay: 20 * time.Millisecond,
		Querier: func(string) (Querier, error) { return p, nil },
		Wake:    func(key string) { woken <- key }}
	startReader(t, rd)
	run := checkRun{settings: contract.DefaultSettings(), namespace: "shop", canary: "reviews-canary", stable: "reviews", window: 40 * time.Second, scrape: 5 * time.Second, comparedRequests: -1}
	const url = "http://prometheus:9090"
	for _, tc := range []struct {
		late      time.Duration
		readAgain bool
	}{{late: 39 * time.Second}, {late: 41 * time.Second, readAgain: true}} {
		round := fmt.Sprintf("step late by %v", tc.late)
		at := time.Now().Add(50 * time.Millisecond)
		rd.Expect("shop/reviews", round, run, url, at)
		roundDone(t, rd, "shop/reviews")
		time.Sleep(time.Until(at))
		p.mu.Lock()
		before := p.vectors
		p.mu.Unlock()
		rs, ok := rd.Checks("shop/reviews", round, run, url, time.Now().Add(tc.late))
		if ok == tc.readAgain {
			t.Errorf("asked %v after the read: results handed out %v, want %v", tc.late, ok, !tc.readAgain)
		}
		if !tc.readAgain {
			if len(rs) == 0 {
				t.Errorf("asked %v after the read: no results", tc.late)
			}
			continue
		}
		wokenWithin(t, woken)
		p.mu.Lock()
		again := p.vectors - before
		p.mu.Unlock()
		if again != 3 {
			t.Errorf("asked %v after the read: %d queries since, want the 3 of a read again", tc.late, again)
		}
	}
}

// roundDone waits for the round of checks of the Deployment key to have
// its results.
func roundDone(t *testing.T, rd *Reader, key string) {
	t.Helper()
	waitFor(t, "the round of "+key, func() bool {
		rd.mu.Lock()
		defer rd.mu.Unlock()
		c := rd.rounds[key]
		return c != nil && c.done
	})
}

// wokenWithin waits up to 5 s for a wake-up.
func wokenWithin(t *testing.T, woken <-chan string) {
	t.Helper()
	select {
	case <-woken:
	case <-time.After(5 * time.Second):
		t.Fatal("not woken within 5s")
	}
}

// TestRoundWaitsForTheReadInFlight: a round whose analysis' comparison is
// being read (by the period's read, say) hands its results out only once
// that read is stored: never beside a verdict older than its checks.
func TestRoundWaitsForTheReadInFlight(t *testing.T) {
	gq := &gatedQuerier{storeQuerier: storeQuerier{&store{}}}
	start := time.Now()
	fc := clocktesting.NewFakePassiveClock(start)
	rd := &Reader{Period: time.Hour, QueryTimeout: 5 * time.Second, Clock: fc, CheckDelay: 10 * time.Millisecond,
		Querier: func(string) (Querier, error) { return gq, nil }}
	startReader(t, rd)
	reqs := firstVerdicts(t, rd, 2, start)
	release := gq.block()
	fc.SetTime(start.Add(5 * time.Second))
	rd.tick(t.Context(), fc.Now()) // the period's read of both, held
	waitFor(t, "the period's read in flight", func() bool { return gq.waiting() > 0 })
	fc.SetTime(start.Add(5500 * time.Millisecond))
	run := checkRun{settings: contract.DefaultSettings(), namespace: "ns-1", canary: "reviews-canary", stable: "reviews", window: time.Minute, comparedRequests: -1}
	rd.Checks("ns-1/reviews", "step 1", run, reqs[1].url, fc.Now())
	time.Sleep(300 * time.Millisecond)
	if _, ok := rd.Checks("ns-1/reviews", "step 1", run, reqs[1].url, fc.Now()); ok {
		t.Fatal("ns-1's checks handed out while its comparison's read was in flight")
	}
	release()
	checksIn(t, rd, reqs[1], 1, "step 1", fc.Now())
	if got := readAt(rd, 1); !got.Equal(start.Add(5 * time.Second)) {
		t.Errorf("ns-1's comparison read %v after the start, want the period's 5s", got.Sub(start))
	}
}

// TestPeriodLeavesOutChecksDueWithin: the period's batch leaves out the
// comparisons whose expected checks fall due before the next period (the
// round of their moment reads them beside the checks, and would otherwise
// wait for the whole batch in flight), and reads all the others: those
// due later, those not expected, and the one due soon with no verdict yet.
// That round then reads the comparison it left out.
func TestPeriodLeavesOutChecksDueWithin(t *testing.T) {
	st := &store{}
	start := time.Now()
	fc := clocktesting.NewFakePassiveClock(start)
	rd := &Reader{Period: 5 * time.Second, QueryTimeout: 5 * time.Second, Clock: fc, CheckDelay: 10 * time.Millisecond,
		Querier: func(string) (Querier, error) { return storeQuerier{st}, nil }}
	startReader(t, rd)
	reqs := firstVerdicts(t, rd, 3, start)
	rd.Compare("ns-3/reviews", request("ns-3", start), false, start) // no verdict yet
	run := func(i int) checkRun {
		return checkRun{settings: contract.DefaultSettings(), namespace: fmt.Sprintf("ns-%d", i), canary: "reviews-canary", stable: "reviews", window: time.Minute, comparedRequests: -1}
	}
	now := start.Add(5 * time.Second)
	fc.SetTime(now)
	// The round's timers run on the wall clock: due in an hour by it, it
	// does not start during the test.
	rd.Expect("ns-0/reviews", "step 1", run(0), reqs[0].url, now.Add(4*time.Second))
	rd.Expect("ns-1/reviews", "step 1", run(1), reqs[1].url, now.Add(6*time.Second))
	rd.Expect("ns-3/reviews", "step 1", run(3), reqs[0].url, now.Add(4*time.Second))
	rd.mu.Lock()
	rd.expectKick = now.Add(time.Hour)
	rd.mu.Unlock()
	before := len(st.asked())
	rd.tick(t.Context(), now)
	waitFor(t, "the period's batch", func() bool { return !readAt(rd, 1).Before(now) })
	asked := st.asked()[before:]
	if len(asked) != 3 {
		t.Fatalf("%d queries in the period's batch, want 3 (one per metric): %v", len(asked), asked)
	}
	for _, q := range asked {
		for ns, want := range map[string]bool{"ns-0": false, "ns-1": true, "ns-2": true, "ns-3": true} {
			if got := strings.Contains(q, ns+`"`) || strings.Contains(q, ns+"|"); got != want {
				t.Errorf("the batch reads %s: %v, want %v: %s", ns, got, want, q)
			}
		}
	}
	if got := readAt(rd, 0); !got.Equal(start) {
		t.Errorf("ns-0's comparison read %v after the start, want only the first read's", got.Sub(start))
	}
	// Its round reads it beside its checks.
	due := now.Add(4 * time.Second)
	fc.SetTime(due)
	rd.flushChecks(t.Context(), due)
	checksIn(t, rd, reqs[0], 0, "step 1", due)
	if got := readAt(rd, 0); !got.Equal(due) {
		t.Errorf("ns-0's comparison read %v after the start, want at its checks' moment (9s)", got.Sub(start))
	}
}

// gatedQuerier holds its range reads while blocked.
type gatedQuerier struct {
	storeQuerier
	mu      sync.Mutex
	gate    chan struct{} // nil: open
	waiters int
}

// block holds every range read until release is called.
func (g *gatedQuerier) block() (release func()) {
	g.mu.Lock()
	defer g.mu.Unlock()
	gate := make(chan struct{})
	g.gate = gate
	return func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		g.gate = nil
		close(gate)
	}
}

func (g *gatedQuerier) waiting() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.waiters
}

func (g *gatedQuerier) Matrix(ctx context.Context, promql string, at time.Time) (model.Matrix, error) {
	g.mu.Lock()
	gate := g.gate
	if gate != nil {
		g.waiters++
	}
	g.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return g.storeQuerier.Matrix(ctx, promql, at)
}

// firstVerdicts asks for the comparisons of n analyses (ns-0 ... ns-<n-1>)
// and reads them with a tick at start.
func firstVerdicts(t *testing.T, rd *Reader, n int, start time.Time) []comparisonRequest {
	t.Helper()
	reqs := make([]comparisonRequest, n)
	for i := range n {
		reqs[i] = request(fmt.Sprintf("ns-%d", i), start)
		rd.Compare(fmt.Sprintf("ns-%d/reviews", i), reqs[i], false, start)
	}
	rd.tick(t.Context(), start)
	waitFor(t, "the first verdicts", func() bool {
		for i := range n {
			if readAt(rd, i).IsZero() {
				return false
			}
		}
		return true
	})
	return reqs
}

// readAt is when the comparison of ns-<i>/reviews was last read.
func readAt(rd *Reader, i int) time.Time {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	return rd.readings[fmt.Sprintf("ns-%d/reviews", i)].read
}

// checksIn asks for the checks of ns-<i>/reviews for round until they
// are in.
func checksIn(t *testing.T, rd *Reader, a comparisonRequest, i int, round string, now time.Time) {
	t.Helper()
	run := checkRun{settings: contract.DefaultSettings(), namespace: fmt.Sprintf("ns-%d", i), canary: "reviews-canary", stable: "reviews", window: time.Minute, comparedRequests: -1}
	waitFor(t, fmt.Sprintf("the checks of ns-%d", i), func() bool {
		_, ok := rd.Checks(fmt.Sprintf("ns-%d/reviews", i), round, run, a.url, now)
		return ok
	})
}

// hangProm answers nothing: every query waits for its context to end. It
// records how many queries were in flight at once.
type hangProm struct {
	mu               sync.Mutex
	inFlight, most   int
	vectors, singles int
}

func (p *hangProm) wait(ctx context.Context, single bool) error {
	p.mu.Lock()
	p.inFlight++
	p.most = max(p.most, p.inFlight)
	if single {
		p.singles++
	} else {
		p.vectors++
	}
	p.mu.Unlock()
	<-ctx.Done()
	p.mu.Lock()
	p.inFlight--
	p.mu.Unlock()
	return fmt.Errorf("query prometheus: %w", ctx.Err())
}

func (p *hangProm) Matrix(ctx context.Context, _ string, _ time.Time) (model.Matrix, error) {
	return nil, p.wait(ctx, false)
}

func (p *hangProm) Vector(ctx context.Context, _ string, _ time.Time) (model.Vector, error) {
	return nil, p.wait(ctx, false)
}

func (p *hangProm) Query(ctx context.Context, _ string, _ time.Time) (float64, bool, error) {
	return 0, false, p.wait(ctx, true)
}

// TestSlowRoundIsNotStale: a round slower than its checks' window (a
// hanging query, ended by the query timeout) hands its results (failed
// queries) to the pass it wakes; they are not read again and again.
func TestSlowRoundIsNotStale(t *testing.T) {
	p := &hangProm{}
	woken := make(chan string, 4)
	rd := &Reader{QueryTimeout: 300 * time.Millisecond, Clock: clock.RealClock{}, CheckDelay: 20 * time.Millisecond,
		Querier: func(string) (Querier, error) { return p, nil },
		Wake:    func(key string) { woken <- key }}
	startReader(t, rd)
	run := checkRun{settings: contract.DefaultSettings(), namespace: "shop", canary: "reviews-canary", stable: "reviews", window: 100 * time.Millisecond, scrape: 5 * time.Second, comparedRequests: -1}
	if _, ok := rd.Checks("shop/reviews", "step 1", run, "http://prometheus:9090", time.Now()); ok {
		t.Fatal("checks in before any read")
	}
	wokenWithin(t, woken)
	rs, ok := rd.Checks("shop/reviews", "step 1", run, "http://prometheus:9090", time.Now())
	if !ok || len(rs) == 0 {
		t.Fatalf("woken after a round of %v (window %v): results %v, %v; want the round's failed queries", rd.QueryTimeout, run.window, rs, ok)
	}
	for _, r := range rs {
		if !r.QueryFailed || r.Passed() {
			t.Errorf("%+v, want a failed query", r)
		}
	}
}

// TestCheckRoundReadsAtOnce: a round's batched built-ins and its custom
// metrics are read at the same time, so that a hanging Prometheus costs a
// round one query timeout, not one per kind of read; every check of it is
// then a failed query, never a pass.
func TestCheckRoundReadsAtOnce(t *testing.T) {
	p := &hangProm{}
	rd := &Reader{QueryTimeout: 200 * time.Millisecond, Clock: clock.RealClock{}, CheckDelay: 10 * time.Millisecond,
		Querier: func(string) (Querier, error) { return p, nil }}
	startReader(t, rd)
	s := contract.DefaultSettings()
	one := 1.0
	s.Metrics = []contract.Metric{{Name: "queue", Query: `sum(queue{workload="{{workload}}"})`, Max: &one}}
	run := checkRun{settings: s, namespace: "books", canary: "reviews-canary", stable: "reviews", window: time.Minute, scrape: 5 * time.Second, comparedRequests: -1}
	now := time.Now()
	var results []plan.CheckResult
	waitFor(t, "the round's results", func() bool {
		r, ok := rd.Checks("books/reviews", "step 1", run, "http://prometheus:9090", now)
		results = r
		return ok
	})
	for _, c := range results {
		if c.HasData || !c.QueryFailed {
			t.Errorf("%s: %+v, want a failed query", c.Name, c)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.vectors != 3 || p.singles != 2 {
		t.Errorf("%d batched and %d single queries, want the 3 built-in batches (success rate, latency, new series of errors) and the custom metric's 2", p.vectors, p.singles)
	}
	if p.most != 5 {
		t.Errorf("at most %d queries in flight at once, want all 5: the custom metric waited for the built-ins", p.most)
	}
}

// TestReaderCatchesUpTogether: analyses far behind by about as much (ten
// whose canary took traffic two minutes after their analysis started)
// are read together, not one by one, and never with the window of one
// far older (a rebuild reaching back an hour).
func TestReaderCatchesUpTogether(t *testing.T) {
	st := &store{}
	rd := &Reader{Period: 20 * time.Millisecond, QueryTimeout: time.Second, Clock: clock.RealClock{},
		Querier: func(string) (Querier, error) { return storeQuerier{st}, nil }}
	stop := startReader(t, rd)
	now := time.Now()
	keys := map[string]comparisonRequest{"old/reviews": request("old", now.Add(-time.Hour))}
	for i := range 10 {
		keys[fmt.Sprintf("c-%d/reviews", i)] = request(fmt.Sprintf("c-%d", i), now.Add(-2*time.Minute))
	}
	for k, a := range keys {
		rd.Compare(k, a, true, now)
	}
	waitFor(t, "every analysis read", func() bool {
		for k, a := range keys {
			if _, pending, _ := rd.Compare(k, a, true, time.Now()); pending {
				return false
			}
		}
		return true
	})
	stop()
	mid, long := 0, 0
	for _, q := range st.asked() {
		switch d := rangeOf(t, q); {
		case d >= time.Hour:
			long++
			if strings.Contains(q, "c-") {
				t.Errorf("the hour-long rebuild is read for the two-minute ones too: %s", q)
			}
		case d >= time.Minute:
			mid++
		}
	}
	if mid < 3 || mid > 6 {
		t.Errorf("%d reads of about two minutes for ten analyses, want them read together (3, or 6 if a tick split them), not one by one (30)", mid)
	}
	if long != 3 {
		t.Errorf("%d reads of an hour, want the old analysis' three, once", long)
	}
}

// rangeOf is the range of a comparison read's range selector.
func rangeOf(t *testing.T, promql string) time.Duration {
	t.Helper()
	m := selectorOf.FindStringSubmatch(promql)
	if m == nil {
		t.Fatalf("not a range selector: %s", promql)
	}
	w, err := model.ParseDuration(m[3])
	if err != nil {
		t.Fatal(err)
	}
	return time.Duration(w)
}

// TestFirstReadsJoinThePeriod: a comparison's first read waits for the
// period's reads unless a step waits for it; then it comes within
// CheckDelay, with every other comparison behind, in one batch: a burst
// of canaries taking their first weight is not a burst of reads.
func TestFirstReadsJoinThePeriod(t *testing.T) {
	st := &store{}
	rd := &Reader{Period: time.Hour, QueryTimeout: time.Second, Clock: clock.RealClock{}, CheckDelay: 10 * time.Millisecond,
		Querier: func(string) (Querier, error) { return storeQuerier{st}, nil }}
	startReader(t, rd)
	now := time.Now()
	for i := range 20 {
		ns := fmt.Sprintf("ns-%d", i)
		if _, pending, err := rd.Compare(ns+"/reviews", request(ns, now), false, now); !pending || err != nil {
			t.Fatalf("first ask: pending %v, err %v; want pending", pending, err)
		}
	}
	time.Sleep(400 * time.Millisecond)
	if n := len(st.asked()); n != 0 {
		t.Fatalf("%d reads before the period and with no step waiting, want 0", n)
	}
	for range 5 { // asked again and again by a waiting step: one read
		rd.Compare("ns-0/reviews", request("ns-0", now), true, time.Now())
	}
	waitFor(t, "the first verdicts", func() bool {
		for i := range 20 {
			ns := fmt.Sprintf("ns-%d", i)
			if v, _, _ := rd.Compare(ns+"/reviews", request(ns, now), false, time.Now()); v == nil {
				return false
			}
		}
		return true
	})
	if n := len(st.asked()); n != 3 {
		t.Errorf("%d reads for 20 first verdicts, want 3 (one batch: one query per metric)", n)
	}
}

func TestFlushWait(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		name  string
		last  time.Time
		delay time.Duration
		want  time.Duration
	}{
		{"quiet: a round almost at once", now.Add(-time.Second), 250 * time.Millisecond, checkGather},
		{"never read before", time.Time{}, 250 * time.Millisecond, checkGather},
		{"a round 100ms ago: the next 250ms after it", now.Add(-100 * time.Millisecond), 250 * time.Millisecond, 150 * time.Millisecond},
		{"a delay shorter than the gathering", now.Add(-time.Second), 10 * time.Millisecond, 10 * time.Millisecond},
	} {
		if got := flushWait(c.last, now, c.delay); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}
