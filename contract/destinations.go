package contract

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
)

// Destinations is where the URLs users write (canary.io/webhooks,
// canary.io/prometheus) may send the controller's requests: the cluster
// admin's allow-list, from the controller's --allow-hook-destinations and
// --allow-prometheus-destinations flags.
//
// An entry is a CIDR ("10.0.0.0/8", "127.0.0.1/32"), a host name
// ("prometheus.monitoring.svc"), or a host pattern whose "*." matches one
// or more leading labels ("*.flagger-system.svc" matches
// "loadtester.flagger-system.svc"). A URL passes when its host is an
// address inside a listed CIDR, or a name that matches a listed name or
// pattern, or, when CIDRs are listed, any name: then the address it
// resolves to decides, when the connection is dialled ([Destinations.AllowsAddr]).
// Loopback, link-local and unspecified addresses, and the apiserver's
// ([Destinations.Denied]), are refused unless a listed CIDR holds them:
// a name that matches a pattern does not let its address through.
//
// The zero value (no flag given) allows any destination but those.
// "none" allows none: the annotation cannot be used at all.
type Destinations struct {
	// None says nothing is allowed.
	None bool
	// CIDRs are the listed address ranges.
	CIDRs []netip.Prefix
	// Names are the listed host names and patterns ("*.suffix").
	Names []string
	// Denied are addresses refused unless a listed CIDR holds them, beside
	// loopback, link-local and unspecified ones: the apiserver's.
	Denied []netip.Addr
}

// ParseDestinations reads a comma-separated allow-list ("" for the
// default, "none" for nothing).
//
// Example: "10.0.0.0/8, *.flagger-system.svc, prometheus.monitoring" → one
// CIDR, one pattern, one name.
func ParseDestinations(s string) (Destinations, error) {
	var d Destinations
	s = strings.TrimSpace(s)
	if s == "none" {
		return Destinations{None: true}, nil
	}
	for _, e := range strings.Split(s, ",") {
		e = strings.ToLower(strings.TrimSpace(e))
		if e == "" {
			continue
		}
		if strings.Contains(e, "/") {
			p, err := netip.ParsePrefix(e)
			if err != nil {
				return Destinations{}, fmt.Errorf("%q is not a CIDR: %v", e, err)
			}
			d.CIDRs = append(d.CIDRs, p.Masked())
			continue
		}
		if a, err := netip.ParseAddr(e); err == nil {
			d.CIDRs = append(d.CIDRs, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		name := strings.TrimPrefix(e, "*.")
		if name == "" || strings.Contains(name, "*") || strings.ContainsAny(name, " :/") {
			return Destinations{}, fmt.Errorf("%q is neither a CIDR, an address, a host name nor a pattern *.suffix", e)
		}
		d.Names = append(d.Names, e)
	}
	return d, nil
}

// Open reports whether the list is the default: any destination but the
// denied ones.
func (d Destinations) Open() bool {
	return !d.None && len(d.CIDRs) == 0 && len(d.Names) == 0
}

// AllowsURL checks a URL at admission: nil when its host may be used (its
// address is checked again when dialled), else why not.
func (d Destinations) AllowsURL(raw string) error {
	if d.None {
		return errors.New("the cluster's controller allows no destination for it (its allow-list is \"none\")")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	host := strings.ToLower(u.Hostname())
	if a, err := netip.ParseAddr(host); err == nil {
		return d.AllowsAddr("", a)
	}
	if d.Open() || d.nameListed(host) || len(d.CIDRs) > 0 {
		return nil
	}
	return fmt.Errorf("host %s is not in the controller's allow-list (%s)", host, d)
}

// AllowsAddr checks the address a connection is about to be dialled to,
// for a URL whose host is name ("" for an address literal): nil when
// allowed, else why not.
func (d Destinations) AllowsAddr(name string, a netip.Addr) error {
	a = a.Unmap()
	if d.None {
		return errors.New("the cluster's controller allows no destination for it (its allow-list is \"none\")")
	}
	for _, p := range d.CIDRs {
		if p.Contains(a) {
			return nil
		}
	}
	if why := d.denied(a); why != "" {
		return fmt.Errorf("%s is %s, which the controller refuses unless its allow-list holds it", a, why)
	}
	if d.Open() || (name != "" && d.nameListed(name)) {
		return nil
	}
	return fmt.Errorf("%s is not in the controller's allow-list (%s)", a, d)
}

// denied says why an address is refused by default, "" when it is not.
func (d Destinations) denied(a netip.Addr) string {
	switch {
	case a.IsLoopback():
		return "a loopback address"
	case a.IsLinkLocalUnicast(), a.IsLinkLocalMulticast():
		return "a link-local address (cloud metadata lives there)"
	case a.IsUnspecified():
		return "the unspecified address"
	}
	for _, x := range d.Denied {
		if x.Unmap() == a {
			return "the Kubernetes apiserver's address"
		}
	}
	return ""
}

// nameListed reports whether a host name matches a listed name or pattern.
func (d Destinations) nameListed(host string) bool {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	for _, n := range d.Names {
		if suffix, ok := strings.CutPrefix(n, "*."); ok {
			if strings.HasSuffix(host, "."+suffix) {
				return true
			}
		} else if host == n {
			return true
		}
	}
	return false
}

// String renders the list as the flag takes it.
func (d Destinations) String() string {
	if d.None {
		return "none"
	}
	if d.Open() {
		return "any but loopback, link-local and the apiserver"
	}
	var parts []string
	for _, p := range d.CIDRs {
		parts = append(parts, p.String())
	}
	parts = append(parts, d.Names...)
	return strings.Join(parts, ", ")
}

// AddrOf parses a net.IP as a netip.Addr (false for nil or malformed).
func AddrOf(ip net.IP) (netip.Addr, bool) {
	a, ok := netip.AddrFromSlice(ip)
	return a.Unmap(), ok
}
