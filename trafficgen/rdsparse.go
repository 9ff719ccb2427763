//lint:file-ignore SA1019 Envoy still honours the deprecated header matcher fields and HeaderValueOption.append: the router reads them as Envoy does.

package trafficgen

import (
	"fmt"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
)

// parseVirtualHost decodes a virtual host of a route configuration: all
// its routes, and the clusters of the route a plain request for path
// takes.
func parseVirtualHost(rc *routev3.RouteConfiguration, vh *routev3.VirtualHost, path string) (VirtualHost, error) {
	out := VirtualHost{
		Name:                            vh.GetName(),
		Domains:                         vh.GetDomains(),
		ResponseHeaders:                 parseHeaderOptions(vh.GetResponseHeadersToAdd()),
		ConfigResponseHeaders:           parseHeaderOptions(rc.GetResponseHeadersToAdd()),
		MostSpecificHeaderMutationsWins: rc.GetMostSpecificHeaderMutationsWins(),
	}
	for _, r := range vh.GetRoutes() {
		rule, err := parseRule(r)
		if err != nil {
			return VirtualHost{}, fmt.Errorf("virtual host %s: %w", vh.GetName(), err)
		}
		out.Rules = append(out.Rules, rule)
	}
	out.Routes = plainClusters(out.Rules, path)
	return out, nil
}

// plainClusters returns the weighted clusters of the first rule that a
// plain request (GET, no headers) for path takes; nil when it sends
// nothing upstream or no rule takes it.
func plainClusters(rules []RouteRule, path string) []RouteCluster {
	req := Request{Path: path}
	for _, r := range rules {
		if !r.Match.Matches(req) {
			continue
		}
		var out []RouteCluster
		for _, c := range r.Clusters {
			out = append(out, c.RouteCluster)
		}
		return out
	}
	return nil
}

// parseRule decodes one route. A route that neither forwards nor answers
// itself in a way the generator models (a filter action, a non-forwarding
// action) is kept as a direct response with Envoy's status for it.
func parseRule(r *routev3.Route) (RouteRule, error) {
	m, err := parseRouteMatch(r.GetMatch())
	if err != nil {
		return RouteRule{}, fmt.Errorf("route %q: %w", r.GetName(), err)
	}
	rule := RouteRule{Name: r.GetName(), Match: m, ResponseHeaders: parseHeaderOptions(r.GetResponseHeadersToAdd())}
	switch a := r.GetAction().(type) {
	case *routev3.Route_Route:
		parseRouteAction(&rule, a.Route)
	case *routev3.Route_Redirect:
		rule.DirectStatus = redirectStatus(a.Redirect.GetResponseCode())
	case *routev3.Route_DirectResponse:
		rule.DirectStatus = int(a.DirectResponse.GetStatus())
	default:
		// A non-forwarding action: Envoy answers 404 for want of a route
		// entry it can follow.
		rule.DirectStatus = 404
	}
	return rule, nil
}

// parseRouteAction reads the clusters, the mirror policies and the
// cluster-not-found status of a forwarding route.
func parseRouteAction(rule *RouteRule, a *routev3.RouteAction) {
	if c := a.GetCluster(); c != "" {
		rule.Clusters = []RuleCluster{{RouteCluster: RouteCluster{Name: c, Weight: 100}}}
	}
	for _, wc := range a.GetWeightedClusters().GetClusters() {
		rule.Clusters = append(rule.Clusters, RuleCluster{
			RouteCluster:    RouteCluster{Name: wc.GetName(), Weight: wc.GetWeight().GetValue()},
			ResponseHeaders: parseHeaderOptions(wc.GetResponseHeadersToAdd()),
		})
	}
	switch a.GetClusterNotFoundResponseCode() {
	case routev3.RouteAction_NOT_FOUND:
		rule.ClusterNotFoundStatus = 404
	case routev3.RouteAction_INTERNAL_SERVER_ERROR:
		rule.ClusterNotFoundStatus = 500
	default:
		rule.ClusterNotFoundStatus = 503
	}
	for _, p := range a.GetRequestMirrorPolicies() {
		if p.GetCluster() == "" {
			// cluster_header: istiod does not use it.
			continue
		}
		rule.Mirrors = append(rule.Mirrors, MirrorPolicy{
			Cluster:  p.GetCluster(),
			Fraction: parseFraction(p.GetRuntimeFraction()),
			KeepHost: p.GetDisableShadowHostSuffixAppend(),
		})
	}
}

// parseFraction reads a runtime fraction's default value; no fraction is
// every request (a mirror policy's default). The runtime key is ignored:
// a sidecar has no runtime overrides.
func parseFraction(f *corev3.RuntimeFractionalPercent) Fraction {
	if f == nil {
		return All
	}
	d := f.GetDefaultValue()
	den := uint32(100)
	switch d.GetDenominator() {
	case typev3.FractionalPercent_TEN_THOUSAND:
		den = 10000
	case typev3.FractionalPercent_MILLION:
		den = 1000000
	}
	return Fraction{Numerator: d.GetNumerator(), Denominator: den}
}

// redirectStatus is the status of a redirect's response code.
func redirectStatus(c routev3.RedirectAction_RedirectResponseCode) int {
	switch c {
	case routev3.RedirectAction_FOUND:
		return 302
	case routev3.RedirectAction_SEE_OTHER:
		return 303
	case routev3.RedirectAction_TEMPORARY_REDIRECT:
		return 307
	case routev3.RedirectAction_PERMANENT_REDIRECT:
		return 308
	}
	return 301
}

// parseHeaderOptions decodes response_headers_to_add. The deprecated
// append field, when set, overrides append_action: true appends, false
// overwrites.
func parseHeaderOptions(opts []*corev3.HeaderValueOption) []HeaderOption {
	var out []HeaderOption
	for _, o := range opts {
		h := HeaderOption{Name: o.GetHeader().GetKey(), Value: o.GetHeader().GetValue(), KeepEmpty: o.GetKeepEmptyValue()}
		if raw := o.GetHeader().GetRawValue(); len(raw) > 0 {
			h.Value = string(raw)
		}
		switch o.GetAppendAction() {
		case corev3.HeaderValueOption_ADD_IF_ABSENT:
			h.Action = AddIfAbsent
		case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD:
			h.Action = OverwriteIfExistsOrAdd
		case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS:
			h.Action = OverwriteIfExists
		}
		//nolint:staticcheck // the deprecated field still takes precedence in Envoy.
		if a := o.GetAppend(); a != nil {
			h.Action = OverwriteIfExistsOrAdd
			if a.GetValue() {
				h.Action = AppendIfExistsOrAdd
			}
		}
		out = append(out, h)
	}
	return out
}

// parseRouteMatch decodes a route match. A nil match never matches.
func parseRouteMatch(m *routev3.RouteMatch) (RouteMatch, error) {
	if m == nil {
		return RouteMatch{Unsupported: "no match"}, nil
	}
	out := RouteMatch{IgnoreCase: m.GetCaseSensitive() != nil && !m.GetCaseSensitive().GetValue()}
	switch p := m.GetPathSpecifier().(type) {
	case *routev3.RouteMatch_Prefix:
		out.Kind, out.Path = PathPrefix, p.Prefix
	case *routev3.RouteMatch_Path:
		out.Kind, out.Path = PathExact, p.Path
	case *routev3.RouteMatch_PathSeparatedPrefix:
		out.Kind, out.Path = PathSeparatedPrefix, p.PathSeparatedPrefix
	case *routev3.RouteMatch_SafeRegex:
		re, err := fullRegexp(p.SafeRegex.GetRegex())
		if err != nil {
			return RouteMatch{}, fmt.Errorf("path regex: %w", err)
		}
		out.Kind, out.Path, out.re = PathRegex, p.SafeRegex.GetRegex(), re
	default:
		out.Kind = PathNone
	}
	for _, h := range m.GetHeaders() {
		hm, err := parseHeaderMatch(h)
		if err != nil {
			return RouteMatch{}, err
		}
		out.Headers = append(out.Headers, hm)
	}
	for _, q := range m.GetQueryParameters() {
		qm := QueryMatch{Name: q.GetName()}
		switch s := q.GetQueryParameterMatchSpecifier().(type) {
		case *routev3.QueryParameterMatcher_PresentMatch:
			qm.PresentMatch, qm.Present = true, s.PresentMatch
		case *routev3.QueryParameterMatcher_StringMatch:
			sm, err := parseStringMatch(s.StringMatch)
			if err != nil {
				return RouteMatch{}, fmt.Errorf("query parameter %s: %w", q.GetName(), err)
			}
			qm.String = &sm
		}
		out.Query = append(out.Query, qm)
	}
	for _, c := range m.GetCookies() {
		sm, err := parseStringMatch(c.GetStringMatch())
		if err != nil {
			return RouteMatch{}, fmt.Errorf("cookie %s: %w", c.GetName(), err)
		}
		out.Cookies = append(out.Cookies, CookieMatch{Name: c.GetName(), String: sm, Invert: c.GetInvertMatch()})
	}
	var unsupported []string
	if len(m.GetDynamicMetadata()) > 0 {
		unsupported = append(unsupported, "dynamic metadata")
	}
	if m.GetGrpc() != nil {
		unsupported = append(unsupported, "grpc")
	}
	if m.GetTlsContext() != nil {
		unsupported = append(unsupported, "tls context")
	}
	if len(m.GetFilterState()) > 0 {
		unsupported = append(unsupported, "filter state")
	}
	if m.GetRuntimeFraction() != nil {
		unsupported = append(unsupported, "runtime fraction")
	}
	if out.Kind == PathNone {
		unsupported = append(unsupported, "path specifier")
	}
	out.Unsupported = strings.Join(unsupported, ", ")
	return out, nil
}

// parseHeaderMatch decodes a header matcher, the deprecated fields
// included; a matcher without specifier checks presence.
func parseHeaderMatch(h *routev3.HeaderMatcher) (HeaderMatch, error) {
	out := HeaderMatch{Name: strings.ToLower(h.GetName()), Invert: h.GetInvertMatch(), TreatMissingAsEmpty: h.GetTreatMissingHeaderAsEmpty()}
	var (
		sm  StringMatch
		err error
	)
	//nolint:staticcheck // the deprecated fields are still accepted by Envoy.
	switch s := h.GetHeaderMatchSpecifier().(type) {
	case nil:
		out.Kind, out.Present = HeaderPresent, true
		return out, nil
	case *routev3.HeaderMatcher_PresentMatch:
		out.Kind, out.Present = HeaderPresent, s.PresentMatch
		return out, nil
	case *routev3.HeaderMatcher_RangeMatch:
		out.Kind, out.RangeStart, out.RangeEnd = HeaderRange, s.RangeMatch.GetStart(), s.RangeMatch.GetEnd()
		return out, nil
	case *routev3.HeaderMatcher_ExactMatch:
		sm, err = newStringMatch(StringExact, s.ExactMatch, false)
	case *routev3.HeaderMatcher_PrefixMatch:
		sm, err = newStringMatch(StringPrefix, s.PrefixMatch, false)
	case *routev3.HeaderMatcher_SuffixMatch:
		sm, err = newStringMatch(StringSuffix, s.SuffixMatch, false)
	case *routev3.HeaderMatcher_ContainsMatch:
		sm, err = newStringMatch(StringContains, s.ContainsMatch, false)
	case *routev3.HeaderMatcher_SafeRegexMatch:
		sm, err = newStringMatch(StringRegex, s.SafeRegexMatch.GetRegex(), false)
	case *routev3.HeaderMatcher_StringMatch:
		sm, err = parseStringMatch(s.StringMatch)
	default:
		return HeaderMatch{}, fmt.Errorf("header %s: unknown match specifier %T", h.GetName(), s)
	}
	if err != nil {
		return HeaderMatch{}, fmt.Errorf("header %s: %w", h.GetName(), err)
	}
	out.Kind, out.String = HeaderString, sm
	return out, nil
}

// parseStringMatch decodes a StringMatcher.
func parseStringMatch(m *matcherv3.StringMatcher) (StringMatch, error) {
	ic := m.GetIgnoreCase()
	switch p := m.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
		return newStringMatch(StringExact, p.Exact, ic)
	case *matcherv3.StringMatcher_Prefix:
		return newStringMatch(StringPrefix, p.Prefix, ic)
	case *matcherv3.StringMatcher_Suffix:
		return newStringMatch(StringSuffix, p.Suffix, ic)
	case *matcherv3.StringMatcher_Contains:
		return newStringMatch(StringContains, p.Contains, ic)
	case *matcherv3.StringMatcher_SafeRegex:
		return newStringMatch(StringRegex, p.SafeRegex.GetRegex(), false)
	}
	return StringMatch{}, fmt.Errorf("unsupported string matcher %T", m.GetMatchPattern())
}
