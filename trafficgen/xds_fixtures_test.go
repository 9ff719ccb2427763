package trafficgen

import (
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Fixtures of the xDS resources istiod sends a sidecar.

const (
	stableCluster = "outbound|9080||reviews.ns.svc.cluster.local"
	canaryCluster = "outbound|9080||reviews-canary.ns.svc.cluster.local"
	reviewsHost   = "reviews.ns.svc.cluster.local:9080"
)

func mustAny(t testing.TB, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// response is a DiscoveryResponse of resources.
func response(t testing.TB, typeURL, version, nonce string, resources ...proto.Message) *discoveryv3.DiscoveryResponse {
	r := &discoveryv3.DiscoveryResponse{TypeUrl: typeURL, VersionInfo: version, Nonce: nonce}
	for _, m := range resources {
		r.Resources = append(r.Resources, mustAny(t, m))
	}
	return r
}

// edsCluster is an EDS cluster named as istiod names them, whose EDS
// service name is its own name.
func edsCluster(name string) *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig:     &clusterv3.Cluster_EdsClusterConfig{ServiceName: name},
		CommonLbConfig:       &clusterv3.Cluster_CommonLbConfig{},
	}
}

// staticCluster is a cluster without endpoints to follow.
func staticCluster(name string) *clusterv3.Cluster {
	return &clusterv3.Cluster{Name: name, ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC}}
}

// httpListener is an outbound listener whose connection manager takes
// its routes from the route configuration named route.
func httpListener(t testing.TB, name, route string) *listenerv3.Listener {
	hcm := &hcmv3.HttpConnectionManager{RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{RouteConfigName: route}}}
	return &listenerv3.Listener{Name: name, FilterChains: []*listenerv3.FilterChain{
		{Filters: []*listenerv3.Filter{{Name: "envoy.filters.network.tcp_proxy"}}},
		{Filters: []*listenerv3.Filter{{
			Name:       "envoy.filters.network.http_connection_manager",
			ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(t, hcm)},
		}}},
	}}
}

// routeConfig is a route configuration of virtual hosts.
func routeConfig(name string, vhosts ...*routev3.VirtualHost) *routev3.RouteConfiguration {
	return &routev3.RouteConfiguration{Name: name, VirtualHosts: vhosts}
}

// vhost is a virtual host of routes.
func vhost(name string, routes ...*routev3.Route) *routev3.VirtualHost {
	return &routev3.VirtualHost{Name: name, Domains: []string{name, "reviews", "reviews.ns"}, Routes: routes}
}

// weighted is a route matching prefix to weighted clusters, given as
// name, weight, name, weight...
func weighted(prefix string, clusters ...any) *routev3.Route {
	wc := &routev3.WeightedCluster{}
	for i := 0; i < len(clusters); i += 2 {
		wc.Clusters = append(wc.Clusters, &routev3.WeightedCluster_ClusterWeight{
			Name: clusters[i].(string), Weight: wrapperspb.UInt32(uint32(clusters[i+1].(int))),
		})
	}
	return &routev3.Route{
		Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: prefix}},
		Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_WeightedClusters{WeightedClusters: wc}}},
	}
}

// single is a route matching prefix to one cluster.
func single(prefix, cluster string) *routev3.Route {
	return &routev3.Route{
		Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: prefix}},
		Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: cluster}}},
	}
}

// cla is the ClusterLoadAssignment of a cluster's endpoints.
func cla(name string, eps ...Endpoint) *endpointv3.ClusterLoadAssignment {
	health := map[Health]corev3.HealthStatus{
		HealthHealthy: corev3.HealthStatus_HEALTHY, HealthUnhealthy: corev3.HealthStatus_UNHEALTHY,
		HealthDraining: corev3.HealthStatus_DRAINING, HealthDegraded: corev3.HealthStatus_DEGRADED,
		HealthTimeout: corev3.HealthStatus_TIMEOUT, HealthUnknown: corev3.HealthStatus_UNKNOWN,
	}
	loc := &endpointv3.LocalityLbEndpoints{}
	for _, e := range eps {
		loc.LbEndpoints = append(loc.LbEndpoints, &endpointv3.LbEndpoint{
			HealthStatus: health[e.Health],
			HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: &corev3.Address{
				Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
					Address: e.Address, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: e.Port},
				}},
			}}},
		})
	}
	return &endpointv3.ClusterLoadAssignment{ClusterName: name, Endpoints: []*endpointv3.LocalityLbEndpoints{loc}}
}

// req is the gist of a DiscoveryRequest, for comparing.
type req struct {
	Type, Version, Nonce string
	Names                []string
	Node, NACK           bool
}

func gist(rs []*discoveryv3.DiscoveryRequest) []req {
	out := []req{}
	for _, r := range rs {
		out = append(out, req{
			Type: typeName(r.GetTypeUrl()), Version: r.GetVersionInfo(), Nonce: r.GetResponseNonce(),
			Names: r.GetResourceNames(), Node: r.GetNode() != nil, NACK: r.GetErrorDetail() != nil,
		})
	}
	return out
}

// Fixtures of the routes istiod renders for issue 16's VirtualServices
// and HTTPRoutes (route.go's TranslateRoute).

// named gives a route istiod's name (the VirtualService http route's
// name; an HTTPRoute rule's "<ns>.<name>.<index>").
func named(name string, r *routev3.Route) *routev3.Route { r.Name = name; return r }

// matching adds header matchers to a route.
func matching(r *routev3.Route, headers ...*routev3.HeaderMatcher) *routev3.Route {
	r.Match.Headers = append(r.Match.Headers, headers...)
	r.Match.CaseSensitive = wrapperspb.Bool(true)
	return r
}

// setCookie is istiod's rendering of headers.response.add
// {set-cookie: value}: an appending response header.
func setCookie(value string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{
		Header:       &corev3.HeaderValue{Key: "set-cookie", Value: value},
		AppendAction: corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD,
	}
}

// mirrored adds istiod's mirror policy (mirrorPercentage p, rendered
// as p*10000 per MILLION; the host kept, DISABLE_SHADOW_HOST_SUFFIX
// being true by default) to a route.
func mirrored(r *routev3.Route, cluster string, percent float64) *routev3.Route {
	a := r.GetRoute()
	a.RequestMirrorPolicies = append(a.RequestMirrorPolicies, &routev3.RouteAction_RequestMirrorPolicy{
		Cluster: cluster,
		RuntimeFraction: &corev3.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{
			Numerator: uint32(percent * 10000), Denominator: typev3.FractionalPercent_MILLION,
		}},
		TraceSampled:                  wrapperspb.Bool(false),
		DisableShadowHostSuffixAppend: true,
	})
	return r
}

// stickyCanaryRoutes are the routes of a sticky canary: requests with
// the canary cookie go to the canary; the others are split 90/10, and
// the canary's answers set the cookie (a destination's
// headers.response.add, which istiod puts on the weighted cluster).
func stickyCanaryRoutes() []*routev3.Route {
	split := weighted("/", stableCluster, 90, canaryCluster, 10)
	split.GetRoute().GetWeightedClusters().Clusters[1].ResponseHeadersToAdd = []*corev3.HeaderValueOption{setCookie("canary=1; Path=/; Max-Age=3600")}
	return []*routev3.Route{
		named("sticky", matching(single("/", canaryCluster), cookieRegex("canary=1"))),
		named("split", split),
	}
}
