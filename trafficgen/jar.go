package trafficgen

import (
	"net/http"
	"slices"
	"strings"
	"time"
)

// CookieJar is a minimal cookie store of one simulated client, enough
// for sticky routes: it keeps the name=value pairs of the Set-Cookie
// headers it receives, by name and path, honours Max-Age and Expires
// (Max-Age=0 or an Expires in the past deletes the cookie) and sends the
// cookies whose path matches the request's. Domain, Secure and the other
// attributes are ignored: every request goes to the same host.
//
// Example: after "Set-Cookie: canary=1; Path=/; Max-Age=60" at t, a
// request for /reviews/0 before t+60s carries "cookie: canary=1"; after
// "Set-Cookie: canary=; Max-Age=0" it carries none.
type CookieJar struct {
	cookies []jarCookie
}

// jarCookie is one stored cookie.
type jarCookie struct {
	name, value, path string
	// expires is when it expires (zero: at the end of the session,
	// which a simulated client never reaches).
	expires time.Time
}

// Update stores the cookies of a response's Set-Cookie headers to a
// request for path (which gives a cookie without Path its default
// path). Unparsable headers are ignored, as browsers ignore them.
func (j *CookieJar) Update(setCookies []string, path string, now time.Time) {
	for _, line := range setCookies {
		c, err := http.ParseSetCookie(line)
		if err != nil {
			continue
		}
		jc := jarCookie{name: c.Name, value: c.Value, path: c.Path}
		if jc.path == "" || jc.path[0] != '/' {
			jc.path = defaultCookiePath(path)
		}
		i := slices.IndexFunc(j.cookies, func(o jarCookie) bool { return o.name == jc.name && o.path == jc.path })
		deleted := false
		switch {
		case c.MaxAge < 0:
			deleted = true
		case c.MaxAge > 0:
			jc.expires = now.Add(time.Duration(c.MaxAge) * time.Second)
		case !c.Expires.IsZero():
			jc.expires = c.Expires
			deleted = !c.Expires.After(now)
		}
		switch {
		case deleted && i >= 0:
			j.cookies = slices.Delete(j.cookies, i, i+1)
		case deleted:
		case i >= 0:
			j.cookies[i] = jc
		default:
			j.cookies = append(j.cookies, jc)
		}
	}
}

// Header returns the cookie header of a request for path ("a=1; b=2"),
// "" when no cookie applies: the unexpired cookies whose path matches,
// longer paths first, then in the order they were first set.
func (j *CookieJar) Header(path string, now time.Time) string {
	var send []jarCookie
	for _, c := range j.cookies {
		if (c.expires.IsZero() || c.expires.After(now)) && cookiePathMatches(c.path, path) {
			send = append(send, c)
		}
	}
	slices.SortStableFunc(send, func(a, b jarCookie) int { return len(b.path) - len(a.path) })
	parts := make([]string, 0, len(send))
	for _, c := range send {
		parts = append(parts, c.name+"="+c.value)
	}
	return strings.Join(parts, "; ")
}

// defaultCookiePath is RFC 6265's default path of a request path: its
// directory ("/reviews/0" gives "/reviews", "/x" gives "/").
func defaultCookiePath(path string) string {
	path, _, _ = strings.Cut(path, "?")
	i := strings.LastIndexByte(path, '/')
	if i <= 0 {
		return "/"
	}
	return path[:i]
}

// cookiePathMatches is RFC 6265's path-match: the request path is the
// cookie's path or below it.
func cookiePathMatches(cookiePath, path string) bool {
	path, _, _ = strings.Cut(path, "?")
	if path == cookiePath {
		return true
	}
	return strings.HasPrefix(path, cookiePath) &&
		(strings.HasSuffix(cookiePath, "/") || path[len(cookiePath)] == '/')
}
