package e2e_test

import (
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	istionetv1 "istio.io/client-go/pkg/apis/networking/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/canary-io/canary/contract"
	"github.com/canary-io/canary/e2e/kit"
	"github.com/canary-io/canary/e2e/scenario"
	"github.com/canary-io/canary/stepper"
)

// The Gateway API's stories: reviews annotated canary.io/router:
// gateway-api, its analyses steering the HTTPRoute reviews attached to
// the Service, which the real istiod turns into the routes it pushes to
// sidecars (GAMMA), followed by the traffic generator as Envoy would. They
// play in namespaces of their own, after the bookinfo story.

// gatewayNamespace is where the story through an HTTPRoute plays.
const gatewayNamespace = "gateway-bookinfo"

// TestBookinfoThroughAnHTTPRoute: reviews v1 → v2 promoted through weights
// 20, 40, 60 and a bad v4 rolled back, every weight carried by the
// generated HTTPRoute reviews: the traffic the generator sent to the
// canary went where istiod's routes, built from the HTTPRoute, sent it
// (no VirtualService exists), with 0 requests to an empty destination.
func TestBookinfoThroughAnHTTPRoute(t *testing.T) {
	var live strings.Builder
	res, err := scenario.Run(t.Context(), env, scenario.Options{
		Interval: 10 * time.Second, Out: &live, Notifications: chat, Brief: true, Namespace: gatewayNamespace,
		Annotations: map[string]string{contract.KeyRouter: string(contract.RouterGatewayAPI)},
	})
	if err != nil {
		t.Fatalf("%v\nlive view:\n%s", err, live.String())
	}
	for _, line := range res.Report {
		fmt.Println("BENCH gateway-api " + line)
	}
	if len(res.Rollouts) != 2 {
		t.Errorf("%d rollouts recorded, want 2", len(res.Rollouts))
	}
	for _, f := range res.Failures {
		t.Error(f)
	}
	if res.BadCanaryFailed == 0 {
		t.Errorf("the bad canary served no failed request: no traffic reached it through the HTTPRoute")
	}
	c := kit.RouteClient(t, env)
	var rt gwv1.HTTPRoute
	if err := c.Get(t.Context(), types.NamespacedName{Namespace: gatewayNamespace, Name: "reviews"}, &rt); err != nil {
		t.Fatalf("the generated HTTPRoute reviews: %v", err)
	}
	if len(rt.Spec.Rules) != 1 || len(rt.Spec.Rules[0].BackendRefs) != 1 || rt.Spec.Rules[0].BackendRefs[0].Name != "reviews" ||
		rt.Annotations[stepper.AnnotationWeight] != "0" {
		t.Errorf("after the rollback the HTTPRoute does not send everything to reviews: %+v, %v", rt.Spec.Rules, rt.Annotations)
	}
	// Nothing but the HTTPRoute could have sent traffic to the canary.
	var vss istionetv1.VirtualServiceList
	if err := c.List(t.Context(), &vss, client.InNamespace(gatewayNamespace)); err != nil {
		t.Fatal(err)
	}
	for _, vs := range vss.Items {
		t.Errorf("VirtualService %s/%s exists: the story did not route through the HTTPRoute alone", vs.Namespace, vs.Name)
	}
	if t.Failed() {
		t.Logf("live view:\n%s", live.String())
	}
}

// TestABThroughAnHTTPRoute: the A/B story through the generated HTTPRoute
// (the header match exact, the cookie's as a regular expression): only
// the matching requests reach the canary, counted at the generator.
func TestABThroughAnHTTPRoute(t *testing.T) {
	t.Parallel()
	playStory(t, "gateway-api ab", func(out io.Writer) (*scenario.StoryResult, error) {
		res, err := scenario.RunAB(t.Context(), env, "ab-gateway", strategyInterval, gatewayAPI, out)
		if err != nil {
			return nil, err
		}
		return &res.StoryResult, nil
	})
}

// TestBlueGreenThroughAnHTTPRoute: the blue/green story through the
// generated HTTPRoute, its mirror a RequestMirror filter that istiod
// turns into the sidecar's mirror policy: users reach stable only while
// the canary gets the mirrored copies, counted at the generator; then
// one switch and the promotion; then a bad version caught on the copies
// alone.
func TestBlueGreenThroughAnHTTPRoute(t *testing.T) {
	playStory(t, "gateway-api blue-green", func(out io.Writer) (*scenario.StoryResult, error) {
		return scenario.RunBlueGreen(t.Context(), env, "bluegreen-gateway", strategyInterval, gatewayAPI, false, out)
	})
}

// TestStickyThroughAnHTTPRoute: the sticky story through the generated
// HTTPRoute (the cookie set by a backendRef's ResponseHeaderModifier,
// matched by a rule's header regex): no client the canary answered is
// answered by stable again before the analysis ends.
func TestStickyThroughAnHTTPRoute(t *testing.T) {
	t.Parallel()
	playStory(t, "gateway-api sticky", func(out io.Writer) (*scenario.StoryResult, error) {
		return scenario.RunSticky(t.Context(), env, "sticky-gateway", strategyInterval, gatewayAPI, out)
	})
}

// gatewayAPI are the settings of the stories through the Gateway API.
var gatewayAPI = map[string]string{contract.KeyRouter: string(contract.RouterGatewayAPI)}
