package trafficgen

import "maps"

// Stats counts the requests a Generator sent.
type Stats struct {
	// Mesh counts the requests routed by istiod's configuration.
	Mesh MeshStats
	// Bypass counts the requests that bypassed the mesh.
	Bypass BypassStats
}

// MeshStats counts the mesh's requests.
type MeshStats struct {
	// Requests is every request sent through the mesh.
	Requests int64
	// NoRoute counts 404s of the source sidecar (no route: NR).
	NoRoute int64
	// NoCluster counts 503s for a cluster the sidecar lacks or has not
	// warmed (NC).
	NoCluster int64
	// EmptyDestination counts 503s for a cluster without a healthy
	// endpoint (UH).
	EmptyDestination int64
	// ConnectFailure counts 503s for an endpoint that is no pod (UF).
	ConnectFailure int64
	// Errors5xx counts every 5xx: the pods' and the sidecar's.
	Errors5xx int64
	// ByCluster counts by the cluster the route chose.
	ByCluster map[string]ClusterStats
	// ByWorkload counts the requests each destination workload answered.
	ByWorkload map[string]int64
	// DirectResponse counts the requests a route answered itself (a
	// redirect or a direct response; Envoy's flag is "-").
	DirectResponse int64
	// ByRoute counts the requests each route took, by the route's name
	// ("" for unnamed routes); requests no route took are not in it.
	ByRoute map[string]ServedStats
	// ByProfile counts the requests of each request profile (plain
	// requests are not in it).
	ByProfile map[string]ServedStats
	// ByClient counts the requests of each simulated client (1..Clients).
	ByClient map[int]ClientStats
	// Mirrored counts the mirrored copies by mirror cluster. They are not
	// among Requests nor in the other counts.
	Mirrored map[string]MirrorStats
}

// ServedStats counts a set of mesh requests and what served them.
type ServedStats struct {
	// Requests is every request of the set.
	Requests int64
	// Errors5xx counts the 5xx among them, the sidecar's included.
	Errors5xx int64
	// ByCluster counts them by the cluster the route chose.
	ByCluster map[string]int64
	// ByWorkload counts the ones each destination workload answered.
	ByWorkload map[string]int64
}

// ClientStats counts the requests of one simulated client and when each
// workload served it, so that a test can tell whether a client stayed
// where a sticky route put it.
type ClientStats struct {
	ServedStats
	// First and Last are, by destination workload, the positions (1 for
	// the client's first request) of the first and the last of the
	// client's requests that the workload answered. A client that stuck
	// to reviews-canary once it got there has Last["reviews"] below
	// First["reviews-canary"].
	First, Last map[string]int64
}

// MirrorStats counts the mirrored copies sent to one cluster.
type MirrorStats struct {
	// Requests is every copy sent.
	Requests int64
	// Failed counts the copies that reached no pod (no healthy endpoint,
	// or an endpoint that is no pod).
	Failed int64
	// Errors5xx counts the pods' 5xx among the copies.
	Errors5xx int64
	// ByWorkload counts the copies each workload answered.
	ByWorkload map[string]int64
}

// ClusterStats counts the requests routed to one cluster.
type ClusterStats struct {
	// Requests is every request the route sent to the cluster.
	Requests int64
	// Errors5xx counts the 5xx among them, the sidecar's included.
	Errors5xx int64
	// EmptyDestination counts the 503s for want of a healthy endpoint.
	EmptyDestination int64
	// NoCluster counts the 503s for a missing or unwarmed cluster.
	NoCluster int64
	// ConnectFailure counts the 503s for an endpoint that is no pod.
	ConnectFailure int64
}

// BypassStats counts the requests that bypassed the mesh.
type BypassStats struct {
	// Requests is every request attempted.
	Requests int64
	// NoEndpoint counts the attempts when the Service had no ready
	// endpoint (the connection is refused: nothing reached a pod).
	NoEndpoint int64
	// ConnectFailure counts the attempts to an endpoint that is no pod.
	ConnectFailure int64
	// Errors5xx counts the pods' 5xx.
	Errors5xx int64
	// ByPod counts the requests each pod answered.
	ByPod map[string]int64
	// ByWorkload counts the requests each workload answered.
	ByWorkload map[string]int64
}

// add counts one request.
func (s *Stats) add(r Record) {
	is5xx := r.Code >= 500 && r.Code <= 599
	if r.Via == ViaBypass {
		b := &s.Bypass
		b.Requests++
		switch r.Failure {
		case FailNoHealthyUpstream:
			b.NoEndpoint++
			return
		case FailUpstreamConnect:
			b.ConnectFailure++
			return
		}
		if is5xx {
			b.Errors5xx++
		}
		b.ByPod = inc(b.ByPod, orUnknown(r.Pod.Name))
		b.ByWorkload = inc(b.ByWorkload, orUnknown(r.Pod.Workload))
		return
	}
	m := &s.Mesh
	m.Requests++
	if is5xx {
		m.Errors5xx++
	}
	m.addViews(r)
	switch r.Failure {
	case FailDirectResponse:
		m.DirectResponse++
		return
	case FailNoRoute:
		m.NoRoute++
		return
	case FailNoCluster:
		m.NoCluster++
	case FailNoHealthyUpstream:
		m.EmptyDestination++
	case FailUpstreamConnect:
		m.ConnectFailure++
	default:
		m.ByWorkload = inc(m.ByWorkload, orUnknown(r.Pod.Workload))
	}
	if m.ByCluster == nil {
		m.ByCluster = map[string]ClusterStats{}
	}
	c := m.ByCluster[r.Cluster]
	c.Requests++
	if is5xx {
		c.Errors5xx++
	}
	switch r.Failure {
	case FailNoCluster:
		c.NoCluster++
	case FailNoHealthyUpstream:
		c.EmptyDestination++
	case FailUpstreamConnect:
		c.ConnectFailure++
	}
	m.ByCluster[r.Cluster] = c
}

// addViews counts a mesh request by route, profile and client, and its
// mirrored copies.
func (m *MeshStats) addViews(r Record) {
	if r.Matched {
		m.ByRoute = addServed(m.ByRoute, r.Route, r)
	}
	if r.Profile != "" {
		m.ByProfile = addServed(m.ByProfile, r.Profile, r)
	}
	if r.Client > 0 {
		if m.ByClient == nil {
			m.ByClient = map[int]ClientStats{}
		}
		c := m.ByClient[r.Client]
		c.ServedStats = c.add(r)
		if r.Failure == FailNone {
			w := orUnknown(r.Pod.Workload)
			if _, ok := c.First[w]; !ok {
				c.First = set(c.First, w, c.Requests)
			}
			c.Last = set(c.Last, w, c.Requests)
		}
		m.ByClient[r.Client] = c
	}
	for _, c := range r.Mirrors {
		if m.Mirrored == nil {
			m.Mirrored = map[string]MirrorStats{}
		}
		ms := m.Mirrored[c.Cluster]
		ms.Requests++
		switch {
		case c.Failure != FailNone:
			ms.Failed++
		default:
			if c.Code >= 500 && c.Code <= 599 {
				ms.Errors5xx++
			}
			ms.ByWorkload = inc(ms.ByWorkload, orUnknown(c.Pod.Workload))
		}
		m.Mirrored[c.Cluster] = ms
	}
}

// addServed counts a request in the set of key.
func addServed[K comparable](m map[K]ServedStats, key K, r Record) map[K]ServedStats {
	if m == nil {
		m = map[K]ServedStats{}
	}
	m[key] = m[key].add(r)
	return m
}

// add returns the counts with one more request.
func (s ServedStats) add(r Record) ServedStats {
	s.Requests++
	if r.Code >= 500 && r.Code <= 599 {
		s.Errors5xx++
	}
	if r.Cluster != "" {
		s.ByCluster = inc(s.ByCluster, r.Cluster)
	}
	if r.Failure == FailNone {
		s.ByWorkload = inc(s.ByWorkload, orUnknown(r.Pod.Workload))
	}
	return s
}

// clone returns a deep copy.
func (s ServedStats) clone() ServedStats {
	s.ByCluster = maps.Clone(s.ByCluster)
	s.ByWorkload = maps.Clone(s.ByWorkload)
	return s
}

// cloneServed deep-copies a map of ServedStats.
func cloneServed[K comparable](m map[K]ServedStats) map[K]ServedStats {
	if m == nil {
		return nil
	}
	out := make(map[K]ServedStats, len(m))
	for k, v := range m {
		out[k] = v.clone()
	}
	return out
}

// clone returns a deep copy.
func (s Stats) clone() Stats {
	s.Mesh.ByCluster = maps.Clone(s.Mesh.ByCluster)
	s.Mesh.ByWorkload = maps.Clone(s.Mesh.ByWorkload)
	s.Mesh.ByRoute = cloneServed(s.Mesh.ByRoute)
	s.Mesh.ByProfile = cloneServed(s.Mesh.ByProfile)
	if s.Mesh.ByClient != nil {
		byClient := make(map[int]ClientStats, len(s.Mesh.ByClient))
		for k, c := range s.Mesh.ByClient {
			byClient[k] = ClientStats{ServedStats: c.ServedStats.clone(), First: maps.Clone(c.First), Last: maps.Clone(c.Last)}
		}
		s.Mesh.ByClient = byClient
	}
	if s.Mesh.Mirrored != nil {
		mirrored := make(map[string]MirrorStats, len(s.Mesh.Mirrored))
		for k, c := range s.Mesh.Mirrored {
			c.ByWorkload = maps.Clone(c.ByWorkload)
			mirrored[k] = c
		}
		s.Mesh.Mirrored = mirrored
	}
	s.Bypass.ByPod = maps.Clone(s.Bypass.ByPod)
	s.Bypass.ByWorkload = maps.Clone(s.Bypass.ByWorkload)
	return s
}

func set(m map[string]int64, k string, v int64) map[string]int64 {
	if m == nil {
		m = map[string]int64{}
	}
	m[k] = v
	return m
}

func inc(m map[string]int64, k string) map[string]int64 {
	if m == nil {
		m = map[string]int64{}
	}
	m[k]++
	return m
}
