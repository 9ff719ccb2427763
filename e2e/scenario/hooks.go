package scenario

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/canary-io/canary/contract"
	"github.com/canary-io/canary/trafficgen"
)

// hooks is what the v2 → v3 rollout's hooks talk to: Flagger's load
// tester, unchanged (its bash tasks and its confirm-promotion gate), and a
// load endpoint that sends requests through the mesh as a load-testing
// command in a pod would (there is no pod network here).
type hooks struct {
	loadTester string // base URL of Flagger's load tester
	loadURL    string // base URL of the load endpoint

	mu    sync.Mutex
	loads []loadRun
}

// loadRun is one run of the load endpoint.
type loadRun struct {
	service          string
	requests, failed int64
	weight           string // reviews' canary.io/weight when it ran
}

// startHooks starts the load endpoint and Flagger's load tester; both stop
// with ctx (the load tester with the cluster).
func (s *story) startHooks(ctx context.Context) (*hooks, error) {
	h := &hooks{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	h.loadURL = "http://" + ln.Addr().String()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.serveLoad(w, r, h) }), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	go func() { <-ctx.Done(); _ = srv.Close() }()

	port, err := freePort()
	if err != nil {
		return nil, err
	}
	h.loadTester = fmt.Sprintf("http://127.0.0.1:%d", port)
	if err := s.c.StartTool(ctx, "flagger-loadtester", "loadtester", h.loadTester+"/healthz",
		"-port", strconv.Itoa(port), "-timeout", "1m", "-zap-encoding", "console", "-log-level", "info"); err != nil {
		return nil, fmt.Errorf("start Flagger's load tester: %w", err)
	}
	return h, nil
}

// webhooks is canary.io/webhooks for the v2 → v3 rollout, as a Flagger
// user writes it: a pre-rollout load test of the canary (a blocking bash
// task of the load tester; a failure is a failed check) and a manual gate
// before promotion (the load tester's /gate/check, closed until someone
// POSTs to /gate/open). The load test's command is plain bash, so that it
// needs no curl: it GETs the load endpoint and fails unless it answers
// 200.
func (h *hooks) webhooks() string {
	return h.hooksJSON(true)
}

// preRolloutLoadTest is canary.io/webhooks with webhooks' pre-rollout
// load test alone.
func (h *hooks) preRolloutLoadTest() string {
	return h.hooksJSON(false)
}

func (h *hooks) hooksJSON(gate bool) string {
	addr := h.loadURL[len("http://"):]
	host, port, _ := net.SplitHostPort(addr)
	cmd := fmt.Sprintf(`exec 3<>/dev/tcp/%s/%s && printf 'GET /load?service=reviews-canary&requests=100 HTTP/1.0\r\n\r\n' >&3 && head -n 1 <&3 | grep -q ' 200 '`, host, port)
	list := []map[string]any{
		{"name": "load-test", "type": "pre-rollout", "url": h.loadTester + "/", "timeout": "30s",
			"metadata": map[string]string{"type": "bash", "cmd": cmd}},
	}
	if gate {
		list = append(list, map[string]any{"name": "approval", "type": "confirm-promotion", "url": h.loadTester + "/gate/check"})
	}
	data, _ := json.Marshal(list) // maps of strings always encode
	return string(data)
}

// openGate opens the load tester's gate for reviews, as a person approving
// the promotion does.
func (h *hooks) openGate(ctx context.Context) error {
	body, _ := json.Marshal(map[string]string{"name": "reviews", "namespace": Namespace})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.loadTester+"/gate/open", bytes.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("POST /gate/open: %s", resp.Status)
	}
	return nil
}

// runs returns the load endpoint's runs so far.
func (h *hooks) runs() []loadRun {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]loadRun(nil), h.loads...)
}

// serveLoad sends ?requests= requests (default 100) at 50 per second
// through the mesh to ?service= in the scenario's namespace and answers
// 200 when none failed, 500 otherwise, with the counts.
func (s *story) serveLoad(w http.ResponseWriter, r *http.Request, h *hooks) {
	service := r.URL.Query().Get("service")
	n, err := strconv.ParseInt(r.URL.Query().Get("requests"), 10, 64)
	if service == "" || err != nil || n <= 0 {
		http.Error(w, "want ?service=NAME&requests=N", http.StatusBadRequest)
		return
	}
	run := loadRun{service: service}
	if d, err := s.cs.AppsV1().Deployments(s.ns).Get(r.Context(), "reviews", metav1.GetOptions{}); err == nil {
		run.weight = d.Annotations[contract.KeyWeight]
	}
	ctx, cancel := context.WithTimeout(r.Context(), 20*time.Second)
	defer cancel()
	run.requests, run.failed = s.traffic.load(ctx, service, n)
	h.mu.Lock()
	h.loads = append(h.loads, run)
	h.mu.Unlock()
	status := http.StatusOK
	if run.failed > 0 || run.requests < n {
		status = http.StatusInternalServerError
	}
	w.WriteHeader(status)
	fmt.Fprintf(w, "%d of %d requests to %s sent, %d failed\n", run.requests, n, service, run.failed)
}

// load sends n requests through the mesh to service at 50 per second,
// with Istio's metrics like the rest of the traffic, and returns how many
// were sent and how many failed (5xx, or no response).
func (t *Traffic) load(ctx context.Context, service string, n int64) (sent, failed int64) {
	var mu sync.Mutex
	g := trafficgen.NewGenerator(trafficgen.Config{
		Host: trafficgen.VirtualHostName(service, t.ns, 9080), Namespace: t.ns,
		RPS: 50, MaxRequests: n, Behaviour: t.behaviour, Seed: 2,
		OnRequest: func(r trafficgen.Record) {
			mu.Lock()
			defer mu.Unlock()
			sent++
			if r.Code == 0 || r.Code >= 500 {
				failed++
			}
		},
	}, t.xds, t.inv, t.metrics)
	_ = g.Run(ctx)
	mu.Lock()
	defer mu.Unlock()
	return sent, failed
}

// freePort asks the kernel for a free loopback port.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
