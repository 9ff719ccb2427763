package webhook

import (
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"

	"github.com/canary-io/canary/contract"
)

// TestEgress: a hook or Prometheus URL the controller's allow-lists refuse
// is denied at admission with its field and the reason, when a write sets
// or changes it; one already stored is not re-judged on unrelated writes.
func TestEgress(t *testing.T) {
	open := Egress{}
	listed := Egress{}
	var err error
	if listed.Hooks, err = contract.ParseDestinations("*.flagger-system.svc"); err != nil {
		t.Fatal(err)
	}
	loopback := Egress{}
	if loopback.Hooks, err = contract.ParseDestinations("127.0.0.1/32"); err != nil {
		t.Fatal(err)
	}
	if listed.Prometheus, err = contract.ParseDestinations("none"); err != nil {
		t.Fatal(err)
	}
	hooks := func(url string) string {
		return `[{"name": "load", "type": "rollout", "url": "` + url + `"}]`
	}
	for _, c := range []struct {
		name   string
		egress Egress
		old    map[string]string // extra annotations already stored; nil: create
		set    map[string]string
		want   string // "" allowed, else in the error
	}{
		{"metadata service, default list", open, nil, map[string]string{contract.KeyWebhooks: hooks("http://169.254.169.254/latest")},
			`metadata.annotations[canary.io/webhooks][0].url: Forbidden: hook load: 169.254.169.254 is a link-local address`},
		{"loopback, default list", open, nil, map[string]string{contract.KeyWebhooks: hooks("http://127.0.0.1:8080/")},
			"127.0.0.1 is a loopback address"},
		{"loopback, listed", loopback, nil, map[string]string{contract.KeyWebhooks: hooks("http://127.0.0.1:8080/")}, ""},
		{"another team's service", listed, nil, map[string]string{contract.KeyWebhooks: hooks("http://loadtester.team-b.svc/")},
			"host loadtester.team-b.svc is not in the controller's allow-list"},
		{"a name, CIDRs listed: its address decides when dialled", loopback, nil, map[string]string{contract.KeyWebhooks: hooks("http://localhost:8080/")}, ""},
		{"the allowed load tester", listed, nil, map[string]string{contract.KeyWebhooks: hooks("http://loadtester.flagger-system.svc/")}, ""},
		{"canary.io/prometheus turned off", listed, nil, map[string]string{contract.KeyPrometheus: "http://prometheus.team-a:9090"},
			`metadata.annotations[canary.io/prometheus]: Forbidden: the cluster's controller allows no destination`},
		{"a configured notification provider", Egress{Providers: map[string]bool{"team-chat": true}}, nil,
			map[string]string{contract.KeyNotify: "team-chat"}, ""},
		{"an unknown notification provider", Egress{Providers: map[string]bool{"team-chat": true}}, nil,
			map[string]string{contract.KeyNotify: "team-chat, pager"},
			`metadata.annotations[canary.io/notify][1]: Not found: "pager (the controller's notification providers, --notification-providers: team-chat)"`},
		{"a stored URL is not re-judged", listed, map[string]string{contract.KeyWebhooks: hooks("http://loadtester.team-b.svc/")},
			map[string]string{contract.KeyWebhooks: hooks("http://loadtester.team-b.svc/"), "team": "books"}, ""},
	} {
		var old = deployment("reviews:v1")
		if c.old != nil {
			old = edit(idle, func(d *appsv1.Deployment) {
				for k, v := range c.old {
					d.Annotations[k] = v
				}
			})
		}
		newD := edit(old, func(d *appsv1.Deployment) {
			for k, v := range c.set {
				d.Annotations[k] = v
			}
		})
		req := Request{New: newD, Now: time.Unix(0, 0), Egress: c.egress}
		if c.old != nil {
			req.Old = old
		}
		errs, _ := Validate(req)
		got := errs.ToAggregate()
		switch {
		case c.want == "" && got != nil:
			t.Errorf("%s: denied: %v", c.name, got)
		case c.want != "" && (got == nil || !strings.Contains(got.Error(), c.want)):
			t.Errorf("%s: %v, want %q", c.name, got, c.want)
		}
	}
}
