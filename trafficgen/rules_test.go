//lint:file-ignore SA1019 Envoy still honours the deprecated header matcher fields and HeaderValueOption.append: the router reads them as Envoy does.

package trafficgen

import (
	"math"
	"net/http"
	"reflect"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// parsedHost is a virtual host of routes, decoded as the client decodes
// istiod's.
func parsedHost(t *testing.T, rc *routev3.RouteConfiguration, routes ...*routev3.Route) VirtualHost {
	t.Helper()
	if rc == nil {
		rc = &routev3.RouteConfiguration{}
	}
	vh, err := parseVirtualHost(rc, vhost(reviewsHost, routes...), "/")
	if err != nil {
		t.Fatal(err)
	}
	return vh
}

// clusters are the sidecar's clusters: three stable endpoints, one
// canary endpoint.
func clusters() map[string]Cluster { return mesh(0, 0, ep("10.0.2.1", HealthHealthy)).Clusters }

func TestRouteRequestTakesTheFirstMatchingRoute(t *testing.T) {
	redirect := named("moved", &routev3.Route{
		Match:  prefixMatch("/old"),
		Action: &routev3.Route_Redirect{Redirect: &routev3.RedirectAction{ResponseCode: routev3.RedirectAction_FOUND}},
	})
	noBackends := named("ns.reviews.0", &routev3.Route{
		Match:  prefixMatch("/gone"),
		Action: &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{Status: 500}},
	})
	gatewayMissing := named("ns.reviews.1", single("/missing", "outbound|9080||nothing.ns.svc.cluster.local"))
	gatewayMissing.GetRoute().ClusterNotFoundResponseCode = routev3.RouteAction_INTERNAL_SERVER_ERROR
	vh := parsedHost(t, nil,
		redirect, noBackends, gatewayMissing,
		named("jason", matching(single("/", canaryCluster), header("end-user", exact("jason")))),
		named("gold", func() *routev3.Route {
			r := single("/", canaryCluster)
			r.Match.QueryParameters = []*routev3.QueryParameterMatcher{query("tier", exact("gold"))}
			return r
		}()),
		named("default", single("/", stableCluster)),
	)
	tests := []struct {
		name        string
		req         Request
		wantRoute   string
		wantCluster string
		wantFailure Failure
		wantStatus  int
	}{
		{"plain request: the default route", get("/reviews/0"), "default", stableCluster, FailNone, 0},
		{"with the header: its route, though the default matches too", get("/reviews/0", "end-user", "jason"), "jason", canaryCluster, FailNone, 0},
		{"with the query parameter", get("/reviews/0?tier=gold"), "gold", canaryCluster, FailNone, 0},
		{"a redirect answers itself", get("/old/x", "end-user", "jason"), "moved", "", FailDirectResponse, 302},
		{"a direct response answers itself (an HTTPRoute rule without backends)", get("/gone"), "ns.reviews.0", "", FailDirectResponse, 500},
		{"a missing cluster of an HTTPRoute: 500, not 503", get("/missing"), "ns.reviews.1", "outbound|9080||nothing.ns.svc.cluster.local", FailNoCluster, 500},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := RouteRequest(vh, clusters(), tt.req, seeded())
			if !out.Matched || out.Route != tt.wantRoute || out.Pick.Cluster != tt.wantCluster || out.Pick.Failure != tt.wantFailure || out.Pick.Status != tt.wantStatus {
				t.Errorf("outcome %+v, want route %q, cluster %q, failure %q, status %d", out, tt.wantRoute, tt.wantCluster, tt.wantFailure, tt.wantStatus)
			}
		})
	}

	t.Run("no route: a 404 NR", func(t *testing.T) {
		only := parsedHost(t, nil, named("jason", matching(single("/", canaryCluster), header("end-user", exact("jason")))))
		out := RouteRequest(only, clusters(), get("/"), seeded())
		if out.Matched || out.Pick.Failure != FailNoRoute || out.Pick.Status != 404 {
			t.Errorf("outcome %+v, want no route", out)
		}
	})
	t.Run("a virtual host built without rules routes by its Routes", func(t *testing.T) {
		legacy := VirtualHost{Name: reviewsHost, Routes: []RouteCluster{{stableCluster, 100}}}
		out := RouteRequest(legacy, clusters(), get("/x", "end-user", "jason"), seeded())
		if out.Pick.Cluster != stableCluster || out.Pick.Failure != FailNone {
			t.Errorf("outcome %+v", out)
		}
	})
}

func TestFractionSample(t *testing.T) {
	tests := []struct {
		name string
		f    Fraction
		want float64
	}{
		{"no runtime_fraction: every request", parseFraction(nil), 1},
		{"0%", Fraction{0, 100}, 0},
		{"100%", Fraction{100, 100}, 1},
		{"numerator above the denominator: capped at 100%", Fraction{150, 100}, 1},
		{"50/HUNDRED", Fraction{50, 100}, 0.5},
		{"2500/TEN_THOUSAND", Fraction{2500, 10000}, 0.25},
		{"istiod's mirrorPercentage 12.5: 125000/MILLION", Fraction{125000, 1000000}, 0.125},
		{"1/MILLION", Fraction{1, 1000000}, 0.000001},
	}
	const n = 40000
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rnd := seeded()
			hits := 0
			for range n {
				if tt.f.Sample(rnd) {
					hits++
				}
			}
			got := float64(hits) / n
			if tt.want == 0 || tt.want == 1 {
				if got != tt.want {
					t.Fatalf("share %v, want exactly %v", got, tt.want)
				}
				return
			}
			if tol := 5 * math.Sqrt(tt.want*(1-tt.want)/n); math.Abs(got-tt.want) > tol+1.0/n {
				t.Errorf("share %.5f, want %.5f ± %.5f", got, tt.want, tol)
			}
		})
	}
}

func TestParseFraction(t *testing.T) {
	for d, want := range map[typev3.FractionalPercent_DenominatorType]uint32{
		typev3.FractionalPercent_HUNDRED: 100, typev3.FractionalPercent_TEN_THOUSAND: 10000, typev3.FractionalPercent_MILLION: 1000000,
	} {
		f := parseFraction(&corev3.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{Numerator: 7, Denominator: d}})
		if f != (Fraction{7, want}) {
			t.Errorf("%v: %+v", d, f)
		}
	}
}

func TestRouteRequestMirrors(t *testing.T) {
	unhealthy := clusters()
	c := unhealthy[canaryCluster]
	c.Endpoints = []Endpoint{ep("10.0.2.1", HealthUnhealthy)}
	unhealthy[canaryCluster] = c
	suffixed := single("/", stableCluster)
	suffixed.GetRoute().RequestMirrorPolicies = []*routev3.RouteAction_RequestMirrorPolicy{{Cluster: canaryCluster}}
	tests := []struct {
		name          string
		route         *routev3.Route
		clusters      map[string]Cluster
		share         float64 // of the requests with a copy
		wantAuthority string
		wantFailure   Failure
	}{
		{"istiod's mirrorPercentage 100: every request, host kept", mirrored(single("/", stableCluster), canaryCluster, 100), clusters(), 1, "reviews:9080", FailNone},
		{"mirrorPercentage 30", mirrored(single("/", stableCluster), canaryCluster, 30), clusters(), 0.3, "reviews:9080", FailNone},
		{"no fraction, suffix not disabled: every request, -shadow host", suffixed, clusters(), 1, "reviews-shadow:9080", FailNone},
		{"a mirror cluster the sidecar lacks: no copy", mirrored(single("/", stableCluster), "outbound|9080||nothing.ns.svc.cluster.local", 100), clusters(), 0, "", FailNone},
		{"a mirror cluster without healthy endpoint: copies that fail in the sidecar", mirrored(single("/", stableCluster), canaryCluster, 100), unhealthy, 1, "reviews:9080", FailNoHealthyUpstream},
		{"the primary fails: no copy", mirrored(single("/", "outbound|9080||nothing.ns.svc.cluster.local"), canaryCluster, 100), clusters(), 0, "", FailNone},
	}
	const n = 20000
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vh := parsedHost(t, nil, tt.route)
			rnd := seeded()
			copies := 0
			for range n {
				out := RouteRequest(vh, tt.clusters, get("/reviews/0"), rnd)
				for _, s := range out.Shadows {
					copies++
					if s.Cluster != canaryCluster || s.Authority != tt.wantAuthority || s.Pick.Failure != tt.wantFailure {
						t.Fatalf("copy %+v, want to %s with host %q, failure %q", s, canaryCluster, tt.wantAuthority, tt.wantFailure)
					}
					if s.Pick.Failure == FailNone && s.Pick.Endpoint.Address != "10.0.2.1" {
						t.Fatalf("copy to endpoint %+v", s.Pick.Endpoint)
					}
				}
			}
			got := float64(copies) / n
			if tol := 5 * math.Sqrt(tt.share*(1-tt.share)/n); math.Abs(got-tt.share) > tol {
				t.Errorf("share of requests mirrored %.4f, want %.2f ± %.4f", got, tt.share, tol)
			}
		})
	}
}

func TestShadowHost(t *testing.T) {
	for in, want := range map[string]string{
		"reviews:9080":                      "reviews-shadow:9080",
		"reviews":                           "reviews-shadow",
		"reviews.ns.svc.cluster.local:9080": "reviews.ns.svc.cluster.local-shadow:9080",
		"[fd00::1]":                         "[fd00::1]-shadow",
		"[fd00::1]:9080":                    "[fd00::1]-shadow:9080",
	} {
		if got := ShadowHost(in); got != want {
			t.Errorf("ShadowHost(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRouteRequestResponseHeaders(t *testing.T) {
	opt := func(k, v string, a corev3.HeaderValueOption_HeaderAppendAction) *corev3.HeaderValueOption {
		return &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: k, Value: v}, AppendAction: a}
	}
	const (
		add = corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD
		set = corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD
	)
	withHeaders := func(r *routev3.Route, opts ...*corev3.HeaderValueOption) *routev3.Route {
		r.ResponseHeadersToAdd = opts
		return r
	}
	onCluster := func(r *routev3.Route, i int, opts ...*corev3.HeaderValueOption) *routev3.Route {
		r.GetRoute().GetWeightedClusters().Clusters[i].ResponseHeadersToAdd = opts
		return r
	}
	direct := &routev3.Route{Match: prefixMatch("/"), Action: &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{Status: 500}}}
	tests := []struct {
		name       string
		rc         *routev3.RouteConfiguration
		vhHeaders  []*corev3.HeaderValueOption
		route      *routev3.Route
		clusters   map[string]Cluster
		wantHeader http.Header
	}{
		{"a VirtualService's headers.response.add: Set-Cookie on the route", nil, nil,
			withHeaders(single("/", stableCluster), setCookie("a=1"), setCookie("b=2")), clusters(),
			http.Header{"Set-Cookie": {"a=1", "b=2"}}},
		{"a destination's headers on the weighted cluster chosen only", nil, nil,
			onCluster(weighted("/", stableCluster, 100, canaryCluster, 0), 1, setCookie("canary=1")), clusters(),
			http.Header{}},
		{"the chosen weighted cluster's headers", nil, nil,
			onCluster(weighted("/", stableCluster, 0, canaryCluster, 100), 1, setCookie("canary=1")), clusters(),
			http.Header{"Set-Cookie": {"canary=1"}}},
		{"cluster, route, virtual host, configuration in order: the outer set wins",
			&routev3.RouteConfiguration{ResponseHeadersToAdd: []*corev3.HeaderValueOption{opt("x-level", "config", set)}},
			[]*corev3.HeaderValueOption{opt("x-level", "vhost", add)},
			onCluster(withHeaders(weighted("/", stableCluster, 100), opt("x-level", "route", add)), 0, opt("x-level", "cluster", add)), clusters(),
			http.Header{"X-Level": {"config"}}},
		{"most_specific_header_mutations_wins: the inner set wins",
			&routev3.RouteConfiguration{MostSpecificHeaderMutationsWins: true, ResponseHeadersToAdd: []*corev3.HeaderValueOption{opt("x-level", "config", add)}},
			[]*corev3.HeaderValueOption{opt("x-level", "vhost", add)},
			withHeaders(single("/", stableCluster), opt("x-level", "route", set)), clusters(),
			http.Header{"X-Level": {"route"}}},
		{"add only if absent; empty values skipped", nil, nil,
			withHeaders(single("/", stableCluster), opt("x-a", "1", add), opt("x-a", "2", corev3.HeaderValueOption_ADD_IF_ABSENT),
				opt("x-b", "3", corev3.HeaderValueOption_OVERWRITE_IF_EXISTS), opt("x-c", "", add)), clusters(),
			http.Header{"X-A": {"1"}}},
		{"the deprecated append=false overwrites", nil, nil,
			withHeaders(single("/", stableCluster), opt("x-a", "1", add),
				&corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: "x-a", Value: "2"}, Append: wrapperspb.Bool(false)}), clusters(),
			http.Header{"X-A": {"2"}}},
		{"on the sidecar's own answer of a matched route", nil, nil,
			withHeaders(single("/", "outbound|9080||nothing.ns.svc.cluster.local"), setCookie("a=1")), clusters(),
			http.Header{"Set-Cookie": {"a=1"}}},
		{"on a direct response", nil, nil, withHeaders(direct, setCookie("a=1")), clusters(),
			http.Header{"Set-Cookie": {"a=1"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := tt.rc
			if rc == nil {
				rc = &routev3.RouteConfiguration{}
			}
			v := vhost(reviewsHost, tt.route)
			v.ResponseHeadersToAdd = tt.vhHeaders
			vh, err := parseVirtualHost(rc, v, "/")
			if err != nil {
				t.Fatal(err)
			}
			out := RouteRequest(vh, tt.clusters, get("/"), seeded())
			if !reflect.DeepEqual(out.ResponseHeaders, tt.wantHeader) {
				t.Errorf("response headers %v, want %v", out.ResponseHeaders, tt.wantHeader)
			}
		})
	}
}

func TestParseRoutesKeepsEveryRoute(t *testing.T) {
	routes := append(stickyCanaryRoutes(), mirrored(named("mirror", single("/", stableCluster)), canaryCluster, 12.5))
	got, found, err := parseRoutes([]*anypb.Any{mustAny(t, routeConfig("9080", vhost(reviewsHost, routes...)))}, "9080", "/reviews/0")
	if err != nil || !found {
		t.Fatalf("parseRoutes: %v, found %v", err, found)
	}
	vh := got[reviewsHost]
	var names []string
	for _, r := range vh.Rules {
		names = append(names, r.Name)
	}
	if !reflect.DeepEqual(names, []string{"sticky", "split", "mirror"}) {
		t.Fatalf("routes %v", names)
	}
	// A plain request takes the split (the sticky route wants a cookie).
	if !reflect.DeepEqual(vh.Routes, []RouteCluster{{stableCluster, 90}, {canaryCluster, 10}}) {
		t.Errorf("plain request's clusters %+v", vh.Routes)
	}
	if c := vh.Rules[1].Clusters[1]; len(c.ResponseHeaders) != 1 || c.ResponseHeaders[0] != (HeaderOption{Name: "set-cookie", Value: "canary=1; Path=/; Max-Age=3600"}) {
		t.Errorf("canary cluster's response headers %+v", c.ResponseHeaders)
	}
	if m := vh.Rules[2].Mirrors; !reflect.DeepEqual(m, []MirrorPolicy{{Cluster: canaryCluster, Fraction: Fraction{125000, 1000000}, KeepHost: true}}) {
		t.Errorf("mirror policies %+v", m)
	}
	if s := vh.Rules[0].ClusterNotFoundStatus; s != 503 {
		t.Errorf("cluster-not-found status %d, want Envoy's default 503", s)
	}

	bad := named("bad", matching(single("/", canaryCluster), header("cookie", regex("("))))
	if _, _, err := parseRoutes([]*anypb.Any{mustAny(t, routeConfig("9080", vhost(reviewsHost, bad)))}, "9080", "/"); err == nil {
		t.Error("a route with an invalid regex was accepted; Envoy rejects the configuration")
	}
}
