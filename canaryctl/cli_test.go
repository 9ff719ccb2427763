package canaryctl

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

// Command lines that cannot run fail before any API call.
func TestRunUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		nil,
		{"frobnicate"},
		{"get"},
		{"get", "a", "b"},
		{"promote"},
		{"list", "web"},
		{"list", "--watch"},
		{"pause", "-A", "web"},
		{"list", "-o", "xml"},
		{"get", "web", "-o", "wide"},
		{"pause", "web", "-o", "json"},
	} {
		var out, errOut bytes.Buffer
		p := &Plugin{Out: &out, ErrOut: &errOut, Now: time.Now}
		if err := p.Run(t.Context(), args); !errors.Is(err, ErrUsage) {
			t.Errorf("%q: err %v, want ErrUsage", args, err)
		}
		if !strings.Contains(errOut.String(), "Usage:") {
			t.Errorf("%q: no usage on stderr: %q", args, errOut.String())
		}
	}
}

// TestStatusOf: -o json and -o yaml print the status annotations under the
// contract's names, and nothing else.
func TestStatusOf(t *testing.T) {
	d := deployment("shop", "web", "canary.io/phase", "Progressing", "canary.io/weight", "20", "canary.io/step", "1/3",
		"canary.io/steps-passed", "0", "team", "books")
	got := StatusOf(d)
	want := map[string]string{"canary.io/phase": "Progressing", "canary.io/weight": "20", "canary.io/step": "1/3"}
	if got.Name != d.Name || got.Namespace != d.Namespace || len(got.Status) != len(want) {
		t.Fatalf("StatusOf: %+v, want %v", got, want)
	}
	for k, v := range want {
		if got.Status[k] != v {
			t.Errorf("%s = %q, want %q", k, got.Status[k], v)
		}
	}
}
