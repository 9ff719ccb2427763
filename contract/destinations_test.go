package contract

import (
	"net/netip"
	"strings"
	"testing"
)

func TestDestinations(t *testing.T) {
	apiserver := netip.MustParseAddr("10.96.0.1")
	for _, c := range []struct {
		list string
		url  string
		// addr is the address the host resolves to at dial time ("" for
		// an address literal, checked at admission only).
		addr      string
		admission string // "" allowed, else part of the reason
		dial      string
	}{
		{"", "http://loadtester.test/", "10.0.0.7", "", ""},
		{"", "http://169.254.169.254/latest/meta-data", "", "link-local", ""},
		{"", "http://127.0.0.1:9090/", "", "loopback", ""},
		{"", "http://[::1]:9090/", "", "loopback", ""},
		{"", "http://localhost:9090/", "127.0.0.1", "", "loopback"},
		{"", "https://kubernetes.default.svc/", "10.96.0.1", "", "apiserver"},
		{"127.0.0.1/32", "http://127.0.0.1:9090/", "", "", ""},
		{"127.0.0.1/32", "http://localhost:9090/", "127.0.0.1", "", ""},
		{"*.flagger-system.svc", "http://loadtester.flagger-system.svc/", "10.0.3.4", "", ""},
		{"*.flagger-system.svc", "http://loadtester.other-team.svc/", "10.0.3.5", "not in the controller's allow-list", ""},
		{"*.flagger-system.svc", "http://evil.flagger-system.svc/", "169.254.169.254", "", "link-local"},
		{"*.flagger-system.svc", "http://10.0.3.4/", "", "not in the controller's allow-list", ""},
		{"10.0.0.0/8", "http://any-name.example/", "10.1.2.3", "", ""},
		{"10.0.0.0/8", "http://any-name.example/", "192.168.1.1", "", "not in the controller's allow-list"},
		{"prometheus.monitoring", "http://prometheus.monitoring:9090/", "10.0.9.9", "", ""},
		{"prometheus.monitoring", "http://prometheus.monitoring.evil/", "10.0.9.9", "not in the controller's allow-list", ""},
		{"none", "http://prometheus.monitoring:9090/", "10.0.9.9", "allows no destination", "allows no destination"},
	} {
		d, err := ParseDestinations(c.list)
		if err != nil {
			t.Fatalf("%q: %v", c.list, err)
		}
		d.Denied = []netip.Addr{apiserver}
		check := func(stage string, err error, want string) {
			t.Helper()
			if (want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), want)) {
				t.Errorf("list %q, %s %s: %v, want %q", c.list, stage, c.url, err, want)
			}
		}
		check("admission of", d.AllowsURL(c.url), c.admission)
		if c.addr != "" && c.admission == "" {
			u := strings.TrimPrefix(strings.TrimPrefix(c.url, "http://"), "https://")
			name := strings.Split(strings.Split(u, "/")[0], ":")[0]
			check("dial of", d.AllowsAddr(name, netip.MustParseAddr(c.addr)), c.dial)
		}
	}
}

func TestParseDestinationsErrors(t *testing.T) {
	for _, bad := range []string{"10.0.0.0/33", "*", "a*.b", "http://x", "*."} {
		if _, err := ParseDestinations(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}
