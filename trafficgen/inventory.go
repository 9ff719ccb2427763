package trafficgen

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/clock"
)

// unknown is Istio's value of a label it cannot fill.
const unknown = "unknown"

// PodInfo is what the generator knows of a pod: enough to simulate its
// answers and to label its metrics as Istio would.
type PodInfo struct {
	// Name and Namespace name the pod.
	Name, Namespace string
	// IP is the pod's IP.
	IP string
	// Labels are the pod's labels (app and version appear in metrics).
	Labels map[string]string
	// Image is the application container's image (the first container
	// that is not Istio's sidecar).
	Image string
	// Workload is the owning workload: the Deployment's name for a pod of
	// a ReplicaSet of a Deployment (Istio's destination_workload).
	Workload string
	// ServiceAccount is the pod's service account.
	ServiceAccount string
}

// podInfo extracts a PodInfo from a pod.
func podInfo(p *corev1.Pod) PodInfo {
	info := PodInfo{
		Name: p.Name, Namespace: p.Namespace, IP: p.Status.PodIP,
		Labels: p.Labels, Workload: workloadOf(p), ServiceAccount: p.Spec.ServiceAccountName,
	}
	for _, c := range p.Spec.Containers {
		if c.Name != "istio-proxy" {
			info.Image = c.Image
			break
		}
	}
	return info
}

// workloadOf names a pod's workload as Istio does: a pod of a ReplicaSet
// belongs to the Deployment whose name is the ReplicaSet's without the
// pod-template-hash suffix; a pod of another controller belongs to that
// controller; a bare pod is its own workload.
//
// Example: a pod owned by ReplicaSet "reviews-canary-7d4b9c" with label
// pod-template-hash=7d4b9c belongs to workload "reviews-canary".
func workloadOf(p *corev1.Pod) string {
	owner := metav1.GetControllerOf(p)
	if owner == nil {
		return p.Name
	}
	if owner.Kind == "ReplicaSet" {
		if hash := p.Labels[appsv1.DefaultDeploymentUniqueLabelKey]; hash != "" {
			if name, ok := strings.CutSuffix(owner.Name, "-"+hash); ok {
				return name
			}
		}
	}
	return owner.Name
}

// SliceEndpoint is a ready endpoint of a Service from its EndpointSlices.
type SliceEndpoint struct {
	// Address is the endpoint's first address (the pod IP).
	Address string
	// Pod is the name of the pod it targets ("" if none).
	Pod string
}

// readyEndpoints lists the ready endpoints of a Service's EndpointSlices,
// as kube-proxy balances over them: an endpoint whose ready condition is
// true or unknown (the API says to read nil as ready), each address once,
// sorted by address.
func readyEndpoints(list []*discoveryv1.EndpointSlice) []SliceEndpoint {
	seen := map[string]bool{}
	var out []SliceEndpoint
	for _, s := range list {
		for _, e := range s.Endpoints {
			if e.Conditions.Ready != nil && !*e.Conditions.Ready || len(e.Addresses) == 0 || seen[e.Addresses[0]] {
				continue
			}
			seen[e.Addresses[0]] = true
			ep := SliceEndpoint{Address: e.Addresses[0]}
			if e.TargetRef != nil && e.TargetRef.Kind == "Pod" {
				ep.Pod = e.TargetRef.Name
			}
			out = append(out, ep)
		}
	}
	slices.SortFunc(out, func(a, b SliceEndpoint) int { return strings.Compare(a.Address, b.Address) })
	return out
}

// ipIndex indexes pods by IP.
const ipIndex = "ip"

// Inventory watches the Pods and EndpointSlices of one namespace with
// informers: which pod an endpoint address is, and which endpoints of a
// Service are ready.
//
// A deleted pod is remembered for its termination grace period: a real
// pod's process keeps serving while it terminates, which covers the time
// the control plane takes to drop its endpoint, whereas a simulated
// cluster (kwok) removes the pod at once.
type Inventory struct {
	factory informers.SharedInformerFactory
	pods    cache.SharedIndexInformer
	slices  cache.SharedIndexInformer
	clock   clock.PassiveClock

	mu sync.Mutex
	// gone are the deleted pods by IP, until their grace period ends.
	gone map[string]tombstone
}

// tombstone is a deleted pod still answering until its grace period ends.
type tombstone struct {
	pod   PodInfo
	until time.Time
}

// NewInventory returns an inventory of a namespace; call Start.
func NewInventory(cs kubernetes.Interface, namespace string) (*Inventory, error) {
	f := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace(namespace))
	inv := &Inventory{
		factory: f,
		pods:    f.Core().V1().Pods().Informer(),
		slices:  f.Discovery().V1().EndpointSlices().Informer(),
		clock:   clock.RealClock{},
		gone:    map[string]tombstone{},
	}
	if _, err := inv.pods.AddEventHandler(cache.ResourceEventHandlerFuncs{DeleteFunc: inv.onDelete}); err != nil {
		return nil, fmt.Errorf("watch pod deletions: %w", err)
	}
	err := inv.pods.AddIndexers(cache.Indexers{ipIndex: func(obj any) ([]string, error) {
		p, ok := obj.(*corev1.Pod)
		if !ok || p.Status.PodIP == "" {
			return nil, nil
		}
		return []string{p.Status.PodIP}, nil
	}})
	if err != nil {
		return nil, fmt.Errorf("index pods by ip: %w", err)
	}
	err = inv.slices.AddIndexers(cache.Indexers{discoveryv1.LabelServiceName: func(obj any) ([]string, error) {
		s, ok := obj.(*discoveryv1.EndpointSlice)
		if !ok || s.Labels[discoveryv1.LabelServiceName] == "" {
			return nil, nil
		}
		return []string{s.Labels[discoveryv1.LabelServiceName]}, nil
	}})
	if err != nil {
		return nil, fmt.Errorf("index endpoint slices by service: %w", err)
	}
	return inv, nil
}

// Start starts the informers, which run until ctx ends, and waits until
// they have listed everything.
func (i *Inventory) Start(ctx context.Context) error {
	i.factory.Start(ctx.Done())
	for typ, ok := range i.factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return fmt.Errorf("sync %v informer: %w", typ, ctx.Err())
		}
	}
	return nil
}

// onDelete remembers a deleted pod for its grace period.
func (i *Inventory) onDelete(obj any) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	p, ok := obj.(*corev1.Pod)
	if !ok || p.Status.PodIP == "" {
		return
	}
	grace := 30 * time.Second
	if s := p.Spec.TerminationGracePeriodSeconds; s != nil {
		grace = time.Duration(*s) * time.Second
	}
	now := i.clock.Now()
	i.mu.Lock()
	defer i.mu.Unlock()
	for ip, t := range i.gone {
		if now.After(t.until) {
			delete(i.gone, ip)
		}
	}
	i.gone[p.Status.PodIP] = tombstone{pod: podInfo(p), until: now.Add(grace)}
}

// PodByIP returns the pod that has an IP: a pod being deleted counts only
// when no other pod has the address, and a deleted one only when no pod
// has it, until its grace period ends.
func (i *Inventory) PodByIP(ip string) (PodInfo, bool) {
	objs, err := i.pods.GetIndexer().ByIndex(ipIndex, ip)
	if err != nil || len(objs) == 0 {
		i.mu.Lock()
		defer i.mu.Unlock()
		t, ok := i.gone[ip]
		if !ok || i.clock.Now().After(t.until) {
			return PodInfo{}, false
		}
		return t.pod, true
	}
	best := objs[0].(*corev1.Pod)
	for _, o := range objs[1:] {
		if p := o.(*corev1.Pod); best.DeletionTimestamp != nil && p.DeletionTimestamp == nil {
			best = p
		}
	}
	return podInfo(best), true
}

// ReadyEndpoints returns the ready endpoints of a Service of the
// namespace, from its EndpointSlices.
func (i *Inventory) ReadyEndpoints(service string) []SliceEndpoint {
	objs, err := i.slices.GetIndexer().ByIndex(discoveryv1.LabelServiceName, service)
	if err != nil {
		return nil
	}
	list := make([]*discoveryv1.EndpointSlice, 0, len(objs))
	for _, o := range objs {
		list = append(list, o.(*discoveryv1.EndpointSlice))
	}
	return readyEndpoints(list)
}

// FindSourceProxy finds the pod to pose as: the pod named name, or else
// the first (by name) running pod with an IP whose name starts with name
// (so "productpage" finds "productpage-v1-5d9c7b-x2x9z").
func FindSourceProxy(ctx context.Context, cs kubernetes.Interface, namespace, name string) (Proxy, error) {
	pods, err := cs.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return Proxy{}, fmt.Errorf("list pods in %s: %w", namespace, err)
	}
	var found *corev1.Pod
	for idx := range pods.Items {
		p := &pods.Items[idx]
		if p.Status.PodIP == "" || p.DeletionTimestamp != nil {
			continue
		}
		if p.Name == name {
			found = p
			break
		}
		if strings.HasPrefix(p.Name, name) && p.Status.Phase == corev1.PodRunning && (found == nil || p.Name < found.Name) {
			found = p
		}
	}
	if found == nil {
		return Proxy{}, fmt.Errorf("no running pod with an IP named %q or starting with it in %s", name, namespace)
	}
	info := podInfo(found)
	return Proxy{
		PodName: info.Name, Namespace: info.Namespace, IP: info.IP, Labels: info.Labels,
		Workload: info.Workload, ServiceAccount: info.ServiceAccount,
	}, nil
}
