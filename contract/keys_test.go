package contract

import (
	"reflect"
	"strings"
	"testing"
)

// The names are fixed by the contract: tests outside the project rely on
// them, so they are spelled out here once more rather than derived.
func TestKeysAreTheContracts(t *testing.T) {
	for _, tt := range []struct {
		name      string
		got, want []string
	}{
		{"settings", SettingKeys, []string{
			"canary.io/enabled", "canary.io/service", "canary.io/steps", "canary.io/interval",
			"canary.io/threshold", "canary.io/min-success-rate", "canary.io/max-latency",
			"canary.io/metrics", "canary.io/confidence", "canary.io/tolerance", "canary.io/no-data",
			"canary.io/progress-deadline", "canary.io/virtualservice", "canary.io/prometheus",
			"canary.io/webhooks", "canary.io/window", "canary.io/notify", "canary.io/router",
			"canary.io/httproute", "canary.io/strategy", "canary.io/iterations", "canary.io/match", "canary.io/mirror", "canary.io/sticky",
		}},
		{"controls", ControlKeys, []string{
			"canary.io/pause", "canary.io/promote", "canary.io/abort", "canary.io/retry",
			"canary.io/skip-analysis",
		}},
		{"status", StatusKeys, []string{
			"canary.io/phase", "canary.io/weight", "canary.io/step", "canary.io/revision",
			"canary.io/stable-revision", "canary.io/failed-checks", "canary.io/message",
			"canary.io/last-transition", "canary.io/rejected-revision",
		}},
	} {
		if !reflect.DeepEqual(tt.got, tt.want) {
			t.Errorf("%s keys = %q\nwant %q", tt.name, tt.got, tt.want)
		}
	}
}

func TestKeyGroupsMatchTheLookup(t *testing.T) {
	seen := map[string]keyKind{}
	for kind, keys := range map[keyKind][]string{kindSetting: SettingKeys, kindControl: ControlKeys, kindStatus: SystemKeys} {
		for _, k := range keys {
			if !strings.HasPrefix(k, Prefix) {
				t.Errorf("%q lacks the prefix %q", k, Prefix)
			}
			if _, dup := seen[k]; dup {
				t.Errorf("%q is in two groups", k)
			}
			seen[k] = kind
		}
	}
	if !reflect.DeepEqual(seen, knownKeys) {
		t.Errorf("groups %v\ndiffer from the lookup %v", seen, knownKeys)
	}
}

func TestPhasesAreTheContracts(t *testing.T) {
	got := []Phase{PhaseIdle, PhaseProgressing, PhasePaused, PhasePromoting, PhaseSucceeded, PhaseRolledBack}
	want := []Phase{"Idle", "Progressing", "Paused", "Promoting", "Succeeded", "RolledBack"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("phases = %q, want %q", got, want)
	}
}

func TestHookTypesAreTheContracts(t *testing.T) {
	want := []HookType{"pre-rollout", "rollout", "confirm-promotion", "post-rollout", "rollback", "event"}
	if !reflect.DeepEqual(hookTypes, want) {
		t.Errorf("hook types = %q, want %q", hookTypes, want)
	}
}
