package integration

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	istionetv1 "istio.io/client-go/pkg/apis/networking/v1"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/canary-io/canary/contract"
	"github.com/canary-io/canary/e2e/kit"
	"github.com/canary-io/canary/stepper"
)

// generatedRoute renders what the generated route of router sends where,
// e.g. "reviews=80 reviews-canary=20"; "" when there is none.
func generatedRoute(t *testing.T, c client.Client, ns, router string) string {
	key := types.NamespacedName{Namespace: ns, Name: "reviews"}
	if router == "istio" {
		var vs istionetv1.VirtualService
		if err := c.Get(t.Context(), key, &vs); err != nil || len(vs.Spec.Http) == 0 {
			return ""
		}
		var out []string
		for _, d := range vs.Spec.Http[0].Route {
			out = append(out, fmt.Sprintf("%s=%d", d.Destination.Host, d.Weight))
		}
		return strings.Join(out, " ")
	}
	var rt gwv1.HTTPRoute
	if err := c.Get(t.Context(), key, &rt); err != nil || len(rt.Spec.Rules) == 0 {
		return ""
	}
	return kit.Backends(rt.Spec.Rules[0].BackendRefs)
}

// TestBlueGreenAnalysis: canary.io/strategy: blue-green, with either
// router, runs a full-size canary without user traffic (the generated
// route sends everything to the Service) while a pre-rollout hook and a
// rollout hook at every iteration load-test it; then the route switches
// all traffic to the canary at once, holds it there during the rolling
// update, and gives it back to the Service once the Deployment runs the
// revision: the route never carries any other split.
func TestBlueGreenAnalysis(t *testing.T) {
	for _, router := range []string{"istio", "gateway-api"} {
		t.Run(router, func(t *testing.T) {
			ns, cs, _ := setup(t, `canary.io/router: `+router)
			hooks := newHookServer(t, cs, ns)
			settings := []string{`canary.io/router: ` + router, `canary.io/strategy: blue-green`, `canary.io/iterations: "2"`,
				webhooksSetting(t,
					map[string]any{"name": "warm-up", "type": "pre-rollout", "url": hooks.URL + "/pre"},
					map[string]any{"name": "load", "url": hooks.URL + "/load"})}
			c := kit.RouteClient(t, env)
			prom.Set(ns, kit.Healthy)

			var mu sync.Mutex
			var routes, weights []string // distinct, in the order seen
			promotingAt := map[string]bool{}
			stop, done := make(chan struct{}), make(chan struct{})
			go func() {
				defer close(done)
				for {
					select {
					case <-stop:
						return
					case <-time.After(50 * time.Millisecond):
					}
					r := generatedRoute(t, c, ns, router)
					d, err := cs.AppsV1().Deployments(ns).Get(t.Context(), "reviews", metav1.GetOptions{})
					mu.Lock()
					if r != "" && (len(routes) == 0 || routes[len(routes)-1] != r) {
						routes = append(routes, r)
					}
					if err == nil {
						w := d.Annotations[contract.KeyWeight]
						if len(weights) == 0 || weights[len(weights)-1] != w {
							weights = append(weights, w)
						}
						if d.Annotations[contract.KeyPhase] == string(contract.PhasePromoting) {
							promotingAt[w] = true
						}
					}
					mu.Unlock()
				}
			}()
			kubectl(t, manifest(ns, "v2", settings...), "apply", "-f", "-")
			d := waitFor(t, cs, ns, 60*time.Second, "iteration 1 running", func(d *appsv1.Deployment) bool {
				return strings.Contains(d.Annotations[contract.KeyMessage], "iteration 1/2 running")
			})
			if msg := d.Annotations[contract.KeyMessage]; !strings.Contains(msg, "iteration 1/2 running with no user traffic on the canary") {
				t.Errorf("message %q", msg)
			}
			canary, err := cs.AppsV1().Deployments(ns).Get(t.Context(), stepper.CanaryName("reviews"), metav1.GetOptions{})
			if err != nil || *canary.Spec.Replicas != 3 {
				t.Errorf("the canary is not full size: %v, %v", canary, err)
			}
			phaseOf(t, cs, ns, contract.PhaseSucceeded, 90*time.Second)
			waitFor(t, cs, ns, 30*time.Second, "the canary gone", func(*appsv1.Deployment) bool {
				_, err := cs.AppsV1().Deployments(ns).Get(t.Context(), stepper.CanaryName("reviews"), metav1.GetOptions{})
				return err != nil
			})
			close(stop)
			<-done

			stable, switched := "reviews", "reviews=0 reviews-canary=100" // a lone backendRef: weight 1, unset
			if router == "istio" {
				stable = "reviews=100"
			}
			if !slices.Equal(routes, []string{stable, switched, stable}) {
				t.Errorf("the generated route went through %q, want %q: all to stable, one switch, all to the Service", routes, []string{stable, switched, stable})
			}
			if !slices.Equal(weights, []string{"0", "100", "0"}) && !slices.Equal(weights, []string{"", "0", "100", "0"}) {
				t.Errorf("canary.io/weight went through %q, want 0, 100, 0", weights)
			}
			if !promotingAt["100"] {
				t.Errorf("the promotion never held weight 100 while the rolling update ran (weights while Promoting: %v)", promotingAt)
			}
			pre := hooks.waitCalls(t, "pre", 1, time.Second)
			load := hooks.waitCalls(t, "load", 2, time.Second)
			for _, call := range append(pre, load...) {
				if call.weight != "0" {
					t.Errorf("hook %s called at weight %s, want every load test before the switch", call.path, call.weight)
				}
			}
			if got := hooks.callsTo("pre"); len(got) != 1 {
				t.Errorf("pre-rollout hook called %d times, want once", len(got))
			}
		})
	}
}
