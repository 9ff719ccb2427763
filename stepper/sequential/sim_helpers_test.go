package sequential

import (
	"math"
	"math/rand/v2"
	"slices"
	"time"
)

// poisson draws from Poisson(lambda): multiplication of uniforms for small
// lambda, Hörmann's transformed rejection (PTRS, as in NumPy) otherwise.
func poisson(rng *rand.Rand, lambda float64) float64 {
	if lambda <= 0 {
		return 0
	}
	if lambda < 10 {
		limit, p, k := math.Exp(-lambda), 1.0, 0.0
		for {
			p *= rng.Float64()
			if p <= limit {
				return k
			}
			k++
		}
	}
	slam, loglam := math.Sqrt(lambda), math.Log(lambda)
	b := 0.931 + 2.53*slam
	a := -0.059 + 0.02483*b
	invalpha := 1.1239 + 1.1328/(b-3.4)
	vr := 0.9277 - 3.6224/(b-2)
	for {
		u := rng.Float64() - 0.5
		v := rng.Float64()
		us := 0.5 - math.Abs(u)
		k := math.Floor((2*a/us+b)*u + lambda + 0.43)
		if us >= 0.07 && v <= vr {
			return k
		}
		if k < 0 || (us < 0.013 && v > us) {
			continue
		}
		lg, _ := math.Lgamma(k + 1)
		if math.Log(v)+math.Log(invalpha)-math.Log(a/(us*us)+b) <= -lambda+k*loglam-lg {
			return k
		}
	}
}

// scenario is a simulated rollout. Time t is in seconds since the canary
// took traffic; before that stable takes all of it.
type scenario struct {
	// seconds is the length of a run, period the scrape and read interval.
	seconds, period float64
	// total is the requests per second of both arms together.
	total float64
	// share is the canary's share of the traffic at time t >= 0, changing
	// only at breaks.
	share  func(t float64) float64
	breaks []float64
	// canaryP and stableP are the arms' error probabilities.
	canaryP, stableP float64
	// outageLen > 0 adds an outage shared by both arms: for outageLen
	// seconds from a start drawn per run, both fail with outageP.
	outageP, outageLen float64
	// clump is the size of the clumps errors arrive in (0 or 1: Poisson).
	clump float64
	// fullFirst puts the canary's first scrape one full period after it
	// took traffic, and the reads right after the canary's scrapes;
	// otherwise the canary's phase is random like stable's.
	fullFirst bool
}

func fixed20(float64) float64 { return 0.2 }

// steps204060 is the split that moves 20 -> 40 -> 60% every 200 s.
func steps204060(t float64) float64 {
	switch {
	case t < 200:
		return 0.2
	case t < 400:
		return 0.4
	default:
		return 0.6
	}
}

// outcome is one simulated rollout.
type outcome struct {
	// at is the read time (s) at which the test rejected, 0 if never.
	at float64
	// state is the state at the end (at the rejection, if any).
	state State
}

// run simulates one rollout, seeded, and feeds the test interval by
// interval. Reads are at period·k. Each arm is one scrape target with its
// own phase in (0, period]: its sample scraped at phase + period·(k-1) is
// the last one visible at read k and carries the counts since its previous
// scrape (stable's first one reaches back before the rollout, as a real
// baseline sample does). So the two arms' counts in one interval cover
// stretches offset by up to one period, as with real scrapes. Counts are
// drawn per scrape: errors Poisson (in clumps when clump > 1), successes
// Poisson, independent, as a thinned Poisson process gives.
func (sc scenario) run(seed, i uint64, s State) outcome {
	rng := rand.New(rand.NewPCG(seed, i))
	phase := [2]float64{sc.period * (1 - rng.Float64()), sc.period * (1 - rng.Float64())}
	if sc.fullFirst {
		phase[0] = sc.period
	}
	cuts := append(slices.Clone(sc.breaks), 0)
	outStart := math.Inf(1)
	if sc.outageLen > 0 {
		outStart = rng.Float64() * (sc.seconds - sc.outageLen)
		cuts = append(cuts, outStart, outStart+sc.outageLen)
	}
	clump := max(sc.clump, 1)
	step := time.Duration(sc.period * float64(time.Second))
	for k := 1; k <= int(sc.seconds/sc.period); k++ {
		var arms [2]Arm
		for a := range arms {
			hi := phase[a] + sc.period*float64(k-1)
			n, x := sc.expected(a, hi-sc.period, hi, cuts, outStart)
			bad := clump * poisson(rng, x/clump)
			arms[a] = Arm{Requests: bad + poisson(rng, n-x), Bad: bad}
		}
		s = s.Update(Interval{Duration: step, Canary: arms[0], Stable: arms[1]})
		if s.Regression {
			return outcome{at: sc.period * float64(k), state: s}
		}
	}
	return outcome{state: s}
}

// expected integrates arm a's (0 canary, 1 stable) request and error rates
// over (lo, hi], exactly: the rates are constant between cuts.
func (sc scenario) expected(a int, lo, hi float64, cuts []float64, outStart float64) (n, x float64) {
	pts := []float64{lo}
	for _, c := range cuts {
		if c > lo && c < hi {
			pts = append(pts, c)
		}
	}
	slices.Sort(pts)
	pts = append(pts, hi)
	for i := 1; i < len(pts); i++ {
		mid, dt := (pts[i-1]+pts[i])/2, pts[i]-pts[i-1]
		share := 0.0
		if mid >= 0 {
			share = sc.share(mid)
		}
		rate, p := sc.total*share, sc.canaryP
		if a == 1 {
			rate, p = sc.total*(1-share), sc.stableP
		}
		if mid >= outStart && mid < outStart+sc.outageLen {
			p = sc.outageP
		}
		n += rate * dt
		x += rate * p * dt
	}
	return n, x
}

// stats summarises runs of one scenario with one config.
type stats struct {
	runs, alarms, within int
	// median detection time (s) and canary requests and errors in the data
	// at detection, over the runs that detected.
	medianAt, medianRequests, medianErrors float64
}

// simulate runs the scenario runs times with the config; within counts the
// rejections at reads up to deadline seconds.
func simulate(sc scenario, cfg Config, runs int, seed uint64, deadline float64) stats {
	s0, err := New(cfg)
	if err != nil {
		panic(err)
	}
	st := stats{runs: runs}
	var at, req, bad []float64
	for i := range runs {
		o := sc.run(seed, uint64(i), s0)
		if o.at == 0 {
			continue
		}
		st.alarms++
		if o.at <= deadline {
			st.within++
		}
		at = append(at, o.at)
		req = append(req, o.state.Canary.Requests)
		bad = append(bad, o.state.Canary.Bad)
	}
	st.medianAt, st.medianRequests, st.medianErrors = median(at), median(req), median(bad)
	return st
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	return v[len(v)/2]
}
