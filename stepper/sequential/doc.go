// Package sequential is the continuous canary-vs-stable comparison of
// canary.io/confidence and canary.io/tolerance: an anytime-valid sequential
// test on counts, which may be looked at after every scrape and still raises
// a false alarm with probability at most alpha over the whole rollout. It is
// pure: counts in, a decision out; no clock, no Prometheus client, no
// cluster.
//
// The stepper, on every read (every scrape interval), fetches the raw
// samples of the counters since the rollout's stored start, turns them into
// per-interval counts ([Bounds], [ArmCounts], [SlowCounts], [Intervals]),
// replays them into the rollout's test ([NewRollout], [Rollout.Update]) and
// reads the [Verdict]. Replaying from the start on every read (or after a
// restart) gives the same e-process as updating it read by read; starting
// a new one instead would spend alpha again.
//
// Sources: Lindon, Sanden, Shirikian, "Rapid Regression Detection in
// Software Deployments through Sequential Testing" (KDD 2022); Lindon,
// Malek, "Anytime-Valid Inference for Multinomial Count Data" (NeurIPS
// 2022); Howard, Ramdas et al. on time-uniform confidence sequences.
//
// # The test
//
// Per interval i: canary requests n_c and bad requests x_c (5xx, or slower
// than a histogram bucket edge), stable n_s and x_s. Each arm's bad requests
// are Poisson with mean requests × rate × g_i, g_i a factor common to both
// (a shared dependency failing). Given the interval's bad requests of both
// arms, e_i = x_c + x_s, the canary's are Binomial(e_i, theta_i(r)) with
//
//	theta_i(r) = w_i·r / (w_i·r + 1 - w_i),  w_i = n_c / (n_c + n_s),
//
// r = p_c/p_s the ratio of the rates, w_i the measured canary share (not
// the configured weight, so the test stays valid while the split changes
// from step to step), and g_i cancels. The null hypothesis is
// r <= r0 = 1 + tolerance. An alternative r's log likelihood ratio over the
// interval is
//
//	l_i(r) = x_c·log(r/r0) - e_i·log((w_i·r + 1 - w_i)/(w_i·r0 + 1 - w_i)).
//
// The e-process is a mixture over 24 alternatives r_k = r0·m_k, m_k
// log-spaced from 1.104 to 1000 with weights 1/24:
//
//	E_t = (1/24)·sum_k exp(sum_{i<=t} l_i(r_k)),
//
// computed as a log-sum-exp. It is a nonnegative supermartingale with
// E_0 = 1 under the null, so by Ville's inequality P(E_t >= 1/alpha for some
// t) <= alpha: the test rejects (the canary is worse) the first time
// E_t >= 1/alpha and the floors below hold, and the anytime-valid p-value is
// min(1, min_s 1/E_s). There is one e-process per rollout, across all its
// steps.
//
// The lower bound ("at least 1.7x") inverts the test in r0: the largest r0'
// on a ladder r0·ρ^j (ρ = 1000^(1/70), about 10% apart) whose own test,
// H0: r <= r0' against the alternatives r0'·m_k, rejects. E_t(r0') is
// decreasing in r0', so the rejected rungs are those below a point, found
// by bisection; the bound exceeds the true ratio only if the true ratio's
// own test rejects, which happens with probability at most alpha at any
// time. See [State.Grid] for how all rungs share one set of running sums.
//
// # Errors and latency: alpha is split
//
// Slow requests (x = increase of _count minus increase of _bucket{le=L},
// L a bucket edge fixed when the template is held) go through the same
// test. The two tests count the same requests, so the product of their
// e-values is not valid; each gets alpha/2 (see [Rollout] for why not the
// average of the e-values).
//
// # Counting from Prometheus
//
// [Increments] differences raw counter samples per series: no increase()
// or rate(), which extrapolate to fractional, inflated counts; a counter
// reset (a drop) counts the new value; a series first seen after the start
// counts from zero; NaN or a missed scrape is no data, not zero. An
// increment belongs to the interval holding its later sample's timestamp,
// so each arm's count in an interval spans the time between its own
// scrapes, offset from the other arm's by less than one scrape interval.
// An interval in which one arm has no data is not compared: its counts are
// carried into the next interval in which both have ([State.Update]).
//
// # Guards against false alarms
//
// Bursty errors (retry storms, one bad client, fan-out) break the Poisson
// model: a clump of errors that happens to land in the canary looks like a
// bad canary. Four guards, each of which only removes rejections (so the
// test stays valid):
//
//   - the tolerance (default 20%): the canary must be worse than 1.2 times
//     stable's rate, not merely worse;
//   - the floors: at least [DefaultMinBad] (5) canary bad requests, and the
//     canary's rate over the rollout at least [DefaultMinDiff] (half a
//     point) above stable's. 5 errors take a 10% canary at 10 requests/s
//     about 5 s; without the floor, 2 errors can decide at a 5% share;
//   - the interval cap: one interval may multiply each alternative's
//     likelihood ratio by at most 1/alpha, so no single scrape decides
//     alone; exp(min(l, c)) <= exp(l) keeps the supermartingale;
//   - the over-dispersion correction: each interval's l_i is divided by
//     phi >= 1, estimated from the stable arm's own interval-to-interval
//     variation before that interval (see [State.Phi]); by Jensen's
//     inequality E[LR^(1/phi)] <= 1, so it stays valid.
//
// What each buys, simulated (simulate_test.go, 1,000 seeded runs per cell;
// 5 s scrapes, 50 requests/s, canary 20% unless stated, each arm scraped at
// its own phase; alpha 0.01). False alarms of stable-vs-stable runs of 10
// minutes at 0.1% errors: with a fixed split, with the split moving 20 ->
// 40 -> 60%, with a 60 s outage at 5% shared by both, and with errors in
// clumps of 10. Detection: 10% vs 0.1% within 3 scrapes (scrapes counted
// from the canary's first full scrape interval of traffic; and, "partial",
// with the first scrape covering a random 0..5 s), and 2% vs 0.1% within
// 90 s, with the median time to the decision.
//
//	guards, added in turn      same split outage clumps  10% in 3 scrapes  partial  2% in 90 s
//	none (tolerance 0)            2     1     10    221    100.0%   5 s     99.2%    99.8%  25 s
//	+ tolerance 20%               0     0      4    205     99.8%   5 s     99.0%    99.2%  30 s
//	+ floors (5, 0.5 points)      0     0      0    132     99.8%   5 s     98.6%    99.1%  35 s
//	+ interval cap 1/alpha        0     0      0     25     99.8%  10 s     98.1%    99.1%  35 s
//	+ dispersion (the defaults)   0     0      0     17     99.7%  10 s     98.0%    98.4%  35 s
//	defaults without the cap      0     0      0    116     99.8%   5 s     98.3%    98.4%  35 s
//	defaults, alpha 0.005         0     0      0     17     99.7%  10 s     97.3%    97.6%  35 s
//
// The tolerance and the floors remove the few Poisson false alarms (the
// shared outage's edges, which land in different intervals for the two
// arms). The clumps are the main risk, and the cap does most against
// them, at the price of one scrape: a 10% canary is now caught at the
// second scrape (10 errors served, median) rather than the first. The
// over-dispersion correction adds less (25 -> 17 per 1,000) because it
// can only learn from clumps stable has already shown: a first clump in the
// canary, before any in stable, is indistinguishable from a bad canary by
// any count-based test, and the cap is what keeps it from deciding alone.
// The last row is the error test's share when the latency test runs too.
//
// # What breaks the guarantee
//
// Choosing the metric, bucket edge, tolerance or confidence after seeing
// data; arms that do not see comparable traffic (header routing, sticky
// sessions: the stepper falls back to the threshold checks); retries that
// land on the other arm; lost increments when pods die between scrapes;
// restarting the e-process instead of replaying it.
package sequential
