package sequential

import (
	"math"
	"slices"
	"sort"
	"time"
)

// Sample is one raw sample of a Prometheus counter, as scraped: its
// timestamp and value (from a range-vector selector such as
// istio_requests_total{...}[10m], not from a range query, whose points are
// evaluated at query steps).
type Sample struct {
	// At is the scrape's timestamp.
	At time.Time
	// Value is the counter's value.
	Value float64
}

// Series is the samples of one counter series: one label set, typically one
// pod and one response code.
type Series struct {
	// ID names the label set (for messages; not interpreted).
	ID string
	// Samples are the series' samples, in any order.
	Samples []Sample
}

// Count is a summed increment over one interval.
type Count struct {
	// Value is the sum of the increments of all series in the interval;
	// never negative.
	Value float64
	// Seen says at least one series had a usable sample in the interval. A
	// Count that is not Seen means no data, not zero.
	Seen bool
}

// Bounds returns the ends of the test's intervals: start + k·period for
// k = 1, 2, ... up to until. They depend only on start, so every replay of
// a rollout cuts the same intervals. Pass as until the read time minus a
// moment (a second) so that a scrape still being written is not cut off and
// then counted in an earlier interval at the next replay.
//
// Example: Bounds(t, 5s, t+12s) = [t+5s, t+10s].
func Bounds(start time.Time, period time.Duration, until time.Time) []time.Time {
	if period <= 0 {
		return nil
	}
	var ends []time.Time
	for end := start.Add(period); !end.After(until); end = end.Add(period) {
		ends = append(ends, end)
	}
	return ends
}

// Increments differences the raw samples of counter series into one summed
// increment per interval. The intervals are (start, ends[0]],
// (ends[0], ends[1]], ...; ends must ascend.
//
// The rules, per series:
//
//   - A sample is usable if its value is a finite number at least 0; NaN
//     (Prometheus' stale marker) and other values are skipped, as if the
//     scrape had been missed.
//   - The increment between two consecutive usable samples belongs to the
//     interval holding the later sample's timestamp: counts are bucketed by
//     when they were scraped, never spread or extrapolated over time (what
//     increase() and rate() do, which yields fractional, inflated counts).
//     Canary and stable pods are scraped at their own moments, so an arm's
//     increment in an interval covers the stretch between its own scrapes;
//     with intervals as long as the scrape interval the two arms' stretches
//     are offset by less than one scrape. An interval in which a series had
//     no sample (a missed scrape) gets nothing from it; its next sample's
//     increment covers both stretches.
//   - The baseline is the last usable sample at or before start. A series
//     without one (first seen after start) counts from zero: Istio creates
//     a response_code="503" series only at the first 503, whose first
//     sample already counts it. Fetch samples from a little before start
//     (a scrape interval) so that series alive at start have a baseline.
//   - A value below the previous one means the counter restarted (the pod
//     or its proxy restarted): the increment is the new value.
//   - Samples after the last end are left for a later call.
//
// Example: with start 0 and ends [5, 10, 15], series A with samples
// (-1, 100), (4, 103), (9, 101), (14, 104) gives 3, 101 (a reset), 3; a
// series B first seen at (12, 2) adds 2 to the third interval: the counts
// are {3, seen}, {101, seen}, {5, seen}.
func Increments(series []Series, start time.Time, ends []time.Time) []Count {
	var c Counter // nothing counted before: baselines from the samples at or before start
	return c.Advance(series, start, ends)
}

// Counter is [Increments] kept between calls, for a comparison that
// reads only the samples since its last period: it remembers, per
// series, the last usable sample at or before the end of the last
// interval it counted. Advance over consecutive stretches of intervals
// gives the counts Increments gives over all of them at once, as long as
// each call sees every sample of its intervals (a sample that reaches
// Prometheus after its interval was counted is counted in the next
// interval, the total kept).
//
// The zero Counter is ready: its first Advance takes baselines as
// Increments does (the last usable sample at or before from, else zero).
type Counter struct {
	last map[string]Sample
}

// Advance returns the counts of the intervals (from, ends[0]],
// (ends[0], ends[1]], ...: from is the end of the intervals counted
// before (the start, at first). series holds the samples of a window
// reaching back before from (the comparison's lookback), so that a
// series Counter has not seen yet finds its baseline there; the samples
// at or before from of a series it knows are ignored. Samples after the
// last end are left for a later call.
func (c *Counter) Advance(series []Series, from time.Time, ends []time.Time) []Count {
	counts := make([]Count, len(ends))
	if len(ends) == 0 {
		return counts
	}
	if c.last == nil {
		c.last = map[string]Sample{}
	}
	last := ends[len(ends)-1]
	for _, s := range series {
		prev, known := c.last[s.ID]
		havePrev := known
		for _, smp := range usable(s.Samples) {
			if !smp.At.After(from) {
				if !known {
					prev, havePrev = smp, true
				}
				continue
			}
			if smp.At.After(last) {
				break
			}
			inc := smp.Value
			if havePrev && smp.Value >= prev.Value {
				inc = smp.Value - prev.Value
			}
			i := sort.Search(len(ends), func(i int) bool { return !ends[i].Before(smp.At) })
			if i == len(ends) {
				i = len(ends) - 1
			}
			counts[i].Value += inc
			counts[i].Seen = true
			prev, havePrev = smp, true
		}
		if havePrev {
			c.last[s.ID] = prev
		}
	}
	return counts
}

// Series is how many series the Counter remembers.
func (c *Counter) Series() int { return len(c.last) }

// usable returns the samples with a finite value at least 0, sorted by
// time (stable, so equal timestamps keep their order), in a new slice.
func usable(in []Sample) []Sample {
	out := make([]Sample, 0, len(in))
	for _, s := range in {
		if s.Value >= 0 && !math.IsInf(s.Value, 1) {
			out = append(out, s)
		}
	}
	slices.SortStableFunc(out, func(a, b Sample) int { return a.At.Compare(b.At) })
	return out
}

// ArmCounts returns one arm's counts for the error test: requests from the
// series of its request counter (all response codes), bad ones from the
// series of its 5xx responses. The arm is missing in an interval where no
// request series had a sample; the 5xx count is then irrelevant, and
// otherwise a 5xx series that does not exist yet counts as zero.
func ArmCounts(requests, errors []Series, start time.Time, ends []time.Time) []Arm {
	return ArmsOf(Increments(requests, start, ends), Increments(errors, start, ends))
}

// ArmsOf is [ArmCounts] of counts already differenced: n the requests,
// x the 5xx, one per interval.
func ArmsOf(n, x []Count) []Arm {
	arms := make([]Arm, min(len(n), len(x)))
	for i := range arms {
		arms[i] = Arm{Requests: n[i].Value, Bad: x[i].Value, Missing: !n[i].Seen}
	}
	return arms
}

// SlowCounts returns one arm's counts for the latency test from its
// request-duration histogram: requests from the _count series, slow ones as
// the increase of _count minus the increase of _bucket{le=L} (the requests
// not faster than the edge L). An interval where either had no sample is
// missing: a _count without its bucket must not count every request slow.
//
// Example: _count rose by 200 and _bucket{le="500"} by 190: 200 requests,
// 10 slow.
func SlowCounts(count, fast []Series, start time.Time, ends []time.Time) []Arm {
	return SlowArmsOf(Increments(count, start, ends), Increments(fast, start, ends))
}

// SlowArmsOf is [SlowCounts] of counts already differenced: n the
// _count's, f the fast bucket's, one per interval.
func SlowArmsOf(n, f []Count) []Arm {
	arms := make([]Arm, min(len(n), len(f)))
	for i := range arms {
		arms[i] = Arm{
			Requests: n[i].Value,
			Bad:      max(0, n[i].Value-f[i].Value),
			Missing:  !n[i].Seen || !f[i].Seen,
		}
	}
	return arms
}

// Intervals pairs the arms' counts into the test's intervals, with the
// durations of the intervals (start, ends[0]], (ends[0], ends[1]], ...
// The slices must have one entry per end.
func Intervals(canary, stable []Arm, start time.Time, ends []time.Time) []Interval {
	out := make([]Interval, min(len(canary), len(stable), len(ends)))
	prev := start
	for i := range out {
		out[i] = Interval{Duration: ends[i].Sub(prev), Canary: canary[i], Stable: stable[i]}
		prev = ends[i]
	}
	return out
}
