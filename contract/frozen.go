package contract

import (
	"encoding/json"
	"fmt"
)

// FreezeSettings renders the settings annotations in force as the value of
// [KeyAnalysisSettings], which keeps them fixed for the analysis the
// webhook starts: a JSON object of annotation key to value.
//
// Example: {canary.io/enabled: "true", canary.io/interval: "30s", team:
// "books"} → {"canary.io/enabled":"true","canary.io/interval":"30s"}.
func FreezeSettings(annotations map[string]string) string {
	s := map[string]string{}
	for _, k := range SettingKeys {
		if v, ok := annotations[k]; ok {
			s[k] = v
		}
	}
	data, _ := json.Marshal(s) // a map of strings always encodes, keys sorted
	return string(data)
}

// FrozenSettings reads the settings of a Deployment's analysis: those
// frozen in [KeyAnalysisSettings] when the template was held, or, when
// none are frozen, the annotations themselves. The error says why they
// cannot be read (the webhook refused invalid ones, so this is a
// controller that reads them differently, or a hand-made object); the
// settings returned then are defaults, which must not run an analysis.
func FrozenSettings(annotations map[string]string) (Settings, error) {
	source := annotations
	if raw, ok := annotations[KeyAnalysisSettings]; ok {
		var frozen map[string]string
		if err := json.Unmarshal([]byte(raw), &frozen); err != nil {
			return DefaultSettings(), fmt.Errorf("the analysis settings frozen when the template was held (%s) cannot be read: %v", KeyAnalysisSettings, err)
		}
		source = frozen
	}
	s, errs := ParseSettings(source)
	if len(errs) > 0 {
		return s, fmt.Errorf("the analysis settings cannot be read: %v", errs.ToAggregate())
	}
	return s, nil
}
