package sequential

import (
	"math"
	"reflect"
	"testing"
	"time"
)

var t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

// at returns t0 + s seconds.
func at(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }

func series(id string, pts ...float64) Series {
	s := Series{ID: id}
	for i := 0; i+1 < len(pts); i += 2 {
		s.Samples = append(s.Samples, Sample{At: at(pts[i]), Value: pts[i+1]})
	}
	return s
}

func TestIncrements(t *testing.T) {
	nan := math.NaN()
	ends := []time.Time{at(5), at(10), at(15)}
	for _, tc := range []struct {
		name   string
		series []Series
		want   []Count
	}{
		{"the doc example: a reset, and a series first seen mid-rollout",
			[]Series{series("a", -1, 100, 4, 103, 9, 101, 14, 104), series("b", 12, 2)},
			[]Count{{3, true}, {101, true}, {5, true}}},
		{"steady counter", []Series{series("a", -1, 10, 4, 20, 9, 30, 14, 40)},
			[]Count{{10, true}, {10, true}, {10, true}}},
		{"a missed scrape is no data, the next increment covers both",
			[]Series{series("a", -1, 10, 4, 20, 14, 40)},
			[]Count{{10, true}, {0, false}, {20, true}}},
		{"NaN is a missed scrape", []Series{series("a", -1, 10, 4, 20, 9, nan, 14, 40)},
			[]Count{{10, true}, {0, false}, {20, true}}},
		{"negative and infinite values are skipped", []Series{series("a", -1, 10, 4, -5, 9, math.Inf(1), 14, 40)},
			[]Count{{0, false}, {0, false}, {30, true}}},
		{"a series that appears mid-rollout counts from zero",
			[]Series{series("200", -1, 500, 4, 540, 9, 580, 14, 620), series("503", 9, 3, 14, 4)},
			[]Count{{40, true}, {43, true}, {41, true}}},
		{"a sample at the start is the baseline", []Series{series("a", 0, 7, 5, 9)},
			[]Count{{2, true}, {0, false}, {0, false}}},
		{"a reset to a lower value counts the new value", []Series{series("a", -1, 1000, 4, 1010, 9, 2, 14, 5)},
			[]Count{{10, true}, {2, true}, {3, true}}},
		{"a reset to zero", []Series{series("a", -1, 1000, 4, 0, 9, 4)},
			[]Count{{0, true}, {4, true}, {0, false}}},
		{"unsorted samples are sorted", []Series{series("a", 14, 40, -1, 10, 9, 30, 4, 20)},
			[]Count{{10, true}, {10, true}, {10, true}}},
		{"samples after the last end wait", []Series{series("a", -1, 10, 14, 20, 16, 90)},
			[]Count{{0, false}, {0, false}, {10, true}}},
		{"only samples before the start", []Series{series("a", -10, 1, -1, 2)},
			[]Count{{0, false}, {0, false}, {0, false}}},
		{"a sample exactly at an end belongs to the interval it ends", []Series{series("a", -1, 0, 5, 1, 10, 3)},
			[]Count{{1, true}, {2, true}, {0, false}}},
		{"pods scraped at their own moments",
			[]Series{series("pod-1", -4, 0, 1, 5, 6, 10, 11, 15), series("pod-2", -1, 0, 4, 3, 9, 6, 14, 9)},
			[]Count{{8, true}, {8, true}, {8, true}}},
		{"no series", nil, []Count{{}, {}, {}}},
	} {
		if got := Increments(tc.series, t0, ends); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	if got := Increments([]Series{series("a", 1, 1)}, t0, nil); len(got) != 0 {
		t.Errorf("no intervals: %v", got)
	}
}

func TestArmCounts(t *testing.T) {
	ends := []time.Time{at(5), at(10), at(15)}
	// The pod missed its scrape at 9 s; its first 503s came after 4 s.
	requests := []Series{series("200", -1, 100, 4, 150, 14, 250), series("503", 14, 6)}
	errors := []Series{series("503", 14, 6)}
	want := []Arm{{Requests: 50, Bad: 0}, {Missing: true}, {Requests: 106, Bad: 6}}
	if got := ArmCounts(requests, errors, t0, ends); !reflect.DeepEqual(got, want) {
		t.Errorf("ArmCounts = %v, want %v", got, want)
	}
	// No 5xx series at all (none has happened): zero errors, not no data.
	if got := ArmCounts(requests[:1], nil, t0, ends[:1]); !reflect.DeepEqual(got, []Arm{{Requests: 50}}) {
		t.Errorf("without 5xx series: %v", got)
	}
}

func TestSlowCounts(t *testing.T) {
	ends := []time.Time{at(5), at(10)}
	count := []Series{series("count", -1, 1000, 4, 1200, 9, 1300)}
	fast := []Series{series("le=500", -1, 990, 4, 1180, 9, 1279)}
	want := []Arm{{Requests: 200, Bad: 10}, {Requests: 100, Bad: 1}}
	if got := SlowCounts(count, fast, t0, ends); !reflect.DeepEqual(got, want) {
		t.Errorf("SlowCounts = %v, want %v", got, want)
	}
	// The bucket missing: no data, not every request slow.
	if got := SlowCounts(count, []Series{series("le=500", -1, 990, 4, 1180)}, t0, ends); !got[1].Missing {
		t.Errorf("bucket missing: %v", got)
	}
}

func TestBoundsAndIntervals(t *testing.T) {
	ends := Bounds(t0, 5*time.Second, at(12))
	if want := []time.Time{at(5), at(10)}; !reflect.DeepEqual(ends, want) {
		t.Errorf("Bounds = %v, want %v", ends, want)
	}
	if got := Bounds(t0, 0, at(12)); got != nil {
		t.Errorf("period 0: %v", got)
	}
	if got := Bounds(t0, time.Second, at(-1)); got != nil {
		t.Errorf("until before start: %v", got)
	}
	got := Intervals([]Arm{{Requests: 1}, {Requests: 2}}, []Arm{{Requests: 3}, {Missing: true}}, t0, []time.Time{at(4), at(10)})
	want := []Interval{
		{Duration: 4 * time.Second, Canary: Arm{Requests: 1}, Stable: Arm{Requests: 3}},
		{Duration: 6 * time.Second, Canary: Arm{Requests: 2}, Stable: Arm{Missing: true}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Intervals = %v, want %v", got, want)
	}
}

// TestFromSamples runs the whole path from raw counter samples: a bad
// canary's pods, created with the rollout (series first seen after start,
// the 503 series appearing at the first 503), and a stable pod alive before
// it that restarts once (a counter reset) and misses a scrape, scraped at
// other moments. Rebuilding from the samples at any later read gives the
// same decision as the reads did one by one.
func TestFromSamples(t *testing.T) {
	var canaryReq, canary503, stableReq, stable503 Series
	canaryReq.ID, canary503.ID, stableReq.ID, stable503.ID = "canary", "canary 503", "stable", "stable 503"
	stableTotal, stableErr := 50000.0, 40.0
	stableReq.Samples = append(stableReq.Samples, Sample{At: at(-3), Value: stableTotal})
	stable503.Samples = append(stable503.Samples, Sample{At: at(-3), Value: stableErr})
	canaryTotal, canaryErr := 0.0, 0.0
	for k := range 6 {
		tc, ts := 4.2+5*float64(k), 2+5*float64(k)
		canaryTotal += 50
		canaryErr += 5
		canaryReq.Samples = append(canaryReq.Samples, Sample{At: at(tc), Value: canaryTotal})
		canary503.Samples = append(canary503.Samples, Sample{At: at(tc), Value: canaryErr})
		stableTotal += 200
		if k == 2 { // the stable pod restarted: its counters start again
			stableTotal, stableErr = 200, 0
		}
		if k == 3 {
			continue // missed scrape
		}
		stableReq.Samples = append(stableReq.Samples, Sample{At: at(ts), Value: stableTotal})
		stable503.Samples = append(stable503.Samples, Sample{At: at(ts), Value: stableErr})
	}
	cfg := NewConfig(0.01, 99, 0.2, "error rate")
	var incremental State
	incremental, _ = New(cfg)
	var ends []time.Time
	for read := 1; read <= 6; read++ {
		ends = Bounds(t0, 5*time.Second, at(5*float64(read)))
		c := ArmCounts([]Series{canaryReq}, []Series{canary503}, t0, ends)
		s := ArmCounts([]Series{stableReq}, []Series{stable503}, t0, ends)
		ivs := Intervals(c, s, t0, ends)
		incremental = incremental.Update(ivs[len(ivs)-1])
		rebuilt, err := Replay(cfg, ivs)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(rebuilt, incremental) {
			t.Fatalf("read %d: rebuilt state differs", read)
		}
	}
	d := incremental.Decide()
	if !d.Regression || d.CanaryRate != 0.1 || d.StableRate != 0 {
		t.Errorf("decision %+v", d)
	}
	t.Logf("%s", d.Summary)
}
