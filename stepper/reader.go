package stepper

import (
	"context"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"k8s.io/utils/clock"

	"github.com/canary-io/canary/contract"
	"github.com/canary-io/canary/stepper/plan"
	"github.com/canary-io/canary/stepper/sequential"
)

// Reader reads Prometheus for every analysis in flight, in the
// background and in batches, so that no pass waits on Prometheus and the
// number of queries does not grow with the number of analyses:
//
//   - the continuous comparison: every Period, one range query per metric
//     (requests, the duration histogram's _count and its buckets) for
//     every analysis whose comparison is up to date, reading only the
//     samples since the last period (groupSelectors, fanOut), but for
//     the analyses whose checks fall due within the period: the round of
//     their checks reads them (checksSoon); the
//     analyses further behind (a first read after a restart or a lost
//     lease, which rebuilds from the analysis' start, or the first read
//     of an analysis whose canary took traffic long after it started) are
//     read in catch-up groups of windows within a factor of two, at most
//     AloneLimit groups at once, so that a long window never weighs on
//     the reads that need a short one;
//   - the end-of-step checks: a step's checks fall due at a moment
//     known when it starts (its start, a whole second, plus the
//     interval), and the pass that records the step tells the Reader
//     (Expect): the checks of every analysis due at the same moment are
//     read in one round then, over the window that ends at it (read
//     checkLead before it, so that the results are in when the step
//     ends), whether or not their passes are on time,
//     so that the rounds follow the moments at which steps end (at most
//     one a second with whole-second intervals), not the number of
//     analyses nor how late the passes come. A request the Reader was not
//     told of (the checks asked again after no data, a step waiting for
//     its hooks, a paused analysis, the first pass after a restart) is
//     read in rounds at most one per CheckDelay (four a
//     second by default); one that finds the Reader quiet starts a round
//     almost at once (after checkGather, for the requests of the same
//     moment), one that comes while a round was just read waits for the
//     next. The requests of a round are read together, one query per
//     built-in check and window for all of them (grouped by namespace and
//     workload); the custom metrics stay one query per analysis. Their
//     comparisons are read again beside them, in one batch (or, being
//     read already, that read is waited for), so that a step is judged on
//     the comparison as of its checks.
//
// A pass asks for what it needs and takes the latest answer (Compare,
// Checks): it never blocks. A read that fails is a failure for every
// analysis in it, never a pass. The Reader runs under the leader lease
// only and forgets everything when it stops: the next leader rebuilds.
// Each group of reads runs under QueryTimeout; one Prometheus' batch at a
// time, so that a slow one is not asked again before it has answered,
// and one Prometheus (a tenant's canary.io/prometheus) never delays
// another's.
type Reader struct {
	// Period is the comparison's interval (--comparison-period).
	Period time.Duration
	// QueryTimeout bounds each group of reads.
	QueryTimeout time.Duration
	// Clock gives the time of each read.
	Clock clock.PassiveClock
	// Querier is the client of a Prometheus URL.
	Querier func(url string) (Querier, error)
	// Wake asks for a pass of the Deployment key (namespace/name): its
	// checks are in, its comparison has its first verdict or found a
	// regression.
	Wake func(key string)
	// CheckDelay is the shortest time between two rounds of check reads
	// (default DefaultCheckDelay): the requests that come in between
	// share the next round's reads.
	CheckDelay time.Duration
	// AloneLimit is how many catch-up groups (analyses far behind, see
	// tick) are read at once (default DefaultAloneLimit).
	AloneLimit int

	mu       sync.Mutex
	ctx      context.Context // nil when not running
	readings map[string]*reading
	rounds   map[string]*checkRound
	// expected are the checks falling due at a known moment, by
	// Deployment key (Expect); expectKick is when the next read of them
	// is scheduled (zero: none).
	expected   map[string]*expectation
	expectKick time.Time
	busyURLs   map[string]bool // a comparison batch in flight
	alone      int
	flushing   bool // a flush of the check requests is scheduled
	// lastFlush is when the last round of check reads started.
	lastFlush time.Time
	hurrying  bool // a read of the first reads steps wait for is scheduled
	kick      chan struct{}
	soon      chan struct{} // a first read is wanted
	wg        sync.WaitGroup
}

// Defaults of the Reader.
const (
	DefaultCheckDelay = 250 * time.Millisecond
	// checkGather is how long a round that may start at once waits for
	// the other requests of the same moment (passes woken together).
	checkGather = 20 * time.Millisecond
	// checkLead is how long before their moment expected checks are
	// read, evaluated at it (the window that ends then): a round takes a
	// tenth of a second typically and half a second when the machine is
	// busy, and the step's pass, due at the moment, then finds them in.
	// Prometheus has no sample of the last half second then, as it has
	// none of the last scrape interval's part at any moment: the newest
	// sample of a series is up to a scrape interval old.
	checkLead         = 500 * time.Millisecond
	DefaultAloneLimit = 8
	// forgetAfter: a reading or check round no pass has asked about for
	// this long is dropped (its analysis ended while the Deployment was
	// being deleted, say); asked again, it is rebuilt.
	forgetAfter = 10 * time.Minute
)

// reading is one analysis' comparison as the Reader keeps it.
type reading struct {
	key string
	req comparisonRequest
	// c is touched only by the read that holds busy.
	c    comparison
	busy bool
	// done is closed when the read that holds busy has stored its
	// outcome: a round of checks waits for its analysis' read in flight.
	done chan struct{}
	// since is when a pass first asked; asked the last time.
	since, asked time.Time
	// verdict is the latest; read when it was read; err the latest
	// read's failure (cleared by a success).
	verdict *sequential.Verdict
	read    time.Time
	err     error
}

// hold marks r busy: a read of it has started (the Reader's lock held).
func (r *reading) hold() {
	r.busy, r.done = true, make(chan struct{})
}

// checkRound is one analysis' end-of-step checks.
type checkRound struct {
	key, round string
	url        string
	run        checkRun
	asked      time.Time
	started    bool
	done       bool
	// at is when the checks are evaluated, the end of their window: an
	// expected round's moment; zero for a request, read when its round
	// starts.
	at      time.Time
	results []plan.CheckResult
	// stored is when the results were stored (the round's reads ended).
	stored time.Time
}

// expectation is an analysis' end-of-step checks for round, falling due
// at a known moment: read in that moment's round, before its pass asks.
type expectation struct {
	round, url string
	run        checkRun
	at         time.Time
}

// NeedLeaderElection implements manager.LeaderElectionRunnable.
func (rd *Reader) NeedLeaderElection() bool { return true }

// Start reads until ctx ends, then waits for the reads in flight and
// forgets everything.
func (rd *Reader) Start(ctx context.Context) error {
	rd.mu.Lock()
	rd.ctx = ctx
	rd.readings, rd.rounds, rd.busyURLs = map[string]*reading{}, map[string]*checkRound{}, map[string]bool{}
	rd.expected, rd.expectKick = map[string]*expectation{}, time.Time{}
	rd.kick, rd.soon = make(chan struct{}, 1), make(chan struct{}, 1)
	kick, soon := rd.kick, rd.soon
	rd.mu.Unlock()
	period := rd.Period
	if period <= 0 {
		period = time.Second // no comparison: the ticks only forget
	}
	tick := time.NewTicker(period)
	defer tick.Stop()
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case <-tick.C:
			rd.tick(ctx, rd.Clock.Now())
		case <-kick:
			rd.flushChecks(ctx, rd.Clock.Now())
		case <-soon:
			rd.mu.Lock()
			rd.hurrying = false
			rd.mu.Unlock()
			rd.tick(ctx, rd.Clock.Now())
		}
	}
	rd.mu.Lock()
	rd.ctx, rd.readings, rd.rounds, rd.busyURLs, rd.alone, rd.flushing, rd.hurrying = nil, nil, nil, nil, 0, false, false
	rd.expected = nil
	rd.mu.Unlock()
	rd.wg.Wait()
	return nil
}

// staleAfter is how old the latest verdict may be before the comparison
// counts as unavailable, and how long a first read may take: three
// periods and a query.
func (rd *Reader) staleAfter() time.Duration {
	return 3*rd.Period + rd.QueryTimeout
}

// Compare returns the latest verdict of the comparison a of the
// Deployment key, asking for it to be read from now on. pending: no read
// of a has ended yet; the pass waits for it before judging a step, so
// that a restart never lets a step pass on a comparison not yet rebuilt.
// A first read comes with the next period's reads, shared with every
// comparison read then; waiting says a step's checks are due and wait
// for it (after a restart, say), and then it comes within CheckDelay.
// An error says why the comparison is unavailable: its last read failed,
// or it has not been read for staleAfter (the reader is stuck or not
// running), or its first read took longer than that.
func (rd *Reader) Compare(key string, a comparisonRequest, waiting bool, now time.Time) (verdict *sequential.Verdict, pending bool, err error) {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	if rd.ctx == nil {
		return nil, false, fmt.Errorf("the comparison's reader is not running (no leader lease)")
	}
	r := rd.readings[key]
	if r == nil || r.req.built() != a.built() {
		r = &reading{key: key, req: a, since: now}
		rd.readings[key] = r
	}
	if waiting && r.verdict == nil && r.err == nil && !rd.hurrying {
		// The first reads a step waits for, soon and together: one read
		// of every comparison behind, not one per first read.
		rd.hurrying = true
		soon := rd.soon
		time.AfterFunc(rd.checkDelay(), func() {
			select {
			case soon <- struct{}{}:
			default:
			}
		})
	}
	r.req.lookback, r.asked = a.lookback, now
	switch {
	case r.err != nil:
		return r.verdict, false, r.err
	case r.verdict != nil && now.Sub(r.read) > rd.staleAfter():
		return r.verdict, false, fmt.Errorf("the comparison has not been read for %s", now.Sub(r.read).Truncate(time.Second))
	case r.verdict != nil:
		v := *r.verdict
		return &v, false, nil
	case now.Sub(r.since) > rd.staleAfter():
		return nil, false, fmt.Errorf("the comparison's first read has not ended within %s", rd.staleAfter())
	}
	return nil, true, nil
}

// Drop forgets the comparison and the checks of the Deployment key: its
// analysis is not in flight.
func (rd *Reader) Drop(key string) {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	delete(rd.readings, key)
	delete(rd.rounds, key)
	delete(rd.expected, key)
}

// Expect tells the Reader that the end-of-step checks of the Deployment
// key for round fall due at: they are read in the round of that moment
// (checkLead before it, evaluated at it), beside every other analysis'
// due then, and
// handed to the pass that asks for round (Checks). run's window is the
// one that ends at. Expecting again replaces; Unexpect forgets. An
// expectation whose comparison has no verdict yet when it falls due is
// dropped: the pass asks once it has one.
func (rd *Reader) Expect(key, round string, run checkRun, url string, at time.Time) {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	if rd.ctx == nil {
		return
	}
	if e := rd.expected[key]; e != nil && e.round == round && e.at.Equal(at) {
		return
	}
	rd.expected[key] = &expectation{round: round, url: url, run: run, at: at}
	rd.scheduleExpected(at, rd.Clock.Now())
}

// Unexpect forgets the expected checks of the Deployment key: its step
// ended, or it waits for something else (a pause, its hooks).
func (rd *Reader) Unexpect(key string) {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	delete(rd.expected, key)
}

// scheduleExpected makes sure a round starts checkLead before at, unless
// one is scheduled before then (the Reader's lock held).
func (rd *Reader) scheduleExpected(at, now time.Time) {
	kickAt := at.Add(-checkLead)
	if !rd.expectKick.IsZero() && !kickAt.Before(rd.expectKick) {
		return
	}
	rd.expectKick = kickAt
	kick := rd.kick
	time.AfterFunc(kickAt.Sub(now), func() {
		// Fired: the next expectation needs a timer of its own, even if
		// this one fired before its moment by the wall clock.
		rd.mu.Lock()
		if rd.expectKick.Equal(kickAt) {
			rd.expectKick = time.Time{}
		}
		rd.mu.Unlock()
		select {
		case kick <- struct{}{}:
		default:
		}
	})
}

// takeExpected turns the expectations due by now and checkLead into check
// requests of this round and schedules the next (the Reader's lock
// held). One whose
// pass has asked already, or whose comparison has no verdict yet, is
// dropped.
func (rd *Reader) takeExpected(now time.Time) {
	if !rd.expectKick.After(now) {
		rd.expectKick = time.Time{}
	}
	var next time.Time
	for key, e := range rd.expected {
		if e.at.After(now.Add(checkLead)) {
			if next.IsZero() || e.at.Before(next) {
				next = e.at
			}
			continue
		}
		delete(rd.expected, key)
		if c := rd.rounds[key]; c != nil && c.round == e.round {
			continue
		}
		run := e.run
		run.comparedRequests = -1
		if r := rd.readings[key]; r != nil {
			if r.verdict == nil && r.err == nil {
				continue
			}
			if r.verdict != nil {
				run.comparedRequests = r.verdict.Errors.CanaryRequests
			}
		}
		rd.rounds[key] = &checkRound{key: key, round: e.round, url: e.url, run: run, asked: now, at: e.at}
	}
	if !next.IsZero() {
		rd.scheduleExpected(next, now)
	}
}

// catchUp is a group of comparisons far behind (rebuilt after a restart,
// or whose first read reaches back to an analysis' start long ago), read
// together: one Prometheus, windows within a factor of two.
type catchUp struct {
	url    string
	bucket int
}

// bucketOf is the catch-up group of a read reaching back behind, longer
// than batchable: windows up to twice batchable, up to four times, ...
func bucketOf(behind, batchable time.Duration) int {
	b := 0
	for w := 2 * batchable; behind > w && b < 32; w *= 2 {
		b++
	}
	return b
}

// tick starts the comparison's reads due now: one batch per Prometheus of
// the analyses up to date, and the others by how far they reach back
// (catch-up groups, at most AloneLimit at once), so that a long window is
// never read for the analyses that need a short one.
func (rd *Reader) tick(ctx context.Context, now time.Time) {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	batchable := rd.batchable()
	groups := map[string][]job{}
	behind := map[catchUp][]*reading{}
	for key, r := range rd.readings {
		if now.Sub(r.asked) > forgetAfter {
			delete(rd.readings, key)
			continue
		}
		if r.busy || rd.Period <= 0 {
			continue
		}
		if now.Sub(r.c.from(r.req)) <= batchable {
			if rd.checksSoon(key, r, now) {
				continue
			}
			if !rd.busyURLs[r.req.url] {
				groups[r.req.url] = append(groups[r.req.url], job{r, r.req})
				r.hold()
			}
			continue
		}
		k := catchUp{r.req.url, bucketOf(now.Sub(r.c.from(r.req)), batchable)}
		behind[k] = append(behind[k], r)
	}
	for k, readings := range behind {
		if rd.alone >= rd.aloneLimit() {
			break // the next tick reads them
		}
		rd.alone++
		group := make([]job, len(readings))
		for i, r := range readings {
			r.hold()
			group[i] = job{r, r.req}
		}
		rd.wg.Go(func() { rd.readCatchUp(ctx, k.url, group, now) })
	}
	for key, c := range rd.rounds {
		if now.Sub(c.asked) > forgetAfter && (c.done || !c.started) {
			delete(rd.rounds, key)
		}
	}
	for url, group := range groups {
		rd.busyURLs[url] = true
		rd.wg.Go(func() { rd.readBatch(ctx, url, group, now) })
	}
}

// checksSoon reports whether the period's batch leaves out the
// comparison r of the Deployment key (the Reader's lock held): its
// expected checks fall due within the period (or are being taken now),
// and the round of their moment reads it beside them (refreshable). Read
// in the batch, it would be in flight when the round starts, and the
// round would wait for the whole batch, every analysis' comparison, to
// hand out its results. One without a verdict yet is read: its round
// drops it (takeExpected).
func (rd *Reader) checksSoon(key string, r *reading, now time.Time) bool {
	e := rd.expected[key]
	return e != nil && r.verdict != nil && e.at.After(now.Add(-time.Second)) && !e.at.After(now.Add(rd.Period))
}

func (rd *Reader) checkDelay() time.Duration {
	if rd.CheckDelay > 0 {
		return rd.CheckDelay
	}
	return DefaultCheckDelay
}

func (rd *Reader) aloneLimit() int {
	if rd.AloneLimit > 0 {
		return rd.AloneLimit
	}
	return DefaultAloneLimit
}

// matrixQuerier is the MatrixQuerier of url.
func (rd *Reader) matrixQuerier(url string) (MatrixQuerier, error) {
	q, err := rd.Querier(url)
	if err != nil {
		return nil, err
	}
	mq, ok := q.(MatrixQuerier)
	if !ok {
		return nil, fmt.Errorf("the Prometheus client cannot read raw samples")
	}
	return mq, nil
}

// job is a read of one comparison: the reading, busy while the read
// runs (only the read touches its comparison then), and its request as
// it stood when the read started (a pass may change the reading's).
type job struct {
	r   *reading
	req comparisonRequest
}

// readBatch reads the comparisons of group (one Prometheus) at once, the
// Prometheus' batch of this period.
func (rd *Reader) readBatch(ctx context.Context, url string, group []job, now time.Time) {
	rd.readThen(ctx, url, group, now, func() { delete(rd.busyURLs, url) })
}

// readThen reads group (readJobs), then, under the lock, releases what
// started the read (release), then wakes the Deployments with news.
func (rd *Reader) readThen(ctx context.Context, url string, group []job, now time.Time, release func()) {
	wake := rd.readJobs(ctx, url, group, now)
	rd.mu.Lock()
	release()
	rd.mu.Unlock()
	rd.wake(wake)
}

// readJobs reads the comparisons of group (one Prometheus) at once and
// returns the Deployments to wake (store), woken by the caller once the
// batch is done with: waking never holds a batch.
func (rd *Reader) readJobs(ctx context.Context, url string, group []job, now time.Time) (wake []string) {
	reqs := make([]comparisonRequest, len(group))
	var window time.Duration
	for i, j := range group {
		reqs[i] = j.req
		window = max(window, groupWindow(j.r.c.from(j.req), j.req.lookback, now))
	}
	idx, err := func() (readIndex, error) {
		q, err := rd.matrixQuerier(url)
		if err != nil {
			return nil, err
		}
		qctx, cancel := context.WithTimeout(ctx, rd.QueryTimeout)
		defer cancel()
		return readGroup(qctx, q, reqs, window, now)
	}()
	for _, j := range group {
		v, verr := sequential.Verdict{}, err
		if err == nil {
			v, verr = j.r.c.advance(j.req, fanOut(idx, j.req), now)
		}
		if rd.store(j.r, v, verr, now) {
			wake = append(wake, j.r.key)
		}
	}
	return wake
}

// wake asks for a pass of each Deployment of keys.
func (rd *Reader) wake(keys []string) {
	if rd.Wake == nil {
		return
	}
	for _, k := range keys {
		rd.Wake(k)
	}
}

// readCatchUp reads a catch-up group of comparisons (far behind, of one
// Prometheus) at once.
func (rd *Reader) readCatchUp(ctx context.Context, url string, group []job, now time.Time) {
	rd.readThen(ctx, url, group, now, func() { rd.alone-- })
}

// store records a read's outcome and reports whether the Deployment's
// pass has something new to act on (to wake it): a first verdict (or
// failure), a regression.
func (rd *Reader) store(r *reading, v sequential.Verdict, err error, now time.Time) bool {
	rd.mu.Lock()
	first := r.verdict == nil && r.err == nil
	r.busy = false
	close(r.done)
	if err != nil {
		r.err = err
	} else {
		r.err, r.verdict, r.read = nil, &v, now
	}
	current := rd.readings[r.key] == r
	rd.mu.Unlock()
	return current && (first || v.Regression)
}

// Checks returns the results of the end-of-step checks of the
// Deployment key for round (the step they end), asking for them when
// they have not been: false until they are in. The results are handed
// out once: a pass that judges them and waits for data asks again, and
// the next read covers the window that ends then. A request for another
// round replaces the one before. Results read at the step's end (an
// expected round) are handed to a pass that comes late, a busy queue
// say, as long as it comes within a window of their reads' end: later,
// they are read again. (From their reads' end, not start: a round slower
// than its window, a hanging query's, is never stale on arrival.)
func (rd *Reader) Checks(key, round string, run checkRun, url string, now time.Time) ([]plan.CheckResult, bool) {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	if rd.ctx == nil {
		return nil, false
	}
	if c := rd.rounds[key]; c != nil && c.round == round && !(c.done && now.Sub(c.stored) > c.run.window) {
		c.asked = now
		if c.done {
			delete(rd.rounds, key)
		}
		return c.results, c.done
	}
	rd.rounds[key] = &checkRound{key: key, round: round, url: url, run: run, asked: now}
	if !rd.flushing {
		rd.flushing = true
		kick := rd.kick
		time.AfterFunc(flushWait(rd.lastFlush, now, rd.checkDelay()), func() {
			select {
			case kick <- struct{}{}:
			default:
			}
		})
	}
	return nil, false
}

// flushWait is how long a check request that schedules the next round
// waits for it: the rounds are at least delay apart, and a round that may
// start at once still gathers the requests of the same moment.
//
// Example: delay 250ms, the last round 1s ago → 20ms (checkGather); the
// last round 100ms ago → 150ms.
func flushWait(last, now time.Time, delay time.Duration) time.Duration {
	return max(min(checkGather, delay), last.Add(delay).Sub(now))
}

// flushChecks starts the reads of every check request waiting: one group
// per Prometheus and moment (the expected rounds' moment, or now).
func (rd *Reader) flushChecks(ctx context.Context, now time.Time) {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	rd.flushing = false
	rd.takeExpected(now)
	type groupKey struct {
		url string
		at  time.Time
	}
	groups := map[groupKey][]*checkRound{}
	for _, c := range rd.rounds {
		if !c.started {
			c.started = true
			k := groupKey{c.url, c.at}
			if k.at.IsZero() {
				k.at = now
			}
			groups[k] = append(groups[k], c)
		}
	}
	if len(groups) > 0 {
		rd.lastFlush = now
	}
	for k, group := range groups {
		rd.wg.Go(func() { rd.readChecks(ctx, k.url, group, now, k.at) })
	}
}

// checkConcurrency is how many analyses' checks of one group query at
// once (their custom metrics, and the reads that explain no data).
const checkConcurrency = 32

// readChecks runs the checks of group, which share one Prometheus and
// the moment at which they are evaluated (at; now is when the round
// started): the built-in checks of all of them batched (builtinsOf), the
// rest per analysis.
func (rd *Reader) readChecks(ctx context.Context, url string, group []*checkRound, now, at time.Time) {
	q, err := rd.Querier(url)
	if err != nil {
		// Never a pass: every check is a failed query, judged by the
		// no-data policy and shown in the message.
		q = failingQuerier{err}
	}
	runs := make([]checkRun, len(group))
	for i, c := range group {
		runs[i] = c.run
	}
	// The comparison of each analysis is read again at the checks'
	// moment, beside them (or the read in flight is waited for): a step
	// is never judged on a verdict older than its checks, and a
	// regression found now rolls back before they count.
	// The refresh, the batched built-ins and the custom metrics are read
	// at once: a round takes one query timeout, not one after another.
	// A round's results are handed out only once the refresh and the
	// reads in flight of its comparisons are stored, so that a
	// regression they find rolls back before they count.
	refresh, inFlight := rd.refreshable(group, now)
	var wg sync.WaitGroup
	refreshed := make(chan struct{})
	if len(refresh) > 0 {
		wg.Go(func() {
			woken := rd.readJobs(ctx, url, refresh, now)
			close(refreshed)
			rd.wake(woken)
		})
	} else {
		close(refreshed)
	}
	var known *answers
	if mq, ok := q.(MatrixQuerier); ok {
		known = &answers{done: make(chan struct{})}
		wg.Go(func() {
			known.m = builtinsOf(ctx, mq, runs, at, rd.QueryTimeout)
			close(known.done)
		})
	}
	slots := make(chan struct{}, checkConcurrency)
	for _, c := range group {
		wg.Go(func() {
			slots <- struct{}{}
			results := runChecks(ctx, q, c.run, at, rd.QueryTimeout, known)
			<-slots
			checked := rd.Clock.Now()
			<-refreshed
			for _, done := range inFlight {
				<-done // bounded: every read runs under QueryTimeout
			}
			checkRoundWaitSeconds.Observe(rd.Clock.Since(checked).Seconds())
			// The time under the lock: a pass that found the round not
			// done (its now at or after the moment) is woken.
			rd.mu.Lock()
			stored := rd.Clock.Now()
			c.results, c.done, c.stored = results, true, stored
			current := rd.rounds[c.key] == c
			rd.mu.Unlock()
			checkRoundSeconds.Observe(stored.Sub(now).Seconds())
			// In before their moment, the results wait for the pass due
			// then (its requeue): a wake now would find the step not
			// over.
			if current && !stored.Before(c.at) {
				rd.wake([]string{c.key})
			}
		})
	}
	wg.Wait()
}

// refreshable are the comparisons of the analyses whose checks are read
// now (group) that a read at the checks' moment brings up to date: up to
// date already (a rebuild is the tick's), not read in the last second, no
// read in flight. They are busy until read. inFlight are the reads of
// the others' comparisons in flight (the period's, another round's): the
// round hands its results out only once they are stored.
func (rd *Reader) refreshable(group []*checkRound, now time.Time) (jobs []job, inFlight []chan struct{}) {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	for _, c := range group {
		r := rd.readings[c.key]
		switch {
		case r == nil:
		case r.busy:
			inFlight = append(inFlight, r.done)
		case r.verdict == nil || now.Sub(r.read) < time.Second || now.Sub(r.c.from(r.req)) > rd.batchable():
		default:
			r.hold()
			jobs = append(jobs, job{r, r.req})
		}
	}
	return jobs, inFlight
}

// batchable is how far behind a comparison may be and still be read in a
// batch: its next interval to count began at most a few periods ago
// (intervals are counted a second after they end).
func (rd *Reader) batchable() time.Duration {
	return 3*rd.Period + 2*time.Second
}

// measured is one query's answer: a value, or no data, or a failure.
type measured struct {
	value float64
	ok    bool
	err   error
}

// answers are the built-in checks' batched answers (builtinsOf), set
// once, when done is closed.
type answers struct {
	done chan struct{}
	m    map[string]measured
}

// lookup waits for the answers (at most until ctx ends: a failed query)
// and returns the one for promql; false when a is nil or holds none.
func (a *answers) lookup(ctx context.Context, promql string) (measured, bool) {
	if a == nil {
		return measured{}, false
	}
	select {
	case <-a.done:
		m, ok := a.m[promql]
		return m, ok
	case <-ctx.Done():
		return measured{err: ctx.Err()}, true
	}
}

// The built-in checks for many workloads at once, by namespace and
// workload: the same PromQL as successRateQuery and latencyQuery, one
// series per workload.
const (
	batchSuccessQuery = `sum by (destination_workload_namespace, destination_workload) (rate(istio_requests_total{reporter="destination",destination_workload_namespace=~"{{namespaces}}",destination_workload=~"{{workloads}}",response_code!~"5.*"}[{{interval}}])) / sum by (destination_workload_namespace, destination_workload) (rate(istio_requests_total{reporter="destination",destination_workload_namespace=~"{{namespaces}}",destination_workload=~"{{workloads}}"}[{{interval}}])) * 100`
	batchHiddenQuery  = `count by (destination_workload_namespace, destination_workload) ((count_over_time(istio_requests_total{reporter="destination",destination_workload_namespace=~"{{namespaces}}",destination_workload=~"{{workloads}}",response_code=~"5.*"}[{{interval}}]) == 1) and istio_requests_total{reporter="destination",destination_workload_namespace=~"{{namespaces}}",destination_workload=~"{{workloads}}",response_code=~"5.*"})`
	batchLatencyQuery = `histogram_quantile(0.99, sum by (destination_workload_namespace, destination_workload, le) (rate(istio_request_duration_milliseconds_bucket{reporter="destination",destination_workload_namespace=~"{{namespaces}}",destination_workload=~"{{workloads}}"}[{{interval}}])))`
)

// builtinQueries renders the batched built-in checks for runs (which
// share window), and the count of their canaries' new series of errors
// (hiddenErrorsQuery, about the canaries only).
//
// Example: runs of shop/reviews and shop/ratings, window 40s →
// destination_workload_namespace=~"shop",
// destination_workload=~"reviews-canary|reviews|ratings-canary|ratings", [40s];
// the count: destination_workload=~"reviews-canary|ratings-canary".
func builtinQueries(runs []checkRun, window time.Duration) (success, latency, hidden string) {
	var namespaces, workloads, canaries names
	for _, r := range runs {
		namespaces.add(r.namespace)
		workloads.add(r.canary, r.stable)
		canaries.add(r.canary)
	}
	render := func(q string, wl names) string {
		return strings.NewReplacer("{{namespaces}}", namespaces.match(), "{{workloads}}", wl.match(), "{{interval}}", contract.PromDuration(window)).Replace(q)
	}
	return render(batchSuccessQuery, workloads), render(batchLatencyQuery, workloads), render(batchHiddenQuery, canaries)
}

// builtinsOf reads the built-in checks of every run at once, one pair of
// queries per window and a count of the canaries' new series of errors
// (hiddenErrorsQuery), and returns each workload's answer under the query
// runChecks would send for it alone (builtinQuery), so that the results
// read the same: a workload missing from an answer has no data, and a
// query that fails is a failure for every workload it was for.
func builtinsOf(ctx context.Context, q MatrixQuerier, runs []checkRun, now time.Time, timeout time.Duration) map[string]measured {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	byWindow := map[time.Duration][]checkRun{}
	for _, r := range runs {
		byWindow[r.window] = append(byWindow[r.window], r)
	}
	out := map[string]measured{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for window, group := range byWindow {
		success, latency, hidden := builtinQueries(group, window)
		for _, c := range []struct {
			batch, single string
			stableToo     bool
		}{{success, successRateQuery, true}, {latency, latencyQuery, true}, {hidden, hiddenErrorsQuery, false}} {
			wg.Go(func() {
				vec, err := q.Vector(ctx, c.batch, now)
				answers := map[workloadKey]measured{}
				for _, s := range vec {
					f := float64(s.Value)
					answers[workloadKey{string(s.Metric["destination_workload_namespace"]), string(s.Metric["destination_workload"])}] =
						measured{value: f, ok: !math.IsNaN(f) && !math.IsInf(f, 0)}
				}
				mu.Lock()
				defer mu.Unlock()
				for _, r := range group {
					workloads := []string{r.canary}
					if c.stableToo {
						workloads = append(workloads, r.stable)
					}
					for _, wl := range workloads {
						m := answers[workloadKey{r.namespace, wl}]
						if err != nil {
							m = measured{err: err}
						}
						if !m.ok {
							m.value = 0
						}
						out[builtinQuery(c.single, r.namespace, wl, window)] = m
					}
				}
			})
		}
	}
	wg.Wait()
	return out
}
