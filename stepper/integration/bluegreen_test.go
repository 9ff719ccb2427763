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
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
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
		r := vs.Spec.Http[0]
		for _, d := range r.Route {
			out = append(out, fmt.Sprintf("%s=%d", d.Destination.Host, d.Weight))
		}
		if r.Mirror != nil {
			out = append(out, fmt.Sprintf("mirror %s %g%%", r.Mirror.Host, r.MirrorPercentage.GetValue()))
		}
		return strings.Join(out, " ")
	}
	var rt gwv1.HTTPRoute
	if err := c.Get(t.Context(), key, &rt); err != nil || len(rt.Spec.Rules) == 0 {
		return ""
	}
	out := kit.Backends(rt.Spec.Rules[0].BackendRefs)
	for _, f := range rt.Spec.Rules[0].Filters {
		if m := f.RequestMirror; m != nil {
			out += fmt.Sprintf(" mirror %s %d%%", m.BackendRef.Name, ptr.Deref(m.Percent, 100))
		}
	}
	return out
}

// routeRecorder polls the generated route of router and the reviews
// Deployment every 50ms until stopped, and keeps what they went
// through, each change once, in order.
type routeRecorder struct {
	mu          sync.Mutex
	routes      []string        // the generated route, as generatedRoute renders it
	weights     []string        // canary.io/weight
	promotingAt map[string]bool // canary.io/weight values seen while Promoting
	canarySizes map[int32]bool  // the canary Deployment's replicas
	stop, done  chan struct{}
}

func recordRoutes(t *testing.T, c client.Client, cs kubernetes.Interface, ns, router string) *routeRecorder {
	r := &routeRecorder{promotingAt: map[string]bool{}, canarySizes: map[int32]bool{}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(r.done)
		for {
			select {
			case <-r.stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			route := generatedRoute(t, c, ns, router)
			d, err := cs.AppsV1().Deployments(ns).Get(t.Context(), "reviews", metav1.GetOptions{})
			canary, cerr := cs.AppsV1().Deployments(ns).Get(t.Context(), stepper.CanaryName("reviews"), metav1.GetOptions{})
			r.mu.Lock()
			if route != "" && (len(r.routes) == 0 || r.routes[len(r.routes)-1] != route) {
				r.routes = append(r.routes, route)
			}
			if err == nil {
				w := d.Annotations[contract.KeyWeight]
				if len(r.weights) == 0 || r.weights[len(r.weights)-1] != w {
					r.weights = append(r.weights, w)
				}
				if d.Annotations[contract.KeyPhase] == string(contract.PhasePromoting) {
					r.promotingAt[w] = true
				}
			}
			if cerr == nil {
				r.canarySizes[*canary.Spec.Replicas] = true
			}
			r.mu.Unlock()
		}
	}()
	return r
}

// end stops the recorder and waits for it.
func (r *routeRecorder) end() {
	close(r.stop)
	<-r.done
}

// TestBlueGreenAnalysis: canary.io/strategy: blue-green, with either
// router, runs a full-size canary without user traffic (the generated
// route sends everything to the Service) while a pre-rollout hook and a
// rollout hook at every iteration load-test it; then the route switches
// all traffic to the canary at once, holds it there during the rolling
// update, and gives it back to the Service once the Deployment runs the
// revision: the route never carries any other split.
func TestBlueGreenAnalysis(t *testing.T) {
	t.Parallel()
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

			rec := recordRoutes(t, c, cs, ns, router)
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
			rec.end()
			routes, weights, promotingAt := rec.routes, rec.weights, rec.promotingAt

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

// TestMirroredCanary: canary.io/mirror with the canary strategy, with
// either router: a first step at weight 0 copies the chosen share of the
// Service's requests to a canary sized for it (the generated route's
// mirror, Istio's or the Gateway API's), then the weight step (50) runs
// without the mirror, and the promotion leaves the route without one.
func TestMirroredCanary(t *testing.T) {
	t.Parallel()
	for _, router := range []string{"istio", "gateway-api"} {
		t.Run(router, func(t *testing.T) {
			settings := []string{`canary.io/router: ` + router, `canary.io/mirror: "40"`, `canary.io/steps: "50"`}
			ns, cs, _ := setup(t, settings...)
			c := kit.RouteClient(t, env)
			prom.Set(ns, kit.Healthy)
			rec := recordRoutes(t, c, cs, ns, router)
			kubectl(t, manifest(ns, "v2", settings...), "apply", "-f", "-")
			d := waitFor(t, cs, ns, 60*time.Second, "the mirrored step running", func(d *appsv1.Deployment) bool {
				return strings.Contains(d.Annotations[contract.KeyMessage], "step 1/2 running")
			})
			if msg := d.Annotations[contract.KeyMessage]; !strings.Contains(msg, "step 1/2 running at weight 0% with 40% of stable's requests mirrored to the canary") {
				t.Errorf("message %q", msg)
			}
			phaseOf(t, cs, ns, contract.PhaseSucceeded, 90*time.Second)
			rec.end()
			stable, mirror := "reviews", "reviews mirror reviews-canary 40%"
			if router == "istio" {
				stable, mirror = "reviews=100", "reviews=100 mirror reviews-canary 40%"
			}
			if len(rec.routes) < 2 || rec.routes[0] != stable || rec.routes[1] != mirror {
				t.Fatalf("the generated route went through %q: want %q, then the mirror %q", rec.routes, stable, mirror)
			}
			for _, r := range rec.routes[2:] {
				if strings.Contains(r, "mirror") {
					t.Errorf("the route mirrors after the first step: %q (all: %q)", r, rec.routes)
				}
			}
			if last := rec.routes[len(rec.routes)-1]; last != stable {
				t.Errorf("the route ends as %q, want %q", last, stable)
			}
			if !rec.canarySizes[2] {
				t.Errorf("the canary was never sized for the mirror (2 of 3 pods for 40%%): sizes %v", rec.canarySizes)
			}
		})
	}
}
