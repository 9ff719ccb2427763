package contract

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestDefaultSettings(t *testing.T) {
	want := Settings{
		Steps:            []int32{20, 40, 60},
		Interval:         time.Minute,
		Threshold:        3,
		MinSuccessRate:   99,
		MaxLatency:       500 * time.Millisecond,
		Confidence:       99,
		Tolerance:        0.20,
		NoData:           NoDataHold,
		ProgressDeadline: 10 * time.Minute,
		Router:           RouterIstio,
		Strategy:         StrategyCanary,
		Iterations:       DefaultIterations,
	}
	for name, in := range map[string]map[string]string{
		"nil":                   nil,
		"empty":                 {},
		"only enabled":          annotations(KeyEnabled, "true"),
		"other annotations":     annotations("app.kubernetes.io/name", "web", "canary.io.example/steps", "x"),
		"status and controls":   annotations(KeyPhase, "Progressing", KeyStep, "1/3", KeyPause, "true"),
		"unknown canary.io key": annotations("canary.io/intervall", "5m"),
	} {
		t.Run(name, func(t *testing.T) {
			got, errs := ParseSettings(in)
			if len(errs) > 0 {
				t.Fatalf("unexpected errors: %v", errs.ToAggregate())
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestDefaultSettingsAreFresh(t *testing.T) {
	a := DefaultSettings()
	a.Steps[0] = 1
	if b := DefaultSettings(); b.Steps[0] != 20 {
		t.Errorf("DefaultSettings shares its Steps slice between calls")
	}
}

func TestParseSettingsValid(t *testing.T) {
	tests := []struct {
		key, value string
		want       Settings
	}{
		{KeyEnabled, "true", DefaultSettings()},
		{KeyEnabled, "false", DefaultSettings()},
		{KeyService, "web", defaultsWith(func(s *Settings) { s.Service = "web" })},
		{KeyService, " web-v2 ", defaultsWith(func(s *Settings) { s.Service = "web-v2" })},
		{KeySteps, "50", defaultsWith(func(s *Settings) { s.Steps = []int32{50} })},
		{KeySteps, "1,99", defaultsWith(func(s *Settings) { s.Steps = []int32{1, 99} })},
		{KeySteps, " 10 , 20,30 ", defaultsWith(func(s *Settings) { s.Steps = []int32{10, 20, 30} })},
		{KeySteps, "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20",
			defaultsWith(func(s *Settings) {
				s.Steps = []int32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20}
			})},
		{KeyInterval, "90s", defaultsWith(func(s *Settings) { s.Interval = 90 * time.Second })},
		{KeyInterval, "1s", defaultsWith(func(s *Settings) { s.Interval = time.Second })},
		{KeyInterval, "24h", defaultsWith(func(s *Settings) { s.Interval = 24 * time.Hour })},
		{KeyWindow, "2m", defaultsWith(func(s *Settings) { s.Window = 2 * time.Minute })},
		{KeyWindow, " 90s ", defaultsWith(func(s *Settings) { s.Window = 90 * time.Second })},
		{KeyThreshold, "1", defaultsWith(func(s *Settings) { s.Threshold = 1 })},
		{KeyThreshold, " 1000 ", defaultsWith(func(s *Settings) { s.Threshold = 1000 })},
		{KeyMinSuccessRate, "99.5", defaultsWith(func(s *Settings) { s.MinSuccessRate = 99.5 })},
		{KeyMinSuccessRate, "95%", defaultsWith(func(s *Settings) { s.MinSuccessRate = 95 })},
		{KeyMinSuccessRate, "0", defaultsWith(func(s *Settings) { s.MinSuccessRate = 0 })},
		{KeyMinSuccessRate, "100", defaultsWith(func(s *Settings) { s.MinSuccessRate = 100 })},
		{KeyMaxLatency, "1s", defaultsWith(func(s *Settings) { s.MaxLatency = time.Second })},
		{KeyMaxLatency, "250ms", defaultsWith(func(s *Settings) { s.MaxLatency = 250 * time.Millisecond })},
		{KeyMaxLatency, "500", defaultsWith(func(s *Settings) { s.MaxLatency = 500 * time.Millisecond })},
		{KeyMaxLatency, "1.5", defaultsWith(func(s *Settings) { s.MaxLatency = 1500 * time.Microsecond })},
		{KeyMaxLatency, "1h", defaultsWith(func(s *Settings) { s.MaxLatency = time.Hour })},
		{KeyConfidence, "off", defaultsWith(func(s *Settings) { s.Confidence, s.ConfidenceOff = 0, true })},
		{KeyConfidence, "95", defaultsWith(func(s *Settings) { s.Confidence = 95 })},
		{KeyConfidence, "99.9%", defaultsWith(func(s *Settings) { s.Confidence = 99.9 })},
		{KeyConfidence, "50.1", defaultsWith(func(s *Settings) { s.Confidence = 50.1 })},
		{KeyTolerance, "20%", defaultsWith(func(s *Settings) { s.Tolerance = 0.20 })},
		{KeyTolerance, "20", defaultsWith(func(s *Settings) { s.Tolerance = 0.20 })},
		{KeyTolerance, "0%", defaultsWith(func(s *Settings) { s.Tolerance = 0 })},
		{KeyTolerance, "150%", defaultsWith(func(s *Settings) { s.Tolerance = 1.5 })},
		{KeyTolerance, "999.9", defaultsWith(func(s *Settings) { s.Tolerance = 9.999 })},
		{KeyNoData, "hold", defaultsWith(func(s *Settings) { s.NoData = NoDataHold })},
		{KeyNoData, "fail", defaultsWith(func(s *Settings) { s.NoData = NoDataFail })},
		{KeyNoData, "pass", defaultsWith(func(s *Settings) { s.NoData = NoDataPass })},
		{KeyProgressDeadline, "30m", defaultsWith(func(s *Settings) { s.ProgressDeadline = 30 * time.Minute })},
		{KeyProgressDeadline, "1s", defaultsWith(func(s *Settings) { s.ProgressDeadline = time.Second })},
		{KeyProgressDeadline, "72h", defaultsWith(func(s *Settings) { s.ProgressDeadline = 72 * time.Hour })},
		{KeyVirtualService, "web", defaultsWith(func(s *Settings) { s.VirtualServices = []string{"web"} })},
		{KeyVirtualService, "web, web-gateway.edge", defaultsWith(func(s *Settings) {
			s.VirtualServices = []string{"web", "web-gateway.edge"}
		})},
		{KeyRouter, "istio", DefaultSettings()},
		{KeyRouter, " gateway-api ", defaultsWith(func(s *Settings) { s.Router = RouterGatewayAPI })},
		{KeyHTTPRoute, "reviews, edge.shop", defaultsWith(func(s *Settings) {
			s.HTTPRoutes, s.Router = []string{"reviews", "edge.shop"}, RouterGatewayAPI
		})},
		{KeyPrometheus, "http://prometheus.istio-system:9090", defaultsWith(func(s *Settings) {
			s.Prometheus = "http://prometheus.istio-system:9090"
		})},
		{KeyPrometheus, " https://prom.example.com/tenant-a ", defaultsWith(func(s *Settings) {
			s.Prometheus = "https://prom.example.com/tenant-a"
		})},
	}
	for _, tt := range tests {
		t.Run(tt.key+"="+tt.value, func(t *testing.T) {
			got, errs := ParseSettings(annotations(tt.key, tt.value))
			if len(errs) > 0 {
				t.Fatalf("unexpected errors: %v", errs.ToAggregate())
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseSettingsInvalid(t *testing.T) {
	tests := []struct {
		key, value, reason string
	}{
		{KeyEnabled, "True", `exactly "true" or "false"`},
		{KeyEnabled, " true", `exactly "true" or "false"`},
		{KeyEnabled, "yes", `exactly "true" or "false"`},
		{KeyService, "Web", "not a Service name"},
		{KeyService, "1web", "start with an alphabetic character"},
		{KeyService, "web.shop", "not a Service name"},
		{KeySteps, "20,abc", `step 2 ("abc") is not a whole number`},
		{KeySteps, "20,,40", "step 2 is empty"},
		{KeySteps, "20,40,", "step 3 is empty"},
		{KeySteps, "0,50", "step 1 (0) is out of range"},
		{KeySteps, "20,100", "step 2 (100) is out of range"},
		{KeySteps, "40,20", "strictly ascending: step 2 (20) is not above step 1 (40)"},
		{KeySteps, "20,20", "strictly ascending"},
		{KeySteps, "-5", "not a whole number"},
		{KeySteps, "+5", "not a whole number"},
		{KeySteps, "2.5", "not a whole number"},
		{KeySteps, "20 40", "not a whole number"},
		{KeySteps, "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21", "at most 20"},
		{KeyInterval, "60", "not a duration"},
		{KeyInterval, "500ms", "at least 1s"},
		{KeyInterval, "25h", "at most 24h"},
		{KeyRouter, "gateway", `must be "istio" (VirtualServices) or "gateway-api" (HTTPRoutes)`},
		{KeyRouter, "Istio", `must be "istio"`},
		{KeyHTTPRoute, "reviews,reviews", `"reviews" is listed twice`},
		{KeyHTTPRoute, "Reviews", "HTTPRoute"},
		{KeyInterval, "-1m", "at least 1s"},
		{KeyWindow, "500ms", "at least 1s"},
		{KeyWindow, "25h", "at most 24h"},
		{KeyWindow, "1", "not a duration"},
		{KeyThreshold, "0", "from 1 to 1000"},
		{KeyThreshold, "1001", "from 1 to 1000"},
		{KeyThreshold, "3.5", "whole number"},
		{KeyThreshold, "-1", "whole number"},
		{KeyThreshold, "99999999999999999999", "from 1 to 1000"},
		{KeyMinSuccessRate, "101", "from 0 to 100"},
		{KeyMinSuccessRate, "-1", "from 0 to 100"},
		{KeyMinSuccessRate, "1e2", "from 0 to 100"},
		{KeyMinSuccessRate, "NaN", "from 0 to 100"},
		{KeyMinSuccessRate, "99.5%%", "from 0 to 100"},
		{KeyMaxLatency, "0", "more than 0"},
		{KeyMaxLatency, "0ms", "more than 0"},
		{KeyMaxLatency, "-1s", "more than 0"},
		{KeyMaxLatency, "2h", "at most 1h"},
		{KeyMaxLatency, "3600001", "at most 1h"},
		{KeyMaxLatency, "fast", "not a duration"},
		{KeyConfidence, "50", `"off" or a percentage above 50 and below 100`},
		{KeyConfidence, "100", "below 100"},
		{KeyConfidence, "Off", `"off"`},
		{KeyConfidence, "on", `"off"`},
		{KeyTolerance, "1000", "up to (not including) 1000"},
		{KeyTolerance, "-5%", "percentage"},
		{KeyTolerance, "20 %", "percentage"},
		{KeyTolerance, "0.2x", "percentage"},
		{KeyNoData, "Hold", `"hold", "fail", "pass"`},
		{KeyNoData, "skip", `"hold", "fail", "pass"`},
		{KeyProgressDeadline, "0s", "at least 1s"},
		{KeyProgressDeadline, "10", "not a duration"},
		{KeyVirtualService, "web,,edge", "entry 2 is empty"},
		{KeyVirtualService, "web,web", `"web" is listed twice`},
		{KeyVirtualService, "Web", "not a VirtualService name"},
		{KeyVirtualService, "web_gw", "not a VirtualService name"},
		{KeyPrometheus, "prometheus:9090", `scheme "http" or "https"`},
		{KeyPrometheus, "ftp://prom", `scheme "http" or "https"`},
		{KeyPrometheus, "/api/v1", `scheme "http" or "https"`},
		{KeyPrometheus, "http://", "must have a host"},
		{KeyPrometheus, "http://:9090", "must have a host"},
		{KeyPrometheus, "http://user:secret@prom:9090", "must not carry credentials"},
		{KeyPrometheus, "http://prom:port", "not a URL"},
	}
	for _, key := range SettingKeys {
		tests = append(tests,
			struct{ key, value, reason string }{key, "", "must not be empty"},
			struct{ key, value, reason string }{key, " \t", "must not be empty"},
		)
	}
	for _, tt := range tests {
		t.Run(tt.key+"="+tt.value, func(t *testing.T) {
			got, errs := ParseSettings(annotations(tt.key, tt.value))
			wantOneInvalid(t, errs, tt.key, tt.value, tt.reason)
			if !reflect.DeepEqual(got, DefaultSettings()) {
				t.Errorf("an invalid value changed the settings: %+v", got)
			}
		})
	}
}

func TestParseSettingsAggregatesErrors(t *testing.T) {
	got, errs := ParseSettings(annotations(
		KeySteps, "20,abc",
		KeyInterval, "soon",
		KeyThreshold, "5",
	))
	if len(errs) != 2 {
		t.Fatalf("got %d errors, want 2: %v", len(errs), errs.ToAggregate())
	}
	msg := errs.ToAggregate().Error()
	for _, want := range []string{
		`metadata.annotations[canary.io/steps]: Invalid value: "20,abc": step 2 ("abc") is not a whole number`,
		`metadata.annotations[canary.io/interval]: Invalid value: "soon": not a duration`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("aggregate %q\ndoes not contain %q", msg, want)
		}
	}
	// The valid key still applies; the invalid ones keep their defaults.
	want := defaultsWith(func(s *Settings) { s.Threshold = 5 })
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
}

func TestParseSettingsErrorOrderFollowsSettingKeys(t *testing.T) {
	_, errs := ParseSettings(annotations(
		KeyWebhooks, "x", KeySteps, "x", KeyEnabled, "x", KeyNoData, "x",
	))
	var got []string
	for _, e := range errs {
		got = append(got, e.Field)
	}
	want := []string{
		"metadata.annotations[canary.io/enabled]",
		"metadata.annotations[canary.io/steps]",
		"metadata.annotations[canary.io/no-data]",
		"metadata.annotations[canary.io/webhooks]",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("fields = %q, want %q", got, want)
	}
}

func TestEnabled(t *testing.T) {
	for _, tt := range []struct {
		in   map[string]string
		want bool
	}{
		{nil, false},
		{annotations(KeyEnabled, "true"), true},
		{annotations(KeyEnabled, "false"), false},
		{annotations(KeyEnabled, "True"), false},
		{annotations(KeyEnabled, " true"), false},
		{annotations("canary.io/enable", "true"), false},
	} {
		if got := Enabled(tt.in); got != tt.want {
			t.Errorf("Enabled(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

// TestRouterSettingsTogether: each router steers its own kind of route;
// naming the other kind is denied on the annotation that names it, which
// keeps its default.
func TestRouterSettingsTogether(t *testing.T) {
	for _, c := range []struct {
		name       string
		in         map[string]string
		wantRouter Router
		errKey     string
		reason     string
	}{
		{"HTTPRoutes choose the Gateway API", annotations(KeyHTTPRoute, "reviews"), RouterGatewayAPI, "", ""},
		{"HTTPRoutes with the Gateway API router", annotations(KeyHTTPRoute, "reviews", KeyRouter, "gateway-api"), RouterGatewayAPI, "", ""},
		{"VirtualServices with the Istio router", annotations(KeyVirtualService, "reviews", KeyRouter, "istio"), RouterIstio, "", ""},
		{"HTTPRoutes with the Istio router", annotations(KeyHTTPRoute, "reviews", KeyRouter, "istio"), RouterIstio,
			KeyHTTPRoute, `HTTPRoutes are steered by the "gateway-api" router, but canary.io/router is "istio"`},
		{"VirtualServices with the Gateway API router", annotations(KeyVirtualService, "reviews", KeyRouter, "gateway-api"), RouterGatewayAPI,
			KeyVirtualService, "name either VirtualServices or HTTPRoutes"},
		{"both kinds named", annotations(KeyVirtualService, "reviews", KeyHTTPRoute, "reviews"), RouterGatewayAPI,
			KeyVirtualService, "name either VirtualServices or HTTPRoutes"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, errs := ParseSettings(c.in)
			if s.Router != c.wantRouter {
				t.Errorf("router %q, want %q", s.Router, c.wantRouter)
			}
			if c.errKey == "" {
				if len(errs) > 0 {
					t.Fatalf("unexpected errors: %v", errs.ToAggregate())
				}
				return
			}
			wantOneInvalid(t, errs, c.errKey, c.in[c.errKey], c.reason)
			if c.errKey == KeyHTTPRoute && s.HTTPRoutes != nil || c.errKey == KeyVirtualService && s.VirtualServices != nil {
				t.Errorf("the denied setting was kept: %+v", s)
			}
		})
	}
}
