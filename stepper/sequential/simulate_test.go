package sequential

import (
	"fmt"
	"testing"
)

// The simulations of the "Done when", at the default settings:
// confidence 99 (alpha 0.01 for the error test alone), tolerance 20%, the
// floors DefaultMinBad and DefaultMinDiff, the interval cap 1/alpha and the
// over-dispersion correction. 5 s scrapes and reads, 50 requests/s, canary
// 20% (10 vs 40 requests/s) unless stated, each arm scraped at its own
// phase. Seeds are fixed: the figures are reproducible.

const (
	simRuns = 1000
	simSeed = 20260
)

func defaultSim() Config { return NewConfig(0.01, 99, 0.20, "error rate") }

var (
	// bad10 is a canary failing 10% against stable's 0.1%, as in the
	// bookinfo scenario. The canary's first scrape covers a full scrape
	// interval of its traffic, so "within 3 scrapes" means within 15 s of
	// canary traffic (the notes' simulation counted the same way: 55 canary
	// requests at the first scrape).
	bad10 = scenario{seconds: 15, period: 5, total: 50, share: fixed20, canaryP: 0.10, stableP: 0.001, fullFirst: true}
	// bad10Partial is bad10 with the canary's phase random too: its first
	// scrape covers 0..5 s of traffic, the third only 10..15 s.
	bad10Partial = scenario{seconds: 15, period: 5, total: 50, share: fixed20, canaryP: 0.10, stableP: 0.001}
	// bad2 fails 2% against 0.1%, both phases random.
	bad2 = scenario{seconds: 90, period: 5, total: 50, share: fixed20, canaryP: 0.02, stableP: 0.001}
	// The stable-vs-stable runs: 10 minutes at 0.1% each.
	same       = scenario{seconds: 600, period: 5, total: 50, share: fixed20, canaryP: 0.001, stableP: 0.001}
	sameSplit  = scenario{seconds: 600, period: 5, total: 50, share: steps204060, breaks: []float64{200, 400}, canaryP: 0.001, stableP: 0.001}
	sameOutage = scenario{seconds: 600, period: 5, total: 50, share: fixed20, canaryP: 0.001, stableP: 0.001, outageP: 0.05, outageLen: 60}
	sameClumps = scenario{seconds: 600, period: 5, total: 50, share: fixed20, canaryP: 0.001, stableP: 0.001, clump: 10}
)

func TestSimulatedDetection(t *testing.T) {
	for _, tc := range []struct {
		name     string
		sc       scenario
		deadline float64
		min      float64
	}{
		{"10% vs 0.1% within 3 scrapes", bad10, 15, 0.99},
		{"2% vs 0.1% within 90 s", bad2, 90, 0.90},
	} {
		// alpha 0.01: the error test alone; 0.005: its share when the
		// latency test runs too.
		for _, cfg := range []Config{defaultSim(), NewConfig(0.005, 99, 0.20, "error rate")} {
			st := simulate(tc.sc, cfg, simRuns, simSeed, tc.deadline)
			got := float64(st.within) / float64(st.runs)
			t.Logf("BENCH %s, alpha %.3f: %d/%d detected (min %.0f%%), median %.0f s, %.0f canary requests, %.0f canary errors",
				tc.name, cfg.Alpha, st.within, st.runs, 100*tc.min, st.medianAt, st.medianRequests, st.medianErrors)
			if got < tc.min {
				t.Errorf("%s, alpha %v: detected in %.1f%% of runs, want at least %.0f%%", tc.name, cfg.Alpha, 100*got, 100*tc.min)
			}
		}
	}
}

func TestSimulatedFalseAlarms(t *testing.T) {
	cfg := defaultSim()
	for _, tc := range []struct {
		name string
		sc   scenario
	}{
		{"stable vs stable, 20%", same},
		{"stable vs stable, split 20 -> 40 -> 60%", sameSplit},
		{"stable vs stable, shared 60 s outage at 5%", sameOutage},
	} {
		st := simulate(tc.sc, cfg, simRuns, simSeed, tc.sc.seconds)
		t.Logf("BENCH false alarms, %s: %d/%d", tc.name, st.alarms, st.runs)
		if limit := int(cfg.Alpha * simRuns); st.alarms > limit {
			t.Errorf("%s: %d false alarms in %d runs, want at most %d", tc.name, st.alarms, st.runs, limit)
		}
	}
}

// TestSimulatedClumps reports the false alarms when errors come in clumps of
// 10 (both arms, 0.1% on average), with and without the over-dispersion
// correction. There is no bound to assert: a clump in the canary before any
// in stable looks like a bad canary to any test that counts requests.
func TestSimulatedClumps(t *testing.T) {
	with := defaultSim()
	without := with
	without.Dispersion = false
	a := simulate(sameClumps, with, simRuns, simSeed, sameClumps.seconds)
	b := simulate(sameClumps, without, simRuns, simSeed, sameClumps.seconds)
	t.Logf("BENCH false alarms, clumps of 10: %d/%d with the over-dispersion correction, %d/%d without", a.alarms, a.runs, b.alarms, b.runs)
	if a.alarms > b.alarms {
		t.Errorf("the correction raised false alarms: %d with, %d without", a.alarms, b.alarms)
	}
}

// TestSimulatedGuards prints what each guard buys and costs: the guards are
// added one at a time, from the bare test (tolerance 0) to the defaults, and
// each line gives the false alarms of the stable-vs-stable runs and the
// detections of the bad canaries. The package documentation quotes this
// table.
func TestSimulatedGuards(t *testing.T) {
	type variant struct {
		name string
		cfg  Config
	}
	bare := Config{Alpha: 0.01, Confidence: 99, Measure: "error rate"}
	tol := bare
	tol.Tolerance = 0.20
	floors := tol
	floors.MinBad, floors.MinDiff = DefaultMinBad, DefaultMinDiff
	capped := floors
	capped.IntervalCap = 1 / capped.Alpha
	full := defaultSim()
	noCap := full
	noCap.IntervalCap = 0
	split := NewConfig(0.005, 99, 0.20, "error rate")
	for _, v := range []variant{
		{"bare (tolerance 0)", bare},
		{"+ tolerance 20%", tol},
		{"+ floors (5 errors, 0.5 points)", floors},
		{"+ interval cap 1/alpha", capped},
		{"+ dispersion = defaults", full},
		{"defaults without the cap", noCap},
		{"defaults, alpha 0.005 (latency on)", split},
	} {
		line := fmt.Sprintf("BENCH %-36s", v.name)
		for _, sc := range []scenario{same, sameSplit, sameOutage, sameClumps} {
			st := simulate(sc, v.cfg, simRuns, simSeed, sc.seconds)
			line += fmt.Sprintf(" %4d", st.alarms)
		}
		for _, d := range []struct {
			sc       scenario
			deadline float64
		}{{bad10, 15}, {bad10Partial, 15}, {bad2, 90}} {
			st := simulate(d.sc, v.cfg, simRuns, simSeed, d.deadline)
			line += fmt.Sprintf("  %5.1f%% %3.0fs", 100*float64(st.within)/float64(st.runs), st.medianAt)
		}
		t.Log(line)
	}
	t.Log("BENCH columns: false alarms /1000 (same, split, outage, clumps); detected % and median s (10% full first scrape by 15 s, 10% partial first scrape by 15 s, 2% by 90 s)")
}
