// Package trafficgen is a traffic generator that stands in for Envoy: it
// routes simulated requests the way a sidecar of a source pod (bookinfo's
// productpage) would, by the configuration the real Istio control plane
// sends that sidecar, and it exports the metrics Istio's sidecars would
// export for that traffic.
//
// The pieces, from the control plane to the metrics:
//
//   - [XDSClient] is an aggregated-discovery (ADS, state of the world)
//     client of istiod posing as the sidecar: clusters, listeners, the
//     route of one port and the endpoints of the clusters, acknowledged as
//     Envoy acknowledges them. It keeps the last state as a [Snapshot].
//   - [Route] is the pure router: a weighted cluster of a [Destination],
//     then one of its healthy endpoints; no healthy endpoint is a 503.
//   - [Behaviour] is the pure model of how a destination pod answers,
//     according to its image: healthy versions fast, a bad version (an
//     image chosen by configuration) with a share of 5xx and slowly.
//   - [Inventory] (Pods and EndpointSlices watched by informers) tells
//     which pod an endpoint address is, with its image and owning
//     Deployment (Istio's destination_workload), and which endpoints of a
//     Service are ready.
//   - [Metrics] exports istio_requests_total and
//     istio_request_duration_milliseconds with Istio's standard labels.
//   - [Generator] drives all of it: N requests per second through the
//     mesh, and M per second around it to ready endpoints of the Service
//     from its EndpointSlices, as kube-proxy or a client outside the mesh
//     would, recording which pods they reached; [Stats] for tests.
//
// # Failures the sidecar answers itself
//
// A request can fail before any pod sees it, each counted apart in
// [MeshStats] and exported by the source reporter with Envoy's response
// flag: no route (404, NR), a cluster the sidecar lacks or whose endpoints
// have not arrived (503, NC), a cluster without a healthy endpoint (503,
// UH: an empty destination), an endpoint that is no pod (503, UF). A
// deleted pod answers for its termination grace period, as a real pod's
// process does while the control plane drops its endpoint.
//
// No packet leaves the process: the pods are simulated (in a local
// cluster they are kwok's and have no network), so a "request" is a
// routing decision plus the simulated pod's answer. Only the xDS stream
// to istiod and the Kubernetes API are real I/O.
//
// # Metrics of traffic that bypasses the mesh
//
// The destination pods' sidecars report every request they serve, meshed
// or not, so a request that bypasses the mesh is exported as Istio would
// export it: reporter="destination", source_workload="unknown" and
// connection_security_policy="none" (plain text, no mTLS). Queries that
// select the mesh's own traffic filter on connection_security_policy or
// source_workload; the controller's queries (per destination workload)
// count it, as they would with real sidecars.
//
// Requests through the mesh are reported twice, as with Istio: once by
// the source (reporter="source", including the 503s of an empty
// destination with response_flags="UH", which no destination ever sees)
// and once by the destination pod (reporter="destination").
package trafficgen
