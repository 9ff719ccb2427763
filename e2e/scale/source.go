package scale

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Workload is one workload whose destination sidecars' metrics the
// Source exports: the labels Istio gives them after its usual
// relabelling.
type Workload struct {
	Namespace, Name, Revision string
}

// Buckets are the edges (ms) of Istio's default request-duration
// histogram.
var Buckets = []float64{1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000}

// latencyShare is the share of requests at or under each bucket edge:
// most requests fast, a tail of slow ones.
var latencyShare = []float64{0.01, 0.2, 0.5, 0.8, 0.95, 0.98, 0.995, 0.999, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}

// Source exports, for every workload, istio_requests_total (response
// codes 200 and 503) and the istio_request_duration_milliseconds
// histogram, as counters that grow at RPS requests a second of which
// ErrorRate fail, from the moment the workload was added: what
// Prometheus scrapes from the sidecars of a mesh under steady load. It
// keeps no goroutine: each scrape computes the counters from the clock.
type Source struct {
	// RPS is each workload's request rate; ErrorRate the share of 503s.
	RPS, ErrorRate float64
	// Now is the clock (default time.Now).
	Now func() time.Time

	mu        sync.RWMutex
	workloads map[Workload]time.Time // when each was added
}

// Add makes the Source export w (again, if it had been removed: its
// counters restart at zero, as a new pod's do).
func (s *Source) Add(ws ...Workload) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.workloads == nil {
		s.workloads = map[Workload]time.Time{}
	}
	for _, w := range ws {
		if _, ok := s.workloads[w]; !ok {
			s.workloads[w] = s.now()
		}
	}
}

// Len is the number of workloads exported.
func (s *Source) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.workloads)
}

func (s *Source) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// ServeHTTP writes the metrics in Prometheus' text format.
func (s *Source) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	s.mu.RLock()
	defer s.mu.RUnlock()
	now := s.now()
	var b strings.Builder
	b.WriteString("# TYPE istio_requests_total counter\n")
	for wl, since := range s.workloads {
		total := math.Floor(s.RPS * now.Sub(since).Seconds())
		failed := math.Floor(total * s.ErrorRate)
		l := labels(wl)
		fmt.Fprintf(&b, "istio_requests_total{%s,response_code=\"200\"} %s\n", l, num(total-failed))
		if failed > 0 {
			fmt.Fprintf(&b, "istio_requests_total{%s,response_code=\"503\"} %s\n", l, num(failed))
		}
	}
	b.WriteString("# TYPE istio_request_duration_milliseconds histogram\n")
	for wl, since := range s.workloads {
		total := math.Floor(s.RPS * now.Sub(since).Seconds())
		l := labels(wl)
		for i, edge := range Buckets {
			fmt.Fprintf(&b, "istio_request_duration_milliseconds_bucket{%s,le=\"%s\"} %s\n", l, num(edge), num(math.Floor(total*latencyShare[i])))
		}
		fmt.Fprintf(&b, "istio_request_duration_milliseconds_bucket{%s,le=\"+Inf\"} %s\n", l, num(total))
		fmt.Fprintf(&b, "istio_request_duration_milliseconds_sum{%s} %s\n", l, num(total*20))
		fmt.Fprintf(&b, "istio_request_duration_milliseconds_count{%s} %s\n", l, num(total))
	}
	_, _ = w.Write([]byte(b.String()))
}

func labels(w Workload) string {
	return fmt.Sprintf(`reporter="destination",destination_workload_namespace=%q,destination_workload=%q,destination_canonical_revision=%q`,
		w.Namespace, w.Name, w.Revision)
}

func num(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }
