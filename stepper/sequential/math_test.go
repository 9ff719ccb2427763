package sequential

import (
	"encoding/json"
	"math"
	"math/big"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
)

// bare is a config without guards, so that the e-process can be checked
// against the formulas alone.
func bare(tolerance float64) Config {
	return Config{Alpha: 0.01, Confidence: 99, Tolerance: tolerance, Measure: "error rate"}
}

func iv(cn, cx, sn, sx float64) Interval {
	return Interval{Duration: 5 * time.Second, Canary: Arm{Requests: cn, Bad: cx}, Stable: Arm{Requests: sn, Bad: sx}}
}

func replay(t *testing.T, cfg Config, ivs ...Interval) State {
	t.Helper()
	s, err := Replay(cfg, ivs)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// directE recomputes the mixture from all intervals a second way: the
// alternatives from math.Pow instead of the grid table, the likelihood
// ratios in the theta form (theta_k/theta_0)^x·((1-theta_k)/(1-theta_0))^y
// instead of the log form, multiplied out as big.Float without a logarithm,
// then averaged. Counts must be whole numbers; no interval may be missing.
func directE(r0 float64, ivs []Interval) *big.Float {
	sum := new(big.Float).SetPrec(256)
	for k := range numAlternatives {
		r := r0 * math.Pow(1000, float64(1+3*k)/70)
		lr := new(big.Float).SetPrec(256).SetFloat64(1)
		for _, in := range ivs {
			w := in.Canary.Requests / (in.Canary.Requests + in.Stable.Requests)
			theta := w * r / (w*r + 1 - w)
			theta0 := w * r0 / (w*r0 + 1 - w)
			up := new(big.Float).SetPrec(256).Quo(big.NewFloat(theta), big.NewFloat(theta0))
			down := new(big.Float).SetPrec(256).Quo(big.NewFloat(1-theta), big.NewFloat(1-theta0))
			for range int(in.Canary.Bad) {
				lr.Mul(lr, up)
			}
			for range int(in.Stable.Bad) {
				lr.Mul(lr, down)
			}
		}
		sum.Add(sum, lr)
	}
	return sum.Quo(sum, big.NewFloat(numAlternatives))
}

func bigLog(f *big.Float) float64 {
	mant := new(big.Float)
	exp := f.MantExp(mant)
	m, _ := mant.Float64()
	return math.Log(m) + float64(exp)*math.Ln2
}

// randomIntervals draws intervals whose split moves, with a canary that
// may or may not be worse.
func randomIntervals(seed uint64, n int, canaryP, stableP float64) []Interval {
	rng := rand.New(rand.NewPCG(seed, 1))
	out := make([]Interval, n)
	for i := range out {
		share := []float64{0.05, 0.2, 0.4, 0.6}[i*4/n]
		cn := 1 + poisson(rng, 250*share)
		sn := 1 + poisson(rng, 250*(1-share))
		out[i] = iv(cn, min(cn, poisson(rng, cn*canaryP)), sn, min(sn, poisson(rng, sn*stableP)))
	}
	return out
}

func TestMixtureTwoWays(t *testing.T) {
	for _, tc := range []struct {
		name             string
		tolerance        float64
		canaryP, stableP float64
	}{
		{"same rates", 0.2, 0.01, 0.01},
		{"canary 3x worse", 0.2, 0.03, 0.01},
		{"canary 20x worse, no tolerance", 0, 0.04, 0.002},
		{"canary better", 0.5, 0.005, 0.02},
		{"tolerance 900%", 9, 0.2, 0.01},
	} {
		for seed := range uint64(5) {
			ivs := randomIntervals(seed, 40, tc.canaryP, tc.stableP)
			s := replay(t, bare(tc.tolerance), ivs...)
			ivs = ivs[:s.Intervals] // the test stops at its rejection
			want := bigLog(directE(1+tc.tolerance, ivs))
			if got := s.LogE(); math.Abs(got-want) > 1e-9*max(1, math.Abs(want)) {
				t.Errorf("%s, seed %d: log E = %.12g, direct %.12g", tc.name, seed, got, want)
			}
			// The grid sums give the same uncapped mixture at r0.
			var v [numAlternatives]float64
			for k := range v {
				v[k] = s.BadSum*logM[k] - (s.Grid[rungsBelow+altFirst+altStride*k] - s.Grid[rungsBelow])
			}
			if got := logSumExp(v[:]) - logNumAlternatives; math.Abs(got-want) > 1e-9*max(1, math.Abs(want)) {
				t.Errorf("%s, seed %d: log E from the grid = %.12g, direct %.12g", tc.name, seed, got, want)
			}
		}
	}
}

func TestLowerBoundTwoWays(t *testing.T) {
	for seed := range uint64(8) {
		ivs := randomIntervals(seed, 30, 0.02+0.02*float64(seed), 0.004)
		s := replay(t, bare(0.2), ivs...)
		ivs = ivs[:s.Intervals]
		lb := s.Decide().LowerBound
		threshold := big.NewFloat(100)
		if lb == 0 {
			if directE(1.2*math.Pow(1000, -1.0/70), ivs).Cmp(threshold) >= 0 {
				t.Errorf("seed %d: no bound, but the first rung rejects", seed)
			}
			continue
		}
		if directE(lb, ivs).Cmp(threshold) < 0 {
			t.Errorf("seed %d: bound %.4g, but its test does not reject directly", seed, lb)
		}
		// The next rung up does not reject (with the data at the end; the
		// bound is a running maximum, so only the current bound is checked).
		next := lb * math.Pow(1000, 1.0/70)
		if directE(next, ivs).Cmp(threshold) >= 0 && lb == lowerBound(s.Config, s.Grid, s.BadSum) {
			t.Errorf("seed %d: bound %.4g, but %.4g rejects too", seed, lb, next)
		}
		if lb < 1 {
			t.Errorf("seed %d: bound %.4g below 1", seed, lb)
		}
	}
}

func TestHandComputed(t *testing.T) {
	// The example of State.Update: canary 5 of 50, stable 0 of 200.
	theta0 := 0.24 / 1.04
	theta := 240 / 240.8
	want := 5 * math.Log(theta/theta0) // 7.3155
	s := replay(t, bare(0.2), iv(50, 5, 200, 0))
	if got := s.Log[numAlternatives-1]; math.Abs(got-want) > 1e-12 || math.Abs(got-7.3150) > 1e-4 {
		t.Errorf("l(1200) = %.6f, want %.6f", got, want)
	}
	capped := bare(0.2)
	capped.IntervalCap = 100
	s = replay(t, capped, iv(50, 5, 200, 0))
	if got := s.Log[numAlternatives-1]; math.Abs(got-math.Log(100)) > 1e-12 {
		t.Errorf("capped l(1200) = %.6f, want log 100", got)
	}
	// One stable error, no canary error: l(r) = log((1-theta)/(1-theta0)).
	s = replay(t, bare(0), iv(100, 0, 100, 1))
	m0 := math.Pow(1000, 1.0/70) // the smallest alternative, r = m0 against 1
	if got, want := s.Log[0], math.Log((1-m0/(m0+1))/(1-0.5)); math.Abs(got-want) > 1e-12 {
		t.Errorf("l(m0) = %.9f, want %.9f", got, want)
	}
	// Fewest canary errors that decide at share 20% without stable errors
	// (tolerance 20%, alpha 0.01): 4, as the notes' table has.
	if s := replay(t, bare(0.2), iv(50, 3, 200, 0)); s.Regression {
		t.Errorf("3 errors decided: E = %v", s.Decide().EValue)
	}
	if s := replay(t, bare(0.2), iv(50, 4, 200, 0)); !s.Regression {
		t.Errorf("4 errors did not decide: E = %v", s.Decide().EValue)
	}
	// At a 5% share, 2 (what DefaultMinBad guards against).
	if s := replay(t, bare(0.2), iv(10, 2, 190, 0)); !s.Regression {
		t.Errorf("2 errors at 5%% did not decide: E = %v", s.Decide().EValue)
	}
}

func TestPValueIsRunningMinimum(t *testing.T) {
	cfg := bare(0.2)
	s := replay(t, cfg, iv(50, 3, 200, 0)) // E about 45
	first := s.Decide()
	s = s.Update(iv(50, 0, 200, 3)) // stable errors: E falls
	later := s.Decide()
	if !(later.EValue < first.EValue) {
		t.Fatalf("E did not fall: %v then %v", first.EValue, later.EValue)
	}
	if later.PValue != first.PValue || math.Abs(first.PValue*first.EValue-1) > 1e-12 {
		t.Errorf("p-value %v then %v, want 1/%v both times", first.PValue, later.PValue, first.EValue)
	}
}

func TestEdgeCases(t *testing.T) {
	nan := math.NaN()
	for _, tc := range []struct {
		name           string
		ivs            []Interval
		comparable     bool
		regression     bool
		summaryHas     string
		canaryRequests float64
	}{
		{"no intervals", nil, false, false, "canary error rate: no data yet", 0},
		{"no errors at all", []Interval{iv(50, 0, 200, 0), iv(50, 0, 200, 0)}, true, false,
			"canary error rate 0% vs stable 0% after 100 canary requests in 10 s: not worse so far (p = 1, needs 0.01)", 100},
		{"no stable traffic", []Interval{iv(50, 50, 0, 0), iv(50, 50, 0, 0)}, false, false,
			"canary error rate not comparable: no stable traffic to compare with", 100},
		{"stable never scraped", []Interval{{Canary: Arm{Requests: 50, Bad: 50}, Stable: Arm{Missing: true}}}, false, false,
			"not comparable", 0},
		{"nothing scraped", []Interval{{Duration: time.Second, Canary: Arm{Missing: true}, Stable: Arm{Missing: true}}}, false, false,
			"no data yet", 0},
		{"NaN counts are no data", []Interval{{Canary: Arm{Requests: nan, Bad: 5}, Stable: Arm{Requests: 200}}}, false, false,
			"no data yet", 0},
		{"errors without requests are clamped", []Interval{iv(0, 40, 200, 0), iv(50, 0, 200, 0)}, true, false,
			"canary error rate 0% vs stable 0%", 50},
		{"infinite counts are no data", []Interval{iv(math.Inf(1), 10, 200, 0)}, false, false, "no data yet", 0},
	} {
		s := replay(t, NewConfig(0.01, 99, 0.2, "error rate"), tc.ivs...)
		d := s.Decide()
		if d.Comparable != tc.comparable || d.Regression != tc.regression || !strings.Contains(d.Summary, tc.summaryHas) ||
			d.CanaryRequests != tc.canaryRequests {
			t.Errorf("%s: comparable %v regression %v requests %v %q, want %v %v %v containing %q",
				tc.name, d.Comparable, d.Regression, d.CanaryRequests, d.Summary, tc.comparable, tc.regression, tc.canaryRequests, tc.summaryHas)
		}
		if !tc.comparable && (d.EValue != 1 || d.PValue != 1 || d.LowerBound != 0) {
			t.Errorf("%s: E %v p %v bound %v without a comparison", tc.name, d.EValue, d.PValue, d.LowerBound)
		}
	}
}

func TestMissingArmIsCarried(t *testing.T) {
	cfg := bare(0.2)
	carried := replay(t, cfg,
		Interval{Duration: 5 * time.Second, Canary: Arm{Missing: true}, Stable: Arm{Requests: 200, Bad: 1}},
		Interval{Duration: 5 * time.Second, Canary: Arm{Requests: 50, Bad: 2}, Stable: Arm{Missing: true}},
		iv(50, 4, 200, 0))
	merged := replay(t, cfg, Interval{Duration: 15 * time.Second, Canary: Arm{Requests: 100, Bad: 6}, Stable: Arm{Requests: 400, Bad: 1}})
	carried.Intervals = merged.Intervals
	if !reflect.DeepEqual(carried, merged) {
		t.Errorf("carried:\n%+v\nmerged:\n%+v", carried.Decide(), merged.Decide())
	}
}

func TestFloors(t *testing.T) {
	cfg := bare(0.2)
	cfg.MinBad, cfg.MinDiff = 5, 0.005
	// 4 errors are evidence enough (see TestHandComputed), but below 5.
	d := replay(t, cfg, iv(50, 4, 200, 0)).Decide()
	if d.Regression || !strings.Contains(d.Summary, "below the floor of 5 bad canary requests") {
		t.Errorf("floor of errors: regression %v, %q", d.Regression, d.Summary)
	}
	// 0.5% vs 0.1% on much traffic: overwhelming evidence, 0.4 points.
	d = replay(t, cfg, iv(100000, 500, 400000, 400)).Decide()
	if d.Regression || d.PValue > 1e-10 || !strings.Contains(d.Summary, "below the floor of 0.5 points of difference") {
		t.Errorf("floor of difference: regression %v p %v, %q", d.Regression, d.PValue, d.Summary)
	}
	// 0.6% vs 0.1%: over both floors.
	if d = replay(t, cfg, iv(100000, 600, 400000, 400)).Decide(); !d.Regression {
		t.Errorf("over the floors: %q", d.Summary)
	}
}

func TestRegressionSummaryAndFreeze(t *testing.T) {
	s := replay(t, NewConfig(0.01, 99, 0.2, "error rate"), iv(30, 3, 190, 1), iv(50, 5, 200, 0))
	d := s.Decide()
	want := "canary error rate 10.0% vs stable 0.3%: worse with 99% confidence (at least 2.6x) after 80 canary requests in 10 s"
	if !d.Regression || d.Summary != want {
		t.Fatalf("summary %q, want %q", d.Summary, want)
	}
	if d.LowerBound < 1.2 {
		t.Errorf("bound %v below r0 at a regression", d.LowerBound)
	}
	if after := s.Update(iv(50, 0, 200, 50)); !reflect.DeepEqual(after, s) {
		t.Errorf("the state changed after the decision")
	}
}

func TestPhi(t *testing.T) {
	cfg := bare(0.2)
	cfg.Dispersion = true
	s := replay(t, cfg, iv(50, 0, 200, 0), iv(50, 0, 200, 10))
	if got := s.Phi(); math.Abs(got-3.25) > 1e-12 {
		t.Errorf("phi after one clump pair = %v, want 3.25", got)
	}
	if got := s.Update(iv(50, 0, 200, 0)).Phi(); math.Abs(got-4.6) > 1e-12 {
		t.Errorf("phi after two clump pairs = %v, want 4.6", got)
	}
	// Poisson-like coincidences barely move it: 1,1 in equal halves is 0.
	if got := replay(t, cfg, iv(50, 0, 200, 1), iv(50, 0, 200, 1)).Phi(); got != 1 {
		t.Errorf("phi = %v, want 1", got)
	}
	cfg.Dispersion = false
	if got := replay(t, cfg, iv(50, 0, 200, 0), iv(50, 0, 200, 10)).Phi(); got != 1 {
		t.Errorf("phi without correction = %v", got)
	}
	// The evidence is divided by the phi of the intervals before.
	cfg.Dispersion = true
	s = replay(t, cfg, iv(50, 0, 200, 0), iv(50, 0, 200, 10), iv(50, 0, 200, 0))
	before := s.Log
	s = s.Update(iv(50, 5, 200, 0))
	plain := replay(t, bare(0.2), iv(50, 5, 200, 0))
	for k := range before {
		if got, want := s.Log[k]-before[k], plain.Log[k]/4.6; math.Abs(got-want) > 1e-12 {
			t.Fatalf("alternative %d: added %v, want %v", k, got, want)
		}
	}
}

func TestStateRoundTripsAndReplays(t *testing.T) {
	cfg := NewConfig(0.01, 99, 0.2, "error rate")
	ivs := randomIntervals(3, 40, 0.012, 0.01)
	straight := replay(t, cfg, ivs...)
	s := replay(t, cfg, ivs[:17]...)
	raw, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var back State
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	for _, in := range ivs[17:] {
		back = back.Update(in)
	}
	if !reflect.DeepEqual(back, straight) {
		t.Errorf("state through JSON differs from the straight replay")
	}
	if len(raw) > 8000 {
		t.Errorf("serialized state is %d bytes", len(raw))
	}
}

func TestLogSumExp(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want float64
	}{
		{[]float64{1000, 1000}, 1000 + math.Ln2},
		{[]float64{0, 0, 0, 0}, math.Log(4)},
		{[]float64{-1000, 0}, 0},
		{[]float64{math.Log(2), math.Log(3)}, math.Log(5)},
		{[]float64{math.Inf(-1), math.Inf(-1)}, math.Inf(-1)},
		{nil, math.Inf(-1)},
	} {
		if got := logSumExp(tc.in); !(got == tc.want || math.Abs(got-tc.want) < 1e-12) {
			t.Errorf("logSumExp(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestAlternatives(t *testing.T) {
	m := Alternatives()
	if len(m) != 24 || math.Abs(m[0]-1.1037) > 1e-4 || math.Abs(m[23]-1000) > 1e-9 {
		t.Fatalf("alternatives %v", m)
	}
	for k := 1; k < len(m); k++ {
		if r := m[k] / m[k-1]; math.Abs(r-math.Pow(1000, 3.0/70)) > 1e-12 {
			t.Errorf("ratio %d = %v", k, r)
		}
	}
	for _, tc := range []struct{ r0, lowest float64 }{{1, 1}, {1.2, 1.2 / 1.1037}, {10, 10 / math.Pow(1.1037, 23)}} {
		got := tc.r0 * rhoPow[firstRung(tc.r0)]
		if got < 1-1e-9 || got > tc.lowest*1.001 {
			t.Errorf("lowest rung for r0 %v = %v, want %v", tc.r0, got, tc.lowest)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	good := NewConfig(0.01, 99, 0.2, "error rate")
	for _, tc := range []struct {
		name   string
		change func(*Config)
		ok     bool
	}{
		{"defaults", func(*Config) {}, true},
		{"alpha 0", func(c *Config) { c.Alpha = 0 }, false},
		{"alpha 1", func(c *Config) { c.Alpha = 1 }, false},
		{"alpha NaN", func(c *Config) { c.Alpha = math.NaN() }, false},
		{"tolerance negative", func(c *Config) { c.Tolerance = -0.1 }, false},
		{"tolerance 10", func(c *Config) { c.Tolerance = 10 }, false},
		{"floor negative", func(c *Config) { c.MinBad = -1 }, false},
		{"difference 1", func(c *Config) { c.MinDiff = 1 }, false},
		{"cap 1", func(c *Config) { c.IntervalCap = 1 }, false},
		{"cap infinite", func(c *Config) { c.IntervalCap = math.Inf(1) }, false},
		{"no cap", func(c *Config) { c.IntervalCap = 0 }, true},
	} {
		c := good
		tc.change(&c)
		if _, err := New(c); (err == nil) != tc.ok {
			t.Errorf("%s: error %v, want ok %v", tc.name, err, tc.ok)
		}
	}
}

func TestRollout(t *testing.T) {
	if _, err := NewRollout(Settings{Confidence: 100, Tolerance: 0.2}); err == nil {
		t.Errorf("confidence 100 accepted")
	}
	r, err := NewRollout(Settings{Confidence: 99, Tolerance: 0.2, Latency: true, SlowerThan: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(r.Errors.Config.Alpha-0.005) > 1e-15 || r.Latency.Config.Alpha != r.Errors.Config.Alpha {
		t.Errorf("alpha split %v, %v, want 0.005 each", r.Errors.Config.Alpha, r.Latency.Config.Alpha)
	}
	alone, _ := NewRollout(Settings{Confidence: 99, Tolerance: 0.2})
	if math.Abs(alone.Errors.Config.Alpha-0.01) > 1e-15 {
		t.Errorf("alpha without latency %v, want 0.01", alone.Errors.Config.Alpha)
	}
	healthy := iv(50, 0, 200, 0)
	slow := iv(50, 10, 200, 1)
	r = r.Update(healthy, healthy)
	if v := r.Decide(); v.Regression || !strings.Contains(v.Summary, "; canary slow-request rate (over 500ms)") {
		t.Errorf("in progress: %q", v.Summary)
	}
	for range 3 {
		r = r.Update(healthy, slow)
	}
	v := r.Decide()
	if !v.Regression || v.Errors.Regression || v.Summary != ("canary slow-request rate (over 500ms) 13.3% vs stable 0.3%: worse with 99% confidence (at least 4.7x) after 150 canary requests in 15 s") {
		t.Errorf("latency regression: %v %q", v.Regression, v.Summary)
	}
	alone = alone.Update(healthy, slow)
	if v := alone.Decide(); v.Latency != (Decision{}) || strings.Contains(v.Summary, "slow") {
		t.Errorf("latency off, yet %q", v.Summary)
	}
}
