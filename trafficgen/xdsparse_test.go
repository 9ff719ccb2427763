package trafficgen

import (
	"reflect"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/anypb"
)

func TestMatchesPath(t *testing.T) {
	m := func(spec any) *routev3.RouteMatch {
		r := &routev3.RouteMatch{}
		switch s := spec.(type) {
		case *routev3.RouteMatch_Prefix:
			r.PathSpecifier = s
		case *routev3.RouteMatch_Path:
			r.PathSpecifier = s
		case *routev3.RouteMatch_PathSeparatedPrefix:
			r.PathSpecifier = s
		case *routev3.RouteMatch_SafeRegex:
			r.PathSpecifier = s
		}
		return r
	}
	withHeader := m(&routev3.RouteMatch_Prefix{Prefix: "/"})
	withHeader.Headers = []*routev3.HeaderMatcher{{Name: "end-user"}}
	tests := []struct {
		name  string
		match *routev3.RouteMatch
		path  string
		want  bool
	}{
		{"prefix /", m(&routev3.RouteMatch_Prefix{Prefix: "/"}), "/reviews/0", true},
		{"other prefix", m(&routev3.RouteMatch_Prefix{Prefix: "/ratings"}), "/reviews/0", false},
		{"exact path", m(&routev3.RouteMatch_Path{Path: "/reviews/0"}), "/reviews/0", true},
		{"other exact path", m(&routev3.RouteMatch_Path{Path: "/reviews"}), "/reviews/0", false},
		{"separated prefix", m(&routev3.RouteMatch_PathSeparatedPrefix{PathSeparatedPrefix: "/reviews"}), "/reviews/0", true},
		{"separated prefix is no plain prefix", m(&routev3.RouteMatch_PathSeparatedPrefix{PathSeparatedPrefix: "/rev"}), "/reviews/0", false},
		{"regex", m(&routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: "/reviews/[0-9]+"}}), "/reviews/0", true},
		{"regex matches whole paths", m(&routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: "/rev"}}), "/reviews/0", false},
		{"header matchers need headers a plain request lacks", withHeader, "/reviews/0", false},
		{"no match", nil, "/", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := matchesPath(tt.match, tt.path); got != tt.want {
				t.Errorf("matchesPath = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestRouteClusters(t *testing.T) {
	direct := &routev3.Route{
		Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
		Action: &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{Status: 404}},
	}
	tests := []struct {
		name   string
		routes []*routev3.Route
		want   []RouteCluster
	}{
		{"weighted", []*routev3.Route{weighted("/", stableCluster, 60, canaryCluster, 40)},
			[]RouteCluster{{stableCluster, 60}, {canaryCluster, 40}}},
		{"single cluster at 100", []*routev3.Route{single("/", stableCluster)}, []RouteCluster{{stableCluster, 100}}},
		{"first matching route wins", []*routev3.Route{single("/ratings", "x"), single("/", stableCluster), single("/", "y")},
			[]RouteCluster{{stableCluster, 100}}},
		{"direct response sends nothing upstream", []*routev3.Route{direct, single("/", stableCluster)}, nil},
		{"no route matches", []*routev3.Route{single("/ratings", "x")}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := routeClusters(tt.routes, "/reviews/0"); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("routeClusters = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseRouteName(t *testing.T) {
	tests := []struct {
		name      string
		resources []*anypb.Any
		want      string
	}{
		{"the port's listener", []*anypb.Any{mustAny(t, httpListener(t, "0.0.0.0_9443", "9443")), mustAny(t, httpListener(t, "0.0.0.0_9080", "9080"))}, "9080"},
		{"no listener for the port", []*anypb.Any{mustAny(t, httpListener(t, "0.0.0.0_9443", "9443"))}, ""},
		{"a listener of the port on another address", []*anypb.Any{mustAny(t, httpListener(t, "10.96.0.10_9080", "x"))}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseRouteName(tt.resources, 9080)
			if err != nil || got != tt.want {
				t.Errorf("parseRouteName = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestSnapshotDestination(t *testing.T) {
	s := mesh(80, 20, ep("10.0.2.1", HealthHealthy))
	s.VirtualHosts[reviewsHost] = VirtualHost{Name: reviewsHost, Domains: []string{reviewsHost, "reviews", "reviews.ns"},
		Routes: append(s.VirtualHosts[reviewsHost].Routes, RouteCluster{Name: "outbound|9080||gone", Weight: 0})}
	for _, host := range []string{reviewsHost, "reviews", "Reviews.NS"} {
		d, ok := s.Destination(host)
		if !ok || d.Host != reviewsHost || len(d.Clusters) != 3 {
			t.Fatalf("Destination(%q) = %+v, %v", host, d, ok)
		}
		if c := d.Clusters[0]; !c.Known || !c.Warm || len(c.Endpoints) != 3 {
			t.Errorf("stable cluster %+v", c)
		}
		if c := d.Clusters[2]; c.Known || c.Name != "outbound|9080||gone" {
			t.Errorf("cluster missing from CDS %+v, want it unknown", c)
		}
	}
	if _, ok := s.Destination("ratings"); ok {
		t.Error("found a host that is not there")
	}
	var empty *Snapshot
	if _, ok := empty.Destination("reviews"); ok {
		t.Error("nil snapshot has a destination")
	}
}
