// Package notify tells people what analyses do, in the places they read:
// Slack, Microsoft Teams, or any HTTP endpoint that takes JSON. The
// cluster admin configures the providers in a file mounted into the
// controller (--notification-providers); a Deployment picks them by name
// in canary.io/notify. Building the payloads is pure (this file); sending
// them is Sender's.
package notify

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"
)

// Severity filters what a provider is told.
type Severity string

const (
	// Info: every transition of an analysis (held, promoted, rolled back,
	// paused, ...).
	Info Severity = "info"
	// Warn: rollbacks and holds only (what someone must look at).
	Warn Severity = "warn"
)

// Type is a provider's kind.
type Type string

const (
	// Slack is a Slack incoming webhook (attachments with a colour and
	// fields).
	Slack Type = "slack"
	// MSTeams is a Microsoft Teams Workflows webhook (an Adaptive Card).
	MSTeams Type = "msteams"
	// Webhook is any endpoint taking the Notification as JSON.
	Webhook Type = "webhook"
)

// Provider is one configured destination.
type Provider struct {
	// Name is what canary.io/notify lists.
	Name string `json:"name"`
	// Type is slack, msteams or webhook.
	Type Type `json:"type"`
	// URL is where to POST. URLFile, instead, names a file holding it (a
	// mounted Secret: webhook URLs are credentials).
	URL     string `json:"url,omitempty"`
	URLFile string `json:"urlFile,omitempty"`
	// Severity is the least severe notification sent (default info).
	Severity Severity `json:"severity,omitempty"`
	// Channel, for Slack, overrides the webhook's channel.
	Channel string `json:"channel,omitempty"`
	// Timeout bounds one call (default 10s).
	Timeout string `json:"timeout,omitempty"`
}

// Config is the providers file.
//
//	providers:
//	- name: team-chat
//	  type: slack
//	  urlFile: /etc/canary/notify/slack-url
//	  severity: warn
type Config struct {
	Providers []Provider `json:"providers"`
}

// MaxProviders bounds the providers of one file.
const MaxProviders = 50

// Load reads and checks a providers file; URLs given as files are read
// now (relative names from the file's directory).
func Load(path string) (map[string]Provider, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var c Config
	if err := yaml.UnmarshalStrict(data, &c); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(c.Providers) > MaxProviders {
		return nil, fmt.Errorf("%s: %d providers; at most %d", path, len(c.Providers), MaxProviders)
	}
	out := map[string]Provider{}
	var problems []string
	for i, p := range c.Providers {
		where := fmt.Sprintf("provider %d (%q)", i+1, p.Name)
		if msgs := validation.IsDNS1123Label(p.Name); len(msgs) > 0 {
			problems = append(problems, where+": name: "+strings.Join(msgs, "; "))
		}
		if _, dup := out[p.Name]; dup {
			problems = append(problems, where+": name used twice")
		}
		switch p.Type {
		case Slack, MSTeams, Webhook:
		default:
			problems = append(problems, fmt.Sprintf("%s: type %q: want slack, msteams or webhook", where, p.Type))
		}
		switch p.Severity {
		case "":
			p.Severity = Info
		case Info, Warn:
		default:
			problems = append(problems, fmt.Sprintf("%s: severity %q: want info or warn", where, p.Severity))
		}
		if p.Timeout != "" {
			if d, err := time.ParseDuration(p.Timeout); err != nil || d <= 0 || d > time.Minute {
				problems = append(problems, fmt.Sprintf("%s: timeout %q: want a duration above 0 and at most 1m", where, p.Timeout))
			}
		}
		if (p.URL == "") == (p.URLFile == "") {
			problems = append(problems, where+": set one of url and urlFile")
		} else if p.URLFile != "" {
			f := p.URLFile
			if !filepath.IsAbs(f) {
				f = filepath.Join(filepath.Dir(path), f)
			}
			raw, err := os.ReadFile(f)
			if err != nil {
				problems = append(problems, fmt.Sprintf("%s: urlFile: %v", where, err))
			}
			p.URL = strings.TrimSpace(string(raw))
		}
		if u, err := url.Parse(p.URL); p.URL != "" && (err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "") {
			problems = append(problems, where+": the URL is not an absolute http or https URL")
		}
		out[p.Name] = p
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("%s: %s", path, strings.Join(problems, "; "))
	}
	return out, nil
}

// Notification is what happened: one transition of one analysis. It is
// also the generic webhook's JSON body.
type Notification struct {
	Namespace  string   `json:"namespace"`
	Deployment string   `json:"deployment"`
	Revision   string   `json:"revision"`
	Phase      string   `json:"phase"`
	Reason     string   `json:"reason"`
	Severity   Severity `json:"severity"`
	// Message is canary.io/message, with the measured values.
	Message string `json:"message"`
	// Step and Weight are canary.io/step and canary.io/weight then.
	Step   string    `json:"step,omitempty"`
	Weight string    `json:"weight,omitempty"`
	Time   time.Time `json:"time"`
}

// Wants reports whether a provider of severity s is told of n.
func (s Severity) Wants(n Notification) bool {
	return s != Warn || n.Severity == Warn
}

// title is the notification's first line.
func (n Notification) title() string {
	return fmt.Sprintf("%s/%s: %s", n.Namespace, n.Deployment, n.Phase)
}

func (n Notification) facts() [][2]string {
	f := [][2]string{{"Revision", n.Revision}, {"Phase", n.Phase}, {"Reason", n.Reason}}
	if n.Step != "" {
		f = append(f, [2]string{"Step", n.Step})
	}
	if n.Weight != "" {
		f = append(f, [2]string{"Weight", n.Weight + "%"})
	}
	return f
}

// Payload is the body p's type takes for n.
func Payload(p Provider, n Notification) ([]byte, error) {
	switch p.Type {
	case Slack:
		return json.Marshal(slackPayload(p, n))
	case MSTeams:
		return json.Marshal(teamsPayload(n))
	case Webhook:
		return json.Marshal(n)
	}
	return nil, errors.New("unknown provider type " + string(p.Type))
}

// slackMessage is an incoming webhook's message with one attachment
// (https://api.slack.com/messaging/webhooks, legacy attachments: colour
// and fields).
type slackMessage struct {
	Channel     string            `json:"channel,omitempty"`
	Username    string            `json:"username"`
	Text        string            `json:"text"`
	Attachments []slackAttachment `json:"attachments"`
}

type slackAttachment struct {
	Color    string       `json:"color"`
	Title    string       `json:"title"`
	Text     string       `json:"text"`
	Fields   []slackField `json:"fields"`
	Fallback string       `json:"fallback"`
	Ts       int64        `json:"ts"`
}

type slackField struct {
	Title string `json:"title"`
	Value string `json:"value"`
	Short bool   `json:"short"`
}

func slackPayload(p Provider, n Notification) slackMessage {
	color := "good"
	if n.Severity == Warn {
		color = "danger"
	}
	a := slackAttachment{Color: color, Title: n.title(), Text: n.Message, Fallback: n.title() + ": " + n.Message, Ts: n.Time.Unix()}
	for _, f := range n.facts() {
		a.Fields = append(a.Fields, slackField{Title: f[0], Value: f[1], Short: true})
	}
	return slackMessage{Channel: p.Channel, Username: "canary.io", Text: n.title(), Attachments: []slackAttachment{a}}
}

// teamsMessage is a Teams Workflows webhook's message: one Adaptive Card
// (https://learn.microsoft.com/en-us/connectors/teams/ "post to a channel
// when a webhook request is received").
type teamsMessage struct {
	Type        string            `json:"type"`
	Attachments []teamsAttachment `json:"attachments"`
}

type teamsAttachment struct {
	ContentType string    `json:"contentType"`
	ContentURL  *string   `json:"contentUrl"`
	Content     teamsCard `json:"content"`
}

type teamsCard struct {
	Schema  string           `json:"$schema"`
	Type    string           `json:"type"`
	Version string           `json:"version"`
	Body    []map[string]any `json:"body"`
}

func teamsPayload(n Notification) teamsMessage {
	color := "Good"
	if n.Severity == Warn {
		color = "Attention"
	}
	var facts []map[string]string
	for _, f := range n.facts() {
		facts = append(facts, map[string]string{"title": f[0], "value": f[1]})
	}
	card := teamsCard{
		Schema: "http://adaptivecards.io/schemas/adaptive-card.json", Type: "AdaptiveCard", Version: "1.4",
		Body: []map[string]any{
			{"type": "TextBlock", "text": n.title(), "weight": "Bolder", "size": "Medium", "color": color, "wrap": true},
			{"type": "TextBlock", "text": n.Message, "wrap": true},
			{"type": "FactSet", "facts": facts},
		},
	}
	return teamsMessage{Type: "message", Attachments: []teamsAttachment{{ContentType: "application/vnd.microsoft.card.adaptive", Content: card}}}
}
