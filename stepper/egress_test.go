package stepper

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/canary-io/canary/contract"
)

func destinations(t *testing.T, list string) contract.Destinations {
	t.Helper()
	d, err := contract.ParseDestinations(list)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestEgressRefusesAtDial: a name allowed by a pattern that resolves to a
// refused address (here localhost, loopback) is refused when dialled; the
// same server reached through an allowed CIDR answers.
func TestEgressRefusesAtDial(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") }))
	defer srv.Close()
	port := srv.URL[strings.LastIndex(srv.URL, ":")+1:]
	byName := &http.Client{Transport: EgressTransport(destinations(t, "localhost"), 1<<20)}
	_, err := byName.Get("http://localhost:" + port + "/")
	if err == nil || !strings.Contains(err.Error(), "refused: localhost resolves to 127.0.0.1 is a loopback address") {
		t.Errorf("localhost allowed by name, loopback not listed: %v", err)
	}
	byCIDR := &http.Client{Transport: EgressTransport(destinations(t, "127.0.0.0/8"), 1<<20)}
	resp, err := byCIDR.Get("http://localhost:" + port + "/")
	if err != nil {
		t.Fatalf("loopback listed: %v", err)
	}
	_ = resp.Body.Close()
	open := &http.Client{Transport: EgressTransport(contract.Destinations{}, 1<<20)}
	if _, err := open.Get("http://169.254.169.254/latest/meta-data"); err == nil || !strings.Contains(err.Error(), "link-local") {
		t.Errorf("the metadata address with the default list: %v", err)
	}
}

// TestHookRedirectNotFollowed: a hook that redirects is not followed (the
// redirect is the answer, a failure), wherever it points.
func TestHookRedirectNotFollowed(t *testing.T) {
	var reached atomic.Int32
	target := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { reached.Add(1) }))
	defer target.Close()
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL+"/elsewhere", http.StatusFound)
	}))
	defer hook.Close()
	c := NoRedirects(&http.Client{Transport: EgressTransport(destinations(t, "127.0.0.0/8"), 1<<20)})
	a := callHook(context.Background(), c, contract.Webhook{Name: "gate", URL: hook.URL, Timeout: 5 * time.Second}, HookPayload{Name: "reviews"})
	if a.ok() || a.status != http.StatusFound {
		t.Errorf("answer %v, want the redirect itself, a failure", a)
	}
	if reached.Load() != 0 {
		t.Errorf("the redirect's target was called %d times", reached.Load())
	}
	q, err := NewPrometheusWith(hook.URL, EgressTransport(destinations(t, "127.0.0.0/8"), 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := q.Query(context.Background(), "up", time.Now()); err == nil {
		t.Error("a Prometheus that redirects answered a query")
	}
	if reached.Load() != 0 {
		t.Errorf("the Prometheus redirect's target was called %d times", reached.Load())
	}
}

// endless streams a Prometheus-shaped answer of n bytes without holding
// it: {"status":"success","data":{"resultType":"vector","result":[...]}}.
func endless(n int64) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"status":"success","data":{"resultType":"vector","result":[`)
		chunk := []byte(strings.Repeat(`{"metric":{},"value":[1,"1"]},`, 1024))
		for sent := int64(0); sent < n; sent += int64(len(chunk)) {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
		_, _ = io.WriteString(w, `{"metric":{},"value":[1,"1"]}]}}`)
	}
}

// TestPrometheusAnswerCapped: a "Prometheus" that answers a query with
// 1 GiB is an error once the cap is read, and the controller's memory
// stays bounded (the peak heap is printed: docs/benchmarks.md).
func TestPrometheusAnswerCapped(t *testing.T) {
	srv := httptest.NewServer(endless(1 << 30))
	defer srv.Close()
	const maxAnswer = 32 << 20
	q, err := NewPrometheusWith(srv.URL, EgressTransport(destinations(t, "127.0.0.0/8"), maxAnswer))
	if err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	var peak atomic.Uint64
	done := make(chan struct{})
	go func() {
		var m runtime.MemStats
		for {
			select {
			case <-done:
				return
			case <-time.After(5 * time.Millisecond):
				runtime.ReadMemStats(&m)
				if m.HeapInuse > peak.Load() {
					peak.Store(m.HeapInuse)
				}
			}
		}
	}()
	start := time.Now()
	_, _, err = q.Query(context.Background(), "up", time.Now())
	close(done)
	if err == nil || !errors.Is(err, ErrAnswerTooLarge) && !strings.Contains(err.Error(), ErrAnswerTooLarge.Error()) {
		t.Fatalf("a 1 GiB answer: %v, want %v", err, ErrAnswerTooLarge)
	}
	grew := int64(peak.Load()) - int64(before.HeapInuse)
	fmt.Printf("BENCH a 1 GiB Prometheus answer, cap %d MiB: refused after %v, heap in use grew by at most %.0f MiB\n",
		maxAnswer>>20, time.Since(start).Round(time.Millisecond), float64(grew)/(1<<20))
}

// TestPrometheusCredentials: the admin's Prometheus gets the bearer token
// and basic-auth password from files named in --prometheus-http-config; a
// user's Prometheus (canary.io/prometheus) never gets them.
func TestPrometheusCredentials(t *testing.T) {
	dir := t.TempDir()
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(token, []byte("s3cret-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	password := filepath.Join(dir, "password")
	if err := os.WriteFile(password, []byte("hunter2"), 0o600); err != nil {
		t.Fatal(err)
	}
	var userGot atomic.Value
	userGot.Store("")
	answer := func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"status":"success","data":{"resultType":"scalar","result":[1,"1"]}}`)
	}
	requires := func(check func(*http.Request) bool) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !check(r) {
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
			answer(w)
		}))
	}
	bearer := requires(func(r *http.Request) bool { return r.Header.Get("Authorization") == "Bearer s3cret-token" })
	defer bearer.Close()
	basic := requires(func(r *http.Request) bool { u, p, ok := r.BasicAuth(); return ok && u == "canary" && p == "hunter2" })
	defer basic.Close()
	user := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		userGot.Store(r.Header.Get("Authorization"))
		answer(w)
	}))
	defer user.Close()

	for _, c := range []struct {
		name, url, config string
	}{
		{"bearer token file", bearer.URL, "authorization:\n  credentials_file: " + token + "\n"},
		{"basic auth password file", basic.URL, "basic_auth:\n  username: canary\n  password_file: " + password + "\n"},
	} {
		cfg := filepath.Join(dir, "http.yaml")
		if err := os.WriteFile(cfg, []byte(c.config), 0o600); err != nil {
			t.Fatal(err)
		}
		access, err := NewPrometheusAccess(c.url, cfg, destinations(t, "127.0.0.0/8"), 1<<20)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		q, err := access.New(c.url)
		if err != nil {
			t.Fatal(err)
		}
		if v, ok, err := q.Query(context.Background(), "vector(1)", time.Now()); err != nil || !ok || v != 1 {
			t.Errorf("%s: the admin's Prometheus answered %v %v %v", c.name, v, ok, err)
		}
		noCreds, _ := NewPrometheusAccess(c.url, "", destinations(t, "127.0.0.0/8"), 1<<20)
		q, _ = noCreds.New(c.url)
		if _, _, err := q.Query(context.Background(), "vector(1)", time.Now()); err == nil {
			t.Errorf("%s: the Prometheus answered without credentials: the test cannot fail", c.name)
		}
		q, _ = access.New(user.URL)
		if _, _, err := q.Query(context.Background(), "vector(1)", time.Now()); err != nil {
			t.Fatal(err)
		}
		if got := userGot.Load().(string); got != "" {
			t.Errorf("%s: a user's Prometheus received the admin's credentials: %q", c.name, got)
		}
	}
}
