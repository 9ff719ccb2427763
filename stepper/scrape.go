package stepper

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/prometheus/common/model"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/log"
)

// AssumedScrapeInterval is the scrape interval taken when it can be
// neither discovered nor was set by a flag: Prometheus' own default
// (global scrape_interval 1m). It makes the checks' windows long (four
// minutes), never too short to hold data.
const AssumedScrapeInterval = time.Minute

// ScrapeDiscoverer finds how often Prometheus scrapes the targets that
// export Istio's request metrics.
type ScrapeDiscoverer interface {
	ScrapeInterval(ctx context.Context) (time.Duration, error)
}

// ScrapeInterval implements ScrapeDiscoverer: the longest scrape interval
// among the active targets of the jobs that export istio_requests_total
// (as the targets API reports them), or, while no such series exists yet,
// among all active targets.
//
// Example: jobs kubernetes-pods (15s) and kubernetes-pods-slow (30s)
// export istio_requests_total → 30s.
func (p *Prometheus) ScrapeInterval(ctx context.Context) (time.Duration, error) {
	v, err := p.query(ctx, "scrape-interval", `group by (job) (istio_requests_total)`, time.Now())
	if err != nil {
		return 0, fmt.Errorf("query the jobs exporting istio_requests_total: %w", err)
	}
	jobs := map[string]bool{}
	if vec, ok := v.(model.Vector); ok {
		for _, s := range vec {
			jobs[string(s.Metric["job"])] = true
		}
	}
	targets, err := p.activeTargets(ctx)
	if err != nil {
		return 0, err
	}
	return longestScrape(targets, jobs)
}

// target is the part of an active target of Prometheus' targets API that
// discovery reads (client_golang's ActiveTarget lacks scrapeInterval).
type target struct {
	ScrapePool     string            `json:"scrapePool"`
	Labels         map[string]string `json:"labels"`
	ScrapeInterval string            `json:"scrapeInterval"`
}

// maxTargetsBody bounds the targets API's answer that discovery reads.
const maxTargetsBody = 64 << 20

// activeTargets reads /api/v1/targets?state=active.
func (p *Prometheus) activeTargets(ctx context.Context) ([]target, error) {
	u := p.client.URL("/api/v1/targets", nil)
	u.RawQuery = url.Values{"state": {"active"}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	resp, body, err := p.client.Do(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("read prometheus targets: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("read prometheus targets: %s", resp.Status)
	}
	if len(body) > maxTargetsBody {
		return nil, fmt.Errorf("read prometheus targets: answer of %d bytes is over %d", len(body), maxTargetsBody)
	}
	var answer struct {
		Status string `json:"status"`
		Data   struct {
			ActiveTargets []target `json:"activeTargets"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &answer); err != nil {
		return nil, fmt.Errorf("read prometheus targets: %w", err)
	}
	if answer.Status != "success" {
		return nil, fmt.Errorf("read prometheus targets: status %q", answer.Status)
	}
	return answer.Data.ActiveTargets, nil
}

// longestScrape is the longest scrape interval among the targets of the
// given jobs (by their job label), or of all targets when no target
// belongs to them (jobs empty: no Istio series yet). Pure, for tests.
func longestScrape(targets []target, jobs map[string]bool) (time.Duration, error) {
	longest := func(only bool) (time.Duration, error) {
		var d time.Duration
		for _, t := range targets {
			if only && !jobs[t.Labels["job"]] {
				continue
			}
			if t.ScrapeInterval == "" {
				continue
			}
			i, err := model.ParseDuration(t.ScrapeInterval)
			if err != nil {
				return 0, fmt.Errorf("scrape interval %q of target pool %s: %w", t.ScrapeInterval, t.ScrapePool, err)
			}
			d = max(d, time.Duration(i))
		}
		return d, nil
	}
	d, err := longest(len(jobs) > 0)
	if err == nil && d == 0 && len(jobs) > 0 {
		d, err = longest(false)
	}
	if err == nil && d == 0 {
		err = fmt.Errorf("no active target reports a scrape interval")
	}
	return d, err
}

// ScrapeIntervals keeps the scrape interval of each Prometheus the
// analyses use: set by a flag, or discovered and kept for Refresh. The
// stepper reads it without waiting ([ScrapeIntervals.Get]): a value older
// than Refresh is discovered again in the background (one discovery per
// URL at a time, bounded by Timeout), so that a pass never waits on
// Prometheus. The webhook reads the default Prometheus' without waiting
// ([ScrapeIntervals.Known]), refreshed by [ScrapeIntervals.Start] on
// every replica.
type ScrapeIntervals struct {
	// Fixed, when above zero, is the scrape interval of every Prometheus
	// (--scrape-interval): nothing is discovered.
	Fixed time.Duration
	// Default is the controller's Prometheus URL (--prometheus-url).
	Default string
	// Refresh is how long a discovered value (or a failure) is kept.
	Refresh time.Duration
	// Timeout bounds one discovery.
	Timeout time.Duration
	// Clock tells the time; default the real one.
	Clock clock.PassiveClock
	// Discoverer makes the discoverer of a URL; default NewPrometheus.
	Discoverer func(url string) (ScrapeDiscoverer, error)

	mu    sync.Mutex
	known map[string]scrapeEntry
	// asking holds the URLs being discovered in the background; ctx is
	// Start's (their owner), wg waits for them when it ends.
	asking map[string]bool
	ctx    context.Context
	closed bool // Start has ended: nothing more is asked
	wg     sync.WaitGroup
}

type scrapeEntry struct {
	interval time.Duration // zero when discovery failed
	at       time.Time
	err      error
}

// Get is the scrape interval of the Prometheus at url (empty: Default),
// without waiting: Fixed, or the last discovery; one older than Refresh
// (or none yet) is asked again in the background. Never discovered, or
// a failed discovery with no interval before it, is
// AssumedScrapeInterval (longer windows, never emptier ones); the error
// says why.
func (s *ScrapeIntervals) Get(ctx context.Context, url string) (time.Duration, error) {
	if s == nil {
		return AssumedScrapeInterval, fmt.Errorf("no scrape interval discovery")
	}
	if s.Fixed > 0 {
		return s.Fixed, nil
	}
	if url == "" {
		url = s.Default
	}
	now := s.now()
	s.mu.Lock()
	e, ok := s.known[url]
	if (!ok || now.Sub(e.at) >= s.refresh()) && !s.asking[url] && !s.closed {
		if s.asking == nil {
			s.asking = map[string]bool{}
		}
		s.asking[url] = true
		owner := s.ctx
		if owner == nil {
			owner = context.WithoutCancel(ctx)
		}
		s.wg.Go(func() {
			s.discover(owner, url, e)
			s.mu.Lock()
			delete(s.asking, url)
			s.mu.Unlock()
		})
	}
	s.mu.Unlock()
	if !ok {
		return AssumedScrapeInterval, fmt.Errorf("the scrape interval of %s is being discovered", url)
	}
	if e.interval == 0 {
		return AssumedScrapeInterval, e.err
	}
	return e.interval, e.err
}

// wait waits for the discoveries in the background.
func (s *ScrapeIntervals) wait() { s.wg.Wait() }

// Known is the default Prometheus' scrape interval as last discovered (or
// Fixed), zero when not known: it never waits.
func (s *ScrapeIntervals) Known() time.Duration {
	if s == nil {
		return 0
	}
	if s.Fixed > 0 {
		return s.Fixed
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.known[s.Default].interval
}

// discover asks Prometheus now and records the answer; a failure keeps
// the interval of prev, the entry it replaces.
func (s *ScrapeIntervals) discover(ctx context.Context, url string, prev scrapeEntry) scrapeEntry {
	e := scrapeEntry{interval: prev.interval, at: s.now()}
	newDiscoverer := s.Discoverer
	if newDiscoverer == nil {
		newDiscoverer = func(url string) (ScrapeDiscoverer, error) { return NewPrometheus(url) }
	}
	if url == "" {
		e.err = fmt.Errorf("no Prometheus URL")
	} else if d, err := newDiscoverer(url); err != nil {
		e.err = err
	} else {
		timeout := s.Timeout
		if timeout <= 0 {
			timeout = 10 * time.Second
		}
		dctx, cancel := context.WithTimeout(ctx, timeout)
		interval, err := d.ScrapeInterval(dctx)
		cancel()
		if err != nil {
			e.err = fmt.Errorf("discover the scrape interval of %s: %w", url, err)
		} else {
			e.interval = interval
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.known == nil {
		s.known = map[string]scrapeEntry{}
	}
	s.known[url] = e
	return e
}

// refresh is Refresh, or a minute when unset.
func (s *ScrapeIntervals) refresh() time.Duration {
	if s.Refresh <= 0 {
		return time.Minute
	}
	return s.Refresh
}

func (s *ScrapeIntervals) now() time.Time {
	if s.Clock == nil {
		return time.Now()
	}
	return s.Clock.Now()
}

// Start refreshes the default Prometheus' scrape interval every Refresh
// until ctx ends (a manager.Runnable: it runs on every replica, so that
// each webhook can warn).
func (s *ScrapeIntervals) Start(ctx context.Context) error {
	s.mu.Lock()
	s.ctx = ctx
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		s.wait()
	}()
	if s.Fixed > 0 || s.Default == "" {
		<-ctx.Done()
		return nil
	}
	t := time.NewTicker(s.refresh())
	defer t.Stop()
	for {
		if e := s.discover(ctx, s.Default, s.entry(s.Default)); e.err != nil {
			log.FromContext(ctx).Info("scrape interval not discovered", "err", e.err.Error(), "using", s.Known())
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// NeedLeaderElection implements manager.LeaderElectionRunnable: every
// replica's webhook needs the value.
func (s *ScrapeIntervals) NeedLeaderElection() bool { return false }

func (s *ScrapeIntervals) entry(url string) scrapeEntry {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.known[url]
}
