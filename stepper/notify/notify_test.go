package notify

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var rollback = Notification{
	Namespace: "shop", Deployment: "web", Revision: "7f9c4d", Phase: "RolledBack", Reason: "CanaryWorse", Severity: Warn,
	Message: "rolled back: the canary is worse than stable at step 1/3 (weight 20%): canary error rate 7.3% vs stable 0%",
	Step:    "1/3", Weight: "0", Time: time.Date(2026, 12, 2, 7, 0, 0, 0, time.UTC),
}

// TestPayloads: each provider's body has the shape its service documents.
func TestPayloads(t *testing.T) {
	// Slack incoming webhook: text, and attachments with color, title,
	// text, fields {title, value, short}.
	data, err := Payload(Provider{Type: Slack, Channel: "#deploys"}, rollback)
	if err != nil {
		t.Fatal(err)
	}
	var slack struct {
		Channel, Text string
		Attachments   []struct {
			Color, Title, Text, Fallback string
			Fields                       []struct {
				Title, Value string
				Short        bool
			}
		}
	}
	if err := json.Unmarshal(data, &slack); err != nil {
		t.Fatal(err)
	}
	if slack.Channel != "#deploys" || slack.Text != "shop/web: RolledBack" || len(slack.Attachments) != 1 ||
		slack.Attachments[0].Color != "danger" || slack.Attachments[0].Text != rollback.Message || len(slack.Attachments[0].Fields) != 5 {
		t.Errorf("slack payload: %s", data)
	}
	// Teams Workflows: {"type":"message","attachments":[{"contentType":
	// "application/vnd.microsoft.card.adaptive","content":{AdaptiveCard}}]}.
	data, err = Payload(Provider{Type: MSTeams}, rollback)
	if err != nil {
		t.Fatal(err)
	}
	var teams struct {
		Type        string
		Attachments []struct {
			ContentType string
			Content     struct {
				Schema  string `json:"$schema"`
				Type    string
				Version string
				Body    []map[string]any
			}
		}
	}
	if err := json.Unmarshal(data, &teams); err != nil {
		t.Fatal(err)
	}
	if teams.Type != "message" || len(teams.Attachments) != 1 || teams.Attachments[0].ContentType != "application/vnd.microsoft.card.adaptive" ||
		teams.Attachments[0].Content.Type != "AdaptiveCard" || teams.Attachments[0].Content.Version == "" || len(teams.Attachments[0].Content.Body) != 3 ||
		!strings.Contains(string(data), "canary error rate 7.3%") {
		t.Errorf("teams payload: %s", data)
	}
	// The generic webhook: the Notification itself.
	data, err = Payload(Provider{Type: Webhook}, rollback)
	if err != nil {
		t.Fatal(err)
	}
	var n Notification
	if err := json.Unmarshal(data, &n); err != nil || n != rollback {
		t.Errorf("webhook payload %s (%v)", data, err)
	}
}

func TestSeverity(t *testing.T) {
	info := rollback
	info.Severity, info.Phase = Info, "Succeeded"
	for _, c := range []struct {
		s    Severity
		n    Notification
		want bool
	}{{Info, info, true}, {Info, rollback, true}, {Warn, info, false}, {Warn, rollback, true}} {
		if got := c.s.Wants(c.n); got != c.want {
			t.Errorf("%s wants %s: %v, want %v", c.s, c.n.Severity, got, c.want)
		}
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "slack-url"), []byte("https://hooks.slack.com/services/T/B/X\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	good := "providers:\n- {name: team-chat, type: slack, urlFile: slack-url, severity: warn}\n- {name: ops, type: webhook, url: 'http://ops.example/notify'}\n"
	path := filepath.Join(dir, "providers.yaml")
	if err := os.WriteFile(path, []byte(good), 0o600); err != nil {
		t.Fatal(err)
	}
	ps, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if ps["team-chat"].URL != "https://hooks.slack.com/services/T/B/X" || ps["ops"].Severity != Info {
		t.Errorf("loaded %+v", ps)
	}
	for _, bad := range []struct{ yaml, want string }{
		{"providers:\n- {name: a, type: pager, url: 'http://x'}\n", `type "pager"`},
		{"providers:\n- {name: a, type: slack}\n", "set one of url and urlFile"},
		{"providers:\n- {name: a, type: slack, url: 'ftp://x'}\n", "not an absolute http or https URL"},
		{"providers:\n- {name: a, type: slack, url: 'http://x', severity: loud}\n", `severity "loud"`},
		{"providers:\n- {name: A_B, type: slack, url: 'http://x'}\n", "name:"},
		{"providers:\n- {name: a, type: slack, url: 'http://x', colour: red}\n", "unknown field"},
	} {
		if err := os.WriteFile(path, []byte(bad.yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := Load(path); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%q: %v, want %q", bad.yaml, err, bad.want)
		}
	}
}

// TestSend: real HTTP servers on loopback receive each provider's payload
// as JSON; a warn provider is not told of an info notification; a
// provider that hangs delays nothing and is cut at its timeout.
func TestSend(t *testing.T) {
	var mu sync.Mutex
	got := map[string][]string{}
	receiver := func(name string) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			if r.Header.Get("Content-Type") != "application/json" || !json.Valid(body) {
				t.Errorf("%s: %s %q", name, r.Header.Get("Content-Type"), body)
			}
			mu.Lock()
			got[name] = append(got[name], string(body))
			mu.Unlock()
		}))
	}
	slack, teams, hook := receiver("slack"), receiver("teams"), receiver("webhook")
	defer slack.Close()
	defer teams.Close()
	defer hook.Close()
	release := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer hang.Close()
	defer close(release)
	var failures sync.Map
	done := make(chan struct{}, 10)
	s := &Sender{
		Providers: map[string]Provider{
			"chat":  {Name: "chat", Type: Slack, URL: slack.URL, Severity: Info},
			"teams": {Name: "teams", Type: MSTeams, URL: teams.URL, Severity: Warn},
			"ops":   {Name: "ops", Type: Webhook, URL: hook.URL, Severity: Info},
			"slow":  {Name: "slow", Type: Webhook, URL: hang.URL, Timeout: "200ms"},
		},
		Go: func(_ string, f func(ctx context.Context)) bool {
			go func() { f(context.Background()); done <- struct{}{} }()
			return true
		},
		Failed: func(p string, err error) { failures.Store(p, err) },
	}
	succeeded := rollback
	succeeded.Severity, succeeded.Phase, succeeded.Reason = Info, "Succeeded", "Succeeded"
	s.Send("shop", []string{"slow", "chat", "teams", "ops", "missing"}, rollback)
	s.Send("shop", []string{"chat", "teams", "ops"}, succeeded)
	// Send returned with the hanging provider's call still in flight.
	if _, ok := failures.Load("slow"); ok {
		t.Fatal("the hanging provider's call ended before Send returned: Send waited for it")
	}
	for range 6 { // slow, chat×2, teams×1, ops×2
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("a provider's call did not end")
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got["slack"]) != 2 || len(got["teams"]) != 1 || len(got["webhook"]) != 2 {
		t.Errorf("received slack %d, teams %d (warn only), webhook %d; want 2, 1, 2", len(got["slack"]), len(got["teams"]), len(got["webhook"]))
	}
	if err, ok := failures.Load("slow"); !ok || !strings.Contains(err.(error).Error(), "deadline exceeded") {
		t.Errorf("the hanging provider: %v, want its timeout", err)
	}
	if err, ok := failures.Load("missing"); !ok || !strings.Contains(err.(error).Error(), "not configured") {
		t.Errorf("an unknown provider: %v", err)
	}
}
