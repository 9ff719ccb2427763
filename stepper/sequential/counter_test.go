package sequential

import (
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"
)

// stream is recorded counter series: what Prometheus holds of them.
type stream []Series

// window is what a range selector over (at-window, at] returns.
func (s stream) window(at time.Time, window time.Duration) []Series {
	var out []Series
	for _, ser := range s {
		var samples []Sample
		for _, smp := range ser.Samples {
			if smp.At.After(at.Add(-window)) && !smp.At.After(at) {
				samples = append(samples, smp)
			}
		}
		if len(samples) > 0 {
			out = append(out, Series{ID: ser.ID, Samples: samples})
		}
	}
	return out
}

// randomStream makes series scraped every scrape (each at its own phase)
// from before start to until: counters that grow, reset (a restarted
// pod), miss scrapes, carry stale markers (NaN), and series that appear
// only after the start (the first 5xx of a code) or end before until (a
// pod gone).
func randomStream(r *rand.Rand, start, until time.Time, scrape time.Duration) stream {
	var s stream
	for i := range 2 + r.IntN(6) {
		ser := Series{ID: string(rune('a' + i))}
		first := start.Add(-2*scrape + time.Duration(r.Int64N(int64(scrape))))
		if r.IntN(3) == 0 { // a late series
			first = start.Add(time.Duration(r.Int64N(int64(until.Sub(start)))))
		}
		last := until
		if r.IntN(4) == 0 { // a series that ends
			last = first.Add(time.Duration(r.Int64N(int64(until.Sub(first)) + 1)))
		}
		v := float64(r.IntN(1000))
		for at := first; !at.After(last); at = at.Add(scrape) {
			switch r.IntN(20) {
			case 0: // a missed scrape
				continue
			case 1: // a reset
				v = float64(r.IntN(5))
			case 2: // a stale marker
				ser.Samples = append(ser.Samples, Sample{At: at, Value: math.NaN()})
				continue
			default:
				v += float64(r.IntN(50))
			}
			ser.Samples = append(ser.Samples, Sample{At: at, Value: v})
		}
		s = append(s, ser)
	}
	return s
}

// TestCounterEqualsIncrements: reading only the samples since the last
// period (and a lookback) into a Counter gives, interval for interval,
// the counts of differencing the whole analysis at once, on random
// streams with counter resets, late series, missed scrapes and stale
// markers, read at irregular moments.
func TestCounterEqualsIncrements(t *testing.T) {
	start := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	for seed := range uint64(500) {
		r := rand.New(rand.NewPCG(seed, 7))
		scrape := time.Duration(1+r.IntN(15)) * time.Second
		period := time.Duration(1+r.IntN(10)) * time.Second
		lookback := max(2*period, 2*scrape)
		until := start.Add(time.Duration(30+r.IntN(300)) * time.Second)
		s := randomStream(r, start, until, scrape)

		var c Counter
		var incremental []Count
		closed := 0
		for now := start.Add(time.Second); !now.After(until); now = now.Add(time.Duration(500+r.IntN(int(3*period/time.Millisecond))) * time.Millisecond) {
			ends := Bounds(start, period, now.Add(-time.Second))
			from := start
			if closed > 0 {
				from = ends[closed-1]
			}
			got := c.Advance(s.window(now, now.Sub(from)+lookback), from, ends[closed:])
			incremental = append(incremental, got...)
			closed = len(ends)
		}
		ends := Bounds(start, period, until.Add(-time.Second))[:closed]
		whole := Increments(s.window(until, until.Sub(start)+lookback), start, ends)
		if !reflect.DeepEqual(incremental, whole) {
			t.Fatalf("seed %d (scrape %v, period %v): incremental counts differ from the whole replay\n incremental %v\n whole       %v", seed, scrape, period, incremental, whole)
		}
	}
}
