package trafficgen

import (
	"reflect"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
)

// pod is a pod fixture owned by a controller of the given kind and name.
func pod(name, ip, ownerKind, owner string, labels map[string]string, images ...string) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", Labels: labels},
		Status:     corev1.PodStatus{PodIP: ip, Phase: corev1.PodRunning},
	}
	if owner != "" {
		p.OwnerReferences = []metav1.OwnerReference{{Kind: ownerKind, Name: owner, Controller: ptr.To(true)}}
	}
	for i, img := range images {
		name := "app"
		if i == 0 && len(images) > 1 {
			name = "istio-proxy"
		}
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: name, Image: img})
	}
	return p
}

func TestWorkloadOf(t *testing.T) {
	tests := []struct {
		name string
		pod  *corev1.Pod
		want string
	}{
		{"pod of a Deployment", pod("reviews-7d4b9c-x2x9z", "", "ReplicaSet", "reviews-7d4b9c", map[string]string{"pod-template-hash": "7d4b9c"}), "reviews"},
		{"pod of the canary Deployment", pod("reviews-canary-5f6-abcde", "", "ReplicaSet", "reviews-canary-5f6", map[string]string{"pod-template-hash": "5f6"}), "reviews-canary"},
		{"ReplicaSet of its own", pod("rs-abcde", "", "ReplicaSet", "rs", nil), "rs"},
		{"StatefulSet", pod("db-0", "", "StatefulSet", "db", nil), "db"},
		{"bare pod", pod("debug", "", "", "", nil), "debug"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := workloadOf(tt.pod); got != tt.want {
				t.Errorf("workloadOf = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestPodInfoSkipsTheSidecar(t *testing.T) {
	p := pod("reviews-1", "10.0.0.1", "ReplicaSet", "reviews-h", map[string]string{"pod-template-hash": "h", "version": "v1"},
		"istio/proxyv2:1.29", "example.com/reviews:v1")
	p.Spec.ServiceAccountName = "bookinfo-reviews"
	got := podInfo(p)
	want := PodInfo{Name: "reviews-1", Namespace: "ns", IP: "10.0.0.1", Labels: p.Labels, Image: "example.com/reviews:v1", Workload: "reviews", ServiceAccount: "bookinfo-reviews"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("podInfo = %+v, want %+v", got, want)
	}
}

func TestReadyEndpoints(t *testing.T) {
	endpoint := func(addr, pod string, ready *bool) discoveryv1.Endpoint {
		e := discoveryv1.Endpoint{Addresses: []string{addr}, Conditions: discoveryv1.EndpointConditions{Ready: ready}}
		if pod != "" {
			e.TargetRef = &corev1.ObjectReference{Kind: "Pod", Name: pod}
		}
		return e
	}
	slice := func(eps ...discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
		return &discoveryv1.EndpointSlice{Endpoints: eps}
	}
	tests := []struct {
		name   string
		slices []*discoveryv1.EndpointSlice
		want   []SliceEndpoint
	}{
		{"none", nil, nil},
		{"ready, not ready and unknown", []*discoveryv1.EndpointSlice{slice(
			endpoint("10.0.0.3", "c", ptr.To(true)), endpoint("10.0.0.1", "a", ptr.To(false)), endpoint("10.0.0.2", "b", nil),
		)}, []SliceEndpoint{{"10.0.0.2", "b"}, {"10.0.0.3", "c"}}},
		{"the same address in two slices once", []*discoveryv1.EndpointSlice{
			slice(endpoint("10.0.0.1", "a", ptr.To(true))), slice(endpoint("10.0.0.1", "a", ptr.To(true)), endpoint("10.0.0.4", "", ptr.To(true))),
		}, []SliceEndpoint{{"10.0.0.1", "a"}, {"10.0.0.4", ""}}},
		{"no address", []*discoveryv1.EndpointSlice{slice(discoveryv1.Endpoint{})}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := readyEndpoints(tt.slices); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("readyEndpoints = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestDeletedPodsAnswerDuringTheirGracePeriod(t *testing.T) {
	inv, err := NewInventory(fake.NewClientset(), "ns")
	if err != nil {
		t.Fatal(err)
	}
	clk := clocktesting.NewFakePassiveClock(time.Unix(1000, 0))
	inv.clock = clk
	p := pod("reviews-canary-h-1", "10.0.0.9", "ReplicaSet", "reviews-canary-h", map[string]string{"pod-template-hash": "h"}, "reviews:v2")
	p.Spec.TerminationGracePeriodSeconds = ptr.To[int64](10)
	inv.onDelete(p)

	clk.SetTime(clk.Now().Add(9 * time.Second))
	if got, ok := inv.PodByIP("10.0.0.9"); !ok || got.Workload != "reviews-canary" {
		t.Fatalf("within its grace period: %+v, %v; want the deleted pod", got, ok)
	}
	clk.SetTime(clk.Now().Add(2 * time.Second))
	if got, ok := inv.PodByIP("10.0.0.9"); ok {
		t.Fatalf("after its grace period: %+v; want no pod", got)
	}
}
