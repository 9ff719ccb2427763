package contract

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"
)

// The placeholders a [Metric] query may use. [RenderQuery] replaces them.
const (
	// PlaceholderNamespace is replaced by the Deployment's namespace.
	PlaceholderNamespace = "{{namespace}}"
	// PlaceholderCanary is replaced by the destination_workload name of the
	// canary pods.
	PlaceholderCanary = "{{canary}}"
	// PlaceholderStable is replaced by the destination_workload name of the
	// stable pods.
	PlaceholderStable = "{{stable}}"
	// PlaceholderInterval is replaced by the interval as a PromQL duration
	// (see [PromDuration]).
	PlaceholderInterval = "{{interval}}"
)

var placeholders = []string{PlaceholderNamespace, PlaceholderCanary, PlaceholderStable, PlaceholderInterval}

// Metric is one extra check of [KeyMetrics]: the query's result must lie
// within [Min, Max], bounds included.
//
// The annotation is a YAML or JSON list, decoded strictly (an unknown or
// repeated field is an error):
//
//	canary.io/metrics: |
//	  - name: throttled-rate
//	    query: >-
//	      sum(rate(istio_requests_total{destination_workload_namespace="{{namespace}}",
//	      destination_workload="{{canary}}",response_code="429"}[{{interval}}]))
//	    max: 5
//
// Each metric needs a name that is a DNS-1123 label, unique in the list; a
// non-empty query whose only placeholders (any "{{...}}") are those of
// [RenderQuery]; and at least one of min and max, with min <= max when both
// are set. An empty list ("[]") means no extra checks.
type Metric struct {
	// Name identifies the check in messages.
	Name string `json:"name"`
	// Query is PromQL with placeholders; see [RenderQuery].
	Query string `json:"query"`
	// Min is the lowest passing value; nil means no lower bound.
	Min *float64 `json:"min,omitempty"`
	// Max is the highest passing value; nil means no upper bound.
	Max *float64 `json:"max,omitempty"`
}

// QueryVars are the values of the placeholders of a [Metric] query.
type QueryVars struct {
	// Namespace replaces {{namespace}}.
	Namespace string
	// Canary replaces {{canary}}: the canary pods' destination_workload.
	Canary string
	// Stable replaces {{stable}}: the stable pods' destination_workload.
	Stable string
	// Interval replaces {{interval}}, rendered by [PromDuration].
	Interval time.Duration
}

// RenderQuery substitutes the placeholders of query. Values are inserted as
// they are: they are Kubernetes names, which cannot contain a quote or a
// brace. Anything else in the query, including text that is not a
// placeholder, is left untouched; [ParseSettings] has already refused queries
// with unknown placeholders.
//
// Example: with Namespace "shop", Canary "web-canary" and Interval 90s,
//
//	rate(x{namespace="{{namespace}}",destination_workload="{{canary}}"}[{{interval}}])
//
// becomes
//
//	rate(x{namespace="shop",destination_workload="web-canary"}[1m30s])
func RenderQuery(query string, v QueryVars) string {
	return strings.NewReplacer(
		PlaceholderNamespace, v.Namespace,
		PlaceholderCanary, v.Canary,
		PlaceholderStable, v.Stable,
		PlaceholderInterval, PromDuration(v.Interval),
	).Replace(query)
}

// PromDuration renders d as a PromQL duration: hours, minutes, seconds and
// milliseconds, largest first, units that are zero left out. PromQL has no
// unit below the millisecond, so the rest is dropped; a duration under 1ms,
// zero or negative renders as "0s".
//
// Worked example: 90s is 1 whole minute and 30 seconds left, so "1m30s";
// 1h0m0.5s is 1 hour, no minutes, no seconds and 500ms, so "1h500ms";
// 1m → "1m"; 500ms → "500ms"; 36h → "36h" (no days: PromQL reads hours
// above 24 fine).
func PromDuration(d time.Duration) string {
	ms := d.Milliseconds()
	if ms <= 0 {
		return "0s"
	}
	var b strings.Builder
	for _, u := range []struct {
		ms   int64
		name string
	}{{3_600_000, "h"}, {60_000, "m"}, {1000, "s"}, {1, "ms"}} {
		if n := ms / u.ms; n > 0 {
			b.WriteString(strconv.FormatInt(n, 10))
			b.WriteString(u.name)
			ms -= n * u.ms
		}
	}
	return b.String()
}

// parseMetrics decodes and checks the metrics list; every problem found is
// reported, joined by "; ".
func parseMetrics(v string) ([]Metric, error) {
	var metrics []Metric
	if err := decodeList(v, &metrics, "{name, query, min, max}"); err != nil {
		return nil, err
	}
	if len(metrics) > MaxMetrics {
		return nil, fmt.Errorf("has %d metrics; at most %d are allowed", len(metrics), MaxMetrics)
	}
	var problems []string
	seen := map[string]bool{}
	for i, m := range metrics {
		where := fmt.Sprintf("metric %d (%q)", i+1, m.Name)
		if m.Name == "" {
			problems = append(problems, where+": name is required")
		} else if msgs := validation.IsDNS1123Label(m.Name); len(msgs) > 0 {
			problems = append(problems, fmt.Sprintf("%s: name: %s", where, strings.Join(msgs, "; ")))
		} else if seen[m.Name] {
			problems = append(problems, fmt.Sprintf("%s: name is used twice", where))
		}
		seen[m.Name] = true
		if strings.TrimSpace(m.Query) == "" {
			problems = append(problems, where+": query must not be empty")
		} else if err := checkPlaceholders(m.Query); err != nil {
			problems = append(problems, fmt.Sprintf("%s: query: %v", where, err))
		}
		switch {
		case m.Min == nil && m.Max == nil:
			problems = append(problems, where+": needs min, max or both")
		case !finite(m.Min) || !finite(m.Max):
			problems = append(problems, where+": min and max must be finite numbers")
		case m.Min != nil && m.Max != nil && *m.Min > *m.Max:
			problems = append(problems, fmt.Sprintf("%s: min (%g) is above max (%g)", where, *m.Min, *m.Max))
		}
	}
	if len(problems) > 0 {
		return nil, errors.New(strings.Join(problems, "; "))
	}
	if len(metrics) == 0 {
		return nil, nil
	}
	return metrics, nil
}

func finite(f *float64) bool {
	return f == nil || !(math.IsNaN(*f) || math.IsInf(*f, 0))
}

// checkPlaceholders refuses any "{{...}}" that is not a known placeholder,
// and an unclosed "{{". PromQL itself never has "{{", so every one is meant
// as a placeholder.
//
// Example: `x{pod="{{pod}}"}` fails naming "{{pod}}".
func checkPlaceholders(query string) error {
	var unknown []string
	for rest := query; ; {
		start := strings.Index(rest, "{{")
		if start < 0 {
			break
		}
		end := strings.Index(rest[start+2:], "}}")
		if end < 0 {
			return errors.New(`"{{" is not closed by "}}"`)
		}
		token := rest[start : start+2+end+2]
		if !isPlaceholder(token) {
			unknown = append(unknown, strconv.Quote(token))
		}
		rest = rest[start+2+end+2:]
	}
	if len(unknown) > 0 {
		return fmt.Errorf("unknown placeholder %s; supported: %s",
			strings.Join(unknown, ", "), strings.Join(placeholders, ", "))
	}
	return nil
}

func isPlaceholder(token string) bool {
	for _, p := range placeholders {
		if token == p {
			return true
		}
	}
	return false
}

// decodeList decodes a YAML or JSON list strictly into list (a pointer to a
// slice). The decoder's own wording is kept but stripped of the layers that
// say nothing to a user ("error converting YAML to JSON: ...").
func decodeList(v string, list any, shape string) error {
	j, err := yaml.YAMLToJSONStrict([]byte(v))
	if err != nil {
		return fmt.Errorf("not valid YAML or JSON: %s", decodeMessage(err))
	}
	if !bytes.HasPrefix(bytes.TrimSpace(j), []byte("[")) {
		return fmt.Errorf("must be a YAML or JSON list of %s", shape)
	}
	if err := yaml.UnmarshalStrict(j, list); err != nil {
		return fmt.Errorf("not a list of %s: %s", shape, decodeMessage(err))
	}
	return nil
}

func decodeMessage(err error) string {
	msg := err.Error()
	for _, layer := range []string{
		"error converting YAML to JSON: ",
		"error unmarshaling JSON: ",
		"while decoding JSON: ",
		"json: ",
		"yaml: ",
	} {
		msg = strings.TrimPrefix(msg, layer)
	}
	return msg
}
