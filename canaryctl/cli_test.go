package canaryctl

import (
	"bytes"
	"errors"
	"flag"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseInterspersed(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		wantPos  []string
		wantNS   string
		wantFlag bool
	}{
		{[]string{"web", "-n", "shop"}, []string{"web"}, "shop", false},
		{[]string{"--namespace=shop", "web", "--watch"}, []string{"web"}, "shop", true},
		{[]string{"-w", "web"}, []string{"web"}, "", true},
		{nil, nil, "", false},
	} {
		fs := flag.NewFlagSet("test", flag.ContinueOnError)
		ns := fs.String("namespace", "", "")
		fs.StringVar(ns, "n", "", "")
		w := fs.Bool("watch", false, "")
		fs.BoolVar(w, "w", false, "")
		pos, err := parseInterspersed(fs, tc.args)
		if err != nil || !slices.Equal(pos, tc.wantPos) || *ns != tc.wantNS || *w != tc.wantFlag {
			t.Errorf("%q: positional %q namespace %q watch %v err %v; want %q %q %v", tc.args, pos, *ns, *w, err, tc.wantPos, tc.wantNS, tc.wantFlag)
		}
	}
}

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
