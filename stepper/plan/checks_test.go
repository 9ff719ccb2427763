package plan

import (
	"math"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/canary-io/canary/contract"
)

func TestCheckResultString(t *testing.T) {
	custom := CheckResult{Name: "queue-depth", Unit: UnitNone, Canary: 3.25, HasData: true, Min: pct(0), Max: pct(10)}
	for _, tc := range []struct {
		check CheckResult
		want  string
	}{
		{successRate(99.84, 99.93), "success rate 99.8% (min 99%, stable 99.9%)"},
		{successRate(80, 99.9), "success rate 80.0% (min 99%, stable 99.9%)"},
		{successRate(100, 100), "success rate 100.0% (min 99%, stable 100.0%)"},
		{with1(successRate(99.96, 99.9), func(c *CheckResult) { c.Min = pct(99.5) }), "success rate 99.96% (min 99.5%, stable 99.9%)"},
		{successRate(98.96, 99.5), "success rate 98.96% (min 99%, stable 99.5%)"}, // not "99.0% (min 99%)"
		{successRate(98.99999, 99.5), "success rate 98.99999% (min 99%, stable 99.5%)"},
		{successRate(99.0, 0.04), "success rate 99.0% (min 99%, stable 0.04%)"},
		{latency(500.4, 498), "p99 500.4ms (max 500ms, stable 498ms)"}, // not "500ms (max 500ms)"
		{latency(212.4, 198), "p99 212ms (max 500ms, stable 198ms)"},
		{latency(2.46, 1.04), "p99 2.5ms (max 500ms, stable 1.0ms)"},
		{custom, "queue-depth 3.25 (min 0, max 10, stable no data)"},
		{with1(custom, func(c *CheckResult) { c.Canary, c.Stable, c.StableHasData = 1234.56, 0.30001, true }), "queue-depth 1235 (min 0, max 10, stable 0.3)"},
		{with1(custom, func(c *CheckResult) { c.Max = pct(0.001); c.Min = nil; c.Canary = 1e7 }), "queue-depth 1e+07 (max 0.001, stable no data)"},
		{noData(successRate(0, 0), ""), "success rate no data (min 99%)"},
		{noData(latency(0, 0), "query timed out after 10s"), "p99 no data: query timed out after 10s (max 500ms)"},
		{with1(successRate(math.NaN(), 99), func(*CheckResult) {}), "success rate no data (min 99%)"},
		{CheckResult{Name: "x", HasData: true, Canary: 1, Stable: 2, StableHasData: true}, "x 1 (stable 2)"},
	} {
		if got := tc.check.String(); got != tc.want {
			t.Errorf("String() = %q, want %q", got, tc.want)
		}
	}
}

func with1(c CheckResult, mod func(*CheckResult)) CheckResult {
	mod(&c)
	return c
}

func TestCheckResultPassed(t *testing.T) {
	for _, tc := range []struct {
		check CheckResult
		want  bool
	}{
		{successRate(99, 99), true},      // min is inclusive
		{successRate(98.95, 99), false},  // below min
		{latency(500, 100), true},        // max is inclusive
		{latency(500.1, 100), false},     // above max
		{latency(math.Inf(1), 1), false}, // beyond the histogram
		{noData(successRate(100, 0), ""), false},
		{successRate(math.NaN(), 99), false},
		{CheckResult{Name: "unbounded", HasData: true, Canary: -5}, true},
	} {
		if got := tc.check.Passed(); got != tc.want {
			t.Errorf("%v: Passed() = %v, want %v", tc.check, got, tc.want)
		}
	}
}

func TestJudge(t *testing.T) {
	ok, bad, none := successRate(99.9, 99.9), successRate(80, 99.9), noData(latency(0, 0), "")
	broken := noData(latency(0, 0), "query prometheus: connection refused")
	broken.QueryFailed = true
	pending := noData(successRate(0, 99.9), "the canary answered 5xx errors that rate() cannot count yet")
	pending.Pending = true
	for _, tc := range []struct {
		name   string
		policy contract.NoDataPolicy
		checks []CheckResult
		want   outcome
		failed int
	}{
		{"all passed", contract.NoDataHold, []CheckResult{ok, ok}, outcomePassed, 0},
		{"no checks", contract.NoDataHold, []CheckResult{}, outcomePassed, 0},
		{"one failed", contract.NoDataHold, []CheckResult{ok, bad}, outcomeFailed, 1},
		{"hold: no data waits", contract.NoDataHold, []CheckResult{ok, none}, outcomeNoData, 0},
		{"hold: failed beats no data", contract.NoDataHold, []CheckResult{bad, none}, outcomeFailed, 1},
		{"fail: no data fails", contract.NoDataFail, []CheckResult{ok, none}, outcomeFailed, 1},
		{"fail: both counted", contract.NoDataFail, []CheckResult{bad, none}, outcomeFailed, 2},
		{"pass: no data passes", contract.NoDataPass, []CheckResult{ok, none}, outcomePassed, 0},
		{"pass: failed still fails", contract.NoDataPass, []CheckResult{bad, none}, outcomeFailed, 1},
		{"hold: a failed query waits", contract.NoDataHold, []CheckResult{ok, broken}, outcomeNoData, 0},
		{"fail: a failed query fails", contract.NoDataFail, []CheckResult{ok, broken}, outcomeFailed, 1},
		{"pass: a failed query is never a pass", contract.NoDataPass, []CheckResult{ok, broken}, outcomeFailed, 1},
		{"hold: pending waits", contract.NoDataHold, []CheckResult{ok, pending}, outcomeNoData, 0},
		{"pass: pending waits, never a pass", contract.NoDataPass, []CheckResult{ok, pending}, outcomeNoData, 0},
		{"fail: pending waits, not a failure yet", contract.NoDataFail, []CheckResult{ok, pending}, outcomeNoData, 0},
		{"fail: a failure beats pending", contract.NoDataFail, []CheckResult{bad, pending}, outcomeFailed, 1},
	} {
		v := judge(tc.policy, tc.checks)
		if v.outcome != tc.want || len(v.failed) != tc.failed {
			t.Errorf("%s: outcome %d with %d failed, want %d with %d", tc.name, v.outcome, len(v.failed), tc.want, tc.failed)
		}
	}
	if got := describe(nil); got != "no checks" {
		t.Errorf("describe(nil) = %q", got)
	}
}

func TestCapMessage(t *testing.T) {
	short := "step 1/3 passed"
	if got := CapMessage(short); got != short {
		t.Errorf("CapMessage(short) = %q", got)
	}
	exact := strings.Repeat("a", MaxMessage)
	if got := CapMessage(exact); got != exact {
		t.Errorf("a message of exactly MaxMessage bytes was cut")
	}
	long := strings.Repeat("a", 3000)
	if got := CapMessage(long); len(got) > MaxMessage || !strings.HasSuffix(got, " …") || !strings.HasPrefix(long, strings.TrimSuffix(got, " …")) {
		t.Errorf("CapMessage(3000 bytes): %d bytes, ends %q", len(got), got[len(got)-10:])
	}
	if got := Cap(strings.Repeat("é", 300), 512); len(got) > 512 || !utf8.ValidString(got) || !strings.HasSuffix(got, " …") {
		t.Errorf("Cap(600 bytes of é, 512): %d bytes, valid UTF-8 %v", len(got), utf8.ValidString(got))
	}
	// A multi-byte character at the cut is not split.
	wide := strings.Repeat("é", 2000) // 4000 bytes
	got := CapMessage(wide)
	if len(got) > MaxMessage || !utf8.ValidString(got) {
		t.Errorf("CapMessage(é…): %d bytes, valid UTF-8 %v", len(got), utf8.ValidString(got))
	}
}
