// Package scale is the scale benchmark's kit (make bench-scale,
// hack/benchscale): a source of Istio's standard metrics for many
// workloads, scraped by the local cluster's real Prometheus, and the
// readings of a process' CPU and memory and of Prometheus' and the
// controller's own counters.
package scale
