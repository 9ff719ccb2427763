// Package integration_test runs the traffic generator against a real local
// cluster with istiod and Prometheus.
package integration_test

import (
	"os"
	"testing"

	"github.com/canary-io/canary/e2e/cluster"
)

var env *cluster.Cluster

func TestMain(m *testing.M) {
	os.Exit(cluster.RunTests(m, cluster.Options{Istiod: true}, func(c *cluster.Cluster) { env = c }))
}
