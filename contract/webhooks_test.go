package contract

import (
	"reflect"
	"testing"
	"time"
)

func TestParseWebhooksValid(t *testing.T) {
	tests := []struct {
		name, value string
		want        []Webhook
	}{
		{
			name: "flagger example",
			value: `
- name: acceptance-test
  type: pre-rollout
  url: http://flagger-loadtester.test/
  timeout: 30s
  metadata:
    type: bash
    cmd: "curl -sd 'test' http://web-canary:9898/token | grep token"
- name: load-test
  url: http://flagger-loadtester.test/
  metadata:
    cmd: "hey -z 1m -q 10 -c 2 http://web-canary.shop:9898/"
`,
			want: []Webhook{
				{
					Name: "acceptance-test", Type: HookPreRollout, URL: "http://flagger-loadtester.test/",
					Timeout:  30 * time.Second,
					Metadata: map[string]string{"type": "bash", "cmd": "curl -sd 'test' http://web-canary:9898/token | grep token"},
				},
				{
					Name: "load-test", Type: HookRollout, URL: "http://flagger-loadtester.test/",
					Timeout:  DefaultWebhookTimeout,
					Metadata: map[string]string{"cmd": "hey -z 1m -q 10 -c 2 http://web-canary.shop:9898/"},
				},
			},
		},
		{
			name:  "json, name with spaces as in Flagger",
			value: `[{"name": "start gate", "type": "confirm-promotion", "url": "https://gate.example.com/approve"}]`,
			want: []Webhook{{
				Name: "start gate", Type: HookConfirmPromotion, URL: "https://gate.example.com/approve",
				Timeout: 10 * time.Second,
			}},
		},
		{
			name: "every type",
			value: `[{name: a, type: pre-rollout, url: "http://h"}, {name: b, type: rollout, url: "http://h"},
			  {name: c, type: confirm-promotion, url: "http://h"}, {name: d, type: post-rollout, url: "http://h"},
			  {name: e, type: rollback, url: "http://h"}, {name: f, type: event, url: "http://h"}]`,
			want: []Webhook{
				{Name: "a", Type: HookPreRollout, URL: "http://h", Timeout: DefaultWebhookTimeout},
				{Name: "b", Type: HookRollout, URL: "http://h", Timeout: DefaultWebhookTimeout},
				{Name: "c", Type: HookConfirmPromotion, URL: "http://h", Timeout: DefaultWebhookTimeout},
				{Name: "d", Type: HookPostRollout, URL: "http://h", Timeout: DefaultWebhookTimeout},
				{Name: "e", Type: HookRollback, URL: "http://h", Timeout: DefaultWebhookTimeout},
				{Name: "f", Type: HookEvent, URL: "http://h", Timeout: DefaultEventWebhookTimeout},
			},
		},
		{
			// sigs.k8s.io/yaml turns YAML scalars into the strings the
			// fields expect, as kubectl does for manifests.
			name:  "scalars become strings",
			value: "- {name: 7, url: 'http://h', metadata: {retries: 3, dry: true}}",
			want: []Webhook{{
				Name: "7", Type: HookRollout, URL: "http://h", Timeout: DefaultWebhookTimeout,
				Metadata: map[string]string{"retries": "3", "dry": "true"},
			}},
		},
		{name: "empty list", value: "[]", want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, errs := ParseSettings(annotations(KeyWebhooks, tt.value))
			if len(errs) > 0 {
				t.Fatalf("unexpected errors: %v", errs.ToAggregate())
			}
			if !reflect.DeepEqual(got.Webhooks, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got.Webhooks, tt.want)
			}
		})
	}
}

func TestDefaultWebhookTimeoutIsFlaggers(t *testing.T) {
	if DefaultWebhookTimeout != 10*time.Second {
		t.Errorf("DefaultWebhookTimeout = %v, want Flagger's 10s", DefaultWebhookTimeout)
	}
}

func TestParseWebhooksInvalid(t *testing.T) {
	tests := []struct {
		name, value, reason string
	}{
		{"not a list", "name: x\nurl: http://h", "must be a YAML or JSON list of {name, type, url, timeout, metadata}"},
		{"flagger's confirm-rollout", "- {name: gate, type: confirm-rollout, url: 'http://h'}",
			`webhook 1 ("gate"): type "confirm-rollout" is not supported; supported: pre-rollout, rollout, confirm-promotion, post-rollout, rollback, event (Flagger's confirm-rollout and confirm-traffic-increase are not part of the canary.io contract)`},
		{"flagger's confirm-traffic-increase", "- {name: gate, type: confirm-traffic-increase, url: 'http://h'}",
			`type "confirm-traffic-increase" is not supported`},
		{"unknown type", "- {name: x, type: pre-promotion, url: 'http://h'}", `type "pre-promotion" is not supported`},
		{"missing name", "- {url: 'http://h'}", `webhook 1 (""): name is required`},
		{"blank name", "- {name: ' ', url: 'http://h'}", "name is required"},
		{"duplicate name", "- {name: x, url: 'http://h'}\n- {name: x, url: 'http://h'}", `webhook 2 ("x"): name is used twice`},
		{"missing url", "- {name: x}", `webhook 1 ("x"): url: must be an absolute URL`},
		{"relative url", "- {name: x, url: /hook}", "url: must be an absolute URL"},
		{"ftp url", "- {name: x, url: 'ftp://h'}", `scheme "http" or "https"`},
		{"credentials", "- {name: x, url: 'http://u:p@h'}", "must not carry credentials"},
		{"timeout without unit", "- {name: x, url: 'http://h', timeout: '30'}", `timeout "30" must be a duration above 0`},
		{"zero timeout", "- {name: x, url: 'http://h', timeout: 0s}", "must be a duration above 0"},
		{"negative timeout", "- {name: x, url: 'http://h', timeout: -1s}", "must be a duration above 0"},
		{"flagger's muteAlert", "- {name: x, url: 'http://h', muteAlert: true}", `unknown field "muteAlert"`},
		{"metadata not a map", "- {name: x, url: 'http://h', metadata: [a]}", "cannot unmarshal array"},
		{"metadata value a map", "- {name: x, url: 'http://h', metadata: {a: {b: c}}}", "cannot unmarshal object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, errs := ParseSettings(annotations(KeyWebhooks, tt.value))
			wantOneInvalid(t, errs, KeyWebhooks, tt.value, tt.reason)
			if got.Webhooks != nil {
				t.Errorf("an invalid list set Webhooks: %+v", got.Webhooks)
			}
		})
	}
}
