package plan

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/canary-io/canary/contract"
)

// Unit says how a check's values read in messages.
type Unit string

const (
	// UnitPercent: values in percent, e.g. the success rate.
	UnitPercent Unit = "%"
	// UnitMilliseconds: values in milliseconds, e.g. the p99 latency.
	UnitMilliseconds Unit = "ms"
	// UnitNone: plain numbers, e.g. a custom metric.
	UnitNone Unit = ""
)

// Names of the built-in checks, as they read in messages.
const (
	// CheckSuccessRate is the built-in check of canary.io/min-success-rate.
	CheckSuccessRate = "success rate"
	// CheckLatency is the built-in check of canary.io/max-latency.
	CheckLatency = "p99"
)

// CheckResult is one threshold check measured at a step's end.
type CheckResult struct {
	// Name identifies the check in messages: CheckSuccessRate,
	// CheckLatency, or a custom metric's name.
	Name string
	// Unit says how the values read.
	Unit Unit
	// Canary is the canary workload's value; meaningful with HasData.
	Canary float64
	// HasData is false when the canary's query returned nothing or NaN,
	// or failed.
	HasData bool
	// Stable is the stable workload's value, shown beside the canary's;
	// meaningful with StableHasData.
	Stable float64
	// StableHasData is false when the stable workload's query returned
	// nothing.
	StableHasData bool
	// Min is the lowest passing value; nil means no lower bound.
	Min *float64
	// Max is the highest passing value; nil means no upper bound.
	Max *float64
	// Detail, optional, says why there is no data, e.g.
	// "query timed out after 10s".
	Detail string
	// QueryFailed says the query itself failed (Prometheus unreachable,
	// an error, a timeout, several series), as opposed to answering with
	// nothing: Detail says how. An error is never a pass: judged as no
	// data under no-data policy hold, and as a failed check under fail and
	// pass.
	QueryFailed bool
	// Pending says the value cannot be judged yet but will be within a
	// scrape (the canary answered errors that rate() cannot count yet):
	// the check waits under every no-data policy, bounded by the progress
	// deadline. Detail says why.
	Pending bool
	// Window is the query window the values were read over ([Window]);
	// zero for hooks and where it is not known.
	Window time.Duration
	// Hook makes this the result of a hook (rollout, pre-rollout): Name is
	// the hook's name, HasData is true, and it passed unless Failure says
	// why not. It carries no values.
	Hook bool
	// Failure, for a hook, is why it failed, e.g. `answered 500 Internal
	// Server Error: "connection refused"`; empty when it passed.
	Failure string
}

// HookResult is the result of a hook call as a check: passed when failure
// is empty.
func HookResult(name, failure string) CheckResult {
	return CheckResult{Name: name, Hook: true, HasData: true, Failure: failure}
}

// hasData reports whether the canary's value can be judged.
func (c CheckResult) hasData() bool {
	return c.HasData && !math.IsNaN(c.Canary)
}

// Passed reports whether the canary's value has data and lies within the
// bounds, both inclusive. Without data it is false; the no-data policy
// decides what that means.
//
// Example: min 99, canary 99.0 → passed; min 99, canary 98.95 → failed;
// max 500, canary 500 → passed.
func (c CheckResult) Passed() bool {
	return c.hasData() && c.Failure == "" &&
		(c.Min == nil || c.Canary >= *c.Min) &&
		(c.Max == nil || c.Canary <= *c.Max)
}

// String describes the check for a message: the canary's value, the
// bounds and the stable value.
//
// Examples:
//
//	success rate 99.8% over 1m (min 99%, stable 99.9%)
//	p99 212ms over 1m (max 500ms, stable 198ms)
//	queue-depth 3.25 (min 0, max 10, stable no data)
//	success rate no data over 1m (min 99%)
//	p99 no data over 1m: query timed out after 10s (max 500ms)
//	hook "load-test" passed
//	hook "load-test" (answered 500 Internal Server Error: "boom")
func (c CheckResult) String() string {
	if c.Hook {
		if c.Failure != "" {
			return fmt.Sprintf("hook %q (%s)", c.Name, c.Failure)
		}
		return fmt.Sprintf("hook %q passed", c.Name)
	}
	var b strings.Builder
	b.WriteString(c.Name)
	b.WriteByte(' ')
	var parts []string
	if c.Min != nil {
		parts = append(parts, "min "+formatBound(*c.Min, c.Unit))
	}
	if c.Max != nil {
		parts = append(parts, "max "+formatBound(*c.Max, c.Unit))
	}
	over := ""
	if c.Window > 0 {
		over = " over " + contract.PromDuration(c.Window)
	}
	if !c.hasData() {
		b.WriteString("no data" + over)
		if c.Detail != "" {
			b.WriteString(": " + c.Detail)
		}
	} else {
		b.WriteString(c.formatMeasured(c.Canary) + over)
		if c.StableHasData && !math.IsNaN(c.Stable) {
			parts = append(parts, "stable "+c.formatMeasured(c.Stable))
		} else {
			parts = append(parts, "stable no data")
		}
	}
	if len(parts) > 0 {
		b.WriteString(" (" + strings.Join(parts, ", ") + ")")
	}
	return b.String()
}

// formatMeasured renders a measured value: percentages with one decimal,
// milliseconds whole from 10ms up (one decimal below), plain numbers with
// four significant digits; and with more digits, up to what float64
// holds, wherever rounding would put the value on the other side of one
// of the check's bounds, or show 0% or 100% for a value that is not, so
// that a message never reads "99.0% (min 99%)" for a failed check.
//
// Examples: 99.84 % → "99.8%"; 80 % → "80.0%"; 98.96 % with min 99 →
// "98.96%"; 99.996 % → "99.996%"; 212.4 ms → "212ms"; 500.4 ms with
// max 500 → "500.4ms"; 2.46 ms → "2.5ms"; 0.30001 → "0.3"; 1234.56 →
// "1235".
func (c CheckResult) formatMeasured(v float64) string {
	unit := ""
	format, digits := byte('g'), 4
	switch c.Unit {
	case UnitPercent:
		unit, format, digits = "%", 'f', 1
	case UnitMilliseconds:
		unit, format, digits = "ms", 'f', 0
		if math.Abs(v) < 10 {
			digits = 1
		}
	}
	for ; digits <= 17; digits++ {
		s := strconv.FormatFloat(v, format, digits, 64)
		if r, err := strconv.ParseFloat(s, 64); err == nil && c.readsTheSame(r, v) {
			return s + unit
		}
	}
	return strconv.FormatFloat(v, 'g', -1, 64) + unit
}

// readsTheSame reports whether r, v rounded, stands where v does against
// the bounds (and, for percentages, the ends of the scale).
func (c CheckResult) readsTheSame(r, v float64) bool {
	if c.Min != nil && (r >= *c.Min) != (v >= *c.Min) {
		return false
	}
	if c.Max != nil && (r <= *c.Max) != (v <= *c.Max) {
		return false
	}
	if c.Unit == UnitPercent && ((r == 100) != (v == 100) || (r == 0) != (v == 0)) {
		return false
	}
	return true
}

// formatBound renders a bound as the user wrote it: no trailing zeros.
//
// Examples: 99 % → "99%"; 99.5 % → "99.5%"; 500 ms → "500ms"; 0.001 →
// "0.001".
func formatBound(v float64, u Unit) string {
	switch u {
	case UnitPercent, UnitMilliseconds:
		return strconv.FormatFloat(v, 'f', -1, 64) + string(u)
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// outcome is the verdict of one round of checks.
type outcome int

const (
	outcomePassed outcome = iota
	outcomeFailed
	outcomeNoData
)

// verdict is one round of checks judged under a no-data policy.
type verdict struct {
	outcome outcome
	// failed are the checks that failed (with no-data policy fail, those
	// without data too).
	failed []CheckResult
	// noData are the checks without data under no-data policy hold.
	noData []CheckResult
	// all are every check, in the gatherer's order.
	all []CheckResult
}

// judge decides a round of checks: any failure fails it, even if other
// checks have no data; otherwise a check without data under policy hold
// makes it wait; otherwise it passed. No checks at all pass. A query that
// failed is never a pass: it waits under hold and fails under fail and
// pass. A pending check waits under every policy: what it has not
// counted yet is known to be there.
//
// Example, policy hold: {passed, no data} → no data; {failed, no data} →
// failed. Policy pass: {passed, no data} → passed; {passed, query failed}
// → failed. Policy fail: {passed, no data} → failed.
func judge(policy contract.NoDataPolicy, checks []CheckResult) verdict {
	v := verdict{all: checks}
	for _, c := range checks {
		switch {
		case !c.hasData() && (c.Pending || policy == contract.NoDataHold):
			v.noData = append(v.noData, c)
		case !c.hasData() && policy == contract.NoDataPass && !c.QueryFailed:
		case !c.Passed():
			v.failed = append(v.failed, c)
		}
	}
	switch {
	case len(v.failed) > 0:
		v.outcome = outcomeFailed
	case len(v.noData) > 0:
		v.outcome = outcomeNoData
	}
	return v
}

// describe joins the checks' descriptions with ", ", or says there were
// none.
func describe(checks []CheckResult) string {
	if len(checks) == 0 {
		return "no checks"
	}
	parts := make([]string, len(checks))
	for i, c := range checks {
		parts[i] = c.String()
	}
	return strings.Join(parts, ", ")
}

// MaxMessage is the longest canary.io/message the system writes, in
// bytes: many custom metrics, hooks quoting their answers and the
// comparison's evidence must never make a Deployment's annotations too
// large to write (the apiserver refuses more than 256 KiB in all).
const MaxMessage = 2048

// CapMessage cuts msg to at most MaxMessage bytes (see Cap).
//
// Example: a 3000-byte message → its first 2044 bytes (fewer if a
// character would be split) and " …".
func CapMessage(msg string) string {
	return Cap(msg, MaxMessage)
}

// Cap cuts s to at most limit bytes, on a character boundary, ending with
// " …" when it was cut.
func Cap(s string, limit int) string {
	if len(s) <= limit {
		return s
	}
	const tail = " …"
	cut := max(limit-len(tail), 0)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + tail
}
