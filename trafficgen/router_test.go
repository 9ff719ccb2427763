package trafficgen

import (
	"math"
	"math/rand/v2"
	"testing"
)

// ep is an endpoint fixture.
func ep(addr string, h Health) Endpoint { return Endpoint{Address: addr, Port: 9080, Health: h} }

// wc is a known, warm weighted cluster.
func wc(name string, weight uint32, eps ...Endpoint) WeightedCluster {
	return WeightedCluster{Cluster: Cluster{Name: name, EDSServiceName: name, Warm: true, Endpoints: eps}, Known: true, Weight: weight}
}

// seeded is a deterministic random source.
func seeded() *rand.Rand { return rand.New(rand.NewPCG(1, 2)) }

func TestRouteRespectsWeights(t *testing.T) {
	healthy := []Endpoint{ep("10.0.0.1", HealthHealthy), ep("10.0.0.2", HealthHealthy), ep("10.0.0.3", HealthUnknown)}
	tests := []struct {
		name string
		d    Destination
		want map[string]float64 // share by cluster
	}{
		{"80/20", Destination{Clusters: []WeightedCluster{wc("stable", 80, healthy...), wc("canary", 20, healthy[0])}},
			map[string]float64{"stable": 0.8, "canary": 0.2}},
		{"60/40", Destination{Clusters: []WeightedCluster{wc("stable", 40, healthy...), wc("canary", 60, healthy[0])}},
			map[string]float64{"stable": 0.4, "canary": 0.6}},
		{"100/0", Destination{Clusters: []WeightedCluster{wc("stable", 100, healthy...), wc("canary", 0, healthy[0])}},
			map[string]float64{"stable": 1}},
		{"single cluster", Destination{Clusters: []WeightedCluster{wc("stable", 100, healthy...)}},
			map[string]float64{"stable": 1}},
		{"three ways, weights not summing to 100", Destination{Clusters: []WeightedCluster{wc("a", 1, healthy...), wc("b", 1, healthy...), wc("c", 2, healthy...)}},
			map[string]float64{"a": 0.25, "b": 0.25, "c": 0.5}},
	}
	const n = 20000
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rnd := seeded()
			got := map[string]int{}
			for range n {
				p := Route(tt.d, rnd)
				if p.Failure != FailNone {
					t.Fatalf("pick failed: %+v", p)
				}
				got[p.Cluster]++
			}
			for name, count := range got {
				if _, ok := tt.want[name]; !ok {
					t.Errorf("cluster %s picked %d times, want never", name, count)
				}
			}
			for name, share := range tt.want {
				// 5 standard deviations of a binomial share.
				tol := 5 * math.Sqrt(share*(1-share)/n)
				if s := float64(got[name]) / n; math.Abs(s-share) > tol+1e-9 {
					t.Errorf("cluster %s share %.4f, want %.2f ± %.4f", name, s, share, tol)
				}
			}
		})
	}
}

func TestRouteFailsAndNeverPicksUnhealthy(t *testing.T) {
	notWarm := wc("canary", 20)
	notWarm.Warm = false
	unknownCluster := wc("canary", 20, ep("10.0.0.9", HealthHealthy))
	unknownCluster.Known = false
	stable := wc("stable", 80, ep("10.0.0.1", HealthHealthy))
	tests := []struct {
		name        string
		d           Destination
		wantFailure map[Failure]bool // failures that may occur
		wantAddrs   map[string]bool  // endpoints that may be picked
	}{
		{"no clusters", Destination{}, map[Failure]bool{FailNoRoute: true}, nil},
		{"all weights zero", Destination{Clusters: []WeightedCluster{wc("stable", 0, ep("10.0.0.1", HealthHealthy))}},
			map[Failure]bool{FailNoRoute: true}, nil},
		{"empty cluster", Destination{Clusters: []WeightedCluster{wc("canary", 100)}},
			map[Failure]bool{FailNoHealthyUpstream: true}, nil},
		{"only unhealthy, draining, timed-out endpoints", Destination{Clusters: []WeightedCluster{wc("canary", 100,
			ep("10.0.0.1", HealthUnhealthy), ep("10.0.0.2", HealthDraining), ep("10.0.0.3", HealthTimeout))}},
			map[Failure]bool{FailNoHealthyUpstream: true}, nil},
		{"unhealthy endpoints beside healthy ones are never picked", Destination{Clusters: []WeightedCluster{wc("stable", 100,
			ep("10.0.0.1", HealthUnhealthy), ep("10.0.0.2", HealthHealthy), ep("10.0.0.3", HealthDraining), ep("10.0.0.4", HealthUnknown), ep("10.0.0.5", HealthDegraded))}},
			map[Failure]bool{FailNone: true}, map[string]bool{"10.0.0.2": true, "10.0.0.4": true}},
		{"degraded endpoints when none is healthy", Destination{Clusters: []WeightedCluster{wc("stable", 100,
			ep("10.0.0.1", HealthUnhealthy), ep("10.0.0.5", HealthDegraded))}},
			map[Failure]bool{FailNone: true}, map[string]bool{"10.0.0.5": true}},
		{"cluster whose endpoints have not arrived", Destination{Clusters: []WeightedCluster{stable, notWarm}},
			map[Failure]bool{FailNone: true, FailNoCluster: true}, map[string]bool{"10.0.0.1": true}},
		{"cluster the sidecar does not have", Destination{Clusters: []WeightedCluster{stable, unknownCluster}},
			map[Failure]bool{FailNone: true, FailNoCluster: true}, map[string]bool{"10.0.0.1": true}},
		{"empty canary beside a healthy stable", Destination{Clusters: []WeightedCluster{stable, wc("canary", 20)}},
			map[Failure]bool{FailNone: true, FailNoHealthyUpstream: true}, map[string]bool{"10.0.0.1": true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rnd := seeded()
			seen := map[Failure]int{}
			for range 2000 {
				p := Route(tt.d, rnd)
				seen[p.Failure]++
				if !tt.wantFailure[p.Failure] {
					t.Fatalf("pick %+v: failure %q not expected", p, p.Failure)
				}
				if p.Failure == FailNone && !tt.wantAddrs[p.Endpoint.Address] {
					t.Fatalf("picked endpoint %+v, want one of %v", p.Endpoint, tt.wantAddrs)
				}
				if p.Failure != FailNone && p.Endpoint != (Endpoint{}) {
					t.Fatalf("failed pick %+v names an endpoint", p)
				}
			}
			for f := range tt.wantFailure {
				if seen[f] == 0 {
					t.Errorf("failure %q never happened in 2000 picks: %v", f, seen)
				}
			}
		})
	}
}

func TestFailureCodes(t *testing.T) {
	for f, want := range map[Failure]int{FailNone: 0, FailNoRoute: 404, FailNoCluster: 503, FailNoHealthyUpstream: 503, FailUpstreamConnect: 503} {
		if got := f.Code(); got != want {
			t.Errorf("%q.Code() = %d, want %d", f, got, want)
		}
	}
}

func TestRoutePicksEndpointsEvenly(t *testing.T) {
	d := Destination{Clusters: []WeightedCluster{wc("stable", 1, ep("a", HealthHealthy), ep("b", HealthHealthy), ep("c", HealthHealthy))}}
	rnd := seeded()
	got := map[string]int{}
	const n = 30000
	for range n {
		got[Route(d, rnd).Endpoint.Address]++
	}
	for _, a := range []string{"a", "b", "c"} {
		if s := float64(got[a]) / n; math.Abs(s-1.0/3) > 0.02 {
			t.Errorf("endpoint %s share %.3f, want 1/3", a, s)
		}
	}
}
