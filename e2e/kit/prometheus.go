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
// histogram_quantile query, "hidden" for the count of the canary's new
// series of 5xx answers, else "success"); a value not set is an empty
// result (no data). A query about one workload
// (destination_workload_namespace="ns", destination_workload=~"w") is
// answered with one sample; a batched one, grouped by namespace and
// workload (destination_workload_namespace=~"a|b",
// destination_workload=~"w1|w2"), with one sample per namespace and
// workload that has a value, labelled with both. It stands in for
// Prometheus where a test decides what the checks see; the end-to-end
// suite runs the real one.
type PromStandIn struct {
	// URL is where it listens.
	URL string

	mu     sync.Mutex
	values map[string]map[string]float64 // namespace -> "canary/success" -> value
	slow   map[string]time.Duration      // a text in the query -> how long the query takes
}

// Healthy are the values of a healthy canary and stable: 100 % success,
// p99 100 ms.
var Healthy = map[string]float64{"canary/success": 100, "stable/success": 100, "canary/p99": 100, "stable/p99": 100}

var (
	workloadRe   = regexp.MustCompile(`destination_workload=~?"([^"]+)"`)
	namespaceRe  = regexp.MustCompile(`destination_workload_namespace="([^"]+)"`)
	namespacesRe = regexp.MustCompile(`destination_workload_namespace=~"([^"]+)"`)
	unquoteRe    = regexp.MustCompile(`\\(.)`)
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

// SlowQueries makes every query containing text take d.
func (p *PromStandIn) SlowQueries(text string, d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.slow[text] = d
}

// alternatives splits a label's regular expression of quoted names
// ("a|b\\.c") into the names.
func alternatives(re string) []string {
	var out []string
	for _, a := range strings.Split(re, "|") {
		out = append(out, unquoteRe.ReplaceAllString(a, "$1"))
	}
	return out
}

func (p *PromStandIn) serve(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	q := r.Form.Get("query")
	metric := "success"
	switch {
	case strings.Contains(q, "histogram_quantile"):
		metric = "p99"
	case strings.Contains(q, `response_code=~"5.*"`):
		metric = "hidden" // the count of new series of errors: none unless set
	}
	role := func(workload string) string {
		if strings.HasSuffix(workload, "-canary") {
			return "canary"
		}
		return "stable"
	}
	type answer struct {
		labels map[string]string
		value  float64
	}
	var answers []answer
	p.mu.Lock()
	if m := namespacesRe.FindStringSubmatch(q); m != nil {
		var workloads []string
		if wm := workloadRe.FindStringSubmatch(q); wm != nil {
			workloads = alternatives(wm[1])
		}
		for _, ns := range alternatives(m[1]) {
			for _, wl := range workloads {
				if v, ok := p.values[ns][role(wl)+"/"+metric]; ok {
					answers = append(answers, answer{map[string]string{"destination_workload_namespace": ns, "destination_workload": wl}, v})
				}
			}
		}
	} else {
		ns, wl := "", ""
		if m := namespaceRe.FindStringSubmatch(q); m != nil {
			ns = m[1]
		}
		if m := workloadRe.FindStringSubmatch(q); m != nil {
			wl = m[1]
		}
		if v, ok := p.values[ns][role(wl)+"/"+metric]; ok {
			answers = append(answers, answer{map[string]string{}, v})
		}
	}
	var delay time.Duration
	for text, d := range p.slow {
		if strings.Contains(q, text) {
			delay = max(delay, d)
		}
	}
	p.mu.Unlock()
	select {
	case <-time.After(delay):
	case <-r.Context().Done():
		return
	}
	result := []any{}
	for _, a := range answers {
		result = append(result, map[string]any{"metric": a.labels, "value": []any{float64(time.Now().Unix()), fmt.Sprint(a.value)}})
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"status": "success", "data": map[string]any{"resultType": "vector", "result": result}})
}
