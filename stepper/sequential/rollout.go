package sequential

import (
	"fmt"
	"strings"
	"time"
)

// The documented defaults of the guards against false alarms; see the
// package documentation for the false-alarm rate each buys in simulation.
const (
	// DefaultMinBad is the floor on the canary's bad requests: 5. A canary
	// failing 10% of 10 requests/s (20% of 50 requests/s) reaches it in
	// about 5 s, and the test alone may fire on as few as 2 errors when the
	// canary's share is 5%.
	DefaultMinBad = 5
	// DefaultMinDiff is the floor on the difference of the rates: half a
	// percentage point. It keeps a burst early in a long rollout from
	// blaming a canary whose rate, over the rollout, is within half a point
	// of stable's.
	DefaultMinDiff = 0.005
)

// NewConfig returns the default config of one test with the given share of
// alpha: the floors [DefaultMinBad] and [DefaultMinDiff], the interval cap
// 1/alpha (no single interval decides alone: it can multiply the e-value
// by less than 1/alpha) and the over-dispersion correction on.
func NewConfig(alpha, confidence, tolerance float64, measure string) Config {
	return Config{
		Alpha:       alpha,
		Confidence:  confidence,
		Tolerance:   tolerance,
		MinBad:      DefaultMinBad,
		MinDiff:     DefaultMinDiff,
		IntervalCap: 1 / alpha,
		Dispersion:  true,
		Measure:     measure,
	}
}

// Settings are the rollout's settings of the comparison, from the
// Deployment's annotations when the template is held.
type Settings struct {
	// Confidence is canary.io/confidence in percent, strictly between 50
	// and 100 (the contract's default is 99).
	Confidence float64
	// Tolerance is canary.io/tolerance as a fraction (default 0.20).
	Tolerance float64
	// Latency says whether slow requests are tested besides errors. Fixed
	// for the rollout: it decides how alpha is split.
	Latency bool
	// SlowerThan is the histogram bucket edge above which a request is
	// slow, shown in the summary.
	SlowerThan time.Duration
}

// Rollout is the comparison of one rollout: the error test and, when
// Settings.Latency, the latency test, each with its share of alpha. Like
// [State] it is a value, rebuilt by replaying the intervals since the
// rollout started.
//
// Alpha is split evenly: each test spends alpha/2 (Bonferroni), so the
// chance that either raises a false alarm is at most alpha. The two tests
// count the same requests, so their e-values are not independent and their
// product is not an e-value; the average of the two is, and would reject
// when E_errors + E_latency >= 2/alpha. That differs from the split only
// when both tests see evidence at once; for a canary worse in one respect,
// the common case, both need that test's E >= 2/alpha. The split keeps each
// test's own p-value, lower bound and summary, and names which rate is worse.
type Rollout struct {
	// Errors is the test of the error rate.
	Errors State
	// Latency is the test of the slow-request rate; unused (zero) unless
	// Settings.Latency.
	Latency State
	// WithLatency records Settings.Latency.
	WithLatency bool
}

// NewRollout returns the comparison before any interval.
//
// Example: confidence 99 with latency gives each test alpha 0.005, so each
// rejects at E >= 200; without latency the error test gets all of alpha
// and rejects at E >= 100.
func NewRollout(s Settings) (Rollout, error) {
	if !(s.Confidence > 50 && s.Confidence < 100) {
		return Rollout{}, fmt.Errorf("sequential test: confidence %v%%: must be between 50 and 100", s.Confidence)
	}
	alpha := 1 - s.Confidence/100
	if s.Latency {
		alpha /= 2
	}
	r := Rollout{WithLatency: s.Latency}
	var err error
	if r.Errors, err = New(NewConfig(alpha, s.Confidence, s.Tolerance, "error rate")); err != nil {
		return Rollout{}, err
	}
	if s.Latency {
		measure := fmt.Sprintf("slow-request rate (over %v)", s.SlowerThan)
		if r.Latency, err = New(NewConfig(alpha, s.Confidence, s.Tolerance, measure)); err != nil {
			return Rollout{}, err
		}
	}
	return r, nil
}

// Update returns the comparison after one more interval: errors holds the
// arms' requests and 5xx, slow their histogram counts and slow requests
// (ignored without latency).
func (r Rollout) Update(errors, slow Interval) Rollout {
	r.Errors = r.Errors.Update(errors)
	if r.WithLatency {
		r.Latency = r.Latency.Update(slow)
	}
	return r
}

// Verdict is the comparison's decision.
type Verdict struct {
	// Regression says the canary is worse by errors or by latency.
	Regression bool
	// Errors and Latency are the tests' decisions (Latency zero without
	// latency).
	Errors, Latency Decision
	// Summary is one line: the test that found the regression, or the
	// evidence of both so far.
	Summary string
}

// Decide returns the verdict of the comparison.
func (r Rollout) Decide() Verdict {
	v := Verdict{Errors: r.Errors.Decide()}
	if r.WithLatency {
		v.Latency = r.Latency.Decide()
	}
	v.Regression = v.Errors.Regression || v.Latency.Regression
	switch {
	case v.Errors.Regression:
		v.Summary = v.Errors.Summary
	case v.Latency.Regression:
		v.Summary = v.Latency.Summary
	case r.WithLatency:
		v.Summary = strings.Join([]string{v.Errors.Summary, v.Latency.Summary}, "; ")
	default:
		v.Summary = v.Errors.Summary
	}
	return v
}
