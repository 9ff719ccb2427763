package trafficgen

import (
	"reflect"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/protobuf/types/known/anypb"
)

// step is one response of istiod and what the client must answer.
type step struct {
	name        string
	resp        *discoveryv3.DiscoveryResponse
	connect     bool // a new stream instead of a response
	want        []req
	wantChanged bool
	wantErr     bool
	check       func(t *testing.T, s *Snapshot)
}

// runSteps plays a conversation against a fresh client state.
func runSteps(t *testing.T, steps []step) {
	t.Helper()
	s := newADSState(&corev3.Node{Id: "sidecar~10.0.0.7~productpage-v1-abc.ns~ns.svc.cluster.local"}, 9080, "/reviews/0")
	now := time.Unix(1000, 0)
	for _, st := range steps {
		now = now.Add(time.Second)
		var (
			got     []*discoveryv3.DiscoveryRequest
			changed bool
			err     error
		)
		if st.connect {
			got = s.connect()
		} else {
			got, changed, err = s.handle(st.resp, now)
		}
		if g := gist(got); !reflect.DeepEqual(g, st.want) {
			t.Fatalf("%s: requests\n  %+v\nwant\n  %+v", st.name, g, st.want)
		}
		if changed != st.wantChanged || (err != nil) != st.wantErr {
			t.Fatalf("%s: changed %v, error %v; want changed %v, error %v", st.name, changed, err, st.wantChanged, st.wantErr)
		}
		snap := s.snapshot()
		if changed && !snap.UpdatedAt.Equal(now) {
			t.Fatalf("%s: snapshot stamped %v, want %v", st.name, snap.UpdatedAt, now)
		}
		if st.check != nil {
			st.check(t, snap)
		}
	}
}

// destination fails the test unless the snapshot has the reviews host.
func destination(t *testing.T, s *Snapshot) Destination {
	t.Helper()
	d, ok := s.Destination(reviewsHost)
	if !ok {
		t.Fatalf("no destination %s in %+v", reviewsHost, s)
	}
	return d
}

func TestADSConversation(t *testing.T) {
	healthy := []Endpoint{ep("10.0.1.1", HealthHealthy), ep("10.0.1.2", HealthHealthy), ep("10.0.1.3", HealthHealthy)}
	canaryEP := ep("10.0.2.1", HealthHealthy)
	both := []string{canaryCluster, stableCluster}
	runSteps(t, []step{
		{name: "connect", connect: true, want: []req{{Type: "CDS", Node: true}}},
		{
			name: "clusters: ACK, then endpoints of the EDS clusters, then listeners",
			resp: response(t, typeCluster, "v1", "c1", edsCluster(stableCluster), edsCluster(canaryCluster), staticCluster("BlackHoleCluster")),
			want: []req{
				{Type: "CDS", Version: "v1", Nonce: "c1"},
				{Type: "EDS", Names: both},
				{Type: "LDS"},
			},
			wantChanged: true,
			check: func(t *testing.T, s *Snapshot) {
				if len(s.Clusters) != 2 || s.Clusters[stableCluster].Warm {
					t.Fatalf("clusters %+v: want the two EDS clusters, not warm", s.Clusters)
				}
			},
		},
		{
			name: "listeners: ACK, then the route the port's listener names",
			resp: response(t, typeListener, "v1", "l1", httpListener(t, "0.0.0.0_9443", "9443"), httpListener(t, "0.0.0.0_9080", "9080")),
			want: []req{
				{Type: "LDS", Version: "v1", Nonce: "l1"},
				{Type: "RDS", Names: []string{"9080"}},
			},
			wantChanged: true,
		},
		{
			name: "routes: ACK with the route's name; clusters not warm yet",
			resp: response(t, typeRoute, "v1", "r1",
				routeConfig("9443", vhost("other.ns.svc.cluster.local:9443", single("/", "x"))),
				routeConfig("9080",
					vhost("ratings.ns.svc.cluster.local:9080", single("/", "outbound|9080||ratings.ns.svc.cluster.local")),
					vhost(reviewsHost,
						weighted("/admin", stableCluster, 100),
						weighted("/", stableCluster, 80, canaryCluster, 20),
						single("/", "never"),
					),
				)),
			want:        []req{{Type: "RDS", Version: "v1", Nonce: "r1", Names: []string{"9080"}}},
			wantChanged: true,
			check: func(t *testing.T, s *Snapshot) {
				d := destination(t, s)
				if w := d.Weights(); !reflect.DeepEqual(w, map[string]uint32{stableCluster: 80, canaryCluster: 20}) {
					t.Fatalf("weights %v", w)
				}
				if p := Route(d, seeded()); p.Failure != FailNoCluster {
					t.Fatalf("routing before the endpoints arrived: %+v, want a 503 NC", p)
				}
			},
		},
		{
			name:        "endpoints: ACK with the names; clusters warm",
			resp:        response(t, typeEndpoint, "v1", "e1", cla(stableCluster, healthy...), cla(canaryCluster, canaryEP), cla("unrequested")),
			want:        []req{{Type: "EDS", Version: "v1", Nonce: "e1", Names: both}},
			wantChanged: true,
			check: func(t *testing.T, s *Snapshot) {
				d := destination(t, s)
				if c := d.Clusters[0]; !c.Warm || !c.Known || !reflect.DeepEqual(c.Endpoints, healthy) {
					t.Fatalf("stable cluster %+v", c)
				}
				if _, ok := s.Clusters["unrequested"]; ok {
					t.Fatal("kept endpoints of a cluster not requested")
				}
			},
		},
		{
			name:        "the same clusters pushed again: ACK and endpoints requested again with the last EDS version and nonce",
			resp:        response(t, typeCluster, "v2", "c2", edsCluster(stableCluster), edsCluster(canaryCluster)),
			want:        []req{{Type: "CDS", Version: "v2", Nonce: "c2"}, {Type: "EDS", Version: "v1", Nonce: "e1", Names: both}},
			wantChanged: false,
		},
		{
			name:        "the same endpoints again: no change",
			resp:        response(t, typeEndpoint, "v2", "e2", cla(stableCluster, healthy...), cla(canaryCluster, canaryEP)),
			want:        []req{{Type: "EDS", Version: "v2", Nonce: "e2", Names: both}},
			wantChanged: false,
		},
		{
			name:        "new weights",
			resp:        response(t, typeRoute, "v2", "r2", routeConfig("9080", vhost(reviewsHost, single("/", stableCluster)))),
			want:        []req{{Type: "RDS", Version: "v2", Nonce: "r2", Names: []string{"9080"}}},
			wantChanged: true,
			check: func(t *testing.T, s *Snapshot) {
				if w := destination(t, s).Weights(); !reflect.DeepEqual(w, map[string]uint32{stableCluster: 100}) {
					t.Fatalf("weights %v, want the lone cluster at 100", w)
				}
			},
		},
		{
			name:        "canary endpoints unhealthy, then gone",
			resp:        response(t, typeEndpoint, "v3", "e3", cla(stableCluster, healthy...), cla(canaryCluster, ep("10.0.2.1", HealthUnhealthy))),
			want:        []req{{Type: "EDS", Version: "v3", Nonce: "e3", Names: both}},
			wantChanged: true,
			check: func(t *testing.T, s *Snapshot) {
				if c := s.Clusters[canaryCluster]; !c.Warm || c.Endpoints[0].Health != HealthUnhealthy {
					t.Fatalf("canary %+v", c)
				}
			},
		},
		{
			name:        "an undecodable response is rejected with the previous version",
			resp:        &discoveryv3.DiscoveryResponse{TypeUrl: typeListener, VersionInfo: "v9", Nonce: "l9", Resources: []*anypb.Any{{TypeUrl: typeListener, Value: []byte{0xff}}}},
			want:        []req{{Type: "LDS", Version: "v1", Nonce: "l9", NACK: true}},
			wantChanged: false,
			wantErr:     true,
		},
		{
			name:        "the canary cluster removed: its endpoints forgotten, endpoints requested for the rest",
			resp:        response(t, typeCluster, "v3", "c3", edsCluster(stableCluster)),
			want:        []req{{Type: "CDS", Version: "v3", Nonce: "c3"}, {Type: "EDS", Version: "v3", Nonce: "e3", Names: []string{stableCluster}}},
			wantChanged: true,
			check: func(t *testing.T, s *Snapshot) {
				if _, ok := s.Clusters[canaryCluster]; ok {
					t.Fatal("canary cluster kept")
				}
			},
		},
		{
			name:    "a new stream: versions kept, nonces forgotten, node sent again",
			connect: true,
			want:    []req{{Type: "CDS", Version: "v3", Node: true}},
		},
		{
			name: "clusters on the new stream: listeners requested again",
			resp: response(t, typeCluster, "v4", "c4", edsCluster(stableCluster)),
			want: []req{
				{Type: "CDS", Version: "v4", Nonce: "c4"},
				{Type: "EDS", Version: "v3", Names: []string{stableCluster}},
				{Type: "LDS", Version: "v1"},
			},
			check: func(t *testing.T, s *Snapshot) {
				if c := s.Clusters[stableCluster]; !c.Warm || len(c.Endpoints) != 3 {
					t.Fatalf("state lost on reconnect: %+v", c)
				}
			},
		},
		{
			name:        "listeners on the new stream: the route requested again",
			resp:        response(t, typeListener, "v5", "l5", httpListener(t, "0.0.0.0_9080", "9080")),
			want:        []req{{Type: "LDS", Version: "v5", Nonce: "l5"}, {Type: "RDS", Version: "v2", Names: []string{"9080"}}},
			wantChanged: false,
		},
		{
			name:        "the port's listener gone: its route no longer applies",
			resp:        response(t, typeListener, "v6", "l6", httpListener(t, "0.0.0.0_9443", "9443")),
			want:        []req{{Type: "LDS", Version: "v6", Nonce: "l6"}},
			wantChanged: true,
			check: func(t *testing.T, s *Snapshot) {
				if _, ok := s.Destination(reviewsHost); ok {
					t.Fatal("destination kept without its listener")
				}
			},
		},
	})
}

func TestADSIgnoresTypesNotAskedFor(t *testing.T) {
	s := newADSState(&corev3.Node{}, 9080, "/")
	reqs, changed, err := s.handle(&discoveryv3.DiscoveryResponse{TypeUrl: "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret", Nonce: "x"}, time.Now())
	if len(reqs) != 0 || changed || err != nil {
		t.Fatalf("got %v, %v, %v; want nothing", gist(reqs), changed, err)
	}
}
