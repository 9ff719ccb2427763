package sequential

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Config is the setting of one test (errors, or slow requests). It is fixed
// when the rollout starts: choosing any of it after seeing data breaks the
// guarantee.
type Config struct {
	// Alpha is the probability of a false alarm this test may spend over
	// the whole rollout, however often it looks: 1 - confidence, or a
	// share of it when several tests run (see [NewRollout]). 0 < Alpha < 1.
	Alpha float64
	// Confidence is the user's confidence in percent, shown in the summary
	// (the rollout's, not this test's share of alpha).
	Confidence float64
	// Tolerance is how much worse, relative, the canary may be before it
	// counts as worse: the null hypothesis is r <= r0 = 1 + Tolerance, where
	// r is the canary's rate divided by stable's. 0 <= Tolerance < 10.
	Tolerance float64
	// MinBad is the floor on the canary's bad requests (errors or slow
	// requests) over the rollout: fewer never make a regression, whatever
	// the evidence. See [DefaultMinBad].
	MinBad float64
	// MinDiff is the floor on the difference of the rates, canary minus
	// stable, as a fraction: 0.005 is half a percentage point.
	// See [DefaultMinDiff].
	MinDiff float64
	// IntervalCap bounds the factor by which one interval can multiply any
	// alternative's likelihood ratio; 0 means no bound. See
	// [DefaultIntervalCap].
	IntervalCap float64
	// Dispersion deflates each interval's evidence by the over-dispersion
	// of the stable arm's counts estimated from the intervals before it
	// (see [State.Phi]).
	Dispersion bool
	// Measure names the rate in the summary: "error rate",
	// "slow-request rate (over 500ms)".
	Measure string
}

// Validate reports what is wrong with the config, if anything.
func (c Config) Validate() error {
	var errs []error
	if !(c.Alpha > 0 && c.Alpha < 1) {
		errs = append(errs, fmt.Errorf("alpha %v: must be between 0 and 1", c.Alpha))
	}
	if !(c.Tolerance >= 0 && c.Tolerance < 10) {
		errs = append(errs, fmt.Errorf("tolerance %v: must be at least 0 and below 10", c.Tolerance))
	}
	if !(c.MinBad >= 0) || !(c.MinDiff >= 0 && c.MinDiff < 1) {
		errs = append(errs, fmt.Errorf("floors %v bad requests, %v difference: must be non-negative (difference below 1)", c.MinBad, c.MinDiff))
	}
	if !(c.IntervalCap == 0 || c.IntervalCap > 1) || math.IsInf(c.IntervalCap, 0) {
		errs = append(errs, fmt.Errorf("interval cap %v: must be 0 (none) or a finite factor above 1", c.IntervalCap))
	}
	return errors.Join(errs...)
}

// Arm is one arm's counts over one interval, from counter increments.
type Arm struct {
	// Requests is the number of requests the arm served.
	Requests float64
	// Bad is how many of them were bad: 5xx for the error test, slower
	// than the bucket edge for the latency test. At most Requests.
	Bad float64
	// Missing says the arm has no data for the interval (no sample, NaN):
	// not the same as zero requests. Its counts are then carried into the
	// next interval (see [State.Update]).
	Missing bool
}

// Interval is the counts of both arms over one read interval.
type Interval struct {
	// Duration is how long the interval lasted; it adds up to the elapsed
	// time in the summary, also when an arm is missing.
	Duration time.Duration
	// Canary and Stable are the arms' counts.
	Canary, Stable Arm
}

// Totals are counts summed over the intervals the test compared.
type Totals struct {
	// Requests is the number of requests.
	Requests float64
	// Bad is the number of bad requests.
	Bad float64
}

// Rate returns Bad/Requests, 0 without requests.
func (t Totals) Rate() float64 {
	if t.Requests <= 0 {
		return 0
	}
	return t.Bad / t.Requests
}

// Dispersion holds the running sums of the over-dispersion estimate: the
// stable arm's counts of consecutive compared intervals, compared with each
// other (see [State.Phi]).
type Dispersion struct {
	// PrevBad and PrevRequests are the stable arm's counts in the last
	// compared interval.
	PrevBad, PrevRequests float64
	// Sum is the sum of the Pearson statistics of the informative pairs.
	Sum float64
	// Pairs is the number of informative pairs (at least one bad request).
	Pairs int
}

// State is the e-process of one test over one rollout: a handful of counters
// and the running sums on the grid (about 200 numbers in all). It is a value:
// [State.Update] returns the next state and leaves its receiver alone, so a
// State can be kept, copied, serialized (its fields are exported for
// encoding/json; change them only through Update) or rebuilt by [Replay] from
// the intervals since the rollout started. Rebuild it after a restart rather
// than starting afresh: a new e-process spends alpha again.
type State struct {
	// Config is the test's setting, fixed for the rollout.
	Config Config
	// Intervals counts the intervals passed to Update, Compared those in
	// which both arms had data and requests.
	Intervals, Compared int
	// Elapsed is the sum of the intervals' durations.
	Elapsed time.Duration
	// Canary and Stable are the counts of the compared intervals.
	Canary, Stable Totals
	// Pending holds counts of intervals where only one arm had data,
	// carried into the next interval where both have.
	Pending Interval
	// Log[k] is the log likelihood ratio of alternative k, r0·m_k against
	// r0, summed over the intervals (deflated and capped per interval).
	Log [numAlternatives]float64
	// Grid[i] is the sum over intervals of e·log(1 + w·(g_i - 1))/phi, g_i
	// the grid point r0·ρ^(i-25), e the interval's bad requests of both arms
	// and w the canary's share of its requests. With BadSum, it gives the
	// (uncapped) log likelihood ratio of any alternative against any rung
	// of the lower bound: BadSum·log(g_a/g_b) - (Grid[a] - Grid[b]).
	Grid [GridSize]float64
	// BadSum is the sum over intervals of the canary's bad requests divided
	// by that interval's phi.
	BadSum float64
	// MaxLogE is the largest log E_t so far: the p-value is exp(-MaxLogE).
	MaxLogE float64
	// Bound is the largest lower bound on r so far, 0 for none.
	Bound float64
	// Dispersion holds the over-dispersion estimate's running sums.
	Dispersion Dispersion
	// Regression is set at the first interval at which the test rejects;
	// from then on Update changes nothing, so the state keeps the figures
	// of the decision.
	Regression bool
}

// New returns the state of a test before any interval.
func New(cfg Config) (State, error) {
	if err := cfg.Validate(); err != nil {
		return State{}, fmt.Errorf("sequential test config: %w", err)
	}
	return State{Config: cfg}, nil
}

// Replay returns the state after the intervals, in order, from the start:
// how the e-process is rebuilt after a restart.
func Replay(cfg Config, intervals []Interval) (State, error) {
	s, err := New(cfg)
	if err != nil {
		return State{}, err
	}
	for _, iv := range intervals {
		s = s.Update(iv)
	}
	return s, nil
}

// dispersionPrior is the weight, in informative pairs at phi = 1, of the
// prior of the over-dispersion estimate: it keeps a few chance coincidences
// of Poisson errors from deflating the evidence.
const dispersionPrior = 3

// Phi returns the over-dispersion factor the next interval's evidence is
// divided by: 1 when Config.Dispersion is off, otherwise the mean Pearson
// statistic of the stable arm's consecutive pairs of compared intervals,
// shrunk toward 1 by a prior worth 3 pairs, and at least 1.
//
// For a pair with stable bad counts a, b out of requests n_a, n_b, and
// t = a + b > 0 (an informative pair), Poisson errors at a common rate make a
// Binomial(t, q) with q = n_a/(n_a + n_b), and the Pearson statistic
// (a - t·q)²/(t·q·(1-q)) has mean 1 whatever t and whatever the rate;
// errors arriving in clumps of c make it about c. Comparing neighbours
// cancels slow changes of the rate (a traffic change, a shared outage) that
// a comparison with the rollout's average rate would count as dispersion.
//
// Example: one clump of 10 errors in a stable interval next to an interval
// without errors, with equal requests: a = 10, t = 10, q = 1/2, statistic
// (10-5)²/2.5 = 10; with the prior, phi = (10 + 3)/(1 + 3) = 3.25. Two such
// pairs (the clump's interval pairs with the one before and after it) give
// (20 + 3)/(2 + 3) = 4.6.
func (s State) Phi() float64 {
	if !s.Config.Dispersion {
		return 1
	}
	d := s.Dispersion
	return max(1, (d.Sum+dispersionPrior)/(float64(d.Pairs)+dispersionPrior))
}

// maxCount is the largest count an interval may carry; larger ones (a
// garbled counter) are treated as no data, which also keeps every sum
// finite.
const maxCount = 1e15

// clean returns the arm with unusable counts (negative, NaN, infinite or
// above maxCount) marked missing, and Bad clamped to Requests.
func clean(a Arm) Arm {
	ok := func(v float64) bool { return v >= 0 && v <= maxCount }
	if a.Missing || !ok(a.Requests) || !ok(a.Bad) {
		return Arm{Missing: true}
	}
	a.Bad = min(a.Bad, a.Requests)
	return a
}

// Update returns the state after one more interval. Intervals must come in
// order and cover the rollout without gaps (an interval without data is
// passed with its arms Missing). An interval where one arm is missing is
// not compared: the other arm's counts are carried over and added to the
// next interval where both arms have data, so the two arms are always
// compared over the same stretch of time, give or take one scrape.
//
// The interval's evidence, for alternative r against r0, with x the canary's
// bad requests, e the bad requests of both arms and w the canary's share of
// the requests, is
//
//	l(r) = x·log(r/r0) - e·log((w·r + 1 - w)/(w·r0 + 1 - w)),
//
// the log likelihood ratio of the canary's share of the bad requests,
// Binomial(e, w·r/(w·r + 1 - w)): a factor common to both arms (a shared
// dependency failing) cancels. It is divided by [State.Phi] and capped at
// log(Config.IntervalCap), then added to the running sums.
//
// Example (hand-computed; tolerance 20%, so r0 = 1.2): canary 5 bad of 50
// requests, stable 0 bad of 200, so w = 0.2 and theta0 = 0.24/1.04 = 0.2308.
// For the largest alternative, r = 1200 (m = 1000), theta = 240/240.8 =
// 0.9967 and l = 5·log 1000 - 5·log(240.8/1.04) = 5·log(0.9967/0.2308) =
// 7.32: this one interval would multiply that alternative's likelihood
// ratio by 1500, and with the default cap 1/alpha = 100 adds log 100 = 4.61.
func (s State) Update(iv Interval) State {
	if s.Regression {
		return s
	}
	s.Intervals++
	s.Elapsed += iv.Duration
	c, st := clean(iv.Canary), clean(iv.Stable)
	if c.Missing || st.Missing {
		if !c.Missing {
			s.Pending.Canary.Requests += c.Requests
			s.Pending.Canary.Bad += c.Bad
		}
		if !st.Missing {
			s.Pending.Stable.Requests += st.Requests
			s.Pending.Stable.Bad += st.Bad
		}
		return s
	}
	c.Requests += s.Pending.Canary.Requests
	c.Bad += s.Pending.Canary.Bad
	st.Requests += s.Pending.Stable.Requests
	st.Bad += s.Pending.Stable.Bad
	s.Pending = Interval{}

	s.Canary.Requests += c.Requests
	s.Canary.Bad += c.Bad
	s.Stable.Requests += st.Requests
	s.Stable.Bad += st.Bad
	if c.Requests > 0 && st.Requests > 0 {
		s.Compared++
		s = s.addEvidence(c, st)
		s = s.addDispersion(st)
	}
	s.Regression = s.rejects()
	return s
}

// addEvidence adds one compared interval's log likelihood ratios.
func (s State) addEvidence(c, st Arm) State {
	x, e := c.Bad, c.Bad+st.Bad
	w := c.Requests / (c.Requests + st.Requests)
	if e == 0 || !(w > 0 && w < 1) {
		return s // no bad request: every l(r) is 0
	}
	r0 := 1 + s.Config.Tolerance
	phi := s.Phi()
	var b [GridSize]float64
	for i := firstRung(r0); i < GridSize; i++ {
		b[i] = math.Log1p(w * (r0*rhoPow[i] - 1))
		s.Grid[i] += e * b[i] / phi
	}
	s.BadSum += x / phi
	logCap := math.Inf(1)
	if s.Config.IntervalCap > 0 {
		logCap = math.Log(s.Config.IntervalCap)
	}
	for k := range s.Log {
		l := (x*logM[k] - e*(b[rungsBelow+altFirst+altStride*k]-b[rungsBelow])) / phi
		s.Log[k] += min(l, logCap)
	}
	s.MaxLogE = max(s.MaxLogE, s.LogE())
	s.Bound = max(s.Bound, lowerBound(s.Config, s.Grid, s.BadSum))
	return s
}

// addDispersion adds the pair (last compared interval, this one) of the
// stable arm's counts to the over-dispersion estimate.
func (s State) addDispersion(st Arm) State {
	d := &s.Dispersion
	if t := d.PrevBad + st.Bad; t > 0 && d.PrevRequests > 0 {
		q := d.PrevRequests / (d.PrevRequests + st.Requests)
		dev := d.PrevBad - t*q
		d.Sum += dev * dev / (t * q * (1 - q))
		d.Pairs++
	}
	d.PrevBad, d.PrevRequests = st.Bad, st.Requests
	return s
}

// LogE returns log E_t, the log of the current e-value: the log of the
// mixture (1/24)·sum_k exp(Log[k]), computed without overflow.
//
// Example: before any evidence every Log[k] is 0 and log E = 0 (E = 1); if
// one alternative's sum is log 2400 and the others' are very negative,
// log E ≈ log(2400/24) = log 100, the threshold at alpha 0.01.
func (s State) LogE() float64 {
	return logSumExp(s.Log[:]) - logNumAlternatives
}

// rejects reports whether the test rejects now: the e-value at least
// 1/alpha and both floors met.
func (s State) rejects() bool {
	return s.Compared > 0 &&
		s.LogE() >= -math.Log(s.Config.Alpha) &&
		s.Canary.Bad >= s.Config.MinBad &&
		s.Canary.Rate()-s.Stable.Rate() >= s.Config.MinDiff
}

// firstRung returns the grid index of the lowest rung of the lower bound:
// the smallest r0·ρ^j that is at least 1.
func firstRung(r0 float64) int {
	j := -int(math.Floor(math.Log(r0)/logRho + 1e-9))
	return max(j, -rungsBelow) + rungsBelow
}
