package sequential

import (
	"fmt"
	"math"
	"time"
)

// Decision is what the test says after the intervals so far.
type Decision struct {
	// Comparable is false until an interval had requests on both arms: a
	// canary without stable traffic to compare with (no stable traffic,
	// header-matched routes only) is never called worse.
	Comparable bool
	// Regression says the canary is worse than stable by more than the
	// tolerance, with the configured confidence. Final: once true, later
	// intervals do not change the decision.
	Regression bool
	// EValue is the current e-value E_t (1 before any evidence).
	EValue float64
	// PValue is the anytime-valid p-value min(1, min_s 1/E_s).
	PValue float64
	// LowerBound is the anytime-valid lower bound on r, the canary's rate
	// divided by stable's: "at least LowerBound times worse". 0 when no
	// ratio of at least 1 is excluded yet.
	LowerBound float64
	// CanaryRate and StableRate are the arms' rates over the compared
	// intervals.
	CanaryRate, StableRate float64
	// CanaryRequests is the number of canary requests compared.
	CanaryRequests float64
	// Elapsed is the time covered by the intervals so far.
	Elapsed time.Duration
	// Phi is the over-dispersion factor in use (1 without correction).
	Phi float64
	// Summary is one line for the status message, e.g. "canary error rate
	// 10.1% vs stable 0.2%: worse with 99% confidence (at least 1.7x) after
	// 55 canary requests in 6 s".
	Summary string
}

// Decide returns the decision of the state: a pure read, the state is left
// as is.
func (s State) Decide() Decision {
	d := Decision{
		Comparable:     s.Compared > 0,
		Regression:     s.Regression,
		EValue:         math.Exp(s.LogE()),
		PValue:         math.Min(1, math.Exp(-s.MaxLogE)),
		LowerBound:     s.Bound,
		CanaryRate:     s.Canary.Rate(),
		StableRate:     s.Stable.Rate(),
		CanaryRequests: s.Canary.Requests,
		Elapsed:        s.Elapsed,
		Phi:            s.Phi(),
	}
	d.Summary = s.summary(d)
	return d
}

// lowerBound returns the largest rung r0' = r0·ρ^j (j >= the first rung at
// least 1) whose own test, H0: r <= r0' against the mixture of r0'·m_k,
// rejects at alpha with the evidence so far (uncapped), or 0 if none does.
//
// Why this is a lower bound, valid at all times at once: for the true ratio
// r*, the test of H0: r <= r* has E_t(r*) >= 1/alpha at some time with
// probability at most alpha (Ville's inequality), and each interval's
// l(r'·m; r') decreases as r' grows (the derivative of its second term is
// e·w(1-w)(m-1)/((w·r'·m + 1-w)(w·r' + 1-w)) > 0 for m > 1), so E_t(r') is
// decreasing in r'. Hence the rungs that reject are all the rungs below
// some point, found by bisection, and the bound exceeds r* only if r*'s own
// test rejects: probability at most alpha over the whole rollout. The
// bound is rounded down to the grid (about 10% steps) and is the running
// maximum over time, which is just as valid.
//
// Example: with tolerance 20%, a bound at rung j = 3 reads "at least
// 1.2·1.1037³ = 1.61x".
func lowerBound(cfg Config, grid [GridSize]float64, badSum float64) float64 {
	r0 := 1 + cfg.Tolerance
	threshold := -math.Log(cfg.Alpha)
	rejects := func(i int) bool {
		var v [numAlternatives]float64
		for k := range v {
			a := i + altFirst + altStride*k
			v[k] = badSum*logM[k] - (grid[a] - grid[i])
		}
		return logSumExp(v[:])-logNumAlternatives >= threshold
	}
	lo, hi := firstRung(r0), rungsBelow+rungsAbove
	if !rejects(lo) {
		return 0
	}
	for lo < hi { // invariant: rejects(lo)
		mid := (lo + hi + 1) / 2
		if rejects(mid) {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	return r0 * rhoPow[lo]
}

// summary renders the decision as one line.
func (s State) summary(d Decision) string {
	measure := s.Config.Measure
	if measure == "" {
		measure = "error rate"
	}
	after := fmt.Sprintf("after %s canary requests in %s", count(d.CanaryRequests), seconds(d.Elapsed))
	if !d.Comparable {
		if s.Canary.Requests > 0 || s.Pending.Canary.Requests > 0 {
			return fmt.Sprintf("canary %s not comparable: no stable traffic to compare with", measure)
		}
		return fmt.Sprintf("canary %s: no data yet", measure)
	}
	rates := fmt.Sprintf("canary %s %s vs stable %s", measure, percent(d.CanaryRate), percent(d.StableRate))
	if d.Regression {
		return fmt.Sprintf("%s: worse with %s%% confidence (at least %s) %s",
			rates, number(s.Config.Confidence), ratio(d.LowerBound), after)
	}
	verdict := fmt.Sprintf("not worse so far (p = %s, needs %s)", pvalue(d.PValue), pvalue(s.Config.Alpha))
	if d.PValue <= s.Config.Alpha {
		switch {
		case s.Canary.Bad < s.Config.MinBad:
			verdict = fmt.Sprintf("below the floor of %s bad canary requests (p = %s)", count(s.Config.MinBad), pvalue(d.PValue))
		default:
			verdict = fmt.Sprintf("below the floor of %s points of difference (p = %s)", number(100*s.Config.MinDiff), pvalue(d.PValue))
		}
	}
	return fmt.Sprintf("%s %s: %s", rates, after, verdict)
}

// percent renders a rate: 0.101 → "10.1%", 0.0004 → "0.04%".
func percent(p float64) string {
	switch {
	case p == 0:
		return "0%"
	case p < 0.001:
		return fmt.Sprintf("%.2f%%", 100*p)
	default:
		return fmt.Sprintf("%.1f%%", 100*p)
	}
}

// ratio renders a lower bound: 1.73 → "1.7x", 23.4 → "23x".
func ratio(r float64) string {
	if r >= 10 {
		return fmt.Sprintf("%.0fx", math.Floor(r))
	}
	return fmt.Sprintf("%.1fx", math.Floor(10*r)/10)
}

// pvalue renders a p-value or alpha with two significant digits.
func pvalue(p float64) string { return fmt.Sprintf("%.2g", p) }

// number renders a setting without trailing zeros: 99 → "99", 99.9 → "99.9".
func number(v float64) string { return fmt.Sprintf("%g", v) }

// count renders a count, rounded: 55 → "55".
func count(v float64) string { return fmt.Sprintf("%.0f", v) }

// seconds renders a duration for a person: 6s → "6 s", 95s → "95 s",
// 10m5s → "10 min 5 s".
func seconds(d time.Duration) string {
	sec := int64(d.Round(time.Second) / time.Second)
	if sec < 120 {
		return fmt.Sprintf("%d s", sec)
	}
	return fmt.Sprintf("%d min %d s", sec/60, sec%60)
}
