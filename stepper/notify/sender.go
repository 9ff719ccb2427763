package notify

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"time"
)

// DefaultTimeout bounds a provider's call that sets no timeout.
const DefaultTimeout = 10 * time.Second

// Sender sends notifications to providers by name. Every call runs in the
// background (Go, the stepper's owned and bounded background calls) and is
// bounded by its provider's timeout: a provider that hangs or fails never
// delays a pass, and its failure is only reported (Failed).
type Sender struct {
	// Providers are the configured providers, by name.
	Providers map[string]Provider
	// Client makes the calls (default: one that follows no redirect).
	Client *http.Client
	// Go runs f in the background for owner (a namespace) and reports
	// whether it did; nil runs it in a goroutine of its own.
	Go func(owner string, f func(ctx context.Context)) bool
	// Failed, if set, is told of each call that failed or was not made.
	Failed func(provider string, err error)
}

// Known reports whether a provider is configured.
func (s *Sender) Known(name string) bool {
	if s == nil {
		return false
	}
	_, ok := s.Providers[name]
	return ok
}

// Send tells the providers named (those whose severity wants it) of n, in
// the background, and returns at once.
func (s *Sender) Send(owner string, names []string, n Notification) {
	if s == nil {
		return
	}
	for _, name := range names {
		p, ok := s.Providers[name]
		if !ok {
			s.fail(name, fmt.Errorf("provider %q is not configured", name))
			continue
		}
		if !p.Severity.Wants(n) {
			continue
		}
		body, err := Payload(p, n)
		if err != nil {
			s.fail(name, err)
			continue
		}
		call := func(ctx context.Context) {
			if err := s.post(ctx, p, body); err != nil {
				s.fail(p.Name, err)
			}
		}
		if s.Go == nil {
			go call(context.Background())
		} else if !s.Go(owner, call) {
			s.fail(name, fmt.Errorf("not sent: no lease, or too many background calls in flight"))
		}
	}
}

func (s *Sender) post(ctx context.Context, p Provider, body []byte) error {
	timeout := DefaultTimeout
	if d, err := time.ParseDuration(p.Timeout); err == nil && d > 0 {
		timeout = d
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	c := s.Client
	if c == nil {
		c = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	resp, err := c.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return fmt.Errorf("provider %s: %w", p.Name, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("provider %s answered %s", p.Name, resp.Status)
	}
	return nil
}

func (s *Sender) fail(name string, err error) {
	if s.Failed != nil {
		s.Failed(name, err)
	}
}
