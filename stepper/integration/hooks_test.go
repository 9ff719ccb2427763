package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/canary-io/canary/contract"
	"github.com/canary-io/canary/e2e/kit"
	"github.com/canary-io/canary/stepper"
)

// hookCall is one call a hookServer received.
type hookCall struct {
	path    string
	payload stepper.HookPayload
	weight  string // the Deployment's canary.io/weight when the call arrived
}

// hookServer answers hooks at /<path> with the status the test sets for
// that path (200 by default) and records every call.
type hookServer struct {
	*httptest.Server
	cs kubernetes.Interface
	ns string

	mu     sync.Mutex
	status map[string]int
	calls  []hookCall
}

func newHookServer(t *testing.T, cs kubernetes.Interface, ns string) *hookServer {
	h := &hookServer{cs: cs, ns: ns, status: map[string]int{}}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var p stepper.HookPayload
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" || json.Unmarshal(body, &p) != nil {
			t.Errorf("hook %s: %s with Content-Type %q and body %s", r.URL.Path, r.Method, r.Header.Get("Content-Type"), body)
		}
		call := hookCall{path: strings.TrimPrefix(r.URL.Path, "/"), payload: p}
		if d, err := cs.AppsV1().Deployments(ns).Get(r.Context(), "reviews", metav1.GetOptions{}); err == nil {
			call.weight = d.Annotations[contract.KeyWeight]
		}
		h.mu.Lock()
		h.calls = append(h.calls, call)
		status := h.status[call.path]
		h.mu.Unlock()
		if status == 0 {
			status = http.StatusOK
		}
		w.WriteHeader(status)
		_, _ = fmt.Fprintf(w, "%s says %d", call.path, status)
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *hookServer) answer(path string, status int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.status[path] = status
}

// callsTo returns the calls received at path so far.
func (h *hookServer) callsTo(path string) []hookCall {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []hookCall
	for _, c := range h.calls {
		if c.path == path {
			out = append(out, c)
		}
	}
	return out
}

// waitCalls waits until path has received at least n calls.
func (h *hookServer) waitCalls(t *testing.T, path string, n int, timeout time.Duration) []hookCall {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if calls := h.callsTo(path); len(calls) >= n {
			return calls
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("hook %s: %d calls after %v, want %d", path, len(h.callsTo(path)), timeout, n)
	return nil
}

// webhooksSetting renders canary.io/webhooks for the hooks, as JSON (the
// annotation takes YAML or JSON).
func webhooksSetting(t *testing.T, hooks ...map[string]any) string {
	t.Helper()
	data, err := json.Marshal(hooks)
	if err != nil {
		t.Fatal(err)
	}
	quoted, _ := json.Marshal(string(data))
	return "canary.io/webhooks: " + string(quoted)
}

// TestHooksDriveTheRollout runs an analysis with every kind of hook: a
// pre-rollout hook that fails once (a failed check, no traffic moved) and
// then passes, a rollout hook at every step, a confirm-promotion gate that
// stays closed until the test opens it, a post-rollout hook told of the
// success, and an event hook that receives the Events in Flagger's event
// payload.
func TestHooksDriveTheRollout(t *testing.T) {
	ns, cs, _ := setup(t) // the settings are frozen from the template held: v2's
	hooks := newHookServer(t, cs, ns)
	settings := []string{`canary.io/threshold: "2"`, webhooksSetting(t,
		map[string]any{"name": "smoke", "type": "pre-rollout", "url": hooks.URL + "/pre", "metadata": map[string]string{"cmd": "smoke-test"}},
		map[string]any{"name": "load", "url": hooks.URL + "/rollout", "timeout": "5s"},
		map[string]any{"name": "approval", "type": "confirm-promotion", "url": hooks.URL + "/gate"},
		map[string]any{"name": "notify", "type": "post-rollout", "url": hooks.URL + "/post"},
		map[string]any{"name": "events", "type": "event", "url": hooks.URL + "/event", "metadata": map[string]string{"team": "books", "eventType": "mine"}},
	)}
	prom.Set(ns, kit.Healthy)
	hooks.answer("pre", http.StatusInternalServerError)
	hooks.answer("gate", http.StatusForbidden)
	kubectl(t, manifest(ns, "v2", settings...), "apply", "-f", "-")

	// The pre-rollout hook fails: a failed check, nothing moves, and it is
	// called again an interval later.
	d := waitFor(t, cs, ns, 60*time.Second, "the pre-rollout failure recorded", func(d *appsv1.Deployment) bool {
		return d.Annotations[contract.KeyFailedChecks] == "1/2"
	})
	if msg := d.Annotations[contract.KeyMessage]; !strings.Contains(msg, `pre-rollout hook "smoke" (answered 500 Internal Server Error: "pre says 500") failed`) {
		t.Errorf("message %q does not say how the pre-rollout hook failed", msg)
	}
	if w := d.Annotations[contract.KeyWeight]; w != "0" {
		t.Errorf("weight %s after a failed pre-rollout hook, want 0", w)
	}
	hooks.answer("pre", http.StatusOK)
	pre := hooks.waitCalls(t, "pre", 2, 30*time.Second)

	// All steps pass; the gate holds the promotion.
	d = waitFor(t, cs, ns, 90*time.Second, "waiting for the gate", func(d *appsv1.Deployment) bool {
		return strings.Contains(d.Annotations[contract.KeyMessage], "waiting for the confirm-promotion gate")
	})
	if msg := d.Annotations[contract.KeyMessage]; !strings.Contains(msg, `hook "approval" answered 403 Forbidden: "gate says 403"`) {
		t.Errorf("message %q does not give the gate's answer", msg)
	}
	gateCalls := len(hooks.waitCalls(t, "gate", 1, time.Second))
	time.Sleep(6 * time.Second) // the gate is asked again every 5s (plan.RecheckAfter)
	d = get(t, cs, ns)
	if p, step := d.Annotations[contract.KeyPhase], d.Annotations[contract.KeyStep]; p != "Progressing" || step != "3/3" || !d.Spec.Paused {
		t.Errorf("with the gate closed: phase %s, step %s, paused %v; want Progressing at 3/3, held", p, step, d.Spec.Paused)
	}
	if n := len(hooks.callsTo("gate")); n <= gateCalls {
		t.Errorf("the closed gate was asked %d times, then not again in 6s", n)
	}
	hooks.answer("gate", http.StatusOK)
	d = phaseOf(t, cs, ns, contract.PhaseSucceeded, 60*time.Second)
	revision := d.Annotations[contract.KeyRevision]

	for _, c := range pre {
		if c.weight != "0" {
			t.Errorf("pre-rollout hook called at weight %s, want before any traffic moved", c.weight)
		}
		want := stepper.HookPayload{Name: "reviews", Namespace: ns, Phase: contract.PhaseProgressing, Checksum: revision, Metadata: map[string]string{"cmd": "smoke-test"}}
		if fmt.Sprint(c.payload) != fmt.Sprint(want) {
			t.Errorf("pre-rollout payload %+v, want %+v", c.payload, want)
		}
	}
	rolloutWeights := map[string]bool{}
	for _, c := range hooks.callsTo("rollout") {
		rolloutWeights[c.weight] = true
	}
	for _, w := range []string{"20", "40", "60"} {
		if !rolloutWeights[w] {
			t.Errorf("rollout hook not called at weight %s (called at %v)", w, rolloutWeights)
		}
	}
	post := hooks.waitCalls(t, "post", 1, 10*time.Second)
	if len(post) != 1 || post[0].payload.Phase != contract.PhaseSucceeded || post[0].payload.Checksum != revision {
		t.Errorf("post-rollout calls %+v, want one with phase Succeeded and checksum %s", post, revision)
	}
	events := hooks.waitCalls(t, "event", 1, 10*time.Second)
	var messages []string
	for _, e := range events {
		m := e.payload.Metadata
		if m["team"] != "books" || m["eventType"] == "mine" || m["timestamp"] == "" || (m["eventType"] != "Normal" && m["eventType"] != "Warning") {
			t.Errorf("event payload metadata %v: want eventType Normal or Warning (not the hook's own), a timestamp and team books", m)
		}
		messages = append(messages, m["eventMessage"])
	}
	joined := strings.Join(messages, "\n")
	for _, want := range []string{"held for canary analysis", `pre-rollout hook "smoke" (answered 500 Internal Server Error: "pre says 500") failed`, `pre-rollout hook "smoke" passed`, "promoted: revision"} {
		if !strings.Contains(joined, want) {
			t.Errorf("no event with %q reached the event hook; got:\n%s", want, joined)
		}
	}
	// The post-rollout call is counted once its answer is in: look again
	// for a few seconds.
	kit.Eventually(t, 10*time.Second, "canary_hook_calls_total", func(context.Context) error {
		metrics := scrape(t)
		for _, want := range []string{
			fmt.Sprintf(`canary_hook_calls_total{deployment="reviews",namespace=%q,outcome="failure",type="pre-rollout"} 1`, ns),
			fmt.Sprintf(`canary_hook_calls_total{deployment="reviews",namespace=%q,outcome="success",type="pre-rollout"} 1`, ns),
			fmt.Sprintf(`canary_hook_calls_total{deployment="reviews",namespace=%q,outcome="success",type="post-rollout"} 1`, ns),
		} {
			if !strings.Contains(metrics, want) {
				return fmt.Errorf("the metrics lack %s; they have:\n%s", want, grep(metrics, ns))
			}
		}
		return nil
	})
}

// TestRollbackHookRollsBack runs an analysis whose rollback hook answers
// 403 (no rollback) and then 200: the analysis rolls back at once, naming
// the hook, and the post-rollout hook learns of it. A failing rollout hook
// in another analysis is a failed check.
func TestRollbackHookRollsBack(t *testing.T) {
	t.Parallel()
	ns, cs, _ := setup(t) // the settings are frozen from the template held: v2's
	hooks := newHookServer(t, cs, ns)
	settings := []string{`canary.io/interval: "30s"`, webhooksSetting(t,
		map[string]any{"name": "manual", "type": "rollback", "url": hooks.URL + "/rollback"},
		map[string]any{"name": "notify", "type": "post-rollout", "url": hooks.URL + "/post"},
	)}
	prom.Set(ns, kit.Healthy)
	hooks.answer("rollback", http.StatusForbidden)
	kubectl(t, manifest(ns, "v2", settings...), "apply", "-f", "-")
	waitFor(t, cs, ns, 60*time.Second, "step 1 running", func(d *appsv1.Deployment) bool {
		return d.Annotations[contract.KeyWeight] == "20"
	})
	hooks.waitCalls(t, "rollback", 2, 30*time.Second) // asked again while the step runs
	if p := get(t, cs, ns).Annotations[contract.KeyPhase]; p != "Progressing" {
		t.Fatalf("phase %s while the rollback hook answers 403", p)
	}
	hooks.answer("rollback", http.StatusOK)
	d := phaseOf(t, cs, ns, contract.PhaseRolledBack, 30*time.Second)
	if msg := d.Annotations[contract.KeyMessage]; !strings.Contains(msg, `rolled back: rollback hook "manual" answered 200 OK`) {
		t.Errorf("message %q does not name the rollback hook", msg)
	}
	post := hooks.waitCalls(t, "post", 1, 10*time.Second)
	if post[0].payload.Phase != contract.PhaseRolledBack {
		t.Errorf("post-rollout told phase %s, want RolledBack", post[0].payload.Phase)
	}

	// A retry of the same revision is a new analysis: the rollback asked
	// for the last one does not roll it back.
	hooks.answer("rollback", http.StatusForbidden)
	asked := len(hooks.callsTo("rollback"))
	kubectl(t, "", "annotate", "--overwrite", "-n", ns, "deployment/reviews", "canary.io/retry=1")
	waitFor(t, cs, ns, 60*time.Second, "the retry's first step running", func(d *appsv1.Deployment) bool {
		return d.Annotations[contract.KeyPhase] == "Progressing" && d.Annotations[contract.KeyWeight] == "20"
	})
	hooks.waitCalls(t, "rollback", asked+2, 30*time.Second)
	if d := get(t, cs, ns); d.Annotations[contract.KeyPhase] != "Progressing" {
		t.Errorf("the retry is %s (%s), want Progressing: an earlier analysis' rollback request counted",
			d.Annotations[contract.KeyPhase], d.Annotations[contract.KeyMessage])
	}
}

func TestFailingRolloutHookIsAFailedCheck(t *testing.T) {
	t.Parallel()
	ns, cs, _ := setup(t) // the settings are frozen from the template held: v2's
	hooks := newHookServer(t, cs, ns)
	settings := []string{`canary.io/threshold: "1"`, webhooksSetting(t,
		map[string]any{"name": "acceptance", "type": "rollout", "url": hooks.URL + "/rollout", "timeout": "1s"},
	)}
	prom.Set(ns, kit.Healthy)
	hooks.answer("rollout", http.StatusNoContent) // Flagger's rule: only 200, 201 and 202 are success
	kubectl(t, manifest(ns, "v2", settings...), "apply", "-f", "-")
	d := phaseOf(t, cs, ns, contract.PhaseRolledBack, 60*time.Second)
	want := `hook "acceptance" (answered 204 No Content) failed at step 1/3 (weight 20%); 2 failed checks exceed the threshold of 1`
	if msg := d.Annotations[contract.KeyMessage]; !strings.Contains(msg, want) {
		t.Errorf("message %q, want it to contain %q", msg, want)
	}
}

// TestClosedGateRollsBackAtTheDeadline: a confirm-promotion gate that
// stays closed holds the promotion only until the progress deadline.
func TestClosedGateRollsBackAtTheDeadline(t *testing.T) {
	t.Parallel()
	ns, cs, _ := setup(t)
	hooks := newHookServer(t, cs, ns)
	settings := []string{`canary.io/progress-deadline: "6s"`, webhooksSetting(t,
		map[string]any{"name": "approval", "type": "confirm-promotion", "url": hooks.URL + "/gate"},
	)}
	prom.Set(ns, kit.Healthy)
	hooks.answer("gate", http.StatusForbidden)
	kubectl(t, manifest(ns, "v2", settings...), "apply", "-f", "-")
	d := phaseOf(t, cs, ns, contract.PhaseRolledBack, 90*time.Second)
	want := "rolled back: the confirm-promotion gate stayed closed for 6s (progress deadline) after all 3 steps passed"
	if msg := d.Annotations[contract.KeyMessage]; msg != want {
		t.Errorf("message %q, want %q", msg, want)
	}
	if d.Annotations[contract.KeyStep] != "3/3" {
		t.Errorf("step %s, want 3/3: the gate is asked after every step passed", d.Annotations[contract.KeyStep])
	}
}
