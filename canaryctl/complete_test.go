package canaryctl

import (
	"bytes"
	"strings"
	"testing"
)

// Completions that need no cluster: commands, flags, -o values.
func TestComplete(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{""}, "list get promote abort retry pause resume history release completion help"},
		{[]string{"p"}, "promote pause"},
		{[]string{"list", "--all"}, "--all-namespaces"},
		{[]string{"get", "-w"}, "-w"},
		{[]string{"list", "-o", ""}, "json yaml wide"},
		{[]string{"get", "--output", "y"}, "yaml"},
		{[]string{"history", "--output=w"}, "--output=wide"},
		{[]string{"release", "--proxy"}, "--proxy-wait"},
		{[]string{"list", "-A", "-o", "j"}, "json"},
		{[]string{"frobnicate", ""}, ""},
		// Not the value of a flag: -A takes none, so the next word is
		// a Deployment's name (none: no cluster).
		{[]string{"list", "-A", "--kubeconfig=/nonexistent", ""}, ""},
	} {
		var out bytes.Buffer
		p := &Plugin{Out: &out, ErrOut: &out, Now: nil}
		if err := p.Run(t.Context(), append([]string{completeCommand}, tc.args...)); err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
		if last := lines[len(lines)-1]; last != ":4" {
			t.Errorf("%q: last line %q, want the directive :4", tc.args, last)
		}
		if got := strings.Join(lines[:len(lines)-1], " "); got != tc.want {
			t.Errorf("%q: candidates %q, want %q", tc.args, got, tc.want)
		}
	}
}

// Every command of the help text is one completion offers, and the other
// way round.
func TestCompletionKnowsEveryCommand(t *testing.T) {
	for _, c := range Commands {
		if !strings.Contains(Usage, "kubectl canary "+c) && !strings.Contains(Usage, "|"+c) {
			t.Errorf("completion offers %q, which the help text does not list", c)
		}
	}
	for _, c := range Controls {
		found := false
		for _, k := range Commands {
			found = found || k == string(c)
		}
		if !found {
			t.Errorf("completion lacks the control %q", c)
		}
	}
}
