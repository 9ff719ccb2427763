package stepper

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/canary-io/canary/contract"
	"github.com/canary-io/canary/stepper/plan"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestHookPayloadIsFlaggers checks the body's JSON keys against Flagger's
// CanaryWebhookPayload: name, namespace, phase, checksum, metadata.
func TestHookPayloadIsFlaggers(t *testing.T) {
	var got map[string]any
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ct := r.Header.Get("Content-Type"); ct != "application/json" || r.Method != http.MethodPost {
			t.Errorf("%s with Content-Type %q, want POST of application/json", r.Method, ct)
		}
		body, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(body, &got); err != nil {
			t.Errorf("body %s: %v", body, err)
		}
	}))
	defer srv.Close()
	h := contract.Webhook{Name: "load-test", URL: srv.URL, Timeout: time.Second}
	p := HookPayload{Name: "reviews", Namespace: "bookinfo", Phase: contract.PhaseProgressing, Checksum: "5bf786ccdb",
		Metadata: map[string]string{"cmd": "hey -z 1m http://reviews-canary:9080/"}}
	if a := callHook(t.Context(), http.DefaultClient, h, p); !a.ok() {
		t.Fatalf("answer %s, want success", a)
	}
	want := map[string]any{"name": "reviews", "namespace": "bookinfo", "phase": "Progressing", "checksum": "5bf786ccdb",
		"metadata": map[string]any{"cmd": "hey -z 1m http://reviews-canary:9080/"}}
	gotJSON, _ := json.Marshal(got)
	wantJSON, _ := json.Marshal(want)
	if string(gotJSON) != string(wantJSON) {
		t.Errorf("payload %s, want %s", gotJSON, wantJSON)
	}
}

// TestHookAnswers checks Flagger's success rule (200, 201 and 202 only)
// and how each answer reads in messages.
func TestHookAnswers(t *testing.T) {
	long := strings.Repeat("x", 300)
	for _, tc := range []struct {
		status int
		body   string
		ok     bool
		want   string
	}{
		{200, "Approved", true, `answered 200 OK`}, // a success's body is never quoted
		{201, "", true, "answered 201 Created"},
		{202, "", true, "answered 202 Accepted"},
		{204, "", false, "answered 204 No Content"},
		{403, "Forbidden\n", false, `answered 403 Forbidden: "Forbidden"`},
		{500, "exit status 1", false, `answered 500 Internal Server Error: "exit status 1"`},
		{500, long, false, `answered 500 Internal Server Error: "` + long[:maxHookBody] + `…"`},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(tc.status)
			_, _ = io.WriteString(w, tc.body)
		}))
		a := callHook(t.Context(), http.DefaultClient, contract.Webhook{Name: "h", URL: srv.URL, Timeout: time.Second}, HookPayload{})
		srv.Close()
		if a.ok() != tc.ok || a.String() != tc.want {
			t.Errorf("status %d: ok %v, %q; want ok %v, %q", tc.status, a.ok(), a.String(), tc.ok, tc.want)
		}
		if r := a.result(); r.Passed() != tc.ok || (!tc.ok && r.Failure != tc.want) {
			t.Errorf("status %d: as a check %+v", tc.status, r)
		}
	}
}

func TestHookTimeoutAndNoAnswer(t *testing.T) {
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
	defer slow.Close()
	defer close(release)
	a := callHook(t.Context(), http.DefaultClient, contract.Webhook{Name: "slow", URL: slow.URL, Timeout: 200 * time.Millisecond}, HookPayload{})
	if a.ok() || a.String() != "timed out after 200ms" {
		t.Errorf("slow hook: ok %v, %q; want a timeout after 200ms", a.ok(), a.String())
	}

	closed := httptest.NewServer(http.NotFoundHandler())
	url := closed.URL
	closed.Close()
	a = callHook(t.Context(), http.DefaultClient, contract.Webhook{Name: "gone", URL: url, Timeout: time.Second}, HookPayload{})
	if a.ok() || !strings.HasPrefix(a.String(), "no answer: ") || !strings.Contains(a.String(), "connection refused") || strings.Contains(a.String(), "Post ") {
		t.Errorf("unreachable hook: ok %v, %q; want `no answer: ... connection refused` without the URL prefix", a.ok(), a.String())
	}
}

// TestCallHooksKeepsOrderAndRunsConcurrently calls two hooks whose server
// answers only once both calls are in: called one after the other, the
// first would give up waiting for the second.
func TestCallHooksKeepsOrderAndRunsConcurrently(t *testing.T) {
	var mu sync.Mutex
	arrived := 0
	both := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		if arrived++; arrived == 2 {
			close(both)
		}
		mu.Unlock()
		select {
		case <-both:
		case <-time.After(3 * time.Second):
			w.WriteHeader(http.StatusGatewayTimeout)
			_, _ = io.WriteString(w, "alone")
			return
		}
		var p HookPayload
		_ = json.NewDecoder(r.Body).Decode(&p)
		if r.URL.Path == "/b" {
			w.WriteHeader(http.StatusForbidden)
		}
		_, _ = io.WriteString(w, p.Metadata["who"])
	}))
	defer srv.Close()
	hooks := []contract.Webhook{
		{Name: "a", URL: srv.URL + "/a", Timeout: 10 * time.Second, Metadata: map[string]string{"who": "a"}},
		{Name: "b", URL: srv.URL + "/b", Timeout: 10 * time.Second, Metadata: map[string]string{"who": "b"}},
	}
	answers := callHooks(context.Background(), http.DefaultClient, hooks, HookPayload{Name: "reviews"})
	if len(answers) != 2 || !answers[0].ok() || answers[0].body != "a" || answers[1].ok() || answers[1].body != "b" {
		t.Errorf("answers %+v: want a ok with its own metadata, then b refused, both while the other was in flight", answers)
	}
}

func TestAnalysisEnded(t *testing.T) {
	reverted := &plan.Event{Type: plan.EventWarning, Reason: plan.ReasonRevertedByUser}
	for _, tc := range []struct {
		from, to contract.Phase
		event    *plan.Event
		want     bool
	}{
		{contract.PhasePromoting, contract.PhaseSucceeded, nil, true},
		{contract.PhaseProgressing, contract.PhaseRolledBack, nil, true},
		{contract.PhasePaused, contract.PhaseRolledBack, nil, true},
		{contract.PhaseProgressing, contract.PhasePromoting, nil, false},
		{contract.PhaseRolledBack, contract.PhaseRolledBack, nil, false},
		{contract.PhaseRolledBack, contract.PhaseRolledBack, reverted, true},
		{contract.PhaseIdle, contract.PhaseIdle, &plan.Event{Type: plan.EventNormal, Reason: plan.ReasonHoldEnded}, false},
	} {
		if got := analysisEnded(tc.from, tc.to, tc.event); got != tc.want {
			t.Errorf("%s → %s (webhook event %v): %v, want %v", tc.from, tc.to, tc.event, got, tc.want)
		}
	}
}

// TestStaleGuard: a pass that reads a version this stepper already wrote
// over is skipped, until the cache serves a newer one; a write that
// changed nothing marks nothing (the cache would never move on).
func TestStaleGuard(t *testing.T) {
	r := &Reconciler{}
	read := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "reviews", ResourceVersion: "10"}}
	version := func(rv string) *appsv1.Deployment {
		d := read.DeepCopy()
		d.ResourceVersion = rv
		return d
	}
	r.superseded(read, "10", "10") // a no-op write
	if r.isStale(version("10")) {
		t.Fatal("a write that changed nothing made the version read stale")
	}
	r.superseded(read, "12", "13") // read 10, retried on 12 after a status conflict, wrote 13
	for _, rv := range []string{"10", "12"} {
		if !r.isStale(version(rv)) {
			t.Errorf("version %s was written over but is not stale", rv)
		}
	}
	if r.isStale(version("13")) {
		t.Error("the version written is stale")
	}
	if r.isStale(version("10")) {
		t.Error("stale again after the cache moved on")
	}
	r.superseded(read, "10", "11")
	r.forget("ns/reviews")
	if r.isStale(version("10")) {
		t.Error("stale after the Deployment was forgotten")
	}
}

func TestCapHookTimeouts(t *testing.T) {
	hooks := []contract.Webhook{{Name: "load", Timeout: time.Hour}, {Name: "event", Timeout: 5 * time.Second}}
	got := capHookTimeouts(hooks, 2*time.Minute)
	if got[0].Timeout != 2*time.Minute || got[1].Timeout != 5*time.Second {
		t.Errorf("capped timeouts %v, %v; want 2m, 5s", got[0].Timeout, got[1].Timeout)
	}
	if hooks[0].Timeout != time.Hour {
		t.Error("capHookTimeouts modified its argument")
	}
	if got := capHookTimeouts(hooks, 0); got[0].Timeout != time.Hour {
		t.Errorf("no bound: %v", got[0].Timeout)
	}
}

// TestVirtualServiceStaleGuard: after the stepper wrote a VirtualService,
// a pass that reads the version it wrote over (or, for one it created, no
// version yet) is stale; once the cache serves another version, or after
// staleVSFor, it is not.
func TestVirtualServiceStaleGuard(t *testing.T) {
	r := &Reconciler{}
	r.wroteRoute("VirtualService", "ns", "reviews", "41")
	if !r.routeStale("VirtualService", "ns", "reviews", true, "41") {
		t.Error("the version written over is not stale")
	}
	if r.routeStale("VirtualService", "ns", "reviews", true, "42") || r.routeStale("VirtualService", "ns", "reviews", true, "41") {
		t.Error("stale after the cache served the new version")
	}
	r.wroteRoute("VirtualService", "ns", "created", "")
	if !r.routeStale("VirtualService", "ns", "created", false, "") {
		t.Error("a VirtualService just created, not yet in the cache, is not stale")
	}
	if r.routeStale("VirtualService", "ns", "created", true, "7") {
		t.Error("stale once the cache has it")
	}
	r.wroteRoute("VirtualService", "ns", "gone", "")
	r.staleVS["VirtualService/ns/gone"] = vsWrite{at: time.Now().Add(-staleVSFor)}
	if r.routeStale("VirtualService", "ns", "gone", false, "") {
		t.Error("still stale after staleVSFor")
	}
	if r.routeStale("VirtualService", "ns", "never-written", true, "1") {
		t.Error("a VirtualService never written is stale")
	}
	// An HTTPRoute of the same name is another object.
	r.wroteRoute("HTTPRoute", "ns", "reviews", "50")
	if r.routeStale("VirtualService", "ns", "reviews", true, "50") || !r.routeStale("HTTPRoute", "ns", "reviews", true, "50") {
		t.Error("a VirtualService and an HTTPRoute of the same name are not told apart")
	}
}
