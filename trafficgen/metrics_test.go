package trafficgen

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

var productpage = Proxy{
	PodName: "productpage-v1-abc", Namespace: "ns", IP: "10.0.0.7", Workload: "productpage-v1",
	Labels: map[string]string{"app": "productpage", "version": "v1"}, ServiceAccount: "bookinfo-productpage",
}

var canaryPod = PodInfo{
	Name: "reviews-canary-h-1", Namespace: "ns", IP: "10.0.2.1", Workload: "reviews-canary",
	Labels: map[string]string{"app": "reviews", "version": "v2"}, Image: "reviews:v2",
}

func TestIstioLabels(t *testing.T) {
	type want struct {
		reporter, srcWorkload, dstWorkload, dstVersion, service, code, flags, security string
	}
	tests := []struct {
		name string
		r    Record
		want []want
	}{
		{
			name: "mesh request answered by a pod: source and destination report it",
			r:    Record{Via: ViaMesh, Cluster: canaryCluster, Service: "reviews-canary.ns.svc.cluster.local", Pod: canaryPod, Code: 500},
			want: []want{
				{"source", "productpage-v1", "reviews-canary", "v2", "reviews-canary", "500", "-", "unknown"},
				{"destination", "productpage-v1", "reviews-canary", "v2", "reviews-canary", "500", "-", "mutual_tls"},
			},
		},
		{
			name: "empty destination: only the source reports it, flagged UH",
			r:    Record{Via: ViaMesh, Cluster: canaryCluster, Service: "reviews-canary.ns.svc.cluster.local", Failure: FailNoHealthyUpstream, Code: 503},
			want: []want{{"source", "productpage-v1", "unknown", "unknown", "reviews-canary", "503", "UH", "unknown"}},
		},
		{
			name: "no route: only the source, service unknown",
			r:    Record{Via: ViaMesh, Failure: FailNoRoute, Code: 404},
			want: []want{{"source", "productpage-v1", "unknown", "unknown", "unknown", "404", "NR", "unknown"}},
		},
		{
			name: "bypass: only the destination, from an unknown source over plain text",
			r:    Record{Via: ViaBypass, Service: "reviews.ns.svc.cluster.local", Pod: canaryPod, Code: 200},
			want: []want{{"destination", "unknown", "reviews-canary", "v2", "reviews", "200", "-", "none"}},
		},
		{
			name: "mirrored copy answered by a pod: only the destination reports it, as mesh traffic to the mirror's Service",
			r: Record{Via: ViaMirror, Cluster: canaryCluster, Service: "reviews-canary.ns.svc.cluster.local", Authority: "reviews-shadow:9080",
				Pod: canaryPod, Code: 500},
			want: []want{{"destination", "productpage-v1", "reviews-canary", "v2", "reviews-canary", "500", "-", "mutual_tls"}},
		},
		{
			name: "mirrored copy that reached no pod: nobody reports it",
			r:    Record{Via: ViaMirror, Cluster: canaryCluster, Service: "reviews-canary.ns.svc.cluster.local", Failure: FailNoHealthyUpstream},
			want: nil,
		},
		{
			name: "direct response of a route: only the source, its status, no flag",
			r:    Record{Via: ViaMesh, Matched: true, Route: "gone", Failure: FailDirectResponse, Code: 500},
			want: []want{{"source", "productpage-v1", "unknown", "unknown", "unknown", "500", "-", "unknown"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sets := istioLabels(productpage, tt.r)
			var got []want
			for _, l := range sets {
				if len(l) != len(istioLabelNames) {
					t.Fatalf("label set has %d labels, want %d: %v", len(l), len(istioLabelNames), l)
				}
				got = append(got, want{l["reporter"], l["source_workload"], l["destination_workload"], l["destination_version"],
					l["destination_service_name"], l["response_code"], l["response_flags"], l["connection_security_policy"]})
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("labels\n  %+v\nwant\n  %+v", got, tt.want)
			}
		})
	}
}

func TestIstioLabelValues(t *testing.T) {
	l := istioLabels(productpage, Record{Via: ViaMesh, Service: "reviews-canary.ns.svc.cluster.local", Pod: canaryPod, Code: 200})[1]
	want := prometheus.Labels{
		"reporter": "destination", "request_protocol": "http", "response_code": "200", "grpc_response_status": "", "response_flags": "-",
		"connection_security_policy": "mutual_tls",
		"source_workload":            "productpage-v1", "source_workload_namespace": "ns", "source_app": "productpage", "source_version": "v1",
		"source_principal":         "spiffe://cluster.local/ns/ns/sa/bookinfo-productpage",
		"source_canonical_service": "productpage", "source_canonical_revision": "v1", "source_cluster": "Kubernetes",
		"destination_workload": "reviews-canary", "destination_workload_namespace": "ns", "destination_app": "reviews", "destination_version": "v2",
		"destination_principal":         "spiffe://cluster.local/ns/ns/sa/default",
		"destination_canonical_service": "reviews", "destination_canonical_revision": "v2", "destination_cluster": "Kubernetes",
		"destination_service": "reviews-canary.ns.svc.cluster.local", "destination_service_name": "reviews-canary", "destination_service_namespace": "ns",
	}
	if !reflect.DeepEqual(l, want) {
		t.Errorf("labels\n  %v\nwant\n  %v", l, want)
	}
}

func TestMetricsExportIstiosNamesAndBuckets(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg, productpage)
	if err != nil {
		t.Fatal(err)
	}
	m.Observe(Record{Via: ViaMesh, Cluster: canaryCluster, Service: "reviews-canary.ns.svc.cluster.local", Pod: canaryPod, Code: 200, Latency: 12 * time.Millisecond})
	m.Observe(Record{Via: ViaMesh, Cluster: canaryCluster, Service: "reviews-canary.ns.svc.cluster.local", Pod: canaryPod, Code: 200, Latency: 30 * time.Millisecond})

	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range families {
		names = append(names, f.GetName())
		if f.GetName() == "istio_requests_total" {
			// Two series, source and destination, of two requests each.
			for _, m := range f.GetMetric() {
				if v := m.GetCounter().GetValue(); len(f.GetMetric()) != 2 || v != 2 {
					t.Errorf("istio_requests_total: %d series, one at %v; want 2 series at 2", len(f.GetMetric()), v)
				}
			}
		}
		if f.GetName() != "istio_request_duration_milliseconds" {
			continue
		}
		h := f.GetMetric()[0].GetHistogram()
		var bounds []float64
		for _, b := range h.GetBucket() {
			bounds = append(bounds, b.GetUpperBound())
		}
		if !slices.Equal(bounds, IstioDurationBuckets) {
			t.Errorf("buckets %v, want Istio's %v", bounds, IstioDurationBuckets)
		}
		if h.GetSampleSum() != 42 {
			t.Errorf("sum %v ms, want 42", h.GetSampleSum())
		}
	}
	if got := strings.Join(names, ","); got != "istio_request_duration_milliseconds,istio_requests_total" {
		t.Errorf("metric families %s", got)
	}
}

func TestServiceNames(t *testing.T) {
	tests := []struct{ cluster, service, name, namespace string }{
		{"outbound|9080||reviews.ns.svc.cluster.local", "reviews.ns.svc.cluster.local", "reviews", "ns"},
		{"outbound|9080|v1|reviews.ns.svc.cluster.local", "reviews.ns.svc.cluster.local", "reviews", "ns"},
		{"PassthroughCluster", "PassthroughCluster", "PassthroughCluster", "unknown"},
		{"", "", "unknown", "unknown"},
	}
	for _, tt := range tests {
		s := serviceOfCluster(tt.cluster)
		name, ns := serviceNameAndNamespace(s)
		if s != tt.service || name != tt.name || ns != tt.namespace {
			t.Errorf("%q: service %q name %q namespace %q, want %q %q %q", tt.cluster, s, name, ns, tt.service, tt.name, tt.namespace)
		}
	}
}

func TestMetricsObserveMirroredCopies(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg, productpage)
	if err != nil {
		t.Fatal(err)
	}
	stablePod := PodInfo{Name: "reviews-h-1", Namespace: "ns", Workload: "reviews", Labels: map[string]string{"app": "reviews", "version": "v1"}}
	m.Observe(Record{
		Via: ViaMesh, Cluster: stableCluster, Service: "reviews.ns.svc.cluster.local", Pod: stablePod, Code: 200,
		Mirrors: []Record{
			{Via: ViaMirror, Cluster: canaryCluster, Service: "reviews-canary.ns.svc.cluster.local", Pod: canaryPod, Code: 500},
			{Via: ViaMirror, Cluster: canaryCluster, Service: "reviews-canary.ns.svc.cluster.local", Failure: FailNoHealthyUpstream},
		},
	})
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "istio_requests_total" {
			continue
		}
		for _, s := range f.GetMetric() {
			l := map[string]string{}
			for _, p := range s.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			got[l["reporter"]+" "+l["destination_workload"]+" "+l["response_code"]] += s.GetCounter().GetValue()
		}
	}
	want := map[string]float64{
		"source reviews 200": 1, "destination reviews 200": 1,
		// The copy: its destination only; the failed copy: nobody.
		"destination reviews-canary 500": 1,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("istio_requests_total %v, want %v", got, want)
	}
}
