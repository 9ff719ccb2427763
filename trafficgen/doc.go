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
//   - [RouteRequest] routes a [Request] (method, Host, path with its
//     query, headers and cookies) through every route of the virtual host
//     ([VirtualHost.Rules], decoded from RDS in order) as Envoy does: the
//     first route whose [RouteMatch] holds wins (path, header, query
//     parameter and cookie matchers with Envoy's semantics); a redirect
//     or direct response answers itself; a forwarding route picks as
//     [Route] does, mirrors a [Fraction] of its requests ([MirrorPolicy])
//     and adds its response headers (Set-Cookie for a sticky canary).
//     [Snapshot.Destination] still gives the route of a plain request.
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
//     would, recording which pods they reached; [Stats] for tests. Mesh
//     requests can follow [Profile]s (a share with a header, a cookie or a
//     query parameter) and come from simulated clients, each with a
//     [CookieJar]; Stats count them by route, profile and client, and the
//     mirrored copies by cluster.
//
// # Routes for A/B tests, mirroring and sticky canaries
//
// What istiod renders (pilot/pkg/networking/core/route/route.go) and the
// router follows: a VirtualService http route becomes one Envoy route per
// match, named after the route's name ("name.match" for a named match);
// an HTTPRoute rule is named by its name or "<namespace>.<name>.<index>".
// Header matches become string_match matchers (exact, prefix, regex; "*"
// a presence match), withoutHeaders the same inverted with
// treat_missing_header_as_empty, a cookie match a regex on the cookie
// header ("^(.*?;)?(user=jason)(;.*)?$", which only matches a cookie
// that comes first or follows ";" without a space), queryParams query
// parameter matchers. mirror/mirrorPercentage/mirrors (and an HTTPRoute's
// RequestMirror filter) become request mirror policies with a fraction
// per MILLION (per HUNDRED for the old integer mirrorPercent; 100% when
// unset) and, by default since Istio 1.28, disable_shadow_host_suffix_append
// (no "-shadow" on the copy's Host). headers.response.set/add (and an
// HTTPRoute's ResponseHeaderModifier) become the route's
// response_headers_to_add (overwrite or append); a destination's become
// its weighted cluster's. HTTPRoute routes answer 500 for a missing
// cluster and a direct 500 for a rule without backends.
//
// A mirrored copy goes to an endpoint of the mirror cluster chosen as for
// any request; its answer is discarded. It is reported only by the
// destination that answers it, as mesh traffic from the source, with the
// mirror cluster's Service as destination_service (the destination's
// stats filter takes the Service from its inbound cluster's metadata
// before the Host header): Envoy sends copies outside the filter chain
// that reports the source's metrics. Copies are not in MeshStats'
// request counts, only in Mirrored.
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
