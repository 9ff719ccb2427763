package trafficgen

import (
	"maps"
	"reflect"
	"slices"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
)

// subscription is the request state of one resource type.
type subscription struct {
	// names are the resource names requested (nil: wildcard).
	names []string
	// version is the last accepted version; it outlives a connection, as
	// Envoy sends it again when it reconnects.
	version string
	// nonce is the last nonce received on this connection.
	nonce string
	// requested reports whether the type was requested on this connection.
	requested bool
}

// adsState is the client's side of the aggregated discovery protocol
// (state of the world), without I/O: it takes istiod's responses and says
// which requests to send, in order, and it keeps the last state of every
// resource type.
//
// The order follows Envoy: clusters (wildcard), then listeners
// (wildcard), then the route configuration the port's outbound listener
// names, then the endpoints of the EDS clusters. Every response is
// acknowledged with its version and nonce and the subscription's resource
// names, or rejected (NACK: the previous version, the nonce and an error)
// when it cannot be decoded. After every cluster response the endpoints
// are requested again, as Envoy does while it warms the updated clusters:
// istiod answers that request even when the names did not change.
type adsState struct {
	node *corev3.Node
	port uint32
	path string

	subs map[string]*subscription
	// nodeSent reports whether the node went out on this connection
	// (only the first request of a stream carries it).
	nodeSent bool

	clusters  map[string]Cluster
	endpoints map[string][]Endpoint
	routeName string
	vhosts    map[string]VirtualHost
	updatedAt time.Time
}

// newADSState returns the state of a client that has received nothing.
// port is the port whose outbound route is followed and path the request
// path whose route is taken.
func newADSState(node *corev3.Node, port uint32, path string) *adsState {
	s := &adsState{node: node, port: port, path: path, subs: map[string]*subscription{}}
	for _, t := range []string{typeCluster, typeListener, typeRoute, typeEndpoint} {
		s.subs[t] = &subscription{}
	}
	return s
}

// connect starts a new stream: nonces are forgotten (they belong to the
// old stream), versions and resources are kept, and clusters are requested.
func (s *adsState) connect() []*discoveryv3.DiscoveryRequest {
	for _, sub := range s.subs {
		sub.nonce, sub.requested = "", false
	}
	s.nodeSent = false
	return []*discoveryv3.DiscoveryRequest{s.request(typeCluster, nil)}
}

// request builds the request of a type with the subscription's version
// and nonce, and records it as requested with those names.
func (s *adsState) request(typeURL string, names []string) *discoveryv3.DiscoveryRequest {
	sub := s.subs[typeURL]
	sub.names, sub.requested = names, true
	req := &discoveryv3.DiscoveryRequest{
		TypeUrl:       typeURL,
		VersionInfo:   sub.version,
		ResponseNonce: sub.nonce,
		ResourceNames: names,
	}
	if !s.nodeSent {
		req.Node, s.nodeSent = s.node, true
	}
	return req
}

// handle applies one response. It returns the requests to send in order
// (the acknowledgement first), whether the state changed, and the
// decoding error when the response was rejected.
func (s *adsState) handle(resp *discoveryv3.DiscoveryResponse, now time.Time) ([]*discoveryv3.DiscoveryRequest, bool, error) {
	sub, ok := s.subs[resp.GetTypeUrl()]
	if !ok {
		// A type never asked for: acknowledge nothing, keep nothing.
		return nil, false, nil
	}
	sub.nonce = resp.GetNonce()
	before := s.fingerprint()
	var (
		follow []*discoveryv3.DiscoveryRequest
		err    error
	)
	switch resp.GetTypeUrl() {
	case typeCluster:
		follow, err = s.onClusters(resp)
	case typeListener:
		follow, err = s.onListeners(resp)
	case typeRoute:
		err = s.onRoutes(resp)
	case typeEndpoint:
		err = s.onEndpoints(resp)
	}
	if err != nil {
		nack := s.request(resp.GetTypeUrl(), sub.names)
		nack.ErrorDetail = &status.Status{Code: int32(codes.InvalidArgument), Message: err.Error()}
		return []*discoveryv3.DiscoveryRequest{nack}, false, err
	}
	sub.version = resp.GetVersionInfo()
	ack := s.request(resp.GetTypeUrl(), sub.names)
	changed := !reflect.DeepEqual(before, s.fingerprint())
	if changed {
		s.updatedAt = now
	}
	return append([]*discoveryv3.DiscoveryRequest{ack}, follow...), changed, nil
}

// onClusters replaces the clusters, forgets the endpoints of clusters that
// are gone, requests the endpoints again and, on a new stream, listeners.
func (s *adsState) onClusters(resp *discoveryv3.DiscoveryResponse) ([]*discoveryv3.DiscoveryRequest, error) {
	clusters, err := parseClusters(resp.GetResources())
	if err != nil {
		return nil, err
	}
	s.clusters = clusters
	names := s.edsNames()
	for name := range s.endpoints {
		if !slices.Contains(names, name) {
			delete(s.endpoints, name)
		}
	}
	var follow []*discoveryv3.DiscoveryRequest
	if len(names) > 0 {
		follow = append(follow, s.request(typeEndpoint, names))
	}
	if !s.subs[typeListener].requested {
		follow = append(follow, s.request(typeListener, nil))
	}
	return follow, nil
}

// edsNames are the clusters' EDS service names, sorted.
func (s *adsState) edsNames() []string {
	var names []string
	for _, c := range s.clusters {
		names = append(names, c.EDSServiceName)
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// onListeners finds the port's route name and requests that route when it
// is new (or not yet requested on this stream).
func (s *adsState) onListeners(resp *discoveryv3.DiscoveryResponse) ([]*discoveryv3.DiscoveryRequest, error) {
	name, err := parseRouteName(resp.GetResources(), s.port)
	if err != nil {
		return nil, err
	}
	if name != s.routeName {
		// The port's listener is gone or names another route: the old
		// route no longer applies to the port.
		s.routeName, s.vhosts = name, nil
	}
	rds := s.subs[typeRoute]
	if name == "" || (rds.requested && slices.Equal(rds.names, []string{name})) {
		return nil, nil
	}
	return []*discoveryv3.DiscoveryRequest{s.request(typeRoute, []string{name})}, nil
}

// onRoutes keeps the virtual hosts of the port's route configuration.
func (s *adsState) onRoutes(resp *discoveryv3.DiscoveryResponse) error {
	vhosts, found, err := parseRoutes(resp.GetResources(), s.routeName, s.path)
	if err != nil {
		return err
	}
	if found {
		s.vhosts = vhosts
	}
	return nil
}

// onEndpoints keeps the endpoints of the subscribed clusters. Unlike
// clusters and listeners, an endpoint resource absent from a response is
// not removed (the protocol's rule for EDS).
func (s *adsState) onEndpoints(resp *discoveryv3.DiscoveryResponse) error {
	eps, err := parseEndpoints(resp.GetResources())
	if err != nil {
		return err
	}
	if s.endpoints == nil {
		s.endpoints = map[string][]Endpoint{}
	}
	wanted := s.subs[typeEndpoint].names
	for name, list := range eps {
		if slices.Contains(wanted, name) {
			s.endpoints[name] = list
		}
	}
	return nil
}

// fingerprint is the part of the state a snapshot shows, for telling
// whether a response changed anything.
type fingerprint struct {
	clusters  map[string]Cluster
	endpoints map[string][]Endpoint
	routeName string
	vhosts    map[string]VirtualHost
}

func (s *adsState) fingerprint() fingerprint {
	// Shallow copies suffice: handlers replace maps and slices, they
	// never modify them in place.
	return fingerprint{maps.Clone(s.clusters), maps.Clone(s.endpoints), s.routeName, maps.Clone(s.vhosts)}
}

// snapshot returns the state as an immutable Snapshot: each cluster with
// its endpoints, warm once they have arrived.
func (s *adsState) snapshot() *Snapshot {
	snap := &Snapshot{
		Clusters:     make(map[string]Cluster, len(s.clusters)),
		RouteName:    s.routeName,
		Path:         s.path,
		VirtualHosts: maps.Clone(s.vhosts),
		Versions:     map[string]string{},
		UpdatedAt:    s.updatedAt,
	}
	for name, c := range s.clusters {
		eps, warm := s.endpoints[c.EDSServiceName]
		c.Endpoints, c.Warm = slices.Clone(eps), warm
		snap.Clusters[name] = c
	}
	for t, sub := range s.subs {
		if sub.version != "" {
			snap.Versions[t] = sub.version
		}
	}
	return snap
}
