package trafficgen

import "math/rand/v2"

// Failure says why a request got no upstream, with Envoy's response flag.
type Failure string

// The ways routing fails. Each is a response of the source sidecar
// itself: no destination pod ever sees the request.
const (
	// FailNone: the request reached an endpoint.
	FailNone Failure = ""
	// FailNoRoute (404, flag NR): no virtual host or no route for the
	// request, or a route whose weights are all zero.
	FailNoRoute Failure = "NR"
	// FailNoCluster (503, flag NC): the route names a cluster the sidecar
	// does not have, or whose endpoints have not arrived yet (Envoy does
	// not use a cluster while it warms).
	FailNoCluster Failure = "NC"
	// FailNoHealthyUpstream (503, flag UH): the cluster is there but has
	// no healthy endpoint: an empty destination.
	FailNoHealthyUpstream Failure = "UH"
	// FailUpstreamConnect (503, flag UF): the chosen endpoint is no pod
	// (any more): the connection fails. Deleted pods keep answering for
	// their grace period (see Inventory), so this is an endpoint the
	// control plane kept long after its pod was gone.
	FailUpstreamConnect Failure = "UF"
	// FailDirectResponse: the matched route answers itself (a redirect or
	// a direct response, e.g. Gateway API's 500 for a rule without
	// backends) with its own status. Envoy sets no response flag ("-").
	FailDirectResponse Failure = "DR"
)

// Flag is the failure's response_flags label: Envoy's flag, "-" for none.
func (f Failure) Flag() string {
	if f == FailNone || f == FailDirectResponse {
		return "-"
	}
	return string(f)
}

// Code is the HTTP status the sidecar answers a failed request with by
// default (a route may say otherwise: Pick.Status).
func (f Failure) Code() int {
	switch f {
	case FailNone:
		return 0
	case FailNoRoute:
		return 404
	case FailDirectResponse:
		return 200
	}
	return 503
}

// Pick is the router's decision for one request.
type Pick struct {
	// Cluster is the chosen cluster (empty when no route applied).
	Cluster string
	// Endpoint is the chosen endpoint when Failure is FailNone.
	Endpoint Endpoint
	// Failure says why there is no endpoint.
	Failure Failure
	// Status is the status the sidecar answered with itself when Failure
	// is set (0 otherwise).
	Status int
}

// Route picks the cluster and endpoint of one request to d, as Envoy's
// router and its default load balancer would: a cluster with probability
// weight/total, then uniformly one of its healthy endpoints (HEALTHY or
// UNKNOWN), or, when there is none, one of its DEGRADED endpoints.
// Unhealthy, draining and timed-out endpoints are never picked: istiod
// sets every cluster's healthy_panic_threshold to 0, which turns Envoy's
// panic mode (balancing over all endpoints when too few are healthy) off.
// istiod's clusters balance by least request; with simulated requests
// that never overlap, that is a uniform choice.
//
// Example: clusters reviews (weight 80, three HEALTHY endpoints) and
// reviews-canary (weight 20, its one endpoint UNHEALTHY). A draw of
// rnd.IntN(100) below 80 picks reviews and then one of its three
// endpoints; a draw of 80..99 picks reviews-canary, which has no healthy
// endpoint: the request fails with FailNoHealthyUpstream (a 503, UH), so
// about 20% of the requests are 503s.
func Route(d Destination, rnd *rand.Rand) Pick {
	var total uint64
	for _, c := range d.Clusters {
		total += uint64(c.Weight)
	}
	if total == 0 {
		return Pick{Failure: FailNoRoute, Status: FailNoRoute.Code()}
	}
	draw := rnd.Uint64N(total)
	var chosen WeightedCluster
	for _, c := range d.Clusters {
		if draw < uint64(c.Weight) {
			chosen = c
			break
		}
		draw -= uint64(c.Weight)
	}
	pick := Pick{Cluster: chosen.Name}
	if !chosen.Known || !chosen.Warm {
		pick.Failure, pick.Status = FailNoCluster, FailNoCluster.Code()
		return pick
	}
	ep, ok := pickEndpoint(chosen.Endpoints, rnd)
	if !ok {
		pick.Failure, pick.Status = FailNoHealthyUpstream, FailNoHealthyUpstream.Code()
		return pick
	}
	pick.Endpoint = ep
	return pick
}

// pickEndpoint draws uniformly among the available endpoints, else among
// the degraded ones; ok is false when there is neither.
func pickEndpoint(eps []Endpoint, rnd *rand.Rand) (Endpoint, bool) {
	var healthy, degraded []Endpoint
	for _, e := range eps {
		switch {
		case e.Health.available():
			healthy = append(healthy, e)
		case e.Health == HealthDegraded:
			degraded = append(degraded, e)
		}
	}
	pool := healthy
	if len(pool) == 0 {
		pool = degraded
	}
	if len(pool) == 0 {
		return Endpoint{}, false
	}
	return pool[rnd.IntN(len(pool))], true
}
