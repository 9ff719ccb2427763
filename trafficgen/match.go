package trafficgen

import (
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

// Request is one simulated request as the source sidecar's router sees
// it: what Envoy's route matching reads.
type Request struct {
	// Method is the HTTP method (Envoy's ":method"; "" is GET).
	Method string
	// Authority is the Host header (Envoy's ":authority").
	Authority string
	// Path is the request target, the query string included (Envoy's
	// ":path"): "/reviews/0?tier=gold".
	Path string
	// Headers are the other request headers, the "cookie" header
	// included. Names are compared case-insensitively, as HTTP/2 header
	// names are lower case in Envoy.
	Headers http.Header
}

// header returns the value Envoy's header matchers see for a header
// name: pseudo-headers from the request's fields (":method",
// ":authority", ":path", ":scheme"), other headers with all their values
// joined by "," (Envoy's rule for a repeated header); ok is false when
// the request lacks the header. Envoy keeps an HTTP/1 Host header as
// ":authority", so "host" itself is never present.
func (r Request) header(name string) (string, bool) {
	switch strings.ToLower(name) {
	case ":method":
		if r.Method == "" {
			return http.MethodGet, true
		}
		return r.Method, true
	case ":authority":
		return r.Authority, r.Authority != ""
	case ":path":
		return r.Path, true
	case ":scheme":
		return "http", true
	case "host":
		return "", false
	}
	var values []string
	for k, v := range r.Headers {
		if strings.EqualFold(k, name) {
			values = append(values, v...)
		}
	}
	if len(values) == 0 {
		return "", false
	}
	return strings.Join(values, ","), true
}

// pathOnly is the path without its query string and fragment: what
// Envoy's path matchers compare.
func (r Request) pathOnly() string {
	p, _, _ := strings.Cut(r.Path, "?")
	p, _, _ = strings.Cut(p, "#")
	return p
}

// queryParam returns the first value of a query parameter, decoded, as
// Envoy reads the query string of ":path": "&"-separated "key=value" or
// bare "key" (value "") elements, only the first value of a repeated key.
func (r Request) queryParam(name string) (string, bool) {
	_, query, ok := strings.Cut(r.Path, "?")
	if !ok {
		return "", false
	}
	query, _, _ = strings.Cut(query, "#")
	for part := range strings.SplitSeq(query, "&") {
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		if unescape(k) == name {
			return unescape(v), true
		}
	}
	return "", false
}

// unescape decodes a query component, keeping it as it is when it is not
// valid percent-encoding.
func unescape(s string) string {
	if d, err := url.QueryUnescape(s); err == nil {
		return d
	}
	return s
}

// cookie returns the value of the first cookie of a name in the cookie
// header ("a=1; b=2").
func (r Request) cookie(name string) (string, bool) {
	v, ok := r.header("cookie")
	if !ok {
		return "", false
	}
	for part := range strings.SplitSeq(v, ";") {
		k, val, _ := strings.Cut(strings.TrimSpace(part), "=")
		if k == name {
			return val, true
		}
	}
	return "", false
}

// StringKind is how a StringMatch compares.
type StringKind int

// The kinds of Envoy's type.matcher.v3.StringMatcher.
const (
	StringExact StringKind = iota
	StringPrefix
	StringSuffix
	StringContains
	// StringRegex matches the whole value against an RE2 expression.
	StringRegex
)

// StringMatch is Envoy's StringMatcher: exact, prefix, suffix, contains
// (all optionally ignoring case) or a regular expression that must match
// the whole value (ignore_case has no effect on it).
//
// Example: {StringRegex "^(.*?;)?(user=jason)(;.*)?$"}, what istiod
// renders for a VirtualService's cookie match, matches the cookie header
// "user=jason; theme=dark" but not "theme=dark; user=jason" (the space
// after ";" breaks it), as with Envoy.
type StringMatch struct {
	// Kind is how to compare.
	Kind StringKind
	// Value is the string, or the regular expression's source.
	Value string
	// IgnoreCase compares case-insensitively (not for StringRegex).
	IgnoreCase bool

	re *regexp.Regexp
}

// newStringMatch returns a match, compiling a regular expression as a
// full match (Envoy's RE2 matchers match the whole value).
func newStringMatch(kind StringKind, value string, ignoreCase bool) (StringMatch, error) {
	m := StringMatch{Kind: kind, Value: value, IgnoreCase: ignoreCase}
	if kind == StringRegex {
		re, err := fullRegexp(value)
		if err != nil {
			return StringMatch{}, err
		}
		m.re = re
	}
	return m, nil
}

// fullRegexp compiles an RE2 expression that must match a whole string.
func fullRegexp(expr string) (*regexp.Regexp, error) {
	return regexp.Compile(`^(?:` + expr + `)$`)
}

// Matches reports whether v matches.
func (m StringMatch) Matches(v string) bool {
	if m.Kind == StringRegex {
		return m.re != nil && m.re.MatchString(v)
	}
	want := m.Value
	if m.IgnoreCase {
		v, want = strings.ToLower(v), strings.ToLower(want)
	}
	switch m.Kind {
	case StringExact:
		return v == want
	case StringPrefix:
		return strings.HasPrefix(v, want)
	case StringSuffix:
		return strings.HasSuffix(v, want)
	case StringContains:
		return strings.Contains(v, want)
	}
	return false
}

// HeaderKind is what a HeaderMatch checks.
type HeaderKind int

// The kinds of Envoy's HeaderMatcher.
const (
	// HeaderString compares the value with a StringMatch (string_match and
	// the deprecated exact, prefix, suffix, contains and safe_regex
	// fields).
	HeaderString HeaderKind = iota
	// HeaderPresent checks presence (present_match, and a matcher with no
	// specifier).
	HeaderPresent
	// HeaderRange checks that the value is a base-10 integer in
	// [RangeStart, RangeEnd).
	HeaderRange
)

// HeaderMatch is Envoy's HeaderMatcher.
//
// Example: istiod renders a VirtualService's withoutHeaders
// {end-user: {exact: jason}} as {Name "end-user", HeaderString exact
// "jason", Invert, TreatMissingAsEmpty}: a request without end-user
// matches (its value is taken as "", which is not "jason", inverted), as
// does "end-user: mary"; "end-user: jason" does not. Without
// TreatMissingAsEmpty, a request lacking the header would not match.
type HeaderMatch struct {
	// Name is the header's name (":method", "end-user", "cookie").
	Name string
	// Kind is what is checked.
	Kind HeaderKind
	// String is the comparison of a HeaderString match.
	String StringMatch
	// Present is what a HeaderPresent match wants: true for a present
	// header, false for an absent one.
	Present bool
	// RangeStart and RangeEnd bound a HeaderRange match (end excluded).
	RangeStart, RangeEnd int64
	// Invert inverts the result (invert_match).
	Invert bool
	// TreatMissingAsEmpty matches a missing header as the empty value
	// (treat_missing_header_as_empty); otherwise a missing header fails
	// every match but a presence check, inverted or not.
	TreatMissingAsEmpty bool
}

// Matches reports whether the request satisfies the matcher.
func (h HeaderMatch) Matches(r Request) bool {
	v, ok := r.header(h.Name)
	if h.Kind == HeaderPresent {
		return (ok == h.Present) != h.Invert
	}
	if !ok {
		if !h.TreatMissingAsEmpty {
			return false
		}
		v = ""
	}
	var m bool
	switch h.Kind {
	case HeaderString:
		m = h.String.Matches(v)
	case HeaderRange:
		n, err := strconv.ParseInt(v, 10, 64)
		m = err == nil && n >= h.RangeStart && n < h.RangeEnd
	}
	return m != h.Invert
}

// QueryMatch is Envoy's QueryParameterMatcher. Only the first value of a
// repeated parameter counts.
//
// Example: {Name "tier", String exact "gold"} matches "/?tier=gold" and
// "/?tier=gold&tier=x" but not "/?tier=x&tier=gold" nor "/"; a
// presence match {Name "beta", PresentMatch, Present true} matches
// "/?beta" and "/?beta=0".
type QueryMatch struct {
	// Name is the parameter's name.
	Name string
	// PresentMatch checks presence only: a match when the parameter's
	// presence equals Present.
	PresentMatch, Present bool
	// String compares the value when PresentMatch is false; nil checks
	// only that the parameter is there.
	String *StringMatch
}

// Matches reports whether the request's query satisfies the matcher.
func (q QueryMatch) Matches(r Request) bool {
	v, ok := r.queryParam(q.Name)
	if q.PresentMatch {
		return ok == q.Present
	}
	if !ok {
		return false
	}
	return q.String == nil || q.String.Matches(v)
}

// CookieMatch is Envoy's CookieMatcher (RouteMatch.cookies): the named
// cookie of the cookie header against a StringMatch; a missing cookie
// does not match, so Invert matches its absence.
type CookieMatch struct {
	// Name is the cookie's name.
	Name string
	// String compares the cookie's value.
	String StringMatch
	// Invert inverts the result.
	Invert bool
}

// Matches reports whether the request's cookies satisfy the matcher.
func (c CookieMatch) Matches(r Request) bool {
	v, ok := r.cookie(c.Name)
	return (ok && c.String.Matches(v)) != c.Invert
}

// PathKind is how a RouteMatch compares the path.
type PathKind int

// The path specifiers of Envoy's RouteMatch.
const (
	// PathNone: a path specifier the generator does not model (CONNECT,
	// a path match policy): the route never matches.
	PathNone PathKind = iota
	// PathPrefix: the path starts with Path.
	PathPrefix
	// PathExact: the path is Path.
	PathExact
	// PathSeparatedPrefix: the path is Path or starts with Path + "/".
	PathSeparatedPrefix
	// PathRegex: the whole path matches the RE2 expression Path.
	PathRegex
)

// RouteMatch is Envoy's RouteMatch: a path specifier, then every header,
// query parameter and cookie matcher must hold. Paths compare without
// the query string.
//
// Example: istiod renders a VirtualService match {uri: {prefix:
// /reviews}, headers: {end-user: {exact: jason}}} as {PathPrefix
// "/reviews", Headers [end-user exact jason]}: GET /reviews/0 with
// "end-user: jason" matches; without the header, or for /ratings, it
// does not.
type RouteMatch struct {
	// Kind is the path specifier.
	Kind PathKind
	// Path is the prefix, the path or the regular expression.
	Path string
	// IgnoreCase compares prefixes and paths case-insensitively
	// (case_sensitive false; no effect on PathRegex).
	IgnoreCase bool
	// Headers, Query and Cookies must all match.
	Headers []HeaderMatch
	Query   []QueryMatch
	Cookies []CookieMatch
	// Unsupported names a criterion the generator cannot evaluate
	// (dynamic metadata such as JWT claims, gRPC, TLS context, filter
	// state, runtime fraction): the route never matches. Empty when all
	// are modelled.
	Unsupported string

	re *regexp.Regexp
}

// Matches reports whether a request takes a route with this match.
func (m RouteMatch) Matches(r Request) bool {
	if m.Unsupported != "" || !m.matchesPath(r.pathOnly()) {
		return false
	}
	for _, h := range m.Headers {
		if !h.Matches(r) {
			return false
		}
	}
	for _, q := range m.Query {
		if !q.Matches(r) {
			return false
		}
	}
	for _, c := range m.Cookies {
		if !c.Matches(r) {
			return false
		}
	}
	return true
}

// matchesPath compares the path (without query) by the path specifier.
func (m RouteMatch) matchesPath(path string) bool {
	want := m.Path
	if m.IgnoreCase && m.Kind != PathRegex {
		path, want = strings.ToLower(path), strings.ToLower(want)
	}
	switch m.Kind {
	case PathPrefix:
		return strings.HasPrefix(path, want)
	case PathExact:
		return path == want
	case PathSeparatedPrefix:
		return path == want || strings.HasPrefix(path, want+"/")
	case PathRegex:
		return m.re != nil && m.re.MatchString(path)
	}
	return false
}
