package canaryctl

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/canary-io/canary/contract"
)

func TestControlPatch(t *testing.T) {
	at := time.Date(2026, 5, 1, 12, 0, 0, 500_000_000, time.FixedZone("CEST", 2*3600))
	stamp := "2026-05-01T10:00:00.500000000Z" // UTC, all nine digits
	for _, tc := range []struct {
		control  Control
		key      string
		value    any // nil: removed
		wantDone string
	}{
		{Promote, contract.KeyPromote, stamp, "promote requested (canary.io/promote=" + stamp + ")"},
		{Abort, contract.KeyAbort, stamp, "abort requested (canary.io/abort=" + stamp + ")"},
		{Retry, contract.KeyRetry, stamp, "retry requested (canary.io/retry=" + stamp + ")"},
		{Pause, contract.KeyPause, "true", "paused (canary.io/pause=true)"},
		{Resume, contract.KeyPause, nil, "resumed (canary.io/pause removed)"},
	} {
		t.Run(string(tc.control), func(t *testing.T) {
			patch, done, err := ControlPatch(tc.control, at)
			if err != nil {
				t.Fatal(err)
			}
			var got struct {
				Metadata struct {
					Annotations map[string]any `json:"annotations"`
				} `json:"metadata"`
			}
			if err := json.Unmarshal(patch, &got); err != nil {
				t.Fatalf("patch %s: %v", patch, err)
			}
			a := got.Metadata.Annotations
			if len(a) != 1 {
				t.Fatalf("patch %s writes %d annotations, want 1", patch, len(a))
			}
			if v, ok := a[tc.key]; !ok || v != tc.value {
				t.Errorf("patch %s: %s = %v (present %v), want %v", patch, tc.key, v, ok, tc.value)
			}
			if done != tc.wantDone {
				t.Errorf("done = %q, want %q", done, tc.wantDone)
			}
		})
	}
}

// Two requests a nanosecond apart write different values, so each acts.
func TestControlPatchValueIsNew(t *testing.T) {
	at := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	a, _, _ := ControlPatch(Promote, at)
	b, _, _ := ControlPatch(Promote, at.Add(time.Nanosecond))
	if string(a) == string(b) {
		t.Fatalf("same patch %s for two promotes", a)
	}
	if _, _, err := ControlPatch("skip", at); err == nil {
		t.Fatal("unknown control accepted")
	}
}
