package trafficgen

import (
	"math"
	"reflect"
	"sync/atomic"
	"testing"
	"time"
)

func TestStatsAdd(t *testing.T) {
	stable := PodInfo{Name: "reviews-h-1", Workload: "reviews"}
	records := []Record{
		{Via: ViaMesh, Cluster: stableCluster, Pod: stable, Code: 200},
		{Via: ViaMesh, Cluster: canaryCluster, Pod: canaryPod, Code: 500},
		{Via: ViaMesh, Cluster: canaryCluster, Failure: FailNoHealthyUpstream, Code: 503},
		{Via: ViaMesh, Cluster: canaryCluster, Failure: FailNoCluster, Code: 503},
		{Via: ViaMesh, Cluster: canaryCluster, Failure: FailUpstreamConnect, Code: 503},
		{Via: ViaMesh, Failure: FailNoRoute, Code: 404},
		{Via: ViaBypass, Pod: stable, Code: 200},
		{Via: ViaBypass, Pod: stable, Code: 500},
		{Via: ViaBypass, Failure: FailNoHealthyUpstream},
		{Via: ViaBypass, Failure: FailUpstreamConnect},
	}
	var s Stats
	for _, r := range records {
		s.add(r)
	}
	want := Stats{
		Mesh: MeshStats{
			Requests: 6, NoRoute: 1, NoCluster: 1, EmptyDestination: 1, ConnectFailure: 1, Errors5xx: 4,
			ByCluster: map[string]ClusterStats{
				stableCluster: {Requests: 1},
				canaryCluster: {Requests: 4, Errors5xx: 4, EmptyDestination: 1, NoCluster: 1, ConnectFailure: 1},
			},
			ByWorkload: map[string]int64{"reviews": 1, "reviews-canary": 1},
		},
		Bypass: BypassStats{
			Requests: 4, NoEndpoint: 1, ConnectFailure: 1, Errors5xx: 1,
			ByPod: map[string]int64{"reviews-h-1": 2}, ByWorkload: map[string]int64{"reviews": 2},
		},
	}
	if !reflect.DeepEqual(s, want) {
		t.Errorf("stats\n  %+v\nwant\n  %+v", s, want)
	}
	c := s.clone()
	c.Mesh.ByCluster[stableCluster] = ClusterStats{}
	if s.Mesh.ByCluster[stableCluster].Requests != 1 {
		t.Error("clone shares its maps")
	}
}

// fakeRoutes serves a snapshot that a test can swap.
type fakeRoutes struct{ snap atomic.Pointer[Snapshot] }

func (f *fakeRoutes) Snapshot() *Snapshot { return f.snap.Load() }

// fakePods knows pods by IP and the ready endpoints of Services.
type fakePods struct {
	byIP  map[string]PodInfo
	ready map[string][]SliceEndpoint
}

func (f fakePods) PodByIP(ip string) (PodInfo, bool)             { p, ok := f.byIP[ip]; return p, ok }
func (f fakePods) ReadyEndpoints(service string) []SliceEndpoint { return f.ready[service] }

// mesh is a snapshot of reviews with weights, three stable pods and the
// given canary endpoints.
func mesh(stable, canary uint32, canaryEPs ...Endpoint) *Snapshot {
	return &Snapshot{
		Clusters: map[string]Cluster{
			stableCluster: {Name: stableCluster, EDSServiceName: stableCluster, Warm: true, Endpoints: []Endpoint{
				ep("10.0.1.1", HealthHealthy), ep("10.0.1.2", HealthHealthy), ep("10.0.1.3", HealthHealthy),
			}},
			canaryCluster: {Name: canaryCluster, EDSServiceName: canaryCluster, Warm: true, Endpoints: canaryEPs},
		},
		VirtualHosts: map[string]VirtualHost{reviewsHost: {Name: reviewsHost, Routes: []RouteCluster{
			{Name: stableCluster, Weight: stable}, {Name: canaryCluster, Weight: canary},
		}}},
	}
}

var pods = fakePods{
	byIP: map[string]PodInfo{
		"10.0.1.1": {Name: "reviews-h-1", Workload: "reviews", Image: "reviews:v3"},
		"10.0.1.2": {Name: "reviews-h-2", Workload: "reviews", Image: "reviews:v3"},
		"10.0.1.3": {Name: "reviews-h-3", Workload: "reviews", Image: "reviews:v3"},
		"10.0.2.1": {Name: "reviews-canary-g-1", Workload: "reviews-canary", Image: "reviews:v4"},
	},
	ready: map[string][]SliceEndpoint{"reviews": {{"10.0.1.1", "reviews-h-1"}, {"10.0.1.2", "reviews-h-2"}, {"10.0.1.3", "reviews-h-3"}}},
}

func TestGenerator(t *testing.T) {
	healthyCanary := ep("10.0.2.1", HealthHealthy)
	tests := []struct {
		name  string
		snap  *Snapshot
		bad   []BadImage
		check func(t *testing.T, s Stats)
	}{
		{
			name: "80/20 split, bypass to the Service's ready pods only",
			snap: mesh(80, 20, healthyCanary),
			check: func(t *testing.T, s Stats) {
				if share := float64(s.Mesh.ByCluster[canaryCluster].Requests) / float64(s.Mesh.Requests); math.Abs(share-0.2) > 0.05 {
					t.Errorf("canary share %.3f, want 0.20", share)
				}
				if s.Mesh.Errors5xx != 0 || s.Bypass.Requests != 100 || len(s.Bypass.ByPod) != 3 || s.Bypass.ByWorkload["reviews"] != 100 {
					t.Errorf("stats %+v", s)
				}
			},
		},
		{
			name: "an empty canary destination: 503s counted",
			snap: mesh(80, 20, ep("10.0.2.1", HealthUnhealthy)),
			check: func(t *testing.T, s Stats) {
				c := s.Mesh.ByCluster[canaryCluster]
				if c.Requests == 0 || c.EmptyDestination != c.Requests || s.Mesh.EmptyDestination != c.Requests || s.Mesh.Errors5xx != c.Requests {
					t.Errorf("stats %+v", s.Mesh)
				}
			},
		},
		{
			name: "a bad canary image answers 5xx",
			snap: mesh(50, 50, healthyCanary),
			bad:  []BadImage{{Image: "reviews:v4", ErrorShare: 1}},
			check: func(t *testing.T, s Stats) {
				c := s.Mesh.ByCluster[canaryCluster]
				if c.Requests == 0 || c.Errors5xx != c.Requests || s.Mesh.ByWorkload["reviews-canary"] != c.Requests || s.Mesh.Errors5xx != c.Requests {
					t.Errorf("stats %+v", s.Mesh)
				}
			},
		},
		{
			name: "an endpoint that is no pod: connection failures",
			snap: mesh(0, 100, ep("10.9.9.9", HealthHealthy)),
			check: func(t *testing.T, s Stats) {
				if s.Mesh.ConnectFailure != s.Mesh.Requests {
					t.Errorf("stats %+v", s.Mesh)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			routes := &fakeRoutes{}
			routes.snap.Store(tt.snap)
			b := DefaultBehaviour()
			b.BadImages = tt.bad
			var seen atomic.Int64
			g := NewGenerator(Config{
				Host: reviewsHost, Namespace: "ns", BypassService: "reviews",
				RPS: 10000, BypassRPS: 1000, Duration: 100 * time.Millisecond, Seed: 7, Tick: 5 * time.Millisecond,
				Behaviour: b, OnRequest: func(Record) { seen.Add(1) },
			}, routes, pods, nil)
			if err := g.Run(t.Context()); err != nil {
				t.Fatal(err)
			}
			s := g.Stats()
			if s.Mesh.Requests != 1000 || s.Bypass.Requests != 100 || seen.Load() != 1100 {
				t.Fatalf("sent %d through the mesh and %d around it (%d seen), want exactly 1000 and 100 in 100ms", s.Mesh.Requests, s.Bypass.Requests, seen.Load())
			}
			tt.check(t, s)
		})
	}
}

func TestGeneratorWaitsForTheRouteAndStopsAtMaxRequests(t *testing.T) {
	routes := &fakeRoutes{}
	routes.snap.Store(&Snapshot{})
	g := NewGenerator(Config{Host: reviewsHost, RPS: 5000, MaxRequests: 300, Tick: time.Millisecond, Behaviour: DefaultBehaviour()}, routes, pods, nil)
	done := make(chan error)
	go func() { done <- g.Run(t.Context()) }()
	time.Sleep(50 * time.Millisecond)
	if n := g.Stats().Mesh.Requests; n != 0 {
		t.Fatalf("%d requests before the route arrived", n)
	}
	routes.snap.Store(mesh(100, 0))
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not stop after MaxRequests")
	}
	if s := g.Stats(); s.Mesh.Requests != 300 || s.Mesh.NoRoute != 0 {
		t.Fatalf("stats %+v, want exactly 300 routed requests", s.Mesh)
	}
}
