package contract

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
)

// Match is one entry of canary.io/match, in Flagger's match format (an
// Istio HTTPMatchRequest): a request matches when every condition of the
// entry holds; it matches the list when it matches any entry.
//
// Example (YAML):
//
//   - headers:
//     x-canary: {exact: insider}
//   - headers:
//     cookie: {regex: "^(.*?;)?(canary=always)(;.*)?$"}
//   - queryParams:
//     beta: {exact: "1"}
type Match struct {
	// Headers are conditions on request headers, by lowercase name (a
	// cookie is matched through the cookie header).
	Headers map[string]StringMatch `json:"headers,omitempty"`
	// QueryParams are conditions on query parameters, by name.
	QueryParams map[string]StringMatch `json:"queryParams,omitempty"`
}

// StringMatch is one condition: exactly one of Exact, Prefix and Regex
// (RE2 syntax, matched against the whole value, as Envoy does).
type StringMatch struct {
	Exact  string `json:"exact,omitempty"`
	Prefix string `json:"prefix,omitempty"`
	Regex  string `json:"regex,omitempty"`
}

// Limits of canary.io/match.
const (
	MaxMatches         = 10 // entries
	MaxMatchConditions = 10 // conditions per entry
)

// headerName is an HTTP header name as Istio accepts it in a match:
// lowercase token characters.
var headerName = regexp.MustCompile("^[a-z0-9!#$%&'*+.^_`|~-]+$")

// parseMatch reads canary.io/match: a YAML or JSON list of matches.
func parseMatch(v string) ([]Match, error) {
	var list []Match
	if err := decodeList(v, &list, "matches {headers, queryParams}, each condition {exact, prefix or regex} (only headers and queryParams are supported)"); err != nil {
		return nil, err
	}
	switch {
	case len(list) == 0:
		return nil, fmt.Errorf("is an empty list: name at least one match, or remove the annotation")
	case len(list) > MaxMatches:
		return nil, fmt.Errorf("has %d matches; at most %d are allowed", len(list), MaxMatches)
	}
	var problems []string
	for i, m := range list {
		where := fmt.Sprintf("match %d", i+1)
		n := len(m.Headers) + len(m.QueryParams)
		switch {
		case n == 0:
			problems = append(problems, where+": has no condition (headers or queryParams)")
		case n > MaxMatchConditions:
			problems = append(problems, fmt.Sprintf("%s: has %d conditions; at most %d are allowed", where, n, MaxMatchConditions))
		}
		for _, name := range slices.Sorted(maps.Keys(m.Headers)) {
			if !headerName.MatchString(name) {
				problems = append(problems, fmt.Sprintf("%s: header %q is not a lowercase header name", where, name))
			}
			if err := m.Headers[name].check(); err != nil {
				problems = append(problems, fmt.Sprintf("%s: header %q: %v", where, name, err))
			}
		}
		for _, name := range slices.Sorted(maps.Keys(m.QueryParams)) {
			if strings.TrimSpace(name) == "" || strings.ContainsAny(name, "&=#? ") {
				problems = append(problems, fmt.Sprintf("%s: query parameter %q is not a parameter name", where, name))
			}
			if err := m.QueryParams[name].check(); err != nil {
				problems = append(problems, fmt.Sprintf("%s: query parameter %q: %v", where, name, err))
			}
		}
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("%s", strings.Join(problems, "; "))
	}
	return list, nil
}

// check reports what is wrong with a condition: not exactly one kind, or
// a regex RE2 does not accept.
func (s StringMatch) check() error {
	set := 0
	for _, v := range []string{s.Exact, s.Prefix, s.Regex} {
		if v != "" {
			set++
		}
	}
	if set != 1 {
		return fmt.Errorf("needs exactly one of exact, prefix and regex, non-empty")
	}
	if s.Regex != "" {
		if _, err := regexp.Compile(s.Regex); err != nil {
			return fmt.Errorf("regex %q is not RE2: %v", s.Regex, strings.TrimPrefix(err.Error(), "error parsing regexp: "))
		}
	}
	return nil
}

// AsRegex is the condition as a regex matched against the whole value
// (for routers without prefix matches: the Gateway API's).
//
// Example: {prefix: "v2."} → "v2\..*".
func (s StringMatch) AsRegex() string {
	switch {
	case s.Regex != "":
		return s.Regex
	case s.Prefix != "":
		return regexp.QuoteMeta(s.Prefix) + ".*"
	}
	return "^" + regexp.QuoteMeta(s.Exact) + "$"
}
