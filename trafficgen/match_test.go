//lint:file-ignore SA1019 Envoy still honours the deprecated header matcher fields and HeaderValueOption.append: the router reads them as Envoy does.

package trafficgen

import (
	"net/http"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Fixtures of route matches as istiod renders them (route.go's
// TranslateRouteMatch and translateHeaderMatch).

func exact(v string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: v}}
}

func regex(v string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: v}}}
}

// header is a header matcher with a string_match, as istiod writes a
// VirtualService's (or an HTTPRoute's) header match.
func header(name string, m *matcherv3.StringMatcher) *routev3.HeaderMatcher {
	return &routev3.HeaderMatcher{Name: name, HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: m}}
}

// withoutHeader is istiod's rendering of a VirtualService's
// withoutHeaders entry: inverted, a missing header taken as empty.
func withoutHeader(name string, m *matcherv3.StringMatcher) *routev3.HeaderMatcher {
	h := header(name, m)
	h.InvertMatch, h.TreatMissingHeaderAsEmpty = true, true
	return h
}

// cookieRegex is istiod's rendering of a VirtualService's cookie match
// (a regex on the cookie header, as Istio's docs write it).
func cookieRegex(nameValue string) *routev3.HeaderMatcher {
	return header("cookie", regex("^(.*?;)?("+nameValue+")(;.*)?$"))
}

// query is a query parameter matcher with a string_match.
func query(name string, m *matcherv3.StringMatcher) *routev3.QueryParameterMatcher {
	return &routev3.QueryParameterMatcher{Name: name, QueryParameterMatchSpecifier: &routev3.QueryParameterMatcher_StringMatch{StringMatch: m}}
}

// prefixMatch is a route match on a prefix, case-sensitive as istiod
// writes it (case_sensitive true unless ignoreUriCase).
func prefixMatch(prefix string) *routev3.RouteMatch {
	return &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: prefix}, CaseSensitive: wrapperspb.Bool(true)}
}

// req is a GET request for path with headers given as name, value...
func get(path string, headers ...string) Request {
	r := Request{Authority: "reviews:9080", Path: path, Headers: http.Header{}}
	for i := 0; i < len(headers); i += 2 {
		r.Headers.Add(headers[i], headers[i+1])
	}
	return r
}

func TestRouteMatchPaths(t *testing.T) {
	ignoreCase := func(m *routev3.RouteMatch) *routev3.RouteMatch { m.CaseSensitive = wrapperspb.Bool(false); return m }
	path := func(p string) *routev3.RouteMatch {
		return &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Path{Path: p}}
	}
	sep := func(p string) *routev3.RouteMatch {
		return &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_PathSeparatedPrefix{PathSeparatedPrefix: p}}
	}
	re := func(p string) *routev3.RouteMatch {
		return &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: p}}}
	}
	tests := []struct {
		name  string
		match *routev3.RouteMatch
		path  string
		want  bool
	}{
		{"prefix", prefixMatch("/reviews"), "/reviews/0", true},
		{"prefix is case-sensitive", prefixMatch("/Reviews"), "/reviews/0", false},
		{"prefix ignoring case (ignoreUriCase)", ignoreCase(prefixMatch("/Reviews")), "/reviews/0", true},
		{"exact path", path("/reviews/0"), "/reviews/0", true},
		{"exact path ignores the query string", path("/reviews/0"), "/reviews/0?tier=gold", true},
		{"exact path ignoring case", ignoreCase(path("/REVIEWS/0")), "/reviews/0", true},
		{"separated prefix: the path itself", sep("/reviews"), "/reviews", true},
		{"separated prefix: below it", sep("/reviews"), "/reviews/0", true},
		{"separated prefix is no plain prefix", sep("/reviews"), "/reviewsx", false},
		{"separated prefix ignoring case", ignoreCase(sep("/Reviews")), "/reviews/0", true},
		{"regex matches the whole path", re("/reviews/[0-9]+"), "/reviews/12", true},
		{"regex does not match a part", re("/reviews"), "/reviews/12", false},
		{"regex ignores the query string", re("/reviews/[0-9]+"), "/reviews/12?x=1", true},
		{"case_sensitive has no effect on regex", ignoreCase(re("/REVIEWS/.*")), "/reviews/1", false},
		{"no path specifier never matches", &routev3.RouteMatch{}, "/", false},
		{"dynamic metadata (JWT claims) never matches", func() *routev3.RouteMatch {
			m := prefixMatch("/")
			m.DynamicMetadata = []*matcherv3.MetadataMatcher{{Filter: "envoy.filters.http.jwt_authn"}}
			return m
		}(), "/", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := parseRouteMatch(tt.match)
			if err != nil {
				t.Fatal(err)
			}
			if got := m.Matches(get(tt.path)); got != tt.want {
				t.Errorf("match %v on %s = %v, want %v", tt.match, tt.path, got, tt.want)
			}
		})
	}
}

func TestHeaderMatch(t *testing.T) {
	//nolint:staticcheck // the deprecated fields are part of Envoy's API.
	deprecated := map[string]*routev3.HeaderMatcher{
		"exact":    {Name: "end-user", HeaderMatchSpecifier: &routev3.HeaderMatcher_ExactMatch{ExactMatch: "jason"}},
		"prefix":   {Name: "end-user", HeaderMatchSpecifier: &routev3.HeaderMatcher_PrefixMatch{PrefixMatch: "ja"}},
		"suffix":   {Name: "end-user", HeaderMatchSpecifier: &routev3.HeaderMatcher_SuffixMatch{SuffixMatch: "son"}},
		"contains": {Name: "end-user", HeaderMatchSpecifier: &routev3.HeaderMatcher_ContainsMatch{ContainsMatch: "as"}},
		"regex":    {Name: "end-user", HeaderMatchSpecifier: &routev3.HeaderMatcher_SafeRegexMatch{SafeRegexMatch: &matcherv3.RegexMatcher{Regex: "j.*n"}}},
	}
	present := func(p bool) *routev3.HeaderMatcher {
		return &routev3.HeaderMatcher{Name: "end-user", HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: p}}
	}
	inverted := func(h *routev3.HeaderMatcher) *routev3.HeaderMatcher { h.InvertMatch = true; return h }
	rangeMatch := func() *routev3.HeaderMatcher {
		return &routev3.HeaderMatcher{Name: "x-n", HeaderMatchSpecifier: &routev3.HeaderMatcher_RangeMatch{RangeMatch: &typev3.Int64Range{Start: -10, End: 0}}}
	}
	ignoreCase := exact("JASON")
	ignoreCase.IgnoreCase = true
	tests := []struct {
		name    string
		matcher *routev3.HeaderMatcher
		req     Request
		want    bool
	}{
		{"exact", header("end-user", exact("jason")), get("/", "end-user", "jason"), true},
		{"exact, other value", header("end-user", exact("jason")), get("/", "end-user", "mary"), false},
		{"exact, missing header", header("end-user", exact("jason")), get("/"), false},
		{"header names are case-insensitive", header("End-User", exact("jason")), get("/", "end-user", "jason"), true},
		{"exact is case-sensitive", header("end-user", exact("Jason")), get("/", "end-user", "jason"), false},
		{"exact ignoring case", header("end-user", ignoreCase), get("/", "end-user", "jason"), true},
		{"a repeated header is its values joined by commas", header("end-user", exact("jason,mary")), get("/", "end-user", "jason", "end-user", "mary"), true},
		{"prefix", header("end-user", &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "ja"}}), get("/", "end-user", "jason"), true},
		{"suffix", header("end-user", &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Suffix{Suffix: "on"}}), get("/", "end-user", "mary"), false},
		{"contains", header("end-user", &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Contains{Contains: "aso"}}), get("/", "end-user", "jason"), true},
		{"regex matches the whole value", header("end-user", regex("jas")), get("/", "end-user", "jason"), false},
		{"regex", header("end-user", regex("jas.*")), get("/", "end-user", "jason"), true},
		{"deprecated exact_match", deprecated["exact"], get("/", "end-user", "jason"), true},
		{"deprecated prefix_match", deprecated["prefix"], get("/", "end-user", "jason"), true},
		{"deprecated suffix_match", deprecated["suffix"], get("/", "end-user", "jasen"), false},
		{"deprecated contains_match", deprecated["contains"], get("/", "end-user", "jason"), true},
		{"deprecated safe_regex_match", deprecated["regex"], get("/", "end-user", "jason"), true},
		{"no specifier: present", &routev3.HeaderMatcher{Name: "end-user"}, get("/", "end-user", ""), true},
		{"no specifier: absent", &routev3.HeaderMatcher{Name: "end-user"}, get("/"), false},
		{"present_match true", present(true), get("/", "end-user", "x"), true},
		{"present_match false: absent matches", present(false), get("/"), true},
		{"present_match false: present fails", present(false), get("/", "end-user", "x"), false},
		{"present_match true inverted: absent matches", inverted(present(true)), get("/"), true},
		{"inverted exact: other value matches", inverted(header("end-user", exact("jason"))), get("/", "end-user", "mary"), true},
		{"inverted exact: a missing header does not match", inverted(header("end-user", exact("jason"))), get("/"), false},
		{"withoutHeaders: a missing header matches", withoutHeader("end-user", exact("jason")), get("/"), true},
		{"withoutHeaders: the value excluded does not match", withoutHeader("end-user", exact("jason")), get("/", "end-user", "jason"), false},
		{"treat missing as empty: regex ^$ matches a missing header", func() *routev3.HeaderMatcher {
			h := header("x", regex("^$"))
			h.TreatMissingHeaderAsEmpty = true
			return h
		}(), get("/"), true},
		{"range: inside", rangeMatch(), get("/", "x-n", "-1"), true},
		{"range: end excluded", rangeMatch(), get("/", "x-n", "0"), false},
		{"range: not an integer", rangeMatch(), get("/", "x-n", "-1x"), false},
		{"range inverted: a missing header does not match", inverted(rangeMatch()), get("/"), false},
		{":method (VirtualService method match)", header(":method", exact("GET")), get("/"), true},
		{":method POST", header(":method", exact("POST")), get("/"), false},
		{":authority (VirtualService authority match)", header(":authority", &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "reviews"}}), get("/"), true},
		{"host is :authority to Envoy, never a header", &routev3.HeaderMatcher{Name: "host"}, get("/"), false},
		{"cookie (Istio's regex): the only cookie", cookieRegex("user=jason"), get("/", "cookie", "user=jason"), true},
		{"cookie: first of several", cookieRegex("user=jason"), get("/", "cookie", "user=jason; theme=dark"), true},
		{"cookie: after another, the space after ';' breaks Istio's regex", cookieRegex("user=jason"), get("/", "cookie", "theme=dark; user=jason"), false},
		{"cookie: after another without a space", cookieRegex("user=jason"), get("/", "cookie", "theme=dark;user=jason"), true},
		{"cookie: a longer value does not match", cookieRegex("user=jason"), get("/", "cookie", "user=jasonx"), false},
		{"cookie: no cookie header", cookieRegex("user=jason"), get("/"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := parseRouteMatch(&routev3.RouteMatch{
				PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"},
				Headers:       []*routev3.HeaderMatcher{tt.matcher},
			})
			if err != nil {
				t.Fatal(err)
			}
			if got := m.Matches(tt.req); got != tt.want {
				t.Errorf("header matcher %v on %+v = %v, want %v", tt.matcher, tt.req.Headers, got, tt.want)
			}
		})
	}
}

func TestQueryAndCookieMatch(t *testing.T) {
	present := func(p bool) *routev3.QueryParameterMatcher {
		return &routev3.QueryParameterMatcher{Name: "beta", QueryParameterMatchSpecifier: &routev3.QueryParameterMatcher_PresentMatch{PresentMatch: p}}
	}
	cookie := func(name string, m *matcherv3.StringMatcher, invert bool) *routev3.RouteMatch {
		return &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"},
			Cookies: []*routev3.CookieMatcher{{Name: name, StringMatch: m, InvertMatch: invert}}}
	}
	q := func(qs ...*routev3.QueryParameterMatcher) *routev3.RouteMatch {
		return &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}, QueryParameters: qs}
	}
	tests := []struct {
		name  string
		match *routev3.RouteMatch
		req   Request
		want  bool
	}{
		{"query exact", q(query("tier", exact("gold"))), get("/reviews/0?tier=gold"), true},
		{"query exact, other value", q(query("tier", exact("gold"))), get("/reviews/0?tier=silver"), false},
		{"query missing", q(query("tier", exact("gold"))), get("/reviews/0"), false},
		{"only the first value of a repeated parameter counts", q(query("tier", exact("gold"))), get("/?tier=x&tier=gold"), false},
		{"the first value matches", q(query("tier", exact("gold"))), get("/?tier=gold&tier=x"), true},
		{"values are decoded", q(query("name", exact("a b/c"))), get("/?name=a%20b%2Fc"), true},
		{"query regex (HTTPRoute RegularExpression)", q(query("tier", regex("go.d"))), get("/?tier=gold"), true},
		{"a bare key has the empty value", q(query("tier", exact(""))), get("/?tier"), true},
		{"present_match true", q(present(true)), get("/?beta"), true},
		{"present_match true, missing", q(present(true)), get("/?alpha=1"), false},
		{"present_match false, missing", q(present(false)), get("/"), true},
		{"present_match false, present", q(present(false)), get("/?beta=1"), false},
		{"no specifier: presence", q(&routev3.QueryParameterMatcher{Name: "beta"}), get("/?beta=0"), true},
		{"all parameters must match", q(query("tier", exact("gold")), present(true)), get("/?tier=gold"), false},
		{"cookie matcher", cookie("canary", exact("1"), false), get("/", "cookie", "theme=dark; canary=1"), true},
		{"cookie matcher, other value", cookie("canary", exact("1"), false), get("/", "cookie", "canary=0"), false},
		{"cookie matcher inverted: an absent cookie matches", cookie("canary", exact("1"), true), get("/", "cookie", "theme=dark"), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := parseRouteMatch(tt.match)
			if err != nil {
				t.Fatal(err)
			}
			if got := m.Matches(tt.req); got != tt.want {
				t.Errorf("match on %s %v = %v, want %v", tt.req.Path, tt.req.Headers, got, tt.want)
			}
		})
	}
}

func TestParseRouteMatchRejectsInvalidRegex(t *testing.T) {
	for name, m := range map[string]*routev3.RouteMatch{
		"path":   {PathSpecifier: &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: "("}}},
		"header": {PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}, Headers: []*routev3.HeaderMatcher{header("x", regex("("))}},
		"query":  {PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}, QueryParameters: []*routev3.QueryParameterMatcher{query("x", regex("["))}},
	} {
		if _, err := parseRouteMatch(m); err == nil {
			t.Errorf("%s: an invalid regex was accepted", name)
		}
	}
}
