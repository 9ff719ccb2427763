package contract

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// HookType is when a [Webhook] is called; the names and meanings are
// Flagger's, so Flagger's load tester works unchanged.
type HookType string

const (
	// HookPreRollout is called before traffic moves to the canary; a
	// failure counts as a failed check.
	HookPreRollout HookType = "pre-rollout"
	// HookRollout is called at every step before the metric checks; a
	// failure counts as a failed check. A hook without a type is a rollout
	// hook, as in Flagger.
	HookRollout HookType = "rollout"
	// HookConfirmPromotion gates the promotion until it returns success.
	HookConfirmPromotion HookType = "confirm-promotion"
	// HookPostRollout is called after promotion or rollback; a failure is
	// only reported.
	HookPostRollout HookType = "post-rollout"
	// HookRollback rolls the analysis back when it returns success.
	HookRollback HookType = "rollback"
	// HookEvent receives every Event the system records for the analysis.
	HookEvent HookType = "event"
)

// hookTypes are the types the contract accepts, in the contract's order.
var hookTypes = []HookType{
	HookPreRollout, HookRollout, HookConfirmPromotion, HookPostRollout, HookRollback, HookEvent,
}

// DefaultWebhookTimeout is the timeout of a hook that sets none: 10s,
// Flagger's default, so hooks written for Flagger behave the same.
const DefaultWebhookTimeout = 10 * time.Second

// DefaultEventWebhookTimeout is the timeout of an event hook that sets
// none: 5s, the one Flagger uses for event hooks.
const DefaultEventWebhookTimeout = 5 * time.Second

// OfType returns the hooks of type t, in the order they were written.
func OfType(hooks []Webhook, t HookType) []Webhook {
	var out []Webhook
	for _, h := range hooks {
		if h.Type == t {
			out = append(out, h)
		}
	}
	return out
}

// Webhook is one hook of [KeyWebhooks], in Flagger's webhook format:
//
//	canary.io/webhooks: |
//	  - name: load-test
//	    type: rollout
//	    url: http://flagger-loadtester.test/
//	    timeout: 30s
//	    metadata:
//	      cmd: "hey -z 1m -q 10 -c 2 http://web-canary.shop:8080/"
//
// The annotation is a YAML or JSON list, decoded strictly: an unknown or
// repeated field is an error (this includes Flagger's newer retries,
// disableTLS and muteAlert, which the contract does not take). Each hook
// needs a non-blank name, unique in the list; a type among the contract's
// six (empty means rollout, as in Flagger; Flagger's confirm-rollout and
// confirm-traffic-increase are refused because the contract has no such
// gates); an absolute http or https URL with a host and no credentials; and
// a timeout, if set, that is a Go duration above 0.
type Webhook struct {
	// Name identifies the hook in messages and in the payload.
	Name string
	// Type is when the hook is called.
	Type HookType
	// URL receives a POST with Flagger's payload.
	URL string
	// Timeout bounds one call; when not set, [DefaultWebhookTimeout], or
	// [DefaultEventWebhookTimeout] for an event hook.
	Timeout time.Duration
	// Metadata is passed in the payload as is (e.g. the load tester's cmd).
	Metadata map[string]string
}

// wireWebhook is the annotation's shape: Flagger writes the timeout as a
// duration string.
type wireWebhook struct {
	Name     string            `json:"name"`
	Type     HookType          `json:"type"`
	URL      string            `json:"url"`
	Timeout  string            `json:"timeout,omitempty"`
	Metadata map[string]string `json:"metadata,omitempty"`
}

// parseWebhooks decodes and checks the webhooks list; every problem found is
// reported, joined by "; ".
func parseWebhooks(v string) ([]Webhook, error) {
	var wire []wireWebhook
	if err := decodeList(v, &wire, "{name, type, url, timeout, metadata}"); err != nil {
		return nil, err
	}
	if len(wire) > MaxWebhooks {
		return nil, fmt.Errorf("has %d webhooks; at most %d are allowed", len(wire), MaxWebhooks)
	}
	var problems []string
	seen := map[string]bool{}
	hooks := make([]Webhook, 0, len(wire))
	for i, w := range wire {
		where := fmt.Sprintf("webhook %d (%q)", i+1, w.Name)
		hook := Webhook{Name: w.Name, Type: w.Type, URL: w.URL, Timeout: DefaultWebhookTimeout, Metadata: w.Metadata}
		switch {
		case strings.TrimSpace(w.Name) == "":
			problems = append(problems, where+": name is required")
		case seen[w.Name]:
			problems = append(problems, where+": name is used twice")
		}
		seen[w.Name] = true
		if hook.Type == "" {
			hook.Type = HookRollout
		}
		if hook.Type == HookEvent {
			hook.Timeout = DefaultEventWebhookTimeout
		}
		if !isHookType(hook.Type) {
			problems = append(problems, fmt.Sprintf("%s: type %q is not supported; supported: %s "+
				"(Flagger's confirm-rollout and confirm-traffic-increase are not part of the canary.io contract)",
				where, w.Type, joinHookTypes()))
		}
		if u, err := parseHTTPURL(w.URL); err != nil {
			problems = append(problems, fmt.Sprintf("%s: url: %v", where, err))
		} else {
			hook.URL = u
		}
		if w.Timeout != "" {
			d, err := time.ParseDuration(strings.TrimSpace(w.Timeout))
			switch {
			case err != nil || d <= 0:
				problems = append(problems, fmt.Sprintf(`%s: timeout %q must be a duration above 0, e.g. "30s"`, where, w.Timeout))
			case d > MaxWebhookTimeout:
				problems = append(problems, fmt.Sprintf("%s: timeout %s must be at most %s (the controller cuts every hook at its --max-hook-timeout, 2m by default)",
					where, PromDuration(d), PromDuration(MaxWebhookTimeout)))
			}
			hook.Timeout = d
		}
		hooks = append(hooks, hook)
	}
	if len(problems) > 0 {
		return nil, errors.New(strings.Join(problems, "; "))
	}
	if len(hooks) == 0 {
		return nil, nil
	}
	return hooks, nil
}

func isHookType(t HookType) bool {
	for _, known := range hookTypes {
		if t == known {
			return true
		}
	}
	return false
}

func joinHookTypes() string {
	names := make([]string, len(hookTypes))
	for i, t := range hookTypes {
		names[i] = string(t)
	}
	return strings.Join(names, ", ")
}

// ParseWebhooks reads the value of [KeyWebhooks] as [ParseSettings] does.
func ParseWebhooks(v string) ([]Webhook, error) { return parseWebhooks(v) }
