package trafficgen

import (
	"testing"
	"time"
)

func TestCookieJar(t *testing.T) {
	t0 := time.Unix(1000, 0)
	type step struct {
		at         time.Duration // after t0
		setCookies []string      // a response to a request for /reviews/0
		path       string        // then the cookie header of a request for path
		want       string
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"no cookie", []step{{0, nil, "/", ""}}},
		{"kept and sent", []step{{0, []string{"canary=1; Path=/; Max-Age=3600"}, "/reviews/1", "canary=1"}}},
		{"several, in the order set", []step{{0, []string{"a=1; Path=/", "b=2; Path=/"}, "/", "a=1; b=2"}}},
		{"replaced by name and path", []step{
			{0, []string{"canary=1; Path=/"}, "/", "canary=1"},
			{time.Second, []string{"canary=2; Path=/"}, "/", "canary=2"},
		}},
		{"Max-Age=0 deletes", []step{
			{0, []string{"canary=1; Path=/"}, "/", "canary=1"},
			{time.Second, []string{"canary=; Path=/; Max-Age=0"}, "/", ""},
		}},
		{"an Expires in the past deletes", []step{
			{0, []string{"canary=1; Path=/"}, "/", "canary=1"},
			{time.Second, []string{"canary=1; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT"}, "/", ""},
		}},
		{"Max-Age runs out", []step{
			{0, []string{"canary=1; Path=/; Max-Age=60"}, "/", "canary=1"},
			{59 * time.Second, nil, "/", "canary=1"},
			{61 * time.Second, nil, "/", ""},
		}},
		{"Max-Age wins over Expires", []step{{0, []string{"canary=1; Path=/; Max-Age=60; Expires=Thu, 01 Jan 1970 00:00:00 GMT"}, "/", "canary=1"}}},
		{"sent only under its path", []step{
			{0, []string{"a=1; Path=/reviews"}, "/ratings", ""},
			{0, nil, "/reviewsx", ""},
			{0, nil, "/reviews", "a=1"},
			{0, nil, "/reviews/2?x=1", "a=1"},
		}},
		{"without Path: the request's directory", []step{
			{0, []string{"a=1"}, "/reviews/9", "a=1"},
			{0, nil, "/ratings", ""},
		}},
		{"longer paths first", []step{{0, []string{"a=1; Path=/", "b=2; Path=/reviews"}, "/reviews/0", "b=2; a=1"}}},
		{"an unparsable header is ignored", []step{{0, []string{"=1", "ok=1; Path=/"}, "/", "ok=1"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var j CookieJar
			for i, s := range tt.steps {
				now := t0.Add(s.at)
				j.Update(s.setCookies, "/reviews/0", now)
				if got := j.Header(s.path, now); got != s.want {
					t.Fatalf("step %d: cookie header %q, want %q", i, got, s.want)
				}
			}
		})
	}
}
