package integration

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	istionetv1 "istio.io/client-go/pkg/apis/networking/v1"
	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/canary-io/canary/contract"
	"github.com/canary-io/canary/e2e/kit"
	"github.com/canary-io/canary/stepper"
)

// waitRoute polls an HTTPRoute until cond holds, and returns it.
func waitRoute(t *testing.T, c client.Client, ns, name string, timeout time.Duration, what string, cond func(*gwv1.HTTPRoute) bool) *gwv1.HTTPRoute {
	t.Helper()
	var rt gwv1.HTTPRoute
	deadline := time.Now().Add(timeout)
	for {
		err := c.Get(t.Context(), types.NamespacedName{Namespace: ns, Name: name}, &rt)
		if err == nil && cond(&rt) {
			return &rt
		}
		if time.Now().After(deadline) {
			t.Fatalf("HTTPRoute %s: not %s within %s (err %v): %+v", name, what, timeout, err, rt.Spec.Rules)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestGeneratedHTTPRoutePromotes: with canary.io/router: gateway-api the
// analysis generates the HTTPRoute reviews, attached to the Service,
// moves its weights 20, 40, 60, promotes, and leaves it routing all of
// the Service to the stable pods; no VirtualService is generated.
func TestGeneratedHTTPRoutePromotes(t *testing.T) {
	t.Parallel()
	settings := []string{`canary.io/router: gateway-api`}
	ns, cs, _ := setup(t, settings...)
	c := kit.RouteClient(t, env)
	prom.Set(ns, kit.Healthy)
	seen := map[string]bool{}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			var r gwv1.HTTPRoute
			if err := c.Get(t.Context(), types.NamespacedName{Namespace: ns, Name: "reviews"}, &r); err == nil && len(r.Spec.Rules) == 1 {
				seen[kit.Backends(r.Spec.Rules[0].BackendRefs)] = true
			}
		}
	}()
	kubectl(t, manifest(ns, "v2", settings...), "apply", "-f", "-")
	rt := waitRoute(t, c, ns, "reviews", 30*time.Second, "generated", func(*gwv1.HTTPRoute) bool { return true })
	if len(rt.Spec.ParentRefs) != 1 || rt.Spec.ParentRefs[0].Name != "reviews" || ptrString(rt.Spec.ParentRefs[0].Kind) != "Service" {
		t.Errorf("the generated HTTPRoute is not attached to the Service: %+v", rt.Spec.ParentRefs)
	}
	phaseOf(t, cs, ns, contract.PhaseSucceeded, 90*time.Second)
	close(stop)
	<-done
	for _, want := range []string{"reviews=80 reviews-canary=20", "reviews=60 reviews-canary=40", "reviews=40 reviews-canary=60"} {
		if !seen[want] {
			t.Errorf("the HTTPRoute never routed %s; seen %v", want, keys(seen))
		}
	}
	waitRoute(t, c, ns, "reviews", 30*time.Second, "back to all stable", func(r *gwv1.HTTPRoute) bool {
		return len(r.Spec.Rules) == 1 && kit.Backends(r.Spec.Rules[0].BackendRefs) == "reviews" && r.Annotations[stepper.AnnotationWeight] == "0"
	})
	var vs istionetv1.VirtualService
	if err := c.Get(t.Context(), types.NamespacedName{Namespace: ns, Name: "reviews"}, &vs); !apierrors.IsNotFound(err) {
		t.Errorf("a VirtualService was generated for the gateway-api router (err %v)", err)
	}
}

// TestUserHTTPRouteSteered: an HTTPRoute of the user's named in
// canary.io/httproute has only its backendRefs to the Service split;
// its other rules, matches and filters stay as written, and the rollback
// gives the rule back as the user wrote it.
func TestUserHTTPRouteSteered(t *testing.T) {
	t.Parallel()
	settings := []string{`canary.io/interval: "10m"`, `canary.io/httproute: "reviews-routes"`}
	cs, _ := clients(t)
	ns := kit.Namespace(t, cs, "stepper", nil)
	kubectl(t, fmt.Sprintf(`apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: reviews-routes, namespace: %[1]s}
spec:
  parentRefs: [{group: "", kind: Service, name: reviews}]
  rules:
  - matches: [{headers: [{name: end-user, value: jason}]}]
    backendRefs: [{name: reviews-beta, port: 9080}]
  - filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: x-via, value: mesh}]}}]
    backendRefs: [{name: reviews, port: 9080}]
`, ns), "apply", "-f", "-")
	kubectl(t, fmt.Sprintf(serviceManifest, ns), "apply", "-f", "-")
	kubectl(t, manifest(ns, "v1", settings...), "apply", "-f", "-")
	c := kit.RouteClient(t, env)
	prom.Set(ns, kit.Healthy)
	waitFor(t, cs, ns, 60*time.Second, "v1 Idle", func(d *appsv1.Deployment) bool {
		return d.Annotations[contract.KeyPhase] == "Idle" && d.Status.AvailableReplicas == 3
	})
	kubectl(t, manifest(ns, "v2", settings...), "apply", "-f", "-")
	rt := waitRoute(t, c, ns, "reviews-routes", 60*time.Second, "split 80/20", func(r *gwv1.HTTPRoute) bool {
		return len(r.Spec.Rules) == 2 && kit.Backends(r.Spec.Rules[1].BackendRefs) == "reviews=80 reviews-canary=20"
	})
	jason := rt.Spec.Rules[0]
	if len(jason.Matches) != 1 || len(jason.Matches[0].Headers) != 1 || jason.Matches[0].Headers[0].Value != "jason" || kit.Backends(jason.BackendRefs) != "reviews-beta" {
		t.Errorf("the header-matched rule changed: %+v", jason)
	}
	if f := rt.Spec.Rules[1].Filters; len(f) != 1 || f[0].RequestHeaderModifier == nil || f[0].RequestHeaderModifier.Set[0].Value != "mesh" {
		t.Errorf("the steered rule's filter changed: %+v", f)
	}
	if d := get(t, cs, ns); d.Annotations[contract.KeyWeight] != "20" {
		t.Errorf("weight %s recorded, want 20", d.Annotations[contract.KeyWeight])
	}
	var generated gwv1.HTTPRoute
	if err := c.Get(t.Context(), types.NamespacedName{Namespace: ns, Name: "reviews"}, &generated); !apierrors.IsNotFound(err) {
		t.Errorf("an HTTPRoute was generated although the user named their own (err %v)", err)
	}

	kubectl(t, "", "-n", ns, "annotate", "deployment", "reviews", "canary.io/abort=first")
	phaseOf(t, cs, ns, contract.PhaseRolledBack, 30*time.Second)
	waitRoute(t, c, ns, "reviews-routes", 30*time.Second, "given back", func(r *gwv1.HTTPRoute) bool {
		return len(r.Spec.Rules) == 2 && kit.Backends(r.Spec.Rules[1].BackendRefs) == "reviews" && kit.Backends(r.Spec.Rules[0].BackendRefs) == "reviews-beta"
	})
}

// TestHTTPRouteConflictStopsTheAnalysis: with the Istio router, a user's
// HTTPRoute attached to the Service (a second kind of route for the
// host) stops the analysis before any traffic moves, and names it.
func TestHTTPRouteConflictStopsTheAnalysis(t *testing.T) {
	t.Parallel()
	ns, cs, _ := setup(t)
	kubectl(t, fmt.Sprintf(`apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: reviews-mesh, namespace: %s}
spec:
  parentRefs: [{group: "", kind: Service, name: reviews}]
  rules:
  - backendRefs: [{name: reviews, port: 9080}]
`, ns), "apply", "-f", "-")
	kubectl(t, manifest(ns, "v2"), "apply", "-f", "-")
	d := phaseOf(t, cs, ns, contract.PhaseRolledBack, 30*time.Second)
	if msg := d.Annotations[contract.KeyMessage]; !strings.Contains(msg, "HTTPRoute reviews-mesh is attached to the Service reviews") {
		t.Errorf("message %q does not name the conflict", msg)
	}
	if d.Annotations[contract.KeyWeight] != "0" {
		t.Errorf("weight %s: traffic moved despite the conflict", d.Annotations[contract.KeyWeight])
	}
}

func ptrString[T ~string](p *T) string {
	if p == nil {
		return ""
	}
	return string(*p)
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// TestSwitchingRouterBetweenAnalyses: an analysis with the Istio router
// leaves the generated VirtualService reviews; the next one, with the
// Gateway API router, deletes it as it starts and generates the HTTPRoute
// instead, so that two kinds of route never serve the host. A user's
// VirtualService for the host then stops a gateway-api analysis before
// any traffic moves. (Each analysis is ended by canary.io/abort: a new
// template after a rollback starts the next.)
func TestSwitchingRouterBetweenAnalyses(t *testing.T) {
	t.Parallel()
	settings := []string{`canary.io/interval: "10m"`}
	ns, cs, _ := setup(t, settings...)
	c := kit.RouteClient(t, env)
	prom.Set(ns, kit.Healthy)
	abort := func(value string) {
		t.Helper()
		waitFor(t, cs, ns, 60*time.Second, "the first step running", func(d *appsv1.Deployment) bool {
			return d.Annotations[contract.KeyWeight] == "20"
		})
		kubectl(t, "", "-n", ns, "annotate", "--overwrite", "deployment", "reviews", "canary.io/abort="+value)
		phaseOf(t, cs, ns, contract.PhaseRolledBack, 30*time.Second)
	}
	kubectl(t, manifest(ns, "v2", settings...), "apply", "-f", "-")
	abort("first")
	var vs istionetv1.VirtualService
	if err := c.Get(t.Context(), types.NamespacedName{Namespace: ns, Name: "reviews"}, &vs); err != nil {
		t.Fatalf("the Istio router's analysis left no generated VirtualService: %v", err)
	}

	gateway := append([]string{`canary.io/router: gateway-api`}, settings...)
	kubectl(t, manifest(ns, "v3", gateway...), "apply", "-f", "-")
	waitRoute(t, c, ns, "reviews", 30*time.Second, "generated", func(*gwv1.HTTPRoute) bool { return true })
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		err := c.Get(t.Context(), types.NamespacedName{Namespace: ns, Name: "reviews"}, &vs)
		if apierrors.IsNotFound(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the generated VirtualService is still there with the gateway-api router (err %v)", err)
		}
	}
	abort("second")

	kubectl(t, fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews-user, namespace: %s}
spec:
  hosts: [reviews]
  http: [{route: [{destination: {host: reviews}}]}]
`, ns), "apply", "-f", "-")
	kubectl(t, manifest(ns, "v4", gateway...), "apply", "-f", "-")
	d := waitFor(t, cs, ns, 30*time.Second, "the conflict", func(d *appsv1.Deployment) bool {
		return d.Annotations[contract.KeyPhase] == string(contract.PhaseRolledBack) && strings.Contains(d.Annotations[contract.KeyMessage], "reviews-user")
	})
	if msg := d.Annotations[contract.KeyMessage]; !strings.Contains(msg, `VirtualService reviews-user routes the host reviews, and this Deployment uses the "gateway-api" router`) {
		t.Errorf("message %q does not name the conflict", msg)
	}
	if d.Annotations[contract.KeyWeight] != "0" {
		t.Errorf("weight %s: traffic moved despite the conflict", d.Annotations[contract.KeyWeight])
	}
}

// TestABAnalysis: canary.io/strategy: ab, with either router, routes only
// the matching requests to a full-size canary, through the generated
// route, for its iterations, then promotes; the route then sends
// everything to the Service again.
func TestABAnalysis(t *testing.T) {
	t.Parallel()
	for _, router := range []string{"istio", "gateway-api"} {
		t.Run(router, func(t *testing.T) {
			settings := []string{`canary.io/router: ` + router, `canary.io/strategy: ab`, `canary.io/iterations: "3"`,
				`canary.io/match: '[{"headers": {"x-canary": {"exact": "insider"}}}]'`}
			ns, cs, _ := setup(t, settings...)
			c := kit.RouteClient(t, env)
			prom.Set(ns, kit.Healthy)
			kubectl(t, manifest(ns, "v2", settings...), "apply", "-f", "-")
			d := waitFor(t, cs, ns, 60*time.Second, "iteration 1 running", func(d *appsv1.Deployment) bool {
				return d.Annotations[contract.KeyWeight] == "100"
			})
			if msg := d.Annotations[contract.KeyMessage]; !strings.Contains(msg, "iteration 1/3 running with the matching requests on the canary") {
				t.Errorf("message %q", msg)
			}
			canary, err := cs.AppsV1().Deployments(ns).Get(t.Context(), stepper.CanaryName("reviews"), metav1.GetOptions{})
			if err != nil || *canary.Spec.Replicas != 3 {
				t.Errorf("the canary is not full size: %v, %v", canary, err)
			}
			matchRouted := func() bool {
				if router == "istio" {
					var vs istionetv1.VirtualService
					if err := c.Get(t.Context(), types.NamespacedName{Namespace: ns, Name: "reviews"}, &vs); err != nil {
						t.Fatal(err)
					}
					return len(vs.Spec.Http) == 2 && vs.Spec.Http[0].Match[0].Headers["x-canary"].GetExact() == "insider" &&
						vs.Spec.Http[0].Route[0].Destination.Host == "reviews-canary" && vs.Spec.Http[1].Route[0].Destination.Host == "reviews"
				}
				var rt gwv1.HTTPRoute
				if err := c.Get(t.Context(), types.NamespacedName{Namespace: ns, Name: "reviews"}, &rt); err != nil {
					t.Fatal(err)
				}
				return len(rt.Spec.Rules) == 2 && len(rt.Spec.Rules[0].Matches) == 1 && rt.Spec.Rules[0].Matches[0].Headers[0].Value == "insider" &&
					kit.Backends(rt.Spec.Rules[0].BackendRefs) == "reviews-canary" && kit.Backends(rt.Spec.Rules[1].BackendRefs) == "reviews"
			}
			for deadline := time.Now().Add(10 * time.Second); !matchRouted(); time.Sleep(100 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("the generated %s route does not send the matching requests to the canary", router)
				}
			}
			phaseOf(t, cs, ns, contract.PhaseSucceeded, 90*time.Second)
			for deadline := time.Now().Add(30 * time.Second); matchRouted(); time.Sleep(100 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("after the promotion the %s route still sends the matching requests to the canary", router)
				}
			}
		})
	}
}
