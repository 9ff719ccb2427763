package contract

import (
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
)

// The fuzz targets check every parser of user input: no panic, and whatever
// is accepted satisfies the documented rules. Plain `go test` runs the seeds.

func FuzzParseSteps(f *testing.F) {
	for _, seed := range []string{"20,40,60", " 1 , 99 ", "50", "20,abc", "40,20", "0", "100", "", ",", "-5", "+5", "2.5",
		"1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21", "99999999999999999999", "０１"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, v string) {
		steps, err := parseSteps(v)
		if err != nil {
			if steps != nil {
				t.Fatalf("error %v but steps %v", err, steps)
			}
			return
		}
		checkSteps(t, steps)
		// What was accepted reads back the same once formatted.
		parts := make([]string, len(steps))
		for i, s := range steps {
			parts[i] = strconv.Itoa(int(s))
		}
		again, err := parseSteps(strings.Join(parts, ","))
		if err != nil || !slices.Equal(again, steps) {
			t.Fatalf("round trip of %v: %v, %v", steps, again, err)
		}
	})
}

func FuzzParseDurations(f *testing.F) {
	for _, seed := range []string{"1m", "90s", "500ms", "1", "500", "1.5", "0", "-1s", "24h", "25h", "1h0m0.5s",
		"3600001", "9223372036854775807ns", "1e3ms", ".5s", "0.0000001", " 2m "} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, v string) {
		if d, err := parseDuration(v, minInterval, maxInterval); err == nil {
			if d < time.Second || d > 24*time.Hour {
				t.Fatalf("interval %q accepted as %v", v, d)
			}
			if want, _ := time.ParseDuration(strings.TrimSpace(v)); want != d {
				t.Fatalf("interval %q = %v, time.ParseDuration says %v", v, d, want)
			}
		}
		if d, err := parseDuration(v, minProgressDeadline, 0); err == nil && d < time.Second {
			t.Fatalf("progress deadline %q accepted as %v", v, d)
		}
		if d, err := parseLatency(v); err == nil && (d <= 0 || d > time.Hour) {
			t.Fatalf("max latency %q accepted as %v", v, d)
		}
		if PromDuration(time.Duration(len(v))*time.Second) == "" {
			t.Fatalf("PromDuration rendered nothing")
		}
	})
}

func FuzzParsePercentages(f *testing.F) {
	for _, seed := range []string{"99", "99.5%", "0", "100", "101", "50", "50.0001", "off", "Off", "20%", "1000",
		"999.999", "NaN", "Inf", "1e2", "0x10", "-1", "%", "1%%", " 20 ", "1" + strings.Repeat("0", 400)} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, v string) {
		if p, err := parseSuccessRate(v); err == nil && !(p >= 0 && p <= 100) {
			t.Fatalf("min success rate %q accepted as %v", v, p)
		}
		if p, off, err := parseConfidence(v); err == nil {
			if off != (p == 0) || (!off && !(p > 50 && p < 100)) {
				t.Fatalf("confidence %q accepted as %v (off %v)", v, p, off)
			}
		}
		if tol, err := parseTolerance(v); err == nil && !(tol >= 0 && tol < 10) {
			t.Fatalf("tolerance %q accepted as %v", v, tol)
		}
		if n, err := parseThreshold(v); err == nil && (n < 1 || n > 1000) {
			t.Fatalf("threshold %q accepted as %d", v, n)
		}
	})
}

func FuzzParseMetrics(f *testing.F) {
	for _, seed := range []string{
		"- {name: a, query: 'x{n=\"{{namespace}}\"}[{{interval}}]', max: 1}",
		`[{"name": "b", "query": "{{canary}}/{{stable}}", "min": 0, "max": 0}]`,
		"[]", "null", "{}", "- null", "- {name: a, query: q}", "- {name: a, query: '{{pod}}', max: 1}",
		"- {name: a, query: '{{{namespace}}}', max: 1}", "- {name: a, query: '{{namespace', max: 1}",
		"- {name: a, query: q, min: 2, max: 1}", "- {name: a, query: q, max: .inf}", "- &a {name: a}\n- *a",
		"- {name: a, query: q, max: 1, extra: 1}", "[", "- name: a\n  name: b",
	} {
		f.Add(seed)
	}
	vars := QueryVars{Namespace: "ns", Canary: "web-canary", Stable: "web", Interval: time.Minute}
	f.Fuzz(func(t *testing.T, v string) {
		metrics, err := parseMetrics(v)
		if err != nil {
			if metrics != nil {
				t.Fatalf("error %v but metrics %v", err, metrics)
			}
			return
		}
		checkMetrics(t, metrics)
		for _, m := range metrics {
			if q := RenderQuery(m.Query, vars); strings.Contains(q, "{{") {
				t.Fatalf("query %q renders to %q, which keeps a placeholder", m.Query, q)
			}
		}
	})
}

func FuzzParseWebhooks(f *testing.F) {
	for _, seed := range []string{
		"- {name: load-test, url: 'http://flagger-loadtester.test/', timeout: 30s, metadata: {cmd: hey}}",
		`[{"name": "gate", "type": "confirm-promotion", "url": "https://h/approve"}]`,
		"[]", "- {name: x, type: confirm-rollout, url: 'http://h'}", "- {name: x, url: 'http://h', timeout: '0s'}",
		"- {name: x, url: 'http://u:p@h'}", "- {name: '', url: 'http://h'}", "- {name: x, url: 'http://h'}\n- {name: x, url: 'http://h'}",
		"- {name: x, url: 'http://h', metadata: {a: 1}}", "- {name: x, url: 'http://h', muteAlert: true}",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, v string) {
		hooks, err := parseWebhooks(v)
		if err != nil {
			if hooks != nil {
				t.Fatalf("error %v but hooks %v", err, hooks)
			}
			return
		}
		checkWebhooks(t, hooks)
	})
}

// FuzzValidate builds annotations from two keys, each either a known key
// (chosen by index) or a canary.io/ key from the fuzz input, and checks
// that ParseSettings and Validate agree and keep the defaults of invalid keys.
func FuzzValidate(f *testing.F) {
	f.Add(uint8(2), "20,abc", uint8(3), "2m", "")
	f.Add(uint8(7), "- {name: a, query: q, max: 1}", uint8(14), "[]", "")
	f.Add(uint8(15), "yes", uint8(200), "x", "intervall")
	f.Add(uint8(0), "true", uint8(30), "Progressing", "")
	f.Add(uint8(8), "off", uint8(9), "20%", "")
	all := slices.Concat(SettingKeys, ControlKeys, StatusKeys)
	keyFor := func(i uint8, extra string) string {
		if int(i) < len(all) {
			return all[i]
		}
		return Prefix + extra
	}
	f.Fuzz(func(t *testing.T, k1 uint8, v1 string, k2 uint8, v2 string, extra string) {
		in := map[string]string{keyFor(k1, extra): v1, keyFor(k2, extra): v2}
		s, settingErrs := ParseSettings(in)
		errs := Validate(in)
		if len(errs) < len(settingErrs) {
			t.Fatalf("Validate found %d errors, ParseSettings %d", len(errs), len(settingErrs))
		}
		failed := map[string]bool{}
		for _, e := range errs {
			var found bool
			for key := range in {
				if e.Field == annotationPath(key).String() {
					found, failed[key] = true, true
				}
			}
			if !found {
				t.Fatalf("error for an annotation that is not there: %v", e)
			}
		}
		defaults := DefaultSettings()
		for key := range in {
			get, ok := settingField[key]
			if !ok {
				if knownKeys[key] == 0 && !failed[key] {
					t.Fatalf("unknown key %q passed Validate", key)
				}
				continue
			}
			if failed[key] {
				if !reflect.DeepEqual(get(s), get(defaults)) {
					t.Fatalf("invalid %s=%q changed the setting to %v", key, in[key], get(s))
				}
				continue
			}
			// A valid key parses the same alone: keys do not depend on each
			// other, but for those that need a strategy.
			if dependsOnStrategy[key] {
				continue
			}
			alone, _ := ParseSettings(map[string]string{key: in[key]})
			if !reflect.DeepEqual(get(s), get(alone)) {
				t.Fatalf("%s=%q parses to %v with other keys, %v alone", key, in[key], get(s), get(alone))
			}
		}
		checkSettings(t, s)
	})
}

// settingField reads the Settings field(s) each setting key controls.
var settingField = map[string]func(Settings) any{
	KeyEnabled:          func(Settings) any { return nil },
	KeyService:          func(s Settings) any { return s.Service },
	KeySteps:            func(s Settings) any { return s.Steps },
	KeyInterval:         func(s Settings) any { return s.Interval },
	KeyThreshold:        func(s Settings) any { return s.Threshold },
	KeyMinSuccessRate:   func(s Settings) any { return s.MinSuccessRate },
	KeyMaxLatency:       func(s Settings) any { return s.MaxLatency },
	KeyMetrics:          func(s Settings) any { return s.Metrics },
	KeyConfidence:       func(s Settings) any { return [2]any{s.Confidence, s.ConfidenceOff} },
	KeyTolerance:        func(s Settings) any { return s.Tolerance },
	KeyNoData:           func(s Settings) any { return s.NoData },
	KeyProgressDeadline: func(s Settings) any { return s.ProgressDeadline },
	KeyVirtualService:   func(s Settings) any { return s.VirtualServices },
	KeyPrometheus:       func(s Settings) any { return s.Prometheus },
	KeyWebhooks:         func(s Settings) any { return s.Webhooks },
	KeyWindow:           func(s Settings) any { return s.Window },
	KeyNotify:           func(s Settings) any { return s.Notify },
	KeyRouter:           func(s Settings) any { return s.Router },
	KeyHTTPRoute:        func(s Settings) any { return s.HTTPRoutes },
	KeyStrategy:         func(s Settings) any { return s.Strategy },
	KeyIterations:       func(s Settings) any { return s.Iterations },
	KeyMatch:            func(s Settings) any { return s.Match },
	KeyMirror:           func(s Settings) any { return s.Mirror },
	KeySticky:           func(s Settings) any { return s.Sticky },
}

// dependsOnStrategy are the keys valid only with another strategy than
// the default: alone, each is refused (a setting that would do nothing).
var dependsOnStrategy = map[string]bool{KeyIterations: true, KeyMatch: true}

func TestSettingFieldCoversEverySetting(t *testing.T) {
	for _, key := range SettingKeys {
		if settingField[key] == nil {
			t.Errorf("settingField lacks %s", key)
		}
	}
}

// checkSettings asserts the documented rules on parsed settings.
func checkSettings(t *testing.T, s Settings) {
	t.Helper()
	if s.Service != "" && len(validation.IsDNS1035Label(s.Service)) > 0 {
		t.Fatalf("service %q", s.Service)
	}
	checkSteps(t, s.Steps)
	switch {
	case s.Interval < time.Second || s.Interval > 24*time.Hour:
		t.Fatalf("interval %v", s.Interval)
	case s.Threshold < 1 || s.Threshold > 1000:
		t.Fatalf("threshold %d", s.Threshold)
	case !(s.MinSuccessRate >= 0 && s.MinSuccessRate <= 100):
		t.Fatalf("min success rate %v", s.MinSuccessRate)
	case s.MaxLatency <= 0 || s.MaxLatency > time.Hour:
		t.Fatalf("max latency %v", s.MaxLatency)
	case s.ConfidenceOff != (s.Confidence == 0) || (!s.ConfidenceOff && !(s.Confidence > 50 && s.Confidence < 100)):
		t.Fatalf("confidence %v off %v", s.Confidence, s.ConfidenceOff)
	case !(s.Tolerance >= 0 && s.Tolerance < 10):
		t.Fatalf("tolerance %v", s.Tolerance)
	case s.NoData != NoDataHold && s.NoData != NoDataFail && s.NoData != NoDataPass:
		t.Fatalf("no data %q", s.NoData)
	case s.ProgressDeadline < time.Second:
		t.Fatalf("progress deadline %v", s.ProgressDeadline)
	case s.Strategy != StrategyCanary && s.Strategy != StrategyAB:
		t.Fatalf("strategy %q", s.Strategy)
	case s.Strategy == StrategyAB && (len(s.Match) == 0 || len(s.VirtualServices) > 0 || len(s.HTTPRoutes) > 0),
		s.Strategy != StrategyAB && len(s.Match) > 0:
		t.Fatalf("strategy %q with match %v, virtual services %q, HTTPRoutes %q", s.Strategy, s.Match, s.VirtualServices, s.HTTPRoutes)
	case s.Iterations < 1 || s.Iterations > MaxIterations:
		t.Fatalf("iterations %d", s.Iterations)
	case s.Router != RouterIstio && s.Router != RouterGatewayAPI:
		t.Fatalf("router %q", s.Router)
	case len(s.HTTPRoutes) > 0 && s.Router != RouterGatewayAPI, len(s.VirtualServices) > 0 && s.Router != RouterIstio:
		t.Fatalf("router %q steering VirtualServices %q and HTTPRoutes %q", s.Router, s.VirtualServices, s.HTTPRoutes)
	}
	seen := map[string]bool{}
	for _, vs := range s.VirtualServices {
		if seen[vs] || len(validation.IsDNS1123Subdomain(vs)) > 0 {
			t.Fatalf("virtual services %q", s.VirtualServices)
		}
		seen[vs] = true
	}
	if s.Prometheus != "" {
		if _, err := parseHTTPURL(s.Prometheus); err != nil {
			t.Fatalf("prometheus %q: %v", s.Prometheus, err)
		}
	}
	checkMetrics(t, s.Metrics)
	checkWebhooks(t, s.Webhooks)
}

func checkSteps(t *testing.T, steps []int32) {
	t.Helper()
	if len(steps) < 1 || len(steps) > 20 {
		t.Fatalf("%d steps: %v", len(steps), steps)
	}
	for i, s := range steps {
		if s < 1 || s > 99 || (i > 0 && s <= steps[i-1]) {
			t.Fatalf("steps %v break 1..99 strictly ascending", steps)
		}
	}
}

func checkMetrics(t *testing.T, metrics []Metric) {
	t.Helper()
	seen := map[string]bool{}
	for _, m := range metrics {
		switch {
		case seen[m.Name] || len(validation.IsDNS1123Label(m.Name)) > 0:
			t.Fatalf("metric name %q", m.Name)
		case strings.TrimSpace(m.Query) == "" || checkPlaceholders(m.Query) != nil:
			t.Fatalf("metric query %q", m.Query)
		case m.Min == nil && m.Max == nil:
			t.Fatalf("metric %q has no bounds", m.Name)
		case m.Min != nil && (math.IsNaN(*m.Min) || math.IsInf(*m.Min, 0)),
			m.Max != nil && (math.IsNaN(*m.Max) || math.IsInf(*m.Max, 0)),
			m.Min != nil && m.Max != nil && *m.Min > *m.Max:
			t.Fatalf("metric %q bounds %v..%v", m.Name, m.Min, m.Max)
		}
		seen[m.Name] = true
	}
}

func checkWebhooks(t *testing.T, hooks []Webhook) {
	t.Helper()
	seen := map[string]bool{}
	for _, h := range hooks {
		if _, err := parseHTTPURL(h.URL); err != nil {
			t.Fatalf("hook %q url %q: %v", h.Name, h.URL, err)
		}
		switch {
		case strings.TrimSpace(h.Name) == "" || seen[h.Name]:
			t.Fatalf("hook name %q", h.Name)
		case !slices.Contains(hookTypes, h.Type):
			t.Fatalf("hook type %q", h.Type)
		case h.Timeout <= 0:
			t.Fatalf("hook timeout %v", h.Timeout)
		}
		seen[h.Name] = true
	}
}
