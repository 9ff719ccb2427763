package trafficgen

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// Profile is a kind of request the generator sends with a share of the
// mesh requests: requests with a header, a cookie or a query parameter,
// as the A/B routes of a VirtualService or an HTTPRoute select them.
type Profile struct {
	// Name names the profile in Stats (MeshStats.ByProfile) and Records.
	Name string
	// Share is the share of the mesh requests sent with the profile
	// (0..1); profiles take their shares in order, the rest are plain.
	Share float64
	// Method is the request's method ("" is GET).
	Method string
	// Path replaces Config.Path when set (query included).
	Path string
	// Headers, Cookies and Query are added to the request. The cookies
	// come before the client's own.
	Headers, Cookies, Query map[string]string
}

// pickProfile draws the profile of one request: profile i with
// probability Share_i, in order; nil (a plain request) for the rest.
// With no profiles nothing is drawn.
func pickProfile(profiles []Profile, rnd *rand.Rand) *Profile {
	if len(profiles) == 0 {
		return nil
	}
	u := rnd.Float64()
	for i := range profiles {
		if u < profiles[i].Share {
			return &profiles[i]
		}
		u -= profiles[i].Share
	}
	return nil
}

// buildRequest is the request of a profile (nil: plain) to authority
// for path, with the client's cookie header jarCookies ("" for none).
//
// Example: profile {Headers {end-user: jason}, Cookies {beta: 1},
// Query {tier: gold}}, path "/reviews/0" and jar cookies "canary=1" give
// GET /reviews/0?tier=gold with "end-user: jason" and "cookie: beta=1;
// canary=1".
func buildRequest(p *Profile, authority, path, jarCookies string) Request {
	r := Request{Authority: authority, Path: path, Headers: http.Header{}}
	var cookies []string
	if p != nil {
		r.Method = p.Method
		if p.Path != "" {
			r.Path = p.Path
		}
		for _, k := range sortedKeys(p.Headers) {
			r.Headers.Add(k, p.Headers[k])
		}
		for _, k := range sortedKeys(p.Cookies) {
			cookies = append(cookies, k+"="+p.Cookies[k])
		}
		if len(p.Query) > 0 {
			q := make([]string, 0, len(p.Query))
			for _, k := range sortedKeys(p.Query) {
				q = append(q, url.QueryEscape(k)+"="+url.QueryEscape(p.Query[k]))
			}
			sep := "?"
			if strings.Contains(r.Path, "?") {
				sep = "&"
			}
			r.Path += sep + strings.Join(q, "&")
		}
	}
	if jarCookies != "" {
		cookies = append(cookies, jarCookies)
	}
	if len(cookies) > 0 {
		r.Headers.Set("Cookie", strings.Join(cookies, "; "))
	}
	return r
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// ParseProfile reads a profile from
// "NAME=SHARE[,header:K=V][,cookie:K=V][,query:K=V][,path:P][,method:M]",
// e.g. "jason=0.3,header:end-user=jason" or "beta=0.1,cookie:beta=1".
func ParseProfile(s string) (Profile, error) {
	items := strings.Split(s, ",")
	name, share, ok := strings.Cut(strings.TrimSpace(items[0]), "=")
	if !ok || name == "" {
		return Profile{}, fmt.Errorf("profile %q: want NAME=SHARE first, e.g. jason=0.3", s)
	}
	f, err := strconv.ParseFloat(share, 64)
	if err != nil || !(f >= 0 && f <= 1) {
		return Profile{}, fmt.Errorf("profile %q: share %q is not a number from 0 to 1", s, share)
	}
	p := Profile{Name: name, Share: f}
	for _, item := range items[1:] {
		kind, rest, ok := strings.Cut(strings.TrimSpace(item), ":")
		if !ok {
			return Profile{}, fmt.Errorf("profile %q: %q: want KIND:VALUE", s, item)
		}
		switch kind {
		case "path":
			p.Path = rest
			continue
		case "method":
			p.Method = rest
			continue
		}
		k, v, ok := strings.Cut(rest, "=")
		if !ok || k == "" {
			return Profile{}, fmt.Errorf("profile %q: %q: want %s:KEY=VALUE", s, item, kind)
		}
		switch kind {
		case "header":
			p.Headers = put(p.Headers, k, v)
		case "cookie":
			p.Cookies = put(p.Cookies, k, v)
		case "query":
			p.Query = put(p.Query, k, v)
		default:
			return Profile{}, fmt.Errorf("profile %q: unknown kind %q (header, cookie, query, path, method)", s, kind)
		}
	}
	return p, nil
}

func put(m map[string]string, k, v string) map[string]string {
	if m == nil {
		m = map[string]string{}
	}
	m[k] = v
	return m
}
