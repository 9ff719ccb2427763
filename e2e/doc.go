// Package e2e holds the end-to-end tests: the whole system (the local
// cluster, istiod, Prometheus, the controller and the traffic generator)
// running the bookinfo scenario.
package e2e
