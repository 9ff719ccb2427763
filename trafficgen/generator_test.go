package trafficgen

import (
	"math"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/anypb"
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

// routedMesh is mesh's snapshot (three stable pods, one healthy canary
// pod) with routes decoded as the client decodes istiod's.
func routedMesh(t *testing.T, routes ...*routev3.Route) *Snapshot {
	t.Helper()
	s := mesh(0, 0, ep("10.0.2.1", HealthHealthy))
	vhosts, found, err := parseRoutes([]*anypb.Any{mustAny(t, routeConfig("9080", vhost(reviewsHost, routes...)))}, "9080", "/reviews/0")
	if err != nil || !found {
		t.Fatalf("parseRoutes: %v, found %v", err, found)
	}
	s.VirtualHosts, s.Path = vhosts, "/reviews/0"
	return s
}

func TestGeneratorRoutesByRequest(t *testing.T) {
	abRoutes := []*routev3.Route{
		named("jason", matching(single("/", canaryCluster), header("end-user", exact("jason")))),
		named("default", single("/", stableCluster)),
	}
	tests := []struct {
		name  string
		snap  func(t *testing.T) *Snapshot
		cfg   func(c *Config)
		check func(t *testing.T, s Stats)
	}{
		{
			name: "A/B by header: the profile's requests, and only they, reach the canary",
			snap: func(t *testing.T) *Snapshot { return routedMesh(t, abRoutes...) },
			cfg: func(c *Config) {
				c.Profiles = []Profile{{Name: "jason", Share: 0.3, Headers: map[string]string{"end-user": "jason"}}}
			},
			check: func(t *testing.T, s Stats) {
				jason := s.Mesh.ByProfile["jason"]
				if share := float64(jason.Requests) / float64(s.Mesh.Requests); math.Abs(share-0.3) > 0.07 {
					t.Errorf("profile share %.3f, want 0.30", share)
				}
				if jason.ByCluster[canaryCluster] != jason.Requests || s.Mesh.ByCluster[canaryCluster].Requests != jason.Requests ||
					jason.ByWorkload["reviews-canary"] != jason.Requests {
					t.Errorf("profile %+v, by cluster %+v: want the profile's requests all at the canary, and no other", jason, s.Mesh.ByCluster)
				}
				if r := s.Mesh.ByRoute; r["jason"].Requests != jason.Requests || r["default"].Requests != s.Mesh.Requests-jason.Requests {
					t.Errorf("by route %+v", r)
				}
			},
		},
		{
			name: "A/B by query parameter",
			snap: func(t *testing.T) *Snapshot {
				r := named("gold", single("/", canaryCluster))
				r.Match.QueryParameters = []*routev3.QueryParameterMatcher{query("tier", exact("gold"))}
				return routedMesh(t, r, named("default", single("/", stableCluster)))
			},
			cfg: func(c *Config) {
				c.Profiles = []Profile{{Name: "gold", Share: 0.5, Query: map[string]string{"tier": "gold"}}}
			},
			check: func(t *testing.T, s Stats) {
				gold := s.Mesh.ByProfile["gold"]
				if gold.Requests == 0 || s.Mesh.ByRoute["gold"].Requests != gold.Requests || gold.ByCluster[canaryCluster] != gold.Requests {
					t.Errorf("profile %+v, routes %+v", gold, s.Mesh.ByRoute)
				}
			},
		},
		{
			name: "sticky canary: a client that reached the canary stays there",
			snap: func(t *testing.T) *Snapshot { return routedMesh(t, stickyCanaryRoutes()...) },
			// Ten requests each: about a third of the clients (0.9^10)
			// never draw the canary's 10%.
			cfg: func(c *Config) { c.Clients = 100 },
			check: func(t *testing.T, s Stats) {
				reached := 0
				for id, c := range s.Mesh.ByClient {
					if c.Requests != 10 {
						t.Errorf("client %d sent %d requests, want 10", id, c.Requests)
					}
					first, ok := c.First["reviews-canary"]
					if !ok {
						continue
					}
					reached++
					if c.Last["reviews"] > first {
						t.Errorf("client %d: stable answered its request %d after the canary answered its request %d", id, c.Last["reviews"], first)
					}
				}
				if len(s.Mesh.ByClient) != 100 || reached < 40 || reached > 90 {
					t.Errorf("%d of %d clients reached the canary, want about 65 of 100", reached, len(s.Mesh.ByClient))
				}
				if s.Mesh.ByRoute["sticky"].Requests == 0 || s.Mesh.ByRoute["sticky"].ByCluster[canaryCluster] != s.Mesh.ByRoute["sticky"].Requests {
					t.Errorf("sticky route %+v", s.Mesh.ByRoute["sticky"])
				}
			},
		},
		{
			name: "sticky routes without clients: no cookie is ever sent back",
			snap: func(t *testing.T) *Snapshot { return routedMesh(t, stickyCanaryRoutes()...) },
			check: func(t *testing.T, s Stats) {
				if _, ok := s.Mesh.ByRoute["sticky"]; ok || len(s.Mesh.ByClient) != 0 {
					t.Errorf("routes %+v, clients %+v", s.Mesh.ByRoute, s.Mesh.ByClient)
				}
				if share := float64(s.Mesh.ByCluster[canaryCluster].Requests) / float64(s.Mesh.Requests); math.Abs(share-0.1) > 0.04 {
					t.Errorf("canary share %.3f, want the split's 0.10", share)
				}
			},
		},
		{
			name: "a cookie profile takes the sticky route at once",
			snap: func(t *testing.T) *Snapshot { return routedMesh(t, stickyCanaryRoutes()...) },
			cfg: func(c *Config) {
				c.Profiles = []Profile{{Name: "pinned", Share: 1, Cookies: map[string]string{"canary": "1"}}}
			},
			check: func(t *testing.T, s Stats) {
				if s.Mesh.ByRoute["sticky"].Requests != s.Mesh.Requests {
					t.Errorf("routes %+v", s.Mesh.ByRoute)
				}
			},
		},
		{
			name: "mirroring 50%: copies counted apart, the primary all to stable",
			snap: func(t *testing.T) *Snapshot {
				return routedMesh(t, mirrored(named("mirror", single("/", stableCluster)), canaryCluster, 50))
			},
			check: func(t *testing.T, s Stats) {
				m := s.Mesh.Mirrored[canaryCluster]
				if share := float64(m.Requests) / float64(s.Mesh.Requests); math.Abs(share-0.5) > 0.08 {
					t.Errorf("mirrored share %.3f, want 0.50", share)
				}
				if m.ByWorkload["reviews-canary"] != m.Requests || m.Failed != 0 {
					t.Errorf("mirrored %+v", m)
				}
				if _, ok := s.Mesh.ByCluster[canaryCluster]; ok || s.Mesh.ByWorkload["reviews-canary"] != 0 {
					t.Errorf("primary requests at the canary: %+v", s.Mesh)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			routes := &fakeRoutes{}
			routes.snap.Store(tt.snap(t))
			var seen atomic.Int64
			cfg := Config{
				Host: reviewsHost, RPS: 10000, Duration: 100 * time.Millisecond, Seed: 7, Tick: 5 * time.Millisecond,
				Behaviour: DefaultBehaviour(), OnRequest: func(Record) { seen.Add(1) },
			}
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			g := NewGenerator(cfg, routes, pods, nil)
			if err := g.Run(t.Context()); err != nil {
				t.Fatal(err)
			}
			s := g.Stats()
			if s.Mesh.Requests != 1000 || seen.Load() != 1000 || s.Mesh.NoRoute != 0 {
				t.Fatalf("sent %d (%d seen, %d without route), want exactly 1000 routed", s.Mesh.Requests, seen.Load(), s.Mesh.NoRoute)
			}
			tt.check(t, s)
		})
	}
}

func TestStatsAddViews(t *testing.T) {
	stable := PodInfo{Name: "reviews-h-1", Workload: "reviews"}
	records := []Record{
		{Via: ViaMesh, Matched: true, Route: "split", Client: 1, Cluster: stableCluster, Pod: stable, Code: 200},
		{Via: ViaMesh, Matched: true, Route: "split", Client: 1, Cluster: canaryCluster, Pod: canaryPod, Code: 500, Profile: "jason",
			Mirrors: []Record{
				{Via: ViaMirror, Cluster: canaryCluster, Pod: canaryPod, Code: 500},
				{Via: ViaMirror, Cluster: canaryCluster, Failure: FailNoHealthyUpstream},
			}},
		{Via: ViaMesh, Matched: true, Route: "sticky", Client: 1, Cluster: canaryCluster, Pod: canaryPod, Code: 200},
		{Via: ViaMesh, Matched: true, Route: "gone", Client: 2, Failure: FailDirectResponse, Code: 500},
		{Via: ViaMesh, Client: 2, Failure: FailNoRoute, Code: 404, Profile: "jason"},
	}
	var s Stats
	for _, r := range records {
		s.add(r)
	}
	m := s.Mesh
	if m.Requests != 5 || m.DirectResponse != 1 || m.NoRoute != 1 || m.Errors5xx != 2 {
		t.Errorf("totals %+v", m)
	}
	wantRoutes := map[string]ServedStats{
		"split":  {Requests: 2, Errors5xx: 1, ByCluster: map[string]int64{stableCluster: 1, canaryCluster: 1}, ByWorkload: map[string]int64{"reviews": 1, "reviews-canary": 1}},
		"sticky": {Requests: 1, ByCluster: map[string]int64{canaryCluster: 1}, ByWorkload: map[string]int64{"reviews-canary": 1}},
		"gone":   {Requests: 1, Errors5xx: 1},
	}
	if !reflect.DeepEqual(m.ByRoute, wantRoutes) {
		t.Errorf("by route\n  %+v\nwant\n  %+v", m.ByRoute, wantRoutes)
	}
	if p := m.ByProfile["jason"]; p.Requests != 2 || p.Errors5xx != 1 || p.ByWorkload["reviews-canary"] != 1 {
		t.Errorf("by profile %+v", m.ByProfile)
	}
	c1 := m.ByClient[1]
	if c1.Requests != 3 || !reflect.DeepEqual(c1.First, map[string]int64{"reviews": 1, "reviews-canary": 2}) ||
		!reflect.DeepEqual(c1.Last, map[string]int64{"reviews": 1, "reviews-canary": 3}) {
		t.Errorf("client 1 %+v", c1)
	}
	if c2 := m.ByClient[2]; c2.Requests != 2 || c2.First != nil {
		t.Errorf("client 2 %+v", c2)
	}
	if want := (MirrorStats{Requests: 2, Failed: 1, Errors5xx: 1, ByWorkload: map[string]int64{"reviews-canary": 1}}); !reflect.DeepEqual(m.Mirrored[canaryCluster], want) {
		t.Errorf("mirrored %+v, want %+v", m.Mirrored, want)
	}
	if _, ok := m.ByCluster[""]; ok {
		t.Errorf("by cluster %+v counts requests without a cluster", m.ByCluster)
	}
	c := s.clone()
	c.Mesh.ByRoute["split"].ByCluster[stableCluster] = 9
	c.Mesh.ByClient[1].First["reviews"] = 9
	c.Mesh.Mirrored[canaryCluster].ByWorkload["reviews-canary"] = 9
	if s.Mesh.ByRoute["split"].ByCluster[stableCluster] != 1 || s.Mesh.ByClient[1].First["reviews"] != 1 || s.Mesh.Mirrored[canaryCluster].ByWorkload["reviews-canary"] != 1 {
		t.Error("clone shares its maps")
	}
}
