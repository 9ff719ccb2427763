package stepper

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"time"

	promconfig "github.com/prometheus/common/config"

	"github.com/canary-io/canary/contract"
)

// EgressTransport is the transport for requests to URLs users wrote
// (canary.io/webhooks, canary.io/prometheus): a connection is dialled only
// to an address dest allows, checked after the name is resolved (a name
// that resolves to a loopback or metadata address is refused even when
// the name was allowed at admission); no proxy from the environment;
// answers longer than maxBody bytes fail instead of being read on.
func EgressTransport(dest contract.Destinations, maxBody int64) http.RoundTripper {
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	t := &http.Transport{
		Proxy: nil, // a proxy would dial for us, past the check
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, port, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			if a, err := netip.ParseAddr(host); err == nil {
				if err := dest.AllowsAddr("", a); err != nil {
					return nil, fmt.Errorf("dial %s: refused: %w", addr, err)
				}
				return dialer.DialContext(ctx, network, addr)
			}
			addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
			if err != nil {
				return nil, err
			}
			var refused error
			for _, a := range addrs {
				if err := dest.AllowsAddr(host, a); err != nil {
					refused = err
					continue
				}
				return dialer.DialContext(ctx, network, net.JoinHostPort(a.Unmap().String(), port))
			}
			return nil, fmt.Errorf("dial %s: refused: %s resolves to %w", addr, host, refused)
		},
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	return CapBodies(t, maxBody)
}

// NoRedirects makes c return a redirect as the answer instead of
// following it: a redirect must never take the controller's request
// somewhere the allow-list did not check (nor turn a POST into a GET).
func NoRedirects(c *http.Client) *http.Client {
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return c
}

// ErrAnswerTooLarge is the error of reading an answer past its cap.
var ErrAnswerTooLarge = errors.New("the answer is larger than the controller reads")

// CapBodies wraps rt so that reading an answer's body past max bytes fails
// with ErrAnswerTooLarge (max 0: no cap): a server that streams gigabytes
// costs the controller at most max bytes of memory per request.
func CapBodies(rt http.RoundTripper, max int64) http.RoundTripper {
	if max <= 0 {
		return rt
	}
	return capped{rt: rt, max: max}
}

type capped struct {
	rt  http.RoundTripper
	max int64
}

func (c capped) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := c.rt.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if resp.ContentLength > c.max {
		_ = resp.Body.Close()
		return nil, fmt.Errorf("%w: %d bytes announced, at most %d read", ErrAnswerTooLarge, resp.ContentLength, c.max)
	}
	resp.Body = &cappedBody{ReadCloser: resp.Body, left: c.max}
	return resp, nil
}

type cappedBody struct {
	io.ReadCloser
	left int64
}

func (b *cappedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		// One byte more tells a body of exactly the cap from a longer one.
		var one [1]byte
		if n, _ := b.ReadCloser.Read(one[:]); n > 0 {
			return 0, ErrAnswerTooLarge
		}
		return 0, io.EOF
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.ReadCloser.Read(p)
	b.left -= int64(n)
	return n, err
}

// PrometheusAccess makes the clients of the Prometheus servers the
// analyses query: the admin's (--prometheus-url), with the credentials of
// --prometheus-http-config, and the users' (canary.io/prometheus), through
// the egress policy and never with the admin's credentials.
type PrometheusAccess struct {
	// Default is the admin's URL.
	Default string
	// Admin is the transport for Default.
	Admin http.RoundTripper
	// User is the transport for every other URL.
	User http.RoundTripper
}

// NewPrometheusAccess builds the transports: httpConfig is the path of a
// file in Prometheus' http_config format (authorization, basic_auth,
// tls_config, ...; "" for none), read for Default only; users' URLs go
// through EgressTransport(dest); every answer is capped at maxBody bytes.
func NewPrometheusAccess(defaultURL, httpConfig string, dest contract.Destinations, maxBody int64) (*PrometheusAccess, error) {
	a := &PrometheusAccess{Default: defaultURL, User: EgressTransport(dest, maxBody)}
	cfg := promconfig.DefaultHTTPClientConfig
	if httpConfig != "" {
		loaded, _, err := promconfig.LoadHTTPConfigFile(httpConfig)
		if err != nil {
			return nil, fmt.Errorf("--prometheus-http-config: %w", err)
		}
		cfg = *loaded
	}
	rt, err := promconfig.NewRoundTripperFromConfig(cfg, "canary-controller")
	if err != nil {
		return nil, fmt.Errorf("--prometheus-http-config: %w", err)
	}
	a.Admin = CapBodies(rt, maxBody)
	return a, nil
}

// New is the client of the Prometheus at url.
func (a *PrometheusAccess) New(url string) (*Prometheus, error) {
	rt := a.User
	if url == a.Default || url == "" {
		url, rt = a.Default, a.Admin
	}
	return NewPrometheusWith(url, rt)
}
