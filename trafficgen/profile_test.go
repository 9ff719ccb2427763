package trafficgen

import (
	"math"
	"net/http"
	"reflect"
	"testing"
)

func TestBuildRequest(t *testing.T) {
	p := &Profile{Name: "jason", Method: "POST", Headers: map[string]string{"end-user": "jason"},
		Cookies: map[string]string{"beta": "1"}, Query: map[string]string{"tier": "gold plus"}}
	tests := []struct {
		name string
		p    *Profile
		path string
		jar  string
		want Request
	}{
		{"plain", nil, "/reviews/0", "", Request{Authority: "reviews:9080", Path: "/reviews/0", Headers: http.Header{}}},
		{"plain with the client's cookies", nil, "/reviews/0", "canary=1",
			Request{Authority: "reviews:9080", Path: "/reviews/0", Headers: http.Header{"Cookie": {"canary=1"}}}},
		{"a profile", p, "/reviews/0?x=1", "canary=1", Request{Method: "POST", Authority: "reviews:9080", Path: "/reviews/0?x=1&tier=gold+plus",
			Headers: http.Header{"End-User": {"jason"}, "Cookie": {"beta=1; canary=1"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := buildRequest(tt.p, "reviews:9080", tt.path, tt.jar); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("request\n  %+v\nwant\n  %+v", got, tt.want)
			}
		})
	}
	// What the routes see of it.
	r := buildRequest(p, "reviews:9080", "/reviews/0", "canary=1")
	if v, _ := r.queryParam("tier"); v != "gold plus" {
		t.Errorf("tier %q", v)
	}
	if v, _ := r.cookie("canary"); v != "1" {
		t.Errorf("cookie canary %q", v)
	}
}

func TestPickProfile(t *testing.T) {
	profiles := []Profile{{Name: "a", Share: 0.2}, {Name: "b", Share: 0.3}}
	rnd := seeded()
	got := map[string]int{}
	const n = 20000
	for range n {
		name := ""
		if p := pickProfile(profiles, rnd); p != nil {
			name = p.Name
		}
		got[name]++
	}
	for name, want := range map[string]float64{"a": 0.2, "b": 0.3, "": 0.5} {
		if s := float64(got[name]) / n; math.Abs(s-want) > 5*math.Sqrt(want*(1-want)/n) {
			t.Errorf("profile %q share %.3f, want %.2f", name, s, want)
		}
	}
	if pickProfile(nil, rnd) != nil {
		t.Error("a profile without profiles")
	}
}

func TestParseProfile(t *testing.T) {
	tests := []struct {
		in      string
		want    Profile
		wantErr bool
	}{
		{"jason=0.3,header:end-user=jason", Profile{Name: "jason", Share: 0.3, Headers: map[string]string{"end-user": "jason"}}, false},
		{"beta=1,cookie:beta=1,query:tier=gold,path:/reviews/1,method:POST", Profile{Name: "beta", Share: 1, Method: "POST", Path: "/reviews/1",
			Cookies: map[string]string{"beta": "1"}, Query: map[string]string{"tier": "gold"}}, false},
		{"x=0.5,header:a=b=c", Profile{Name: "x", Share: 0.5, Headers: map[string]string{"a": "b=c"}}, false},
		{"jason", Profile{}, true},
		{"jason=2", Profile{}, true},
		{"jason=0.1,header:novalue", Profile{}, true},
		{"jason=0.1,body:x=1", Profile{}, true},
		{"jason=0.1,header", Profile{}, true},
	}
	for _, tt := range tests {
		got, err := ParseProfile(tt.in)
		if (err != nil) != tt.wantErr || !tt.wantErr && !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseProfile(%q) = %+v, %v; want %+v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}
