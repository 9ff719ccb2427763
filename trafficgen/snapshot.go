package trafficgen

import (
	"math/rand/v2"
	"strings"
	"time"
)

// Health is an endpoint's health as the control plane reports it
// (Envoy's core.v3.HealthStatus).
type Health string

// The health values istiod sends. Envoy balances over Healthy and Unknown
// endpoints, falls back to Degraded ones, and never picks the others.
const (
	HealthUnknown   Health = "UNKNOWN"
	HealthHealthy   Health = "HEALTHY"
	HealthUnhealthy Health = "UNHEALTHY"
	HealthDraining  Health = "DRAINING"
	HealthTimeout   Health = "TIMEOUT"
	HealthDegraded  Health = "DEGRADED"
)

// available reports whether Envoy would balance over an endpoint of this
// health outside panic mode.
func (h Health) available() bool { return h == HealthHealthy || h == HealthUnknown }

// Endpoint is one address of a cluster.
type Endpoint struct {
	// Address is the IP address (the pod's IP for a Kubernetes Service).
	Address string
	// Port is the target port.
	Port uint32
	// Health is the health istiod computed (UNHEALTHY for a pod that is
	// not ready).
	Health Health
}

// Cluster is one upstream cluster of the sidecar.
type Cluster struct {
	// Name is the cluster name, e.g.
	// "outbound|9080||reviews.default.svc.cluster.local".
	Name string
	// EDSServiceName names the ClusterLoadAssignment of the cluster's
	// endpoints (the cluster name itself when the cluster does not say).
	EDSServiceName string
	// Warm reports whether the cluster's endpoints have arrived; like
	// Envoy, the router uses a cluster only once they have.
	Warm bool
	// Endpoints are the cluster's endpoints, all health values included.
	Endpoints []Endpoint
}

// WeightedCluster is one destination of a route: a cluster and its weight.
type WeightedCluster struct {
	// Cluster is the cluster; Cluster.Name is the route's cluster name
	// even when the cluster itself is not (or not yet) known.
	Cluster
	// Known reports whether the cluster is among the sidecar's clusters.
	Known bool
	// Weight is the route's weight of this cluster (the VirtualService
	// weight; 100 for a route to a single cluster).
	Weight uint32
}

// Destination is what the sidecar knows of one virtual host: the weighted
// clusters of the route that a request to it takes.
type Destination struct {
	// Host is the virtual host's name, e.g.
	// "reviews.default.svc.cluster.local:9080".
	Host string
	// Clusters are the route's clusters in route order.
	Clusters []WeightedCluster
}

// Weights returns the clusters' weights by cluster name.
func (d Destination) Weights() map[string]uint32 {
	w := make(map[string]uint32, len(d.Clusters))
	for _, c := range d.Clusters {
		w[c.Name] += c.Weight
	}
	return w
}

// VirtualHost is a virtual host of the route configuration: its name,
// domains, every route in order and the weighted clusters of the route
// that a plain request takes.
type VirtualHost struct {
	// Name is the virtual host's name ("reviews.ns.svc.cluster.local:9080").
	Name string
	// Domains are the host names it answers for.
	Domains []string
	// Routes are the weighted clusters of the route a plain request (GET,
	// no headers, for the snapshot's Path) takes; nil when that route
	// sends no request upstream or no route takes it.
	Routes []RouteCluster
	// Rules are all the routes, in Envoy's order. A VirtualHost built
	// without Rules routes every request by Routes.
	Rules []RouteRule
	// ResponseHeaders are the virtual host's response_headers_to_add;
	// ConfigResponseHeaders the route configuration's.
	ResponseHeaders, ConfigResponseHeaders []HeaderOption
	// MostSpecificHeaderMutationsWins is the route configuration's
	// most_specific_header_mutations_wins.
	MostSpecificHeaderMutationsWins bool
}

// RouteCluster is a cluster name and weight as a route names them.
type RouteCluster struct {
	// Name is the cluster's name.
	Name string
	// Weight is its weight in the route.
	Weight uint32
}

// Snapshot is the sidecar's configuration at one moment: the last state of
// every resource type that istiod sent. A Snapshot is never modified once
// published; the client publishes a new one on every change.
type Snapshot struct {
	// Clusters are the EDS clusters by name, with their endpoints.
	Clusters map[string]Cluster
	// RouteName is the route configuration named by the outbound listener
	// of the port (e.g. "9080"); empty until the listener arrives.
	RouteName string
	// Path is the request path whose route Destination resolves (the
	// client's XDSConfig.Path).
	Path string
	// VirtualHosts are the route configuration's virtual hosts by name.
	VirtualHosts map[string]VirtualHost
	// Versions are the last accepted versions by resource type URL.
	Versions map[string]string
	// UpdatedAt is when the response that produced this snapshot arrived.
	UpdatedAt time.Time
}

// Destination returns what the snapshot knows of a host: a virtual host's
// name ("reviews.ns.svc.cluster.local:9080") or one of its domains
// ("reviews", "reviews.ns"); ok is false when no virtual host matches.
func (s *Snapshot) Destination(host string) (Destination, bool) {
	if s == nil {
		return Destination{}, false
	}
	vh, ok := s.VirtualHosts[host]
	if !ok {
		vh, ok = s.findDomain(host)
	}
	if !ok {
		return Destination{}, false
	}
	d := Destination{Host: vh.Name, Clusters: make([]WeightedCluster, 0, len(vh.Routes))}
	for _, rc := range vh.Routes {
		d.Clusters = append(d.Clusters, resolve(s.Clusters, rc))
	}
	return d, true
}

// VirtualHost returns the virtual host of a host, as Destination finds it.
func (s *Snapshot) VirtualHost(host string) (VirtualHost, bool) {
	if s == nil {
		return VirtualHost{}, false
	}
	if vh, ok := s.VirtualHosts[host]; ok {
		return vh, true
	}
	return s.findDomain(host)
}

// RouteRequest routes a request to a host (see the package function
// RouteRequest); ok is false when no virtual host matches the host.
func (s *Snapshot) RouteRequest(host string, req Request, rnd *rand.Rand) (Outcome, bool) {
	vh, ok := s.VirtualHost(host)
	if !ok {
		return Outcome{}, false
	}
	return RouteRequest(vh, s.Clusters, req, rnd), true
}

// findDomain finds the virtual host that lists host (with or without a
// port) among its domains.
func (s *Snapshot) findDomain(host string) (VirtualHost, bool) {
	for _, vh := range s.VirtualHosts {
		for _, d := range vh.Domains {
			if strings.EqualFold(d, host) {
				return vh, true
			}
		}
	}
	return VirtualHost{}, false
}
