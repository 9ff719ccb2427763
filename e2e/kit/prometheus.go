package kit

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"
)

// PromStandIn answers Prometheus' instant-query API with values a test
// chooses, per namespace, workload ("canary" for a destination_workload
// ending in -canary, else "stable") and metric ("p99" for a
// histogram_quantile query, else "success"); a value not set is an empty
// result (no data). It stands in for Prometheus where a test decides what
// the checks see; the end-to-end suite runs the real one.
type PromStandIn struct {
	// URL is where it listens.
	URL string

	mu     sync.Mutex
	values map[string]map[string]float64 // namespace -> "canary/success" -> value
	slow   map[string]time.Duration      // namespace -> how long its queries take
}

// Healthy are the values of a healthy canary and stable: 100 % success,
// p99 100 ms.
var Healthy = map[string]float64{"canary/success": 100, "stable/success": 100, "canary/p99": 100, "stable/p99": 100}

var (
	workloadRe  = regexp.MustCompile(`destination_workload=~?"([^"]+)"`)
	namespaceRe = regexp.MustCompile(`destination_workload_namespace="([^"]+)"`)
)

// StartPromStandIn listens on a loopback port until the process ends.
func StartPromStandIn() (*PromStandIn, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &PromStandIn{URL: "http://" + l.Addr().String(), values: map[string]map[string]float64{}, slow: map[string]time.Duration{}}
	go func() { _ = http.Serve(l, http.HandlerFunc(p.serve)) }()
	return p, nil
}

// Set makes the queries about namespace ns answer kv, keyed
// "<workload>/<metric>" (see Healthy).
func (p *PromStandIn) Set(ns string, kv map[string]float64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.values[ns] = kv
}

// SlowDown makes every query about namespace ns take d.
func (p *PromStandIn) SlowDown(ns string, d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.slow[ns] = d
}

func (p *PromStandIn) serve(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	q := r.Form.Get("query")
	metric := "success"
	if strings.Contains(q, "histogram_quantile") {
		metric = "p99"
	}
	role := "stable"
	if m := workloadRe.FindStringSubmatch(q); m != nil && strings.HasSuffix(m[1], "-canary") {
		role = "canary"
	}
	ns := ""
	if m := namespaceRe.FindStringSubmatch(q); m != nil {
		ns = m[1]
	}
	p.mu.Lock()
	v, ok := p.values[ns][role+"/"+metric]
	delay := p.slow[ns]
	p.mu.Unlock()
	select {
	case <-time.After(delay):
	case <-r.Context().Done():
		return
	}
	result := []any{}
	if ok {
		result = append(result, map[string]any{"metric": map[string]string{}, "value": []any{float64(time.Now().Unix()), fmt.Sprint(v)}})
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"status": "success", "data": map[string]any{"resultType": "vector", "result": result}})
}
