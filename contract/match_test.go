package contract

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseMatch(t *testing.T) {
	valid := []struct {
		in   string
		want []Match
	}{
		{"- headers: {x-canary: {exact: insider}}", []Match{{Headers: map[string]StringMatch{"x-canary": {Exact: "insider"}}}}},
		{`[{"headers": {"cookie": {"regex": "^(.*?;)?(canary=always)(;.*)?$"}}}, {"queryParams": {"beta": {"exact": "1"}}}]`,
			[]Match{{Headers: map[string]StringMatch{"cookie": {Regex: "^(.*?;)?(canary=always)(;.*)?$"}}}, {QueryParams: map[string]StringMatch{"beta": {Exact: "1"}}}}},
		{"- headers: {user-agent: {prefix: Mozilla}}\n  queryParams: {team: {regex: 'a|b'}}",
			[]Match{{Headers: map[string]StringMatch{"user-agent": {Prefix: "Mozilla"}}, QueryParams: map[string]StringMatch{"team": {Regex: "a|b"}}}}},
	}
	for _, c := range valid {
		got, err := parseMatch(c.in)
		if err != nil {
			t.Errorf("%s: %v", c.in, err)
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: %+v, want %+v", c.in, got, c.want)
		}
	}
	invalid := []struct{ in, reason string }{
		{"x-canary: insider", "must be a YAML or JSON list"},
		{"[]", "is an empty list"},
		{"- uri: {prefix: /api}", `unknown field "uri"`},
		{"- headers: {}", "match 1: has no condition"},
		{"- headers: {X-Canary: {exact: a}}", `header "X-Canary" is not a lowercase header name`},
		{"- headers: {x-canary: {exact: a, regex: b}}", "needs exactly one of exact, prefix and regex"},
		{"- headers: {x-canary: {}}", "needs exactly one of exact, prefix and regex"},
		{"- headers: {x-canary: {regex: '(a'}}", `regex "(a" is not RE2: missing closing )`},
		{"- queryParams: {'a=b': {exact: c}}", `query parameter "a=b" is not a parameter name`},
		{"- headers: {x: {exact: a}}\n- headers: {y: {exact: b}}\n- headers: {z: {exact: c}}\n- headers: {a: {exact: d}}\n- headers: {b: {exact: e}}\n- headers: {c: {exact: f}}\n- headers: {d: {exact: g}}\n- headers: {e: {exact: h}}\n- headers: {f: {exact: i}}\n- headers: {g: {exact: j}}\n- headers: {h: {exact: k}}", "has 11 matches; at most 10"},
	}
	for _, c := range invalid {
		_, err := parseMatch(c.in)
		if err == nil || !strings.Contains(err.Error(), c.reason) {
			t.Errorf("%s: error %v, want one containing %q", c.in, err, c.reason)
		}
	}
}

func TestStringMatchAsRegex(t *testing.T) {
	for _, c := range []struct {
		m    StringMatch
		want string
	}{
		{StringMatch{Exact: "a.b"}, `^a\.b$`},
		{StringMatch{Prefix: "v2."}, `v2\..*`},
		{StringMatch{Regex: "a|b"}, "a|b"},
	} {
		if got := c.m.AsRegex(); got != c.want {
			t.Errorf("%+v: %q, want %q", c.m, got, c.want)
		}
	}
}

// TestStrategySettingsTogether: ab needs a match and the generated route;
// a match without ab, iterations without ab or blue-green, steps without
// canary are refused (they would do nothing);
// the annotation in error keeps its default.
func TestStrategySettingsTogether(t *testing.T) {
	match := "- headers: {x-canary: {exact: insider}}"
	for _, c := range []struct {
		name   string
		in     map[string]string
		want   Strategy
		errKey string
		reason string
	}{
		{"ab with a match", annotations(KeyStrategy, "ab", KeyMatch, match, KeyIterations, "5"), StrategyAB, "", ""},
		{"ab through the Gateway API's generated route", annotations(KeyStrategy, "ab", KeyMatch, match, KeyRouter, "gateway-api"), StrategyAB, "", ""},
		{"ab without a match", annotations(KeyStrategy, "ab"), StrategyCanary, KeyStrategy, `"ab" sends the requests matching canary.io/match to the canary: set it`},
		{"ab with the user's VirtualServices", annotations(KeyStrategy, "ab", KeyMatch, match, KeyVirtualService, "reviews"), StrategyCanary, KeyStrategy, "routes through the route the system generates"},
		{"a match without ab", annotations(KeyMatch, match), StrategyCanary, KeyMatch, `is for canary.io/strategy: "ab" only`},
		{"iterations without ab", annotations(KeyIterations, "5"), StrategyCanary, KeyIterations, "is for canary.io/strategy"},
		{"blue-green", annotations(KeyStrategy, "blue-green", KeyIterations, "3"), StrategyBlueGreen, "", ""},
		{"blue-green through the user's routes", annotations(KeyStrategy, "blue-green", KeyHTTPRoute, "reviews"), StrategyBlueGreen, "", ""},
		{"blue-green with a match", annotations(KeyStrategy, "blue-green", KeyMatch, match), StrategyBlueGreen, KeyMatch, `is for canary.io/strategy: "ab" only`},
		{"blue-green with steps", annotations(KeyStrategy, "blue-green", KeySteps, "20,40"), StrategyBlueGreen, KeySteps, `"blue-green" runs canary.io/iterations intervals`},
		{"ab with steps", annotations(KeyStrategy, "ab", KeyMatch, match, KeySteps, "20,40"), StrategyAB, KeySteps, `is for canary.io/strategy: "canary" only`},
		{"a mirror with the canary strategy", annotations(KeyMirror, "30"), StrategyCanary, "", ""},
		{"a mirror with blue-green", annotations(KeyStrategy, "blue-green", KeyMirror, "100"), StrategyBlueGreen, "", ""},
		{"a mirror through the user's VirtualService", annotations(KeyMirror, "30", KeyVirtualService, "reviews"), StrategyCanary, KeyMirror, "mirrors through the route the system generates"},
		{"a mirror of 0", annotations(KeyMirror, "0"), StrategyCanary, KeyMirror, "must be a whole number from 1 to 100"},
		{"a mirror as a fraction", annotations(KeyMirror, "12.5"), StrategyCanary, KeyMirror, "must be a whole number from 1 to 100"},
		{"a sticky canary", annotations(KeySticky, "canary-session"), StrategyCanary, "", ""},
		{"a sticky cookie with ab", annotations(KeyStrategy, "ab", KeyMatch, match, KeySticky, "s"), StrategyAB, KeySticky, `"ab" has none`},
		{"a sticky cookie through the user's HTTPRoute", annotations(KeySticky, "s", KeyHTTPRoute, "reviews"), StrategyCanary, KeySticky, "routes through the route the system generates"},
		{"a sticky cookie browsers would drop", annotations(KeySticky, "__Host-canary"), StrategyCanary, KeySticky, `must not start with "__Host-"`},
		{"a sticky cookie name with a space", annotations(KeySticky, "my cookie"), StrategyCanary, KeySticky, "must be a cookie name"},
		{"a sticky cookie name with a regex character", annotations(KeySticky, "a+b"), StrategyCanary, KeySticky, "must be a cookie name"},
		{"an unknown strategy", annotations(KeyStrategy, "shadow"), StrategyCanary, KeyStrategy, `"blue-green" (no user traffic, then one switch)`},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, errs := ParseSettings(c.in)
			if s.Strategy != c.want {
				t.Errorf("strategy %q, want %q", s.Strategy, c.want)
			}
			if c.errKey == "" {
				if len(errs) > 0 {
					t.Fatalf("unexpected errors: %v", errs.ToAggregate())
				}
				return
			}
			found := false
			for _, e := range errs {
				if e.Field == annotationPath(c.errKey).String() && strings.Contains(e.Detail, c.reason) {
					found = true
				}
			}
			if !found {
				t.Errorf("no error on %s containing %q: %v", c.errKey, c.reason, errs.ToAggregate())
			}
		})
	}
}

// FuzzParseMatch: canary.io/match never panics, and what it accepts keeps
// the documented rules.
func FuzzParseMatch(f *testing.F) {
	f.Add("- headers: {x-canary: {exact: insider}}")
	f.Add(`[{"queryParams": {"beta": {"regex": "1|yes"}}}]`)
	f.Add("- headers: {cookie: {regex: '^(.*?;)?(canary=always)(;.*)?$'}}")
	f.Add("- uri: {prefix: /}")
	f.Fuzz(func(t *testing.T, v string) {
		ms, err := parseMatch(v)
		if err != nil {
			return
		}
		if len(ms) == 0 || len(ms) > MaxMatches {
			t.Fatalf("%d matches accepted", len(ms))
		}
		for _, m := range ms {
			n := len(m.Headers) + len(m.QueryParams)
			if n == 0 || n > MaxMatchConditions {
				t.Fatalf("a match of %d conditions accepted", n)
			}
			for name, c := range m.Headers {
				if !headerName.MatchString(name) || c.check() != nil {
					t.Fatalf("header %q %+v accepted", name, c)
				}
			}
			for name, c := range m.QueryParams {
				if name == "" || c.check() != nil {
					t.Fatalf("query parameter %q %+v accepted", name, c)
				}
			}
		}
	})
}
