package integration_test

import (
	"fmt"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestExplore(t *testing.T) {
	cs, _ := clients(t)
	ns := namespace(t, cs)
	ctx := t.Context()
	cs.AppsV1().Deployments(ns).Create(ctx, deployment(ns, "reviews", 2, map[string]string{"app": "reviews", "version": "v1"}, "r:v1"), metav1.CreateOptions{})
	cs.CoreV1().Services(ns).Create(ctx, service(ns, "reviews", map[string]string{"app": "reviews"}), metav1.CreateOptions{})
	waitAvailable(t, cs, ns, "reviews", 2)
	time.Sleep(2 * time.Second)
	conn, err := grpc.NewClient(env.IstiodGRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	s, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	node := &corev3.Node{Id: fmt.Sprintf("sidecar~10.244.9.9~pp.%s~%s.svc.cluster.local", ns, ns)}
	s.Send(&discoveryv3.DiscoveryRequest{Node: node, TypeUrl: "type.googleapis.com/envoy.config.cluster.v3.Cluster"})
	resp, err := s.Recv()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range resp.Resources {
		var c clusterv3.Cluster
		r.UnmarshalTo(&c)
		if c.GetType() == clusterv3.Cluster_EDS {
			b, _ := protojson.Marshal(&c)
			fmt.Println(c.Name, string(b)[:min(len(b), 3000)])
		}
	}
}
