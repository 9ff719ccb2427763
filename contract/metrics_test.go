package contract

import (
	"reflect"
	"testing"
	"time"
)

func TestParseMetricsValid(t *testing.T) {
	tests := []struct {
		name, value string
		want        []Metric
	}{
		{
			name: "yaml with every placeholder",
			value: `
- name: throttled
  query: sum(rate(x{ns="{{namespace}}",w="{{canary}}",s="{{stable}}"}[{{interval}}]))
  max: 5
- name: saturation
  query: avg(y)
  min: 0.1
  max: 0.9
`,
			want: []Metric{
				{Name: "throttled", Query: `sum(rate(x{ns="{{namespace}}",w="{{canary}}",s="{{stable}}"}[{{interval}}]))`, Max: ptr(5)},
				{Name: "saturation", Query: "avg(y)", Min: ptr(0.1), Max: ptr(0.9)},
			},
		},
		{
			name:  "json, min only",
			value: `[{"name": "rps", "query": "sum(rate(z[1m]))", "min": 1}]`,
			want:  []Metric{{Name: "rps", Query: "sum(rate(z[1m]))", Min: ptr(1)}},
		},
		{
			name:  "min equals max",
			value: `[{name: exact, query: q, min: 2, max: 2}]`,
			want:  []Metric{{Name: "exact", Query: "q", Min: ptr(2), Max: ptr(2)}},
		},
		{name: "empty list", value: "[]", want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, errs := ParseSettings(annotations(KeyMetrics, tt.value))
			if len(errs) > 0 {
				t.Fatalf("unexpected errors: %v", errs.ToAggregate())
			}
			if !reflect.DeepEqual(got.Metrics, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got.Metrics, tt.want)
			}
		})
	}
}

func TestParseMetricsInvalid(t *testing.T) {
	tests := []struct {
		name, value, reason string
	}{
		{"invalid yaml", "[", "not valid YAML or JSON"},
		{"not a list", "name: x\nquery: q\nmax: 1", "must be a YAML or JSON list of {name, query, min, max}"},
		{"null", "null", "must be a YAML or JSON list"},
		{"unknown field", "- {name: x, query: q, max: 1, threshold: 2}", `unknown field "threshold"`},
		{"repeated field", "- name: x\n  name: y\n  query: q\n  max: 1", `"name" already set`},
		{"name of the wrong type", "- {name: [a], query: q, max: 1}", "cannot unmarshal array"},
		{"missing name", "- {query: q, max: 1}", `metric 1 (""): name is required`},
		{"name not a label", "- {name: Error_Rate, query: q, max: 1}", `metric 1 ("Error_Rate"): name: a lowercase RFC 1123 label`},
		{"duplicate name", "- {name: x, query: q, max: 1}\n- {name: x, query: q, max: 2}", `metric 2 ("x"): name is used twice`},
		{"empty query", "- {name: x, query: ' ', max: 1}", `metric 1 ("x"): query must not be empty`},
		{"unknown placeholder", `- {name: x, query: 'up{pod="{{pod}}"}', max: 1}`, `unknown placeholder "{{pod}}"; supported: {{namespace}}, {{canary}}, {{stable}}, {{interval}}`},
		{"spaced placeholder", `- {name: x, query: 'up{ns="{{ namespace }}"}', max: 1}`, `unknown placeholder "{{ namespace }}"`},
		{"unclosed placeholder", `- {name: x, query: 'up{ns="{{namespace"}', max: 1}`, `"{{" is not closed`},
		{"no bounds", "- {name: x, query: q}", "needs min, max or both"},
		{"min above max", "- {name: x, query: q, min: 2, max: 1}", "min (2) is above max (1)"},
		{"nan bound", "- {name: x, query: q, max: .nan}", "not valid YAML or JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, errs := ParseSettings(annotations(KeyMetrics, tt.value))
			wantOneInvalid(t, errs, KeyMetrics, tt.value, tt.reason)
			if got.Metrics != nil {
				t.Errorf("an invalid list set Metrics: %+v", got.Metrics)
			}
		})
	}
}

func TestParseMetricsReportsEveryProblem(t *testing.T) {
	_, errs := ParseSettings(annotations(KeyMetrics, "- {name: a, query: q}\n- {name: a, query: '{{x}}', max: 1}"))
	if len(errs) != 1 {
		t.Fatalf("got %d errors, want 1", len(errs))
	}
	for _, want := range []string{
		`metric 1 ("a"): needs min, max or both`,
		`metric 2 ("a"): name is used twice`,
		`metric 2 ("a"): query: unknown placeholder "{{x}}"`,
	} {
		wantOneInvalid(t, errs, KeyMetrics, errs[0].BadValue.(string), want)
	}
}

func TestRenderQuery(t *testing.T) {
	vars := QueryVars{Namespace: "shop", Canary: "web-canary", Stable: "web", Interval: 90 * time.Second}
	tests := []struct {
		name, query, want string
	}{
		{
			name:  "every placeholder",
			query: `rate(x{namespace="{{namespace}}",destination_workload=~"{{canary}}|{{stable}}"}[{{interval}}])`,
			want:  `rate(x{namespace="shop",destination_workload=~"web-canary|web"}[1m30s])`,
		},
		{
			name:  "repeated placeholder",
			query: `a{w="{{canary}}"} / b{w="{{canary}}"}`,
			want:  `a{w="web-canary"} / b{w="web-canary"}`,
		},
		{name: "no placeholder", query: "sum(up)", want: "sum(up)"},
		{name: "unknown text left alone", query: "{{pod}}", want: "{{pod}}"},
		{name: "empty", query: "", want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := RenderQuery(tt.query, vars); got != tt.want {
				t.Errorf("RenderQuery(%q) = %q, want %q", tt.query, got, tt.want)
			}
		})
	}
}

func TestPromDuration(t *testing.T) {
	tests := []struct {
		in   time.Duration
		want string
	}{
		{time.Minute, "1m"},
		{90 * time.Second, "1m30s"},
		{500 * time.Millisecond, "500ms"},
		{time.Hour + 500*time.Millisecond, "1h500ms"},
		{36 * time.Hour, "36h"},
		{time.Hour + time.Minute + time.Second + time.Millisecond, "1h1m1s1ms"},
		{10 * time.Minute, "10m"},
		{time.Second, "1s"},
		{time.Millisecond, "1ms"},
		{1500 * time.Microsecond, "1ms"},
		{999 * time.Microsecond, "0s"},
		{0, "0s"},
		{-time.Second, "0s"},
	}
	for _, tt := range tests {
		if got := PromDuration(tt.in); got != tt.want {
			t.Errorf("PromDuration(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
