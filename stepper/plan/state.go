package plan

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"time"

	"github.com/canary-io/canary/contract"
)

// StateKeys are the annotations [Encode] manages. A key in this list that
// Encode's result lacks is to be deleted from the Deployment (a zero time,
// nothing acted on yet).
var StateKeys = []string{
	contract.KeyPhase, contract.KeyWeight, contract.KeyStep, contract.KeyFailedChecks,
	contract.KeyRevision, contract.KeyStableRevision,
	contract.KeyStepsPassed, contract.KeyStepStarted, contract.KeyWaitingSince, contract.KeyPreRolloutFailed, contract.KeyActed,
	contract.KeyAnalysisStarted, contract.KeyRolledOut,
}

// Encode renders s as the Deployment's annotations, with the step in
// progress ([StepShown]) over the number of steps and the failed checks
// over the threshold taken from spec. The steps passed, which
// canary.io/step cannot tell apart from the last step running ("3/3"),
// go into the bookkeeping annotation canary.io/steps-passed.
//
// Example: phase Progressing, Step 1 of steps 20,40,60 (one passed, the
// second running), Weight 40, FailedChecks 1 with threshold 3,
// StepStarted 2026-03-01T12:00:00Z → canary.io/phase "Progressing",
// canary.io/step "2/3", canary.io/steps-passed "1", canary.io/weight
// "40", canary.io/failed-checks "1/3", canary.io/step-started
// "2026-03-01T12:00:00Z". Zero times, empty revisions and an empty Acted
// are left out; so are the steps and failed-checks when spec has no steps
// (an analysis never ran).
func Encode(spec Spec, s State) map[string]string {
	a := map[string]string{contract.KeyWeight: strconv.Itoa(int(s.Weight))}
	if s.Phase != "" {
		a[contract.KeyPhase] = string(s.Phase)
	}
	if len(spec.Steps) > 0 {
		a[contract.KeyStep] = fmt.Sprintf("%d/%d", StepShown(s.Step, len(spec.Steps)), len(spec.Steps))
		a[contract.KeyStepsPassed] = strconv.Itoa(s.Step)
		a[contract.KeyFailedChecks] = fmt.Sprintf("%d/%d", s.FailedChecks, spec.Threshold)
	}
	if s.Revision != "" {
		a[contract.KeyRevision] = s.Revision
	}
	if s.Stable != "" {
		a[contract.KeyStableRevision] = s.Stable
	}
	if !s.StepStarted.IsZero() {
		a[contract.KeyStepStarted] = s.StepStarted.UTC().Format(time.RFC3339)
	}
	if !s.WaitingSince.IsZero() {
		a[contract.KeyWaitingSince] = s.WaitingSince.UTC().Format(time.RFC3339)
	}
	if !s.PreRolloutFailed.IsZero() {
		a[contract.KeyPreRolloutFailed] = s.PreRolloutFailed.UTC().Format(time.RFC3339)
	}
	if !s.AnalysisStarted.IsZero() {
		a[contract.KeyAnalysisStarted] = s.AnalysisStarted.UTC().Format(time.RFC3339)
	}
	if !s.RolledOut.IsZero() {
		a[contract.KeyRolledOut] = s.RolledOut.UTC().Format(time.RFC3339)
	}
	if acted := nonEmpty(s.Acted); len(acted) > 0 {
		data, _ := json.Marshal(acted) // a map of strings always encodes, keys sorted
		a[contract.KeyActed] = string(data)
	}
	return a
}

// Decode reads a State from the Deployment's annotations. A missing key
// reads as the zero value (the webhook starts an analysis without
// step-started or waiting-since); a malformed one is an error naming the
// key, and all of them are reported.
func Decode(annotations map[string]string) (State, error) {
	var s State
	var errs []error
	fail := func(key string, err error) {
		errs = append(errs, fmt.Errorf("parse %s %q: %w", key, annotations[key], err))
	}
	if v, ok := annotations[contract.KeyPhase]; ok {
		s.Phase = contract.Phase(v)
		if !knownPhase(s.Phase) {
			fail(contract.KeyPhase, errors.New("unknown phase"))
		}
	}
	if v, ok := annotations[contract.KeyWeight]; ok {
		w, err := parseWhole(v, 100)
		if err != nil {
			fail(contract.KeyWeight, err)
		}
		s.Weight = int32(w)
	}
	if v, ok := annotations[contract.KeyStepsPassed]; ok {
		i, err := parseWhole(v, contract.MaxSteps)
		if err != nil {
			fail(contract.KeyStepsPassed, err)
		}
		s.Step = i
	} else if v, ok := annotations[contract.KeyStep]; ok {
		// Written by a controller before canary.io/steps-passed: there
		// canary.io/step counted the steps passed.
		i, n, err := parseRatio(v)
		if err == nil && i > n {
			err = fmt.Errorf("%d steps passed out of %d", i, n)
		}
		if err != nil {
			fail(contract.KeyStep, err)
		}
		s.Step = i
	}
	if v, ok := annotations[contract.KeyFailedChecks]; ok {
		f, _, err := parseRatio(v) // f may exceed the threshold: that is a rollback
		if err != nil {
			fail(contract.KeyFailedChecks, err)
		}
		s.FailedChecks = f
	}
	s.Revision = annotations[contract.KeyRevision]
	s.Stable = annotations[contract.KeyStableRevision]
	for _, f := range []struct {
		key string
		t   *time.Time
	}{{contract.KeyStepStarted, &s.StepStarted}, {contract.KeyWaitingSince, &s.WaitingSince}, {contract.KeyPreRolloutFailed, &s.PreRolloutFailed}, {contract.KeyAnalysisStarted, &s.AnalysisStarted}, {contract.KeyRolledOut, &s.RolledOut}} {
		if v, ok := annotations[f.key]; ok {
			parsed, err := time.Parse(time.RFC3339, v)
			if err != nil {
				fail(f.key, errors.New("not an RFC 3339 time"))
			}
			*f.t = parsed.UTC()
		}
	}
	if v, ok := annotations[contract.KeyActed]; ok {
		var acted map[string]string
		if err := json.Unmarshal([]byte(v), &acted); err != nil {
			fail(contract.KeyActed, errors.New("not a JSON object of strings"))
		}
		s.Acted = nonEmpty(acted)
	}
	if len(errs) > 0 {
		return State{}, errors.Join(errs...)
	}
	return s, nil
}

// knownPhase reports whether p is one of the contract's phases.
func knownPhase(p contract.Phase) bool {
	switch p {
	case contract.PhaseIdle, contract.PhaseProgressing, contract.PhasePaused,
		contract.PhasePromoting, contract.PhaseSucceeded, contract.PhaseRolledBack:
		return true
	}
	return false
}

// parseWhole parses digits only, at most limit.
//
// Example: "40" → 40; "-1", "4.0", "" and (limit 100) "101" fail.
func parseWhole(v string, limit int) (int, error) {
	if v == "" || strings.Trim(v, "0123456789") != "" {
		return 0, errors.New("not a whole number")
	}
	n, err := strconv.Atoi(v)
	if err != nil || n > limit {
		return 0, fmt.Errorf("not a whole number from 0 to %d", limit)
	}
	return n, nil
}

// parseRatio parses "i/n" of two whole numbers.
//
// Example: "2/3" → 2, 3; "2" and "2/x" fail.
func parseRatio(v string) (int, int, error) {
	a, b, ok := strings.Cut(v, "/")
	if !ok {
		return 0, 0, errors.New(`not of the form "i/n"`)
	}
	const limit = 1 << 20
	i, err := parseWhole(a, limit)
	if err != nil {
		return 0, 0, err
	}
	n, err := parseWhole(b, limit)
	if err != nil {
		return 0, 0, err
	}
	return i, n, nil
}

// nonEmpty is m without empty values, nil when nothing is left.
func nonEmpty(m map[string]string) map[string]string {
	out := maps.Clone(m)
	maps.DeleteFunc(out, func(_, v string) bool { return v == "" })
	if len(out) == 0 {
		return nil
	}
	return out
}
