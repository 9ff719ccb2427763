package canaryctl

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/canary-io/canary/contract"
)

// Control is a command that writes one of the user's control annotations.
type Control string

// The controls. Promote, Abort and Retry act once per new value; Pause and
// Resume set and remove a level.
const (
	Promote Control = "promote"
	Abort   Control = "abort"
	Retry   Control = "retry"
	Pause   Control = "pause"
	Resume  Control = "resume"
)

// Controls lists every control command, in the order of the help text.
var Controls = []Control{Promote, Abort, Retry, Pause, Resume}

// timestampLayout is RFC 3339 with all nine digits of nanoseconds (unlike
// time.RFC3339Nano, which drops trailing zeros), so two values written
// apart in time always differ and sort as text.
const timestampLayout = "2006-01-02T15:04:05.000000000Z07:00"

// ControlPatch returns the JSON merge patch control c sends and a sentence
// saying what it did. now makes the value of the once-per-value controls.
//
// Example: ControlPatch(Promote, 2026-05-01 10:00:00.5 UTC) patches
//
//	{"metadata":{"annotations":{"canary.io/promote":"2026-05-01T10:00:00.500000000Z"}}}
//
// and Resume patches canary.io/pause to null, which a merge patch reads as
// "remove".
func ControlPatch(c Control, now time.Time) (patch []byte, done string, err error) {
	var key string
	var value any
	switch c {
	case Promote, Abort, Retry:
		key = map[Control]string{Promote: contract.KeyPromote, Abort: contract.KeyAbort, Retry: contract.KeyRetry}[c]
		v := now.UTC().Format(timestampLayout)
		value = v
		done = fmt.Sprintf("%s requested (%s=%s)", c, key, v)
	case Pause:
		key, value = contract.KeyPause, "true"
		done = fmt.Sprintf("paused (%s=true)", key)
	case Resume:
		key, value = contract.KeyPause, nil
		done = fmt.Sprintf("resumed (%s removed)", key)
	default:
		return nil, "", fmt.Errorf("unknown control %q", c)
	}
	patch, err = json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]any{key: value}}})
	if err != nil {
		return nil, "", fmt.Errorf("encode patch: %w", err)
	}
	return patch, done, nil
}
