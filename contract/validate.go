package contract

import (
	"fmt"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"
)

// maxControlValueLen bounds the opaque tokens of promote, abort and retry,
// the length of a DNS subdomain: room for any timestamp or commit hash.
const maxControlValueLen = 253

// Validate checks every user-writable canary.io/* annotation: the settings
// (as [ParseSettings] does), the controls (as [ValidateControls] does), and
// that no other canary.io/* key is present except the status keys, which the
// system writes and this package does not check. An unknown key such as
// canary.io/intervall is refused with a NotSupported error listing the keys
// users may write (and the nearest one, when a typo is likely), because an
// annotation that silently does nothing is worse than a refused apply.
//
// Annotations without the canary.io/ prefix are ignored. The errors come
// settings first, then controls, then unknown keys in sorted order.
func Validate(annotations map[string]string) field.ErrorList {
	_, errs := ParseSettings(annotations)
	size := 0
	for _, k := range SettingKeys {
		if v, ok := annotations[k]; ok {
			size += len(k) + len(v)
		}
	}
	if size > MaxSettingsBytes {
		errs = append(errs, field.TooLong(field.NewPath("metadata", "annotations"), size, MaxSettingsBytes))
	}
	errs = append(errs, ValidateControls(annotations)...)
	return append(errs, validateKnownKeys(annotations)...)
}

// ValidateControls checks the controls (see [ControlKeys]):
//
//   - pause and skip-analysis: exactly "true" or "false";
//   - promote, abort and retry: opaque tokens (a timestamp, a commit hash)
//     that only matter when they change, so any value that is not blank and
//     at most 253 characters long.
func ValidateControls(annotations map[string]string) field.ErrorList {
	var errs field.ErrorList
	for _, key := range []string{KeyPause, KeyPromote, KeyAbort, KeyRetry, KeySkipAnalysis} {
		value, ok := annotations[key]
		if !ok {
			continue
		}
		path := annotationPath(key)
		switch key {
		case KeyPause, KeySkipAnalysis:
			if _, err := parseBool(value); err != nil {
				errs = append(errs, field.Invalid(path, value, err.Error()))
			}
		default:
			if strings.TrimSpace(value) == "" {
				errs = append(errs, field.Invalid(path, value,
					"must not be blank: set a new value (e.g. a timestamp) to act, or remove the annotation"))
			} else if len(value) > maxControlValueLen {
				errs = append(errs, field.TooLong(path, value, maxControlValueLen))
			}
		}
	}
	return errs
}

// validateKnownKeys refuses canary.io/* keys that the contract does not
// name.
func validateKnownKeys(annotations map[string]string) field.ErrorList {
	var unknown []string
	for key := range annotations {
		if strings.HasPrefix(key, Prefix) && knownKeys[key] == 0 {
			unknown = append(unknown, key)
		}
	}
	if len(unknown) == 0 {
		return nil // the common case, on every admission review: no list to build
	}
	sort.Strings(unknown)
	var errs field.ErrorList
	writable := userWritableKeys()
	for _, key := range unknown {
		e := field.NotSupported(annotationPath(key), key, writable)
		hint := "unknown canary.io annotation"
		if near := nearestKey(key); near != "" {
			hint += fmt.Sprintf(" (did you mean %q?)", near)
		}
		e.Detail = hint + "; " + e.Detail
		errs = append(errs, e)
	}
	return errs
}

func userWritableKeys() []string {
	var keys []string
	for key, kind := range knownKeys {
		if kind != kindStatus {
			keys = append(keys, key)
		}
	}
	sort.Strings(keys)
	return keys
}

// nearestKey returns the user-writable key closest to key by edit distance,
// if that distance is at most 2 (a transposition, a doubled or dropped
// letter).
//
// Example: "canary.io/intervall" → "canary.io/interval" (distance 1);
// "canary.io/colour" → "" (nothing within 2).
func nearestKey(key string) string {
	best, bestDist := "", 3
	for known, kind := range knownKeys {
		if kind == kindStatus || len(key) > len(known)+2 || len(known) > len(key)+2 {
			continue
		}
		if d := editDistance(key, known); d < bestDist || (d == bestDist && known < best) {
			best, bestDist = known, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b in bytes.
//
// Example: "steps" → "step" is 1 (one deletion); "pause" → "puase" is 2 (two
// substitutions).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
