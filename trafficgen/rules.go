package trafficgen

import (
	"math/rand/v2"
	"net/http"
	"strings"
)

// RouteRule is one route of a virtual host as the sidecar received it:
// when it applies and what it does. Istio names a VirtualService's
// routes after their `name` ("canary", or "canary.match" with a named
// match) and a Gateway API HTTPRoute's rules after the rule's name or
// "<namespace>.<httproute>.<index>".
type RouteRule struct {
	// Name is the route's name (Envoy's Route.name; may be empty).
	Name string
	// Match says which requests take the route.
	Match RouteMatch
	// Clusters are the weighted clusters of a route that forwards; a
	// route to a single cluster has it at weight 100.
	Clusters []RuleCluster
	// DirectStatus is the status of a route that answers itself (a
	// redirect or a direct response, e.g. Gateway API's 500 for a rule
	// without backends): it sends nothing upstream. 0 for a route that
	// forwards.
	DirectStatus int
	// ClusterNotFoundStatus is the status when the chosen cluster is
	// missing or not warm (cluster_not_found_response_code: 503 by
	// default; istiod asks 500 for Gateway API routes).
	ClusterNotFoundStatus int
	// Mirrors are the request mirror policies.
	Mirrors []MirrorPolicy
	// ResponseHeaders are the route's response_headers_to_add.
	ResponseHeaders []HeaderOption
}

// forwards reports whether the route sends requests upstream.
func (r RouteRule) forwards() bool { return r.DirectStatus == 0 }

// RuleCluster is a weighted cluster of a route with the response headers
// it adds when chosen.
type RuleCluster struct {
	RouteCluster
	// ResponseHeaders are the weighted cluster's response_headers_to_add
	// (istiod puts a destination's headers.response there).
	ResponseHeaders []HeaderOption
}

// MirrorPolicy is a route's request mirror policy: a share of the
// requests the route forwards is copied to another cluster.
type MirrorPolicy struct {
	// Cluster is the cluster the copies go to.
	Cluster string
	// Fraction is the share of requests mirrored.
	Fraction Fraction
	// KeepHost keeps the Host of the copy as it is
	// (disable_shadow_host_suffix_append, istiod's default since Istio
	// 1.28); otherwise "-shadow" is appended to it.
	KeepHost bool
}

// Fraction is Envoy's FractionalPercent: Numerator out of Denominator
// (100, 10000 or 1000000).
type Fraction struct {
	// Numerator is the share's numerator.
	Numerator uint32
	// Denominator is 100 (HUNDRED), 10000 (TEN_THOUSAND) or 1000000
	// (MILLION).
	Denominator uint32
}

// All is the fraction of a mirror policy without runtime_fraction.
var All = Fraction{Numerator: 100, Denominator: 100}

// Sample draws whether one request falls in the fraction, as Envoy does:
// a random number in [0, Denominator) below Numerator. A numerator at or
// above the denominator is capped at 100% and a zero numerator never
// samples; neither draws.
//
// Example: istiod renders mirrorPercentage 12.5 as 125000/MILLION: about
// one request in eight is mirrored.
func (f Fraction) Sample(rnd *rand.Rand) bool {
	switch {
	case f.Numerator >= f.Denominator:
		return true
	case f.Numerator == 0:
		return false
	}
	return rnd.Uint32N(f.Denominator) < f.Numerator
}

// HeaderAction is Envoy's HeaderValueOption.HeaderAppendAction.
type HeaderAction int

// The append actions.
const (
	// AppendIfExistsOrAdd adds a value, after any existing ones (Envoy's
	// default; istiod renders headers.response.add so).
	AppendIfExistsOrAdd HeaderAction = iota
	// AddIfAbsent adds the header only when it is absent.
	AddIfAbsent
	// OverwriteIfExistsOrAdd replaces the header's values (istiod's
	// rendering of headers.response.set).
	OverwriteIfExistsOrAdd
	// OverwriteIfExists replaces the values of a header that exists.
	OverwriteIfExists
)

// HeaderOption is one header to add (Envoy's HeaderValueOption).
type HeaderOption struct {
	// Name and Value are the header.
	Name, Value string
	// Action says how it combines with the header's values.
	Action HeaderAction
	// KeepEmpty adds the header even when Value is empty
	// (keep_empty_value); Envoy skips empty values otherwise.
	KeepEmpty bool
}

// applyHeaderOptions adds headers to h in order.
func applyHeaderOptions(h http.Header, opts []HeaderOption) {
	for _, o := range opts {
		if o.Value == "" && !o.KeepEmpty {
			continue
		}
		_, exists := h[http.CanonicalHeaderKey(o.Name)]
		switch o.Action {
		case AppendIfExistsOrAdd:
			h.Add(o.Name, o.Value)
		case AddIfAbsent:
			if !exists {
				h.Add(o.Name, o.Value)
			}
		case OverwriteIfExistsOrAdd:
			h.Set(o.Name, o.Value)
		case OverwriteIfExists:
			if exists {
				h.Set(o.Name, o.Value)
			}
		}
	}
}

// Outcome is how the source sidecar handled one request.
type Outcome struct {
	// Matched reports whether a route matched; Route is its name.
	Matched bool
	Route   string
	// Pick is the upstream choice (or the sidecar's own answer).
	Pick Pick
	// Shadows are the mirrored copies sent.
	Shadows []Shadow
	// ResponseHeaders are the headers the sidecar added to the response
	// (Set-Cookie among them).
	ResponseHeaders http.Header
}

// Shadow is a mirrored copy of a request.
type Shadow struct {
	// Cluster is the mirror cluster.
	Cluster string
	// Authority is the copy's Host: the request's with "-shadow"
	// appended unless the policy keeps it.
	Authority string
	// Pick is the copy's endpoint, or why it has none (the copy then
	// fails inside the source sidecar, which reports nothing).
	Pick Pick
}

// RouteRequest routes one request through a virtual host as Envoy does:
// the first route whose match holds wins; a route that answers itself
// sends nothing upstream; a route that forwards picks a weighted cluster
// and an endpoint as Route does. When the primary request got an
// endpoint, each mirror policy of the route sends a copy with its
// fraction, to an endpoint of its cluster chosen the same way (Envoy
// shadows nothing when the primary fails in the sidecar, nor to a mirror
// cluster it does not have or has not warmed). The response carries the
// response headers of the weighted cluster, the route, the virtual host
// and the route configuration, applied in that order (reversed with
// most_specific_header_mutations_wins), also on the sidecar's own
// answers of a matched route. No route: a 404 (NR) without headers.
//
// Example: routes [canary-cookie: cookie ~ "canary=1" → reviews-canary;
// weighted: reviews 90, reviews-canary 10 with Set-Cookie "canary=1"
// on the canary cluster]. A request without the cookie takes
// "weighted"; if it lands on reviews-canary its response carries
// "Set-Cookie: canary=1", and the client's next request, with the
// cookie, takes "canary-cookie".
func RouteRequest(vh VirtualHost, clusters map[string]Cluster, req Request, rnd *rand.Rand) Outcome {
	rules := vh.Rules
	if rules == nil && len(vh.Routes) > 0 {
		rules = []RouteRule{legacyRule(vh.Routes)}
	}
	for _, rule := range rules {
		if !rule.Match.Matches(req) {
			continue
		}
		return routeBy(rule, vh, clusters, req, rnd)
	}
	return Outcome{Pick: Pick{Failure: FailNoRoute, Status: FailNoRoute.Code()}}
}

// legacyRule is the catch-all route of a VirtualHost built without
// Rules (by hand): every request goes by its Routes.
func legacyRule(routes []RouteCluster) RouteRule {
	r := RouteRule{Match: RouteMatch{Kind: PathPrefix, Path: "/"}}
	for _, rc := range routes {
		r.Clusters = append(r.Clusters, RuleCluster{RouteCluster: rc})
	}
	return r
}

// routeBy handles a request that matched rule.
func routeBy(rule RouteRule, vh VirtualHost, clusters map[string]Cluster, req Request, rnd *rand.Rand) Outcome {
	out := Outcome{Matched: true, Route: rule.Name, ResponseHeaders: http.Header{}}
	var chosen []HeaderOption
	switch {
	case !rule.forwards():
		out.Pick = Pick{Failure: FailDirectResponse, Status: rule.DirectStatus}
	default:
		d := Destination{Host: vh.Name}
		for _, c := range rule.Clusters {
			d.Clusters = append(d.Clusters, resolve(clusters, c.RouteCluster))
		}
		out.Pick = Route(d, rnd)
		if out.Pick.Failure == FailNoCluster && rule.ClusterNotFoundStatus != 0 {
			out.Pick.Status = rule.ClusterNotFoundStatus
		}
		for _, c := range rule.Clusters {
			if c.Name == out.Pick.Cluster {
				chosen = c.ResponseHeaders
				break
			}
		}
		if out.Pick.Failure == FailNone {
			out.Shadows = mirror(rule.Mirrors, clusters, req.Authority, rnd)
		}
	}
	levels := [][]HeaderOption{chosen, rule.ResponseHeaders, vh.ResponseHeaders, vh.ConfigResponseHeaders}
	if vh.MostSpecificHeaderMutationsWins {
		levels = [][]HeaderOption{vh.ConfigResponseHeaders, vh.ResponseHeaders, rule.ResponseHeaders, chosen}
	}
	for _, l := range levels {
		applyHeaderOptions(out.ResponseHeaders, l)
	}
	return out
}

// mirror sends the copies of a forwarded request.
func mirror(policies []MirrorPolicy, clusters map[string]Cluster, authority string, rnd *rand.Rand) []Shadow {
	var out []Shadow
	for _, p := range policies {
		if !p.Fraction.Sample(rnd) {
			continue
		}
		c, ok := clusters[p.Cluster]
		if !ok || !c.Warm {
			continue
		}
		s := Shadow{Cluster: p.Cluster, Authority: authority, Pick: Pick{Cluster: p.Cluster}}
		if !p.KeepHost {
			s.Authority = ShadowHost(authority)
		}
		if ep, ok := pickEndpoint(c.Endpoints, rnd); ok {
			s.Pick.Endpoint = ep
		} else {
			s.Pick.Failure, s.Pick.Status = FailNoHealthyUpstream, FailNoHealthyUpstream.Code()
		}
		out = append(out, s)
	}
	return out
}

// ShadowHost is the Host Envoy gives a mirrored request: "-shadow"
// appended to the host, before any port.
//
// Example: "reviews:9080" becomes "reviews-shadow:9080";
// "reviews.ns.svc.cluster.local" becomes
// "reviews.ns.svc.cluster.local-shadow".
func ShadowHost(authority string) string {
	if i := strings.LastIndexByte(authority, ':'); i >= 0 && !strings.Contains(authority[i:], "]") {
		return authority[:i] + "-shadow" + authority[i:]
	}
	return authority + "-shadow"
}

// resolve finds a route's cluster among the sidecar's clusters.
func resolve(clusters map[string]Cluster, rc RouteCluster) WeightedCluster {
	c, known := clusters[rc.Name]
	if !known {
		c = Cluster{Name: rc.Name}
	}
	return WeightedCluster{Cluster: c, Known: known, Weight: rc.Weight}
}
