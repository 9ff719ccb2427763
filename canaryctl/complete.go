package canaryctl

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/spf13/pflag"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// completeCommand is the hidden command kubectl's plugin completion calls
// through kubectl_complete-canary (kubectl 1.26+): the words after
// "kubectl canary", the one being completed last (maybe empty). It
// answers in cobra's __complete protocol, which kubectl reads: one
// candidate a line, then ":<directive>".
const completeCommand = "__complete"

// compNoFileComp is cobra's ShellCompDirectiveNoFileComp: never offer
// file names.
const compNoFileComp = 4

// CompletionScript is what kubectl canary completion prints: the
// kubectl_complete-canary executable kubectl calls to complete the
// plugin's command lines.
const CompletionScript = `#!/bin/sh
# kubectl_complete-canary: kubectl (1.26+) calls it to complete
# "kubectl canary ..."; put it on PATH as an executable, e.g.
#   kubectl canary completion > ~/.krew/bin/kubectl_complete-canary
#   chmod +x ~/.krew/bin/kubectl_complete-canary
exec kubectl canary __complete "$@"
`

// Commands lists the plugin's commands, in the order of the help text.
var Commands = []string{"list", "get", "promote", "abort", "retry", "pause", "resume", "history", "release", "completion", "help"}

// outputFormats are the values of -o each command takes.
var outputFormats = map[string][]string{
	"list":    {"json", "yaml", "wide"},
	"get":     {"json", "yaml"},
	"history": {"json", "yaml", "wide"},
}

// complete prints the candidates for the last of args and the directive.
// Errors (no cluster, a flag that does not parse) give no candidates,
// never a message: the shell would show it as a candidate.
func (p *Plugin) complete(ctx context.Context, args []string) error {
	for _, c := range p.candidates(ctx, args) {
		fmt.Fprintln(p.Out, c)
	}
	fmt.Fprintf(p.Out, ":%d\n", compNoFileComp)
	return nil
}

func (p *Plugin) candidates(ctx context.Context, args []string) []string {
	if len(args) == 0 {
		args = []string{""}
	}
	word := args[len(args)-1]
	if len(args) == 1 {
		return withPrefix(Commands, word)
	}
	cmd := args[0]
	fs, f, wantNames, ok := commandFlags(cmd)
	if !ok {
		return nil
	}
	prev := args[len(args)-2]
	// The value of a flag: the previous word is the flag, or the word
	// is --flag=value.
	flagName, value, inline := "", word, false
	if strings.HasPrefix(word, "--") && strings.Contains(word, "=") {
		flagName, value, _ = strings.Cut(strings.TrimPrefix(word, "--"), "=")
		inline = true
	} else if fl := lookupFlag(fs, prev); fl != nil && fl.NoOptDefVal == "" && !strings.Contains(prev, "=") {
		flagName = fl.Name
	}
	if flagName != "" {
		values := p.flagValues(ctx, cmd, flagName, args[1:len(args)-1])
		if inline {
			for i, v := range values {
				values[i] = "--" + flagName + "=" + v
			}
			value = word
		}
		return withPrefix(values, value)
	}
	if strings.HasPrefix(word, "-") {
		var names []string
		fs.VisitAll(func(fl *pflag.Flag) {
			names = append(names, "--"+fl.Name)
			if fl.Shorthand != "" {
				names = append(names, "-"+fl.Shorthand)
			}
		})
		sort.Strings(names)
		return withPrefix(names, word)
	}
	// A Deployment's name, if the command takes one and has none yet.
	_ = fs.Parse(args[1 : len(args)-1])
	if len(fs.Args()) >= wantNames {
		return nil
	}
	cs, namespace, _, err := connect(f)
	if err != nil {
		return nil
	}
	deployments, err := cs.AppsV1().Deployments(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil
	}
	var names []string
	for i := range deployments.Items {
		if d := &deployments.Items[i]; OptedIn(d) {
			names = append(names, d.Name)
		}
	}
	return withPrefix(names, word)
}

// flagValues are the values flag name of cmd may take: output formats,
// the cluster's namespaces, the kubeconfig's contexts.
func (p *Plugin) flagValues(ctx context.Context, cmd, name string, before []string) []string {
	switch name {
	case "output":
		return slices.Clone(outputFormats[cmd])
	case "namespace", "context":
		fs, f, _, _ := commandFlags(cmd)
		_ = fs.Parse(before)
		if name == "context" {
			raw, err := f.config.ToRawKubeConfigLoader().RawConfig()
			if err != nil {
				return nil
			}
			var contexts []string
			for c := range raw.Contexts {
				contexts = append(contexts, c)
			}
			sort.Strings(contexts)
			return contexts
		}
		cs, _, _, err := connect(f)
		if err != nil {
			return nil
		}
		list, err := cs.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil
		}
		var names []string
		for _, n := range list.Items {
			names = append(names, n.Name)
		}
		return names
	}
	return nil
}

// lookupFlag finds the flag a word such as -n, --namespace names.
func lookupFlag(fs *pflag.FlagSet, word string) *pflag.Flag {
	switch {
	case strings.HasPrefix(word, "--"):
		return fs.Lookup(strings.TrimPrefix(word, "--"))
	case strings.HasPrefix(word, "-") && len(word) == 2:
		return fs.ShorthandLookup(word[1:])
	}
	return nil
}

func withPrefix(candidates []string, prefix string) []string {
	var out []string
	for _, c := range candidates {
		if strings.HasPrefix(c, prefix) {
			out = append(out, c)
		}
	}
	return out
}
