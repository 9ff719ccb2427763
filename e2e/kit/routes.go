package kit

import (
	"fmt"
	"strings"
	"testing"

	istionetv1 "istio.io/client-go/pkg/apis/networking/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/canary-io/canary/e2e/cluster"
)

// RouteClient reads and writes the route objects of both routers:
// HTTPRoutes and Istio's VirtualServices.
func RouteClient(t testing.TB, c *cluster.Cluster) client.Client {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := gwv1.Install(scheme); err != nil {
		t.Fatal(err)
	}
	if err := istionetv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	rc, err := client.New(c.Admin, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return rc
}

// Backends renders an HTTPRoute rule's backendRefs as "name=weight",
// "name" alone for weight 1 (unset: the apiserver defaults it to 1).
func Backends(refs []gwv1.HTTPBackendRef) string {
	var out []string
	for _, r := range refs {
		s := string(r.Name)
		if r.Weight != nil && *r.Weight != 1 {
			s += fmt.Sprintf("=%d", *r.Weight)
		}
		out = append(out, s)
	}
	return strings.Join(out, " ")
}
