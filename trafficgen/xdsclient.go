package trafficgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/go-logr/logr"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/structpb"
	"k8s.io/utils/clock"
)

// Proxy is the identity of the sidecar the client poses as: a pod of the
// mesh.
type Proxy struct {
	// PodName and Namespace name the pod.
	PodName, Namespace string
	// IP is the pod's IP; istiod wants a valid address.
	IP string
	// Labels are the pod's labels (app and version name the workload in
	// metrics).
	Labels map[string]string
	// Workload is the pod's owning workload (its Deployment's name).
	Workload string
	// ServiceAccount is the pod's service account ("default" if empty).
	ServiceAccount string
}

// NodeID is the sidecar's xDS node id:
// "sidecar~10.244.0.7~productpage-v1-5d9c.default~default.svc.cluster.local".
func (p Proxy) NodeID() string {
	return fmt.Sprintf("sidecar~%s~%s.%s~%s.svc.cluster.local", p.IP, p.PodName, p.Namespace, p.Namespace)
}

// serviceAccount returns the service account, "default" when unset.
func (p Proxy) serviceAccount() string {
	if p.ServiceAccount == "" {
		return "default"
	}
	return p.ServiceAccount
}

// XDSConfig configures an XDSClient.
type XDSConfig struct {
	// Address is istiod's plaintext xDS address (host:port, e.g. the
	// --grpcAddr of pilot-discovery, 15010 in a cluster).
	Address string
	// Proxy is the sidecar the client poses as.
	Proxy Proxy
	// Port is the service port whose outbound route is followed (9080).
	Port uint32
	// Path is the request path whose route is taken (default "/").
	Path string
	// ClusterID is istiod's cluster id (default "Kubernetes").
	ClusterID string
	// IstioVersion is the proxy version announced (default "1.29.0").
	IstioVersion string
	// Clock stamps snapshots and times the reconnect backoff (default
	// the real clock).
	Clock clock.WithTicker
	// MaxBackoff bounds the wait between reconnects (default 5s).
	MaxBackoff time.Duration
}

// XDSClient is an ADS client of istiod posing as a sidecar. Run keeps a
// stream open (reconnecting with backoff: istiod closes streams after its
// max connection age) and publishes a new Snapshot on every change.
type XDSClient struct {
	cfg XDSConfig

	mu   sync.Mutex
	last *publication
}

// publication is one published snapshot in a chain: ready is closed when
// next is set, so a waiter sees every snapshot in order.
type publication struct {
	snap  *Snapshot
	ready chan struct{}
	next  *publication
}

// NewXDSClient returns a client that has received nothing; call Run.
func NewXDSClient(cfg XDSConfig) *XDSClient {
	if cfg.Path == "" {
		cfg.Path = "/"
	}
	if cfg.ClusterID == "" {
		cfg.ClusterID = "Kubernetes"
	}
	if cfg.IstioVersion == "" {
		cfg.IstioVersion = "1.29.0"
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = 5 * time.Second
	}
	return &XDSClient{cfg: cfg, last: &publication{snap: &Snapshot{}, ready: make(chan struct{})}}
}

// Snapshot returns the last state received (empty before the first
// response). It is never modified: call again for news.
func (c *XDSClient) Snapshot() *Snapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last.snap
}

// WaitFor returns the first snapshot, the current one or a later one,
// for which cond holds. Every published snapshot is seen, in order, so
// the returned snapshot's UpdatedAt is when the condition first held.
func (c *XDSClient) WaitFor(ctx context.Context, cond func(*Snapshot) bool) (*Snapshot, error) {
	c.mu.Lock()
	p := c.last
	c.mu.Unlock()
	for {
		if cond(p.snap) {
			return p.snap, nil
		}
		select {
		case <-ctx.Done():
			return p.snap, fmt.Errorf("wait for xds snapshot: %w", ctx.Err())
		case <-p.ready:
			p = p.next
		}
	}
}

func (c *XDSClient) publish(s *Snapshot) {
	c.mu.Lock()
	defer c.mu.Unlock()
	next := &publication{snap: s, ready: make(chan struct{})}
	c.last.next = next
	close(c.last.ready)
	c.last = next
}

// node is the sidecar's node with metadata as pilot-agent sends it.
func (c *XDSClient) node() (*corev3.Node, error) {
	p := c.cfg.Proxy
	labels := map[string]any{}
	for k, v := range p.Labels {
		labels[k] = v
	}
	md, err := structpb.NewStruct(map[string]any{
		"NAMESPACE":         p.Namespace,
		"NAME":              p.PodName,
		"INSTANCE_IPS":      p.IP,
		"LABELS":            labels,
		"WORKLOAD_NAME":     p.Workload,
		"OWNER":             fmt.Sprintf("kubernetes://apis/apps/v1/namespaces/%s/deployments/%s", p.Namespace, p.Workload),
		"SERVICE_ACCOUNT":   p.serviceAccount(),
		"ISTIO_VERSION":     c.cfg.IstioVersion,
		"CLUSTER_ID":        c.cfg.ClusterID,
		"INTERCEPTION_MODE": "REDIRECT",
	})
	if err != nil {
		return nil, fmt.Errorf("node metadata: %w", err)
	}
	return &corev3.Node{
		Id:       p.NodeID(),
		Cluster:  p.Workload + "." + p.Namespace,
		Metadata: md,
	}, nil
}

// Run connects to istiod and follows its pushes until ctx ends, then
// returns nil. Streams that end (istiod's max connection age, a restart)
// are opened again after a backoff that doubles up to MaxBackoff and
// starts over once a stream has delivered a response.
func (c *XDSClient) Run(ctx context.Context) error {
	log := logr.FromContextOrDiscard(ctx).WithValues("istiod", c.cfg.Address, "node", c.cfg.Proxy.NodeID())
	node, err := c.node()
	if err != nil {
		return err
	}
	conn, err := grpc.NewClient(c.cfg.Address,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(256<<20)))
	if err != nil {
		return fmt.Errorf("dial istiod %s: %w", c.cfg.Address, err)
	}
	defer func() { _ = conn.Close() }()
	ads := discoveryv3.NewAggregatedDiscoveryServiceClient(conn)

	state := newADSState(node, c.cfg.Port, c.cfg.Path)
	backoff := 100 * time.Millisecond
	for {
		received, err := c.stream(ctx, ads, state)
		if ctx.Err() != nil {
			return nil
		}
		if received {
			backoff = 100 * time.Millisecond
		}
		log.Info("xDS stream ended, reconnecting", "reason", err.Error(), "after", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-c.cfg.Clock.After(backoff):
		}
		backoff = min(2*backoff, c.cfg.MaxBackoff)
	}
}

// stream runs one ADS stream until it fails; received reports whether it
// delivered any response.
func (c *XDSClient) stream(ctx context.Context, ads discoveryv3.AggregatedDiscoveryServiceClient, state *adsState) (received bool, err error) {
	log := logr.FromContextOrDiscard(ctx)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s, err := ads.StreamAggregatedResources(ctx)
	if err != nil {
		return false, fmt.Errorf("open ads stream: %w", err)
	}
	send := func(reqs []*discoveryv3.DiscoveryRequest) error {
		for _, r := range reqs {
			if err := s.Send(r); err != nil {
				return fmt.Errorf("send %s request: %w", typeName(r.GetTypeUrl()), err)
			}
		}
		return nil
	}
	if err := send(state.connect()); err != nil {
		return false, err
	}
	log.V(1).Info("xDS stream open")
	for {
		resp, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return received, errors.New("istiod closed the stream")
		}
		if err != nil {
			return received, fmt.Errorf("receive: %w", err)
		}
		received = true
		reqs, changed, rejected := state.handle(resp, c.cfg.Clock.Now())
		if rejected != nil {
			log.Info("xDS response rejected", "type", typeName(resp.GetTypeUrl()), "version", resp.GetVersionInfo(), "reason", rejected.Error())
		} else {
			log.V(1).Info("xDS response", "type", typeName(resp.GetTypeUrl()), "version", resp.GetVersionInfo(),
				"resources", len(resp.GetResources()), "changed", changed)
		}
		if changed {
			c.publish(state.snapshot())
		}
		if err := send(reqs); err != nil {
			return received, err
		}
	}
}
