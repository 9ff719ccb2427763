package plan

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/canary-io/canary/contract"
)

func TestEncodeDecodeRoundTrip(t *testing.T) {
	spec := testSpec()
	for _, tc := range []struct {
		name  string
		state State
	}{
		{"zero", State{}},
		{"idle", State{Phase: contract.PhaseIdle, Revision: "rev1", Stable: "rev1"}},
		{"analysis started by the webhook", started()},
		{"waiting for canary pods", scaling(1, ago(time.Minute))},
		{"step running", running(2, ago(20*time.Second))},
		{"analysis start recorded", with(running(1, ago(20*time.Second)), func(s *State) { s.AnalysisStarted = ago(time.Minute) })},
		{"no data, waiting", with(running(1, ago(3*time.Minute)), func(s *State) { s.WaitingSince = ago(2 * time.Minute) })},
		{"paused, a failed check", with(paused(running(1, ago(time.Minute))), func(s *State) { s.FailedChecks = 2 })},
		{"pre-rollout hooks failed, waiting", with(scaling(0, ago(2*time.Minute)), func(s *State) {
			s.FailedChecks, s.PreRolloutFailed = 1, ago(time.Minute)
		})},
		{"last step running", running(2, ago(20*time.Second))},
		{"all steps passed, waiting for the gate", with(running(2, time.Time{}), func(s *State) { s.Step, s.WaitingSince = 3, ago(time.Second) })},
		{"promoting", promotingSince(ago(time.Minute))},
		{"rolled back over the threshold", State{Phase: contract.PhaseRolledBack, Step: 1, FailedChecks: 4,
			StepStarted: ago(time.Hour), Revision: "rev2", Stable: "rev1"}},
		{"controls acted on", with(running(0, t0), func(s *State) {
			s.Acted = map[string]string{contract.KeyPromote: "p1", contract.KeyAbort: `a "quoted" value`, contract.KeyRetry: "r1"}
		})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			annotations := Encode(spec, tc.state)
			for k := range annotations {
				if !slices.Contains(StateKeys, k) {
					t.Errorf("Encode wrote %s, which is not in StateKeys", k)
				}
			}
			got, err := Decode(annotations)
			if err != nil {
				t.Fatalf("Decode(%v): %v", annotations, err)
			}
			if diff := diffState(got, tc.state); diff != "" || !got.Equal(tc.state) {
				t.Errorf("round trip through %v: %s", annotations, diff)
			}
		})
	}
}

func TestEncode(t *testing.T) {
	state := with(running(1, ago(20*time.Second)), func(s *State) {
		s.FailedChecks = 1
		s.WaitingSince = time.Date(2026, 3, 1, 13, 0, 0, 0, time.FixedZone("CET", 3600)) // written in UTC
		s.Acted = map[string]string{contract.KeyPromote: "p1", contract.KeyAbort: "a1", contract.KeyRetry: ""}
	})
	want := map[string]string{
		contract.KeyPhase:          "Progressing",
		contract.KeyWeight:         "40",
		contract.KeyStep:           "2/3",
		contract.KeyStepsPassed:    "1",
		contract.KeyFailedChecks:   "1/3",
		contract.KeyRevision:       "rev2",
		contract.KeyStableRevision: "rev1",
		contract.KeyStepStarted:    "2026-03-01T11:59:40Z",
		contract.KeyWaitingSince:   "2026-03-01T12:00:00Z",
		contract.KeyActed:          `{"canary.io/abort":"a1","canary.io/promote":"p1"}`,
	}
	if got := Encode(testSpec(), state); !maps.Equal(got, want) {
		t.Errorf("Encode:\n got %v\nwant %v", got, want)
	}
	// No analysis ever ran: no step and failed-checks counters.
	idle := Encode(Spec{}, State{Phase: contract.PhaseIdle, Revision: "rev1", Stable: "rev1"})
	wantIdle := map[string]string{contract.KeyPhase: "Idle", contract.KeyWeight: "0",
		contract.KeyRevision: "rev1", contract.KeyStableRevision: "rev1"}
	if !maps.Equal(idle, wantIdle) {
		t.Errorf("Encode(idle) = %v, want %v", idle, wantIdle)
	}
}

// TestDecodeWebhookStart reads the annotations the webhook writes when it
// holds a template (see webhook.startAnalysis), among others of the user's.
func TestDecodeWebhookStart(t *testing.T) {
	got, err := Decode(map[string]string{
		contract.KeyEnabled:        "true",
		contract.KeyPhase:          "Progressing",
		contract.KeyMessage:        "revision rev2 held for canary analysis against stable revision rev1",
		contract.KeyRevision:       "rev2",
		contract.KeyStableRevision: "rev1",
		contract.KeyStep:           "1/3",
		contract.KeyStepsPassed:    "0",
		contract.KeyWeight:         "0",
		contract.KeyFailedChecks:   "0/3",
		contract.KeyActed:          `{"canary.io/retry":"r1"}`,
		contract.KeyPromote:        "p0",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := with(started(), func(s *State) { s.Acted = map[string]string{contract.KeyRetry: "r1"} })
	if diff := diffState(got, want); diff != "" {
		t.Error(diff)
	}
	if empty, err := Decode(map[string]string{contract.KeyActed: "{}"}); err != nil || empty.Acted != nil {
		t.Errorf(`Decode(acted "{}") = %v, %v; want nothing acted on`, empty.Acted, err)
	}
}

// TestStepCountedOneWay: canary.io/step shows the step in progress,
// 1-based, and tells the last step running from all steps passed only
// through canary.io/steps-passed.
func TestStepCountedOneWay(t *testing.T) {
	spec := testSpec() // 3 steps
	for _, tc := range []struct {
		passed            int
		step, stepsPassed string
	}{
		{0, "1/3", "0"}, {1, "2/3", "1"}, {2, "3/3", "2"}, {3, "3/3", "3"},
	} {
		a := Encode(spec, State{Phase: contract.PhaseProgressing, Step: tc.passed})
		if a[contract.KeyStep] != tc.step || a[contract.KeyStepsPassed] != tc.stepsPassed {
			t.Errorf("%d passed: step %q, steps-passed %q; want %q, %q", tc.passed, a[contract.KeyStep], a[contract.KeyStepsPassed], tc.step, tc.stepsPassed)
		}
		if got := StepShown(tc.passed, len(spec.Steps)); a[contract.KeyStep] != fmt.Sprintf("%d/3", got) {
			t.Errorf("%d passed: StepShown %d disagrees with canary.io/step %q", tc.passed, got, a[contract.KeyStep])
		}
	}
}

// TestDecodeBeforeStepsPassed reads the annotations of a controller that
// wrote the steps passed into canary.io/step (an upgrade mid-analysis).
func TestDecodeBeforeStepsPassed(t *testing.T) {
	got, err := Decode(map[string]string{contract.KeyPhase: "Progressing", contract.KeyStep: "1/3", contract.KeyWeight: "40"})
	if err != nil || got.Step != 1 {
		t.Errorf("Decode(step 1/3, no steps-passed) = step %d, %v; want 1 passed", got.Step, err)
	}
}

func TestDecodeErrors(t *testing.T) {
	for _, tc := range []struct {
		key, value, want string
	}{
		{contract.KeyPhase, "Running", `parse canary.io/phase "Running": unknown phase`},
		{contract.KeyWeight, "-1", `parse canary.io/weight "-1": not a whole number`},
		{contract.KeyWeight, "101", `parse canary.io/weight "101": not a whole number from 0 to 100`},
		{contract.KeyWeight, "4.5", `parse canary.io/weight "4.5": not a whole number`},
		{contract.KeyStep, "2", `parse canary.io/step "2": not of the form "i/n"`},
		{contract.KeyStep, "4/3", `parse canary.io/step "4/3": 4 steps passed out of 3`},
		{contract.KeyStep, "1/x", `parse canary.io/step "1/x": not a whole number`},
		{contract.KeyStepsPassed, "x", `parse canary.io/steps-passed "x": not a whole number`},
		{contract.KeyStepsPassed, "21", `parse canary.io/steps-passed "21": not a whole number from 0 to 20`},
		{contract.KeyFailedChecks, "", `parse canary.io/failed-checks "": not of the form "i/n"`},
		{contract.KeyFailedChecks, "x/3", `parse canary.io/failed-checks "x/3": not a whole number`},
		{contract.KeyStepStarted, "yesterday", `parse canary.io/step-started "yesterday": not an RFC 3339 time`},
		{contract.KeyWaitingSince, "2026-03-01 12:00:00", `parse canary.io/waiting-since "2026-03-01 12:00:00": not an RFC 3339 time`},
		{contract.KeyActed, "[1]", `parse canary.io/acted "[1]": not a JSON object of strings`},
	} {
		_, err := Decode(map[string]string{tc.key: tc.value})
		if err == nil || err.Error() != tc.want {
			t.Errorf("Decode(%s=%q) error = %v, want %q", tc.key, tc.value, err, tc.want)
		}
	}
	// Every malformed key is reported, in a fixed order.
	_, err := Decode(map[string]string{contract.KeyWeight: "x", contract.KeyStepStarted: "x", contract.KeyWaitingSince: "x"})
	if err == nil || strings.Count(err.Error(), "\n") != 2 ||
		!strings.HasPrefix(err.Error(), "parse canary.io/weight") ||
		!strings.HasSuffix(err.Error(), `parse canary.io/waiting-since "x": not an RFC 3339 time`) {
		t.Errorf("Decode with three bad keys: %v", err)
	}
	// A fractional time (written by hand, or by another tool) is accepted.
	s, err := Decode(map[string]string{contract.KeyStepStarted: "2026-03-01T12:00:00.5+01:00"})
	if err != nil || !s.StepStarted.Equal(time.Date(2026, 3, 1, 11, 0, 0, 5e8, time.UTC)) {
		t.Errorf("Decode fractional time = %v, %v", s.StepStarted, err)
	}
}

func TestStateEqual(t *testing.T) {
	a := with(running(1, ago(time.Minute)), func(s *State) { s.Acted = map[string]string{} })
	b := with(running(1, ago(time.Minute).In(time.FixedZone("CET", 3600))))
	if !a.Equal(b) {
		t.Error("same state, other time zone and empty vs nil Acted: not Equal")
	}
	for _, mod := range []func(*State){
		func(s *State) { s.Phase = contract.PhasePaused },
		func(s *State) { s.Step++ },
		func(s *State) { s.Weight++ },
		func(s *State) { s.FailedChecks++ },
		func(s *State) { s.StepStarted = s.StepStarted.Add(time.Second) },
		func(s *State) { s.WaitingSince = t0 },
		func(s *State) { s.PreRolloutFailed = t0 },
		func(s *State) { s.AnalysisStarted = t0 },
		func(s *State) { s.Acted = map[string]string{contract.KeyAbort: "a"} },
		func(s *State) { s.Revision = "rev9" },
		func(s *State) { s.Stable = "rev9" },
	} {
		if c := with(a, mod); a.Equal(c) {
			t.Errorf("%+v Equal to %+v", a, c)
		}
	}
}
