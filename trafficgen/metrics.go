package trafficgen

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// IstioDurationBuckets are the buckets (milliseconds) of Istio's
// istio_request_duration_milliseconds histogram.
var IstioDurationBuckets = []float64{1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000}

// istioLabelNames are Istio's standard metric labels.
var istioLabelNames = []string{
	"reporter",
	"source_workload", "source_workload_namespace", "source_principal", "source_app", "source_version",
	"source_canonical_service", "source_canonical_revision", "source_cluster",
	"destination_workload", "destination_workload_namespace", "destination_principal", "destination_app", "destination_version",
	"destination_service", "destination_service_name", "destination_service_namespace",
	"destination_canonical_service", "destination_canonical_revision", "destination_cluster",
	"request_protocol", "response_code", "grpc_response_status", "response_flags", "connection_security_policy",
}

// Via says how a request travelled.
type Via string

// The two traffic sources.
const (
	// ViaMesh: routed by the source sidecar by istiod's configuration.
	ViaMesh Via = "mesh"
	// ViaBypass: sent straight to a ready endpoint of the Service, as
	// kube-proxy or a client outside the mesh does.
	ViaBypass Via = "bypass"
	// ViaMirror: a copy of a mesh request that its route mirrored to
	// another cluster (found in the primary Record's Mirrors).
	ViaMirror Via = "mirror"
)

// Record is one simulated request and its outcome.
type Record struct {
	// Time is when the request was sent.
	Time time.Time
	// Via is the traffic source.
	Via Via
	// Cluster is the cluster the mesh routed to (empty for the bypass).
	Cluster string
	// Service is the destination Service's host name
	// ("reviews-canary.ns.svc.cluster.local").
	Service string
	// Failure says why the source sidecar answered itself (mesh only).
	Failure Failure
	// Pod is the destination pod; zero when the request reached none or
	// the address is no pod the inventory knows.
	Pod PodInfo
	// Code is the response's HTTP status.
	Code int
	// Latency is the response time.
	Latency time.Duration
	// Matched reports whether a route of the virtual host matched (mesh
	// only); Route is its name (Envoy's Route.name, may be empty).
	Matched bool
	Route   string
	// Profile is the request profile the request was sent with ("" for a
	// plain request).
	Profile string
	// Client is the simulated client that sent it (1..Config.Clients; 0
	// when the generator simulates no clients).
	Client int
	// Authority is the request's Host ("-shadow" appended on most
	// mirrored copies).
	Authority string
	// Mirrors are the copies of this request its route mirrored
	// (Via ViaMirror); their answers are discarded. A copy that reached
	// no pod has a Failure and Code 0.
	Mirrors []Record
}

// Metrics exports Istio's request metrics for the simulated requests.
type Metrics struct {
	source   Proxy
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewMetrics registers istio_requests_total and
// istio_request_duration_milliseconds on reg. source is the sidecar the
// mesh traffic comes from.
func NewMetrics(reg prometheus.Registerer, source Proxy) (*Metrics, error) {
	m := &Metrics{
		source: source,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "istio_requests_total",
			Help: "Requests, as Istio's sidecars count them.",
		}, istioLabelNames),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "istio_request_duration_milliseconds",
			Help:    "Request durations in milliseconds, as Istio's sidecars measure them.",
			Buckets: IstioDurationBuckets,
		}, istioLabelNames),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register istio metrics: %w", err)
		}
	}
	return m, nil
}

// Observe counts one request, and its mirrored copies, under every
// reporter that would report them.
func (m *Metrics) Observe(r Record) {
	ms := float64(r.Latency) / float64(time.Millisecond)
	for _, l := range istioLabels(m.source, r) {
		m.requests.With(l).Inc()
		m.duration.With(l).Observe(ms)
	}
	for _, c := range r.Mirrors {
		m.Observe(c)
	}
}

// istioLabels returns the label sets under which Istio reports a request:
// a mesh request that reached a pod is reported by the source and the
// destination sidecar; one the source answered itself (no route, no
// cluster, no healthy endpoint) only by the source, with the response
// flag; a request bypassing the mesh only by the destination, from an
// unknown source over plain text.
//
// A mirrored copy is reported only by the destination that answered it,
// as a mesh request from the source (mutual_tls, the source's labels):
// Envoy sends shadows outside the filter chain that reports the source's
// metrics, and discards their answers. destination_service is the mirror
// cluster's Service, as the destination's stats filter takes it from its
// inbound cluster's metadata (istiod's, which names the pod's Service)
// before the Host; the copy's "-shadow" Host shows in no label. A copy
// that reached no pod is reported by no one.
//
// Example: a mesh request from productpage-v1 to a reviews-canary pod
// labelled version=v2 that answered 500 yields two sets, reporter
// "source" and "destination", each with destination_workload
// "reviews-canary", destination_version "v2", response_code "500" and
// connection_security_policy "unknown" (source) or "mutual_tls"
// (destination).
func istioLabels(src Proxy, r Record) []prometheus.Labels {
	l := prometheus.Labels{
		"request_protocol": "http", "response_code": strconv.Itoa(r.Code),
		"grpc_response_status": "", "response_flags": "-",
	}
	for k, v := range sourceLabels(src) {
		l[k] = v
	}
	for k, v := range destinationLabels(r.Pod) {
		l[k] = v
	}
	name, namespace := serviceNameAndNamespace(r.Service)
	l["destination_service"], l["destination_service_name"], l["destination_service_namespace"] = orUnknown(r.Service), name, namespace

	if r.Via == ViaMirror {
		if r.Failure != FailNone || r.Code == 0 {
			return nil
		}
		l["reporter"], l["connection_security_policy"] = "destination", "mutual_tls"
		return []prometheus.Labels{l}
	}
	if r.Via == ViaBypass {
		for k := range sourceLabels(src) {
			l[k] = unknown
		}
		l["reporter"], l["connection_security_policy"] = "destination", "none"
		return []prometheus.Labels{l}
	}
	source := clone(l)
	source["reporter"], source["connection_security_policy"] = "source", unknown
	if r.Failure != FailNone {
		source["response_flags"] = r.Failure.Flag()
		return []prometheus.Labels{source}
	}
	l["reporter"], l["connection_security_policy"] = "destination", "mutual_tls"
	return []prometheus.Labels{source, l}
}

// sourceLabels are the source_* labels of the sidecar.
func sourceLabels(p Proxy) map[string]string {
	return map[string]string{
		"source_workload":           orUnknown(p.Workload),
		"source_workload_namespace": orUnknown(p.Namespace),
		"source_principal":          principal(p.Namespace, p.ServiceAccount),
		"source_app":                orUnknown(p.Labels["app"]),
		"source_version":            orUnknown(p.Labels["version"]),
		"source_canonical_service":  canonicalService(p.Labels, p.Workload),
		"source_canonical_revision": canonicalRevision(p.Labels),
		"source_cluster":            "Kubernetes",
	}
}

// destinationLabels are the destination_* labels of a pod (all unknown
// for the zero PodInfo).
func destinationLabels(p PodInfo) map[string]string {
	if p.Name == "" {
		return map[string]string{
			"destination_workload": unknown, "destination_workload_namespace": unknown,
			"destination_principal": unknown, "destination_app": unknown, "destination_version": unknown,
			"destination_canonical_service": unknown, "destination_canonical_revision": unknown,
			"destination_cluster": unknown,
		}
	}
	return map[string]string{
		"destination_workload":           orUnknown(p.Workload),
		"destination_workload_namespace": p.Namespace,
		"destination_principal":          principal(p.Namespace, p.ServiceAccount),
		"destination_app":                orUnknown(p.Labels["app"]),
		"destination_version":            orUnknown(p.Labels["version"]),
		"destination_canonical_service":  canonicalService(p.Labels, p.Workload),
		"destination_canonical_revision": canonicalRevision(p.Labels),
		"destination_cluster":            "Kubernetes",
	}
}

// principal is a workload's SPIFFE identity.
func principal(namespace, serviceAccount string) string {
	if namespace == "" {
		return unknown
	}
	if serviceAccount == "" {
		serviceAccount = "default"
	}
	return "spiffe://cluster.local/ns/" + namespace + "/sa/" + serviceAccount
}

// canonicalService is Istio's canonical service of a workload: its
// service.istio.io/canonical-name label, else app.kubernetes.io/name,
// else app, else the workload name.
func canonicalService(labels map[string]string, workload string) string {
	for _, k := range []string{"service.istio.io/canonical-name", "app.kubernetes.io/name", "app"} {
		if v := labels[k]; v != "" {
			return v
		}
	}
	return orUnknown(workload)
}

// canonicalRevision is Istio's canonical revision: its
// service.istio.io/canonical-revision label, else
// app.kubernetes.io/version, else version, else "latest".
func canonicalRevision(labels map[string]string) string {
	for _, k := range []string{"service.istio.io/canonical-revision", "app.kubernetes.io/version", "version"} {
		if v := labels[k]; v != "" {
			return v
		}
	}
	return "latest"
}

// serviceNameAndNamespace splits "reviews.ns.svc.cluster.local" into
// "reviews" and "ns".
func serviceNameAndNamespace(host string) (string, string) {
	parts := strings.Split(host, ".")
	if len(parts) < 2 || parts[0] == "" {
		return orUnknown(host), unknown
	}
	return parts[0], parts[1]
}

// serviceOfCluster is the host of an Istio outbound cluster:
// "outbound|9080||reviews.ns.svc.cluster.local" is
// "reviews.ns.svc.cluster.local"; another name is returned as it is.
func serviceOfCluster(cluster string) string {
	parts := strings.Split(cluster, "|")
	if len(parts) == 4 {
		return parts[3]
	}
	return cluster
}

func orUnknown(s string) string {
	if s == "" {
		return unknown
	}
	return s
}

func clone(l prometheus.Labels) prometheus.Labels {
	out := make(prometheus.Labels, len(l))
	for k, v := range l {
		out[k] = v
	}
	return out
}

// ServeMetrics serves the registry's metrics on addr at /metrics until ctx
// ends. ready, if not nil, receives the bound address once listening
// (useful with port 0).
func ServeMetrics(ctx context.Context, addr string, g prometheus.Gatherer, ready func(net.Addr)) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen for metrics on %s: %w", addr, err)
	}
	if ready != nil {
		ready(l.Addr())
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve metrics: %w", err)
	}
	return nil
}
