package faults_test

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
)

// promMode is how the Prometheus proxy answers.
type promMode string

const (
	promOK    promMode = "ok"    // passes every request to the real Prometheus
	promError promMode = "error" // answers 503, as a Prometheus restarting behind a Service
	promHang  promMode = "hang"  // never answers: the client's timeout ends the request
	promDown  promMode = "down"  // closes the connection unanswered, as a killed process
)

// promProxy stands between the controller and the cluster's real
// Prometheus, so that a test can make Prometheus fail, hang or go away
// mid-step and come back.
type promProxy struct {
	*httptest.Server
	mu   sync.Mutex
	mode promMode
}

func startPromProxy(target string) (*promProxy, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	p := &promProxy{mode: promOK}
	rp := httputil.NewSingleHostReverseProxy(u)
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch p.get() {
		case promError:
			http.Error(w, "prometheus unavailable (fault injected)", http.StatusServiceUnavailable)
		case promHang:
			<-r.Context().Done()
		case promDown:
			if hj, ok := w.(http.Hijacker); ok {
				if conn, _, err := hj.Hijack(); err == nil {
					_ = conn.Close()
					return
				}
			}
			panic(http.ErrAbortHandler)
		default:
			rp.ServeHTTP(w, r)
		}
	}))
	return p, nil
}

func (p *promProxy) get() promMode {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mode
}

func (p *promProxy) set(m promMode) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode = m
}
