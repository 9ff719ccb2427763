package trafficgen

import (
	"fmt"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/anypb"
)

// The resource type URLs of the aggregated discovery service.
const (
	typeCluster  = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
	typeListener = "type.googleapis.com/envoy.config.listener.v3.Listener"
	typeRoute    = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
	typeEndpoint = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
)

// typeName is a short name of a type URL for logs and errors.
func typeName(typeURL string) string {
	switch typeURL {
	case typeCluster:
		return "CDS"
	case typeListener:
		return "LDS"
	case typeRoute:
		return "RDS"
	case typeEndpoint:
		return "EDS"
	}
	return typeURL
}

// parseClusters decodes a CDS response into its EDS clusters by name.
// Clusters of other kinds (static, original destination, inbound) carry
// no endpoints to follow and are left out.
func parseClusters(resources []*anypb.Any) (map[string]Cluster, error) {
	out := make(map[string]Cluster, len(resources))
	for _, r := range resources {
		var c clusterv3.Cluster
		if err := r.UnmarshalTo(&c); err != nil {
			return nil, fmt.Errorf("decode cluster: %w", err)
		}
		if c.GetType() != clusterv3.Cluster_EDS {
			continue
		}
		eds := c.GetEdsClusterConfig().GetServiceName()
		if eds == "" {
			eds = c.GetName()
		}
		out[c.GetName()] = Cluster{Name: c.GetName(), EDSServiceName: eds}
	}
	return out, nil
}

// parseRouteName finds the route configuration that the outbound listener
// of a port names: the listener "0.0.0.0_9080" names route "9080".
// It returns "" when that listener is absent or routes nothing over HTTP.
func parseRouteName(resources []*anypb.Any, port uint32) (string, error) {
	want := fmt.Sprintf("0.0.0.0_%d", port)
	for _, r := range resources {
		var l listenerv3.Listener
		if err := r.UnmarshalTo(&l); err != nil {
			return "", fmt.Errorf("decode listener: %w", err)
		}
		if l.GetName() != want {
			continue
		}
		chains := append([]*listenerv3.FilterChain{l.GetDefaultFilterChain()}, l.GetFilterChains()...)
		for _, fc := range chains {
			for _, f := range fc.GetFilters() {
				tc := f.GetTypedConfig()
				if tc == nil || !tc.MessageIs(&hcmv3.HttpConnectionManager{}) {
					continue
				}
				var hcm hcmv3.HttpConnectionManager
				if err := tc.UnmarshalTo(&hcm); err != nil {
					return "", fmt.Errorf("decode listener %s: http connection manager: %w", want, err)
				}
				if name := hcm.GetRds().GetRouteConfigName(); name != "" {
					return name, nil
				}
			}
		}
		return "", nil
	}
	return "", nil
}

// parseRoutes decodes an RDS response into the virtual hosts of the route
// configuration named name: every route of each, and the clusters of the
// route a plain request for path takes. A route that cannot be decoded
// (an invalid regular expression) rejects the response, as Envoy does.
func parseRoutes(resources []*anypb.Any, name, path string) (map[string]VirtualHost, bool, error) {
	for _, r := range resources {
		var rc routev3.RouteConfiguration
		if err := r.UnmarshalTo(&rc); err != nil {
			return nil, false, fmt.Errorf("decode route configuration: %w", err)
		}
		if rc.GetName() != name {
			continue
		}
		out := make(map[string]VirtualHost, len(rc.GetVirtualHosts()))
		for _, vh := range rc.GetVirtualHosts() {
			v, err := parseVirtualHost(&rc, vh, path)
			if err != nil {
				return nil, false, fmt.Errorf("route configuration %s: %w", name, err)
			}
			out[vh.GetName()] = v
		}
		return out, true, nil
	}
	return nil, false, nil
}

// routeClusters returns the weighted clusters of the first route that a
// plain request for path (GET, no headers) takes, as Envoy takes the
// first matching route. A route to a single cluster has that cluster with
// weight 100, as a VirtualService writes a lone destination. Redirects
// and direct responses send nothing upstream: nil. Routes that cannot be
// decoded are skipped.
func routeClusters(routes []*routev3.Route, path string) []RouteCluster {
	var rules []RouteRule
	for _, r := range routes {
		if rule, err := parseRule(r); err == nil {
			rules = append(rules, rule)
		}
	}
	return plainClusters(rules, path)
}

// matchesPath reports whether a route match takes a plain request (GET,
// no headers) for path.
func matchesPath(m *routev3.RouteMatch, path string) bool {
	rm, err := parseRouteMatch(m)
	return err == nil && rm.Matches(Request{Path: path})
}

// parseEndpoints decodes an EDS response into endpoints by EDS service
// name. A name present with no endpoints is a cluster that has none.
func parseEndpoints(resources []*anypb.Any) (map[string][]Endpoint, error) {
	out := make(map[string][]Endpoint, len(resources))
	for _, r := range resources {
		var cla endpointv3.ClusterLoadAssignment
		if err := r.UnmarshalTo(&cla); err != nil {
			return nil, fmt.Errorf("decode cluster load assignment: %w", err)
		}
		eps := []Endpoint{}
		for _, loc := range cla.GetEndpoints() {
			for _, lb := range loc.GetLbEndpoints() {
				sa := lb.GetEndpoint().GetAddress().GetSocketAddress()
				if sa == nil {
					continue
				}
				eps = append(eps, Endpoint{
					Address: sa.GetAddress(),
					Port:    sa.GetPortValue(),
					Health:  healthOf(lb.GetHealthStatus()),
				})
			}
		}
		out[cla.GetClusterName()] = eps
	}
	return out, nil
}

// healthOf converts Envoy's health status.
func healthOf(h corev3.HealthStatus) Health {
	switch h {
	case corev3.HealthStatus_HEALTHY:
		return HealthHealthy
	case corev3.HealthStatus_UNHEALTHY:
		return HealthUnhealthy
	case corev3.HealthStatus_DRAINING:
		return HealthDraining
	case corev3.HealthStatus_TIMEOUT:
		return HealthTimeout
	case corev3.HealthStatus_DEGRADED:
		return HealthDegraded
	}
	return HealthUnknown
}
