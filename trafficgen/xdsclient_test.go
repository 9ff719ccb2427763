package trafficgen

import (
	"context"
	"fmt"
	"net"
	"reflect"
	"sync"
	"testing"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// fakeIstiod is an ADS server that answers every first request of a type
// on a stream with its current resources, and ends each stream but the
// last once the route was acknowledged, as istiod ends streams at their
// max age.
type fakeIstiod struct {
	discoveryv3.UnimplementedAggregatedDiscoveryServiceServer
	t testing.TB

	mu      sync.Mutex
	streams [][]req // requests by stream
	// resources by type URL, per stream (the last entry serves any later
	// stream).
	resources []map[string][]proto.Message
}

func (f *fakeIstiod) StreamAggregatedResources(s grpc.BidiStreamingServer[discoveryv3.DiscoveryRequest, discoveryv3.DiscoveryResponse]) error {
	f.mu.Lock()
	n := len(f.streams)
	f.streams = append(f.streams, nil)
	res := f.resources[min(n, len(f.resources)-1)]
	f.mu.Unlock()
	for {
		r, err := s.Recv()
		if err != nil {
			return err
		}
		f.mu.Lock()
		f.streams[n] = append(f.streams[n], gist([]*discoveryv3.DiscoveryRequest{r})[0])
		f.mu.Unlock()
		if r.GetResponseNonce() == "" {
			v := fmt.Sprintf("v%d", n+1)
			if err := s.Send(response(f.t, r.GetTypeUrl(), v, v+"-"+typeName(r.GetTypeUrl()), res[r.GetTypeUrl()]...)); err != nil {
				return err
			}
			continue
		}
		if r.GetTypeUrl() == typeRoute && n+1 < len(f.resources) {
			return nil // max connection age
		}
	}
}

func (f *fakeIstiod) requests() [][]req {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][]req(nil), f.streams...)
}

// resourcesAt are the resources of a mesh where reviews has the given
// weights.
func resourcesAt(t testing.TB, stable, canary int) map[string][]proto.Message {
	return map[string][]proto.Message{
		typeCluster:  {edsCluster(stableCluster), edsCluster(canaryCluster)},
		typeListener: {httpListener(t, "0.0.0.0_9080", "9080")},
		typeRoute:    {routeConfig("9080", vhost(reviewsHost, weighted("/", stableCluster, stable, canaryCluster, canary)))},
		typeEndpoint: {cla(stableCluster, ep("10.0.1.1", HealthHealthy)), cla(canaryCluster, ep("10.0.2.1", HealthHealthy))},
	}
}

func TestXDSClientFollowsAndReconnects(t *testing.T) {
	fake := &fakeIstiod{t: t, resources: []map[string][]proto.Message{resourcesAt(t, 80, 20), resourcesAt(t, 100, 0)}}
	srv := grpc.NewServer()
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(srv, fake)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(srv.Stop)

	c := NewXDSClient(XDSConfig{
		Address: l.Addr().String(), Port: 9080,
		Proxy: Proxy{PodName: "productpage-v1-abc", Namespace: "ns", IP: "10.0.0.7", Workload: "productpage-v1"},
	})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- c.Run(ctx) }()

	wait := func(stable, canary uint32) *Snapshot {
		t.Helper()
		wctx, wcancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer wcancel()
		want := map[string]uint32{stableCluster: stable, canaryCluster: canary}
		s, err := c.WaitFor(wctx, func(s *Snapshot) bool {
			d, ok := s.Destination("reviews")
			return ok && reflect.DeepEqual(d.Weights(), want) && d.Clusters[0].Warm && d.Clusters[1].Warm
		})
		if err != nil {
			d, _ := s.Destination("reviews")
			t.Fatalf("weights %v never arrived (have %+v): %v", want, d, err)
		}
		return s
	}
	wait(80, 20)
	wait(100, 0) // from the second stream, after the first one ended

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	streams := fake.requests()
	if len(streams) < 2 {
		t.Fatalf("%d streams, want a reconnect", len(streams))
	}
	wantFirst := []req{
		{Type: "CDS", Node: true},
		{Type: "CDS", Version: "v1", Nonce: "v1-CDS"},
		{Type: "EDS", Names: []string{canaryCluster, stableCluster}},
		{Type: "LDS"},
		{Type: "EDS", Version: "v1", Nonce: "v1-EDS", Names: []string{canaryCluster, stableCluster}},
		{Type: "LDS", Version: "v1", Nonce: "v1-LDS"},
		{Type: "RDS", Names: []string{"9080"}},
		{Type: "RDS", Version: "v1", Nonce: "v1-RDS", Names: []string{"9080"}},
	}
	if !reflect.DeepEqual(streams[0], wantFirst) {
		t.Errorf("first stream's requests\n  %+v\nwant\n  %+v", streams[0], wantFirst)
	}
	if got := streams[1][0]; !reflect.DeepEqual(got, req{Type: "CDS", Version: "v1", Node: true}) {
		t.Errorf("first request after reconnecting %+v, want clusters with the last version and the node", got)
	}
}

func TestWaitForSeesEverySnapshotInOrder(t *testing.T) {
	c := NewXDSClient(XDSConfig{})
	for i := range 5 {
		c.publish(&Snapshot{RouteName: fmt.Sprint(i)})
	}
	// A waiter that started before the publications sees the first match,
	// not the latest snapshot.
	c2 := NewXDSClient(XDSConfig{})
	got, waiting := make(chan string), make(chan struct{})
	go func() {
		var once sync.Once
		s, _ := c2.WaitFor(t.Context(), func(s *Snapshot) bool {
			once.Do(func() { close(waiting) })
			return s.RouteName >= "2"
		})
		got <- s.RouteName
	}()
	<-waiting
	for i := range 5 {
		c2.publish(&Snapshot{RouteName: fmt.Sprint(i)})
	}
	if r := <-got; r != "2" {
		t.Errorf("WaitFor returned snapshot %s, want the first that matched (2)", r)
	}
	if s := c.Snapshot(); s.RouteName != "4" {
		t.Errorf("Snapshot() %s, want the last (4)", s.RouteName)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := c.WaitFor(ctx, func(*Snapshot) bool { return false }); err == nil {
		t.Error("WaitFor on an ended context: no error")
	}
}
