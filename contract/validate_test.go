package contract

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation/field"
)

func TestValidateAccepts(t *testing.T) {
	for name, in := range map[string]map[string]string{
		"nothing":          nil,
		"not ours":         annotations("deployment.kubernetes.io/revision", "3", "canary.io.example/steps", "x", "CANARY.IO/steps", "x"),
		"opted in":         annotations(KeyEnabled, "true", KeySteps, "10,50", KeyConfidence, "off"),
		"status, any text": annotations(KeyPhase, "garbage", KeyWeight, "", KeyMessage, strings.Repeat("m", 2000)),
		"controls": annotations(KeyPause, "false", KeySkipAnalysis, "true",
			KeyPromote, "2024-05-01T10:00:00Z", KeyAbort, "1", KeyRetry, strings.Repeat("r", 253)),
	} {
		t.Run(name, func(t *testing.T) {
			if errs := Validate(in); len(errs) > 0 {
				t.Errorf("unexpected errors: %v", errs.ToAggregate())
			}
		})
	}
}

func TestValidateControls(t *testing.T) {
	tests := []struct {
		key, value string
		typ        field.ErrorType
		reason     string
	}{
		{KeyPause, "yes", field.ErrorTypeInvalid, `exactly "true" or "false"`},
		{KeyPause, " true", field.ErrorTypeInvalid, `exactly "true" or "false"`},
		{KeyPause, "", field.ErrorTypeInvalid, `exactly "true" or "false"`},
		{KeySkipAnalysis, "TRUE", field.ErrorTypeInvalid, `exactly "true" or "false"`},
		{KeyPromote, "", field.ErrorTypeInvalid, "must not be blank"},
		{KeyAbort, "  ", field.ErrorTypeInvalid, "must not be blank"},
		{KeyRetry, strings.Repeat("r", 254), field.ErrorTypeTooLong, "253"},
	}
	for _, tt := range tests {
		t.Run(tt.key+"="+tt.value, func(t *testing.T) {
			for name, validate := range map[string]func(map[string]string) field.ErrorList{
				"ValidateControls": ValidateControls,
				"Validate":         Validate,
			} {
				errs := validate(annotations(tt.key, tt.value))
				if len(errs) != 1 {
					t.Fatalf("%s: got %d errors, want 1: %v", name, len(errs), errs.ToAggregate())
				}
				e := errs[0]
				if e.Type != tt.typ || e.Field != annotationPath(tt.key).String() {
					t.Errorf("%s: got %s at %s, want %s at %s", name, e.Type, e.Field, tt.typ, annotationPath(tt.key))
				}
				if !strings.Contains(e.Error(), tt.reason) {
					t.Errorf("%s: %q does not mention %q", name, e.Error(), tt.reason)
				}
			}
		})
	}
}

func TestValidateUnknownKeys(t *testing.T) {
	tests := []struct {
		key, suggestion string
	}{
		{"canary.io/intervall", "canary.io/interval"},
		{"canary.io/treshold", "canary.io/threshold"},
		{"canary.io/webhook", "canary.io/webhooks"},
		{"canary.io/virtualservices", "canary.io/virtualservice"},
		{"canary.io/puase", "canary.io/pause"},
		{"canary.io/colour", ""},
		{"canary.io/", ""},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			errs := Validate(annotations(tt.key, "5m"))
			if len(errs) != 1 {
				t.Fatalf("got %d errors, want 1: %v", len(errs), errs.ToAggregate())
			}
			e := errs[0]
			if e.Type != field.ErrorTypeNotSupported || e.Field != annotationPath(tt.key).String() || e.BadValue != tt.key {
				t.Errorf("got %s at %s (value %v), want %s at %s", e.Type, e.Field, e.BadValue,
					field.ErrorTypeNotSupported, annotationPath(tt.key))
			}
			if !strings.HasPrefix(e.Detail, "unknown canary.io annotation") {
				t.Errorf("detail %q does not say the annotation is unknown", e.Detail)
			}
			hint := `did you mean "` + tt.suggestion + `"?`
			if got := strings.Contains(e.Detail, "did you mean"); got != (tt.suggestion != "") ||
				(tt.suggestion != "" && !strings.Contains(e.Detail, hint)) {
				t.Errorf("detail %q, want suggestion %q", e.Detail, tt.suggestion)
			}
			// The list offers what users may write, never a status key.
			if !strings.Contains(e.Detail, `"canary.io/steps"`) || !strings.Contains(e.Detail, `"canary.io/promote"`) {
				t.Errorf("detail %q does not list the writable keys", e.Detail)
			}
			if strings.Contains(e.Detail, `"canary.io/phase"`) {
				t.Errorf("detail %q offers a status key", e.Detail)
			}
		})
	}
}

func TestValidateStatusKeyIsNotUnknown(t *testing.T) {
	// canary.io/step is a status key, not a typo of canary.io/steps.
	if errs := Validate(annotations(KeyStep, "2/3")); len(errs) > 0 {
		t.Errorf("unexpected errors: %v", errs.ToAggregate())
	}
}

func TestValidateOrdersSettingsControlsUnknown(t *testing.T) {
	errs := Validate(annotations(
		"canary.io/zeta", "1",
		KeyPause, "yes",
		"canary.io/alpha", "1",
		KeySteps, "abc",
		KeyEnabled, "on",
	))
	var got []string
	for _, e := range errs {
		got = append(got, e.Field)
	}
	want := []string{
		"metadata.annotations[canary.io/enabled]",
		"metadata.annotations[canary.io/steps]",
		"metadata.annotations[canary.io/pause]",
		"metadata.annotations[canary.io/alpha]",
		"metadata.annotations[canary.io/zeta]",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("fields = %q\nwant     %q", got, want)
	}
	agg := errs.ToAggregate().Error()
	for _, want := range []string{`canary.io/steps]: Invalid value: "abc"`, `canary.io/pause]: Invalid value: "yes"`, `canary.io/zeta]: Unsupported value: "canary.io/zeta"`} {
		if !strings.Contains(agg, want) {
			t.Errorf("aggregate %q\ndoes not contain %q", agg, want)
		}
	}
}

func TestEditDistance(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		want int
	}{
		{"", "", 0},
		{"steps", "steps", 0},
		{"steps", "step", 1},
		{"pause", "puase", 2},
		{"", "abc", 3},
		{"kitten", "sitting", 3},
	} {
		if got := editDistance(tt.a, tt.b); got != tt.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}

// TestLimits: what one Deployment may ask of the shared controller is
// bounded, and each bound is refused at admission with the field and the
// reason.
func TestLimits(t *testing.T) {
	many := func(n int, item func(i int) string) string {
		var items []string
		for i := range n {
			items = append(items, item(i))
		}
		return "[" + strings.Join(items, ",") + "]"
	}
	hook := func(i int) string {
		return fmt.Sprintf(`{"name":"h%d","type":"rollout","url":"http://loadtester.test/"}`, i)
	}
	metric := func(i int) string {
		return fmt.Sprintf(`{"name":"m%d","query":"vector(1)","min":0}`, i)
	}
	for _, c := range []struct {
		name, key, value, want string
	}{
		{"20 hooks", KeyWebhooks, many(MaxWebhooks, hook), ""},
		{"21 hooks", KeyWebhooks, many(MaxWebhooks+1, hook), "has 21 webhooks; at most 20 are allowed"},
		{"20 metrics", KeyMetrics, many(MaxMetrics, metric), ""},
		{"21 metrics", KeyMetrics, many(MaxMetrics+1, metric), "has 21 metrics; at most 20 are allowed"},
		{"a 1h hook timeout", KeyWebhooks, `[{"name":"slow","url":"http://loadtester.test/","timeout":"1h"}]`, ""},
		{"a 2h hook timeout", KeyWebhooks, `[{"name":"slow","url":"http://loadtester.test/","timeout":"2h"}]`, "timeout 2h must be at most 1h"},
		{"oversized settings", KeyMetrics, `[{"name":"big","query":"` + strings.Repeat("x", MaxSettingsBytes) + `","min":0}]`, "metadata.annotations: Too long"},
	} {
		errs := Validate(map[string]string{KeyEnabled: "true", c.key: c.value})
		got := errs.ToAggregate()
		switch {
		case c.want == "" && got != nil:
			t.Errorf("%s: refused: %v", c.name, got)
		case c.want != "" && (got == nil || !strings.Contains(got.Error(), c.want)):
			t.Errorf("%s: %v, want %q", c.name, got, c.want)
		case c.want != "" && !strings.Contains(got.Error(), "metadata.annotations"):
			t.Errorf("%s: %v names no field", c.name, got)
		}
	}
}
