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
	switch r.Failure {
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

// clone returns a deep copy.
func (s Stats) clone() Stats {
	s.Mesh.ByCluster = maps.Clone(s.Mesh.ByCluster)
	s.Mesh.ByWorkload = maps.Clone(s.Mesh.ByWorkload)
	s.Bypass.ByPod = maps.Clone(s.Bypass.ByPod)
	s.Bypass.ByWorkload = maps.Clone(s.Bypass.ByWorkload)
	return s
}

func inc(m map[string]int64, k string) map[string]int64 {
	if m == nil {
		m = map[string]int64{}
	}
	m[k]++
	return m
}
