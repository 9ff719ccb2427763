package plan

import (
	"testing"
	"time"

	"github.com/canary-io/canary/contract"
)

func TestChecksDue(t *testing.T) {
	spec := testSpec()
	for _, tc := range []struct {
		name  string
		state State
		now   time.Time
		want  bool
	}{
		{"step running, interval not over", running(0, ago(59*time.Second)), t0, false},
		{"step running, interval over", running(0, ago(time.Minute)), t0, true},
		{"paused, interval over", with(running(0, ago(time.Minute)), func(s *State) { s.Phase = contract.PhasePaused }), t0, true},
		{"between steps", scaling(1, ago(time.Hour)), t0, false},
		{"all steps passed", allPassed(ago(time.Hour)), t0, false},
		{"promoting", with(running(2, ago(time.Hour)), func(s *State) { s.Phase = contract.PhasePromoting }), t0, false},
	} {
		if got := ChecksDue(spec, tc.state, tc.now); got != tc.want {
			t.Errorf("%s: ChecksDue = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestGateDue(t *testing.T) {
	spec := testSpec()
	for _, tc := range []struct {
		name  string
		state State
		want  bool
	}{
		{"last step's checks due", running(2, ago(time.Minute)), true},
		{"last step running", running(2, ago(time.Second)), false},
		{"earlier step's checks due", running(1, ago(time.Minute)), false},
		{"all steps passed", allPassed(ago(time.Minute)), true},
		{"paused after all steps", with(allPassed(time.Time{}), func(s *State) { s.Phase = contract.PhasePaused }), false},
	} {
		if got := GateDue(spec, tc.state, t0); got != tc.want {
			t.Errorf("%s: GateDue = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestCanaryReplicas(t *testing.T) {
	for _, tc := range []struct{ replicas, weight, want int32 }{
		{5, 40, 2}, // ceil(2.0)
		{3, 20, 1}, // ceil(0.6)
		{10, 25, 3},
		{5, 60, 3},
		{100, 99, 99},
		{1, 1, 1},
		{0, 60, 1}, // scaled to zero: still one pod to judge
		{2147483647, 99, 2126008811},
	} {
		if got := CanaryReplicas(tc.replicas, tc.weight); got != tc.want {
			t.Errorf("CanaryReplicas(%d, %d) = %d, want %d", tc.replicas, tc.weight, got, tc.want)
		}
	}
}
