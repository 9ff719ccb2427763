package canaryctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/pflag"
	istioclient "istio.io/client-go/pkg/clientset/versioned"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/canary-io/canary/contract"
)

// Usage is the plugin's help text.
const Usage = `kubectl canary: read and steer canary.io analyses of Deployments.

Usage:
  kubectl canary list [-n NAMESPACE | -A] [-o json|yaml|wide]
  kubectl canary get NAME [-n NAMESPACE] [--watch | -o json|yaml]
  kubectl canary promote|abort|retry NAME [-n NAMESPACE]
  kubectl canary pause|resume NAME [-n NAMESPACE]
  kubectl canary history NAME [-n NAMESPACE] [-o json|yaml|wide]
      the Deployment's past analyses: revision, outcome, when, message
  kubectl canary release NAME [-n NAMESPACE] [--service SERVICE] [--proxy-wait 30s]
      once the controller is removed (docs/uninstall.md): all traffic to the
      stable pods, the canary removed, the Service unpinned, the canary.io
      annotations removed; the Deployment's template and pause are left to you
  kubectl canary completion
      prints the kubectl_complete-canary script: put it on PATH as an
      executable and kubectl (1.26+) completes kubectl canary's commands,
      flags and Deployment names
  kubectl canary help

Flags of every command, as kubectl's:
  --kubeconfig PATH     kubeconfig file (default: $KUBECONFIG or ~/.kube/config)
  --context NAME        the kubeconfig context to use
  -n, --namespace NS    namespace (default: the context's namespace, else "default")
  --as USER, --as-group GROUP   impersonate (also --cluster, --user, --server, --token, ...)
`

// ErrUsage is returned for a command line that does not parse; the usage
// has already been printed.
var ErrUsage = errors.New("invalid command line")

// Plugin runs the commands. Out receives what a command prints, ErrOut the
// usage and notes such as "no opted-in Deployments"; Now is the clock.
type Plugin struct {
	Out, ErrOut io.Writer
	Now         func() time.Time
}

// flags are the command-line flags; not every command reads every flag.
// The connection flags are kubectl's own (k8s.io/cli-runtime):
// --kubeconfig, --context, --cluster, --user, -n/--namespace, --as,
// --as-group, --server, --token, ...
type flags struct {
	config               *genericclioptions.ConfigFlags
	allNamespaces, watch bool
	output               string
	service              string
	proxyWait            time.Duration
}

// Run runs the command line args (without the program's name). A watch ends
// without error when ctx ends.
func (p *Plugin) Run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(p.ErrOut, Usage)
		return ErrUsage
	}
	cmd, args := args[0], args[1:]
	if cmd == "help" || cmd == "-h" || cmd == "--help" {
		fmt.Fprint(p.Out, Usage)
		return nil
	}
	if cmd == completeCommand {
		return p.complete(ctx, args)
	}
	if cmd == "completion" {
		fmt.Fprint(p.Out, CompletionScript)
		return nil
	}
	fs, f, wantNames, ok := commandFlags(cmd)
	if !ok {
		fmt.Fprintf(p.ErrOut, "unknown command %q\n\n%s", cmd, Usage)
		return ErrUsage
	}
	fs.SetOutput(p.ErrOut)
	fs.Usage = func() { fmt.Fprint(p.ErrOut, Usage) }
	err := fs.Parse(args)
	if errors.Is(err, pflag.ErrHelp) {
		return nil
	}
	if err != nil {
		fmt.Fprintf(p.ErrOut, "%v\n\n%s", err, Usage)
		return ErrUsage
	}
	if names := fs.Args(); len(names) != wantNames {
		fmt.Fprintf(p.ErrOut, "%s takes %d NAME argument(s), got %d\n\n%s", cmd, wantNames, len(names), Usage)
		return ErrUsage
	}
	names := fs.Args()
	switch f.output {
	case "", "json", "yaml":
	case "wide":
		if cmd != "list" && cmd != "history" {
			fmt.Fprintf(p.ErrOut, "-o wide is for list and history\n\n%s", Usage)
			return ErrUsage
		}
	default:
		fmt.Fprintf(p.ErrOut, "unknown output format %q: json, yaml or wide\n\n%s", f.output, Usage)
		return ErrUsage
	}
	cs, namespace, cfg, err := connect(f)
	if err != nil {
		return err
	}
	switch cmd {
	case "release":
		ic, err := istioclient.NewForConfig(cfg)
		if err != nil {
			return fmt.Errorf("create Istio client: %w", err)
		}
		dc, err := dynamic.NewForConfig(cfg)
		if err != nil {
			return fmt.Errorf("create dynamic client: %w", err)
		}
		return p.release(ctx, cs, ic, dc, namespace, names[0], f.service, f.proxyWait)
	case "list":
		if f.allNamespaces {
			namespace = metav1.NamespaceAll
		}
		return p.list(ctx, cs, namespace, f.output)
	case "history":
		return p.history(ctx, cs, namespace, names[0], f.output)
	case "get":
		if f.watch {
			return p.watch(ctx, cs, namespace, names[0], isTerminal(p.Out))
		}
		return p.get(ctx, cs, namespace, names[0], f.output)
	default:
		return p.control(ctx, cs, namespace, names[0], Control(cmd))
	}
}

// commandFlags is the flag set of command cmd, the flags it fills and how
// many NAME arguments the command takes; ok is false for an unknown
// command. The connection flags are kubectl's own (k8s.io/cli-runtime).
func commandFlags(cmd string) (fs *pflag.FlagSet, f *flags, wantNames int, ok bool) {
	f = &flags{config: genericclioptions.NewConfigFlags(true)}
	fs = pflag.NewFlagSet("kubectl canary "+cmd, pflag.ContinueOnError)
	f.config.AddFlags(fs)
	wantNames = 1
	switch Control(cmd) {
	case Promote, Abort, Retry, Pause, Resume:
		return fs, f, wantNames, true
	}
	switch cmd {
	case "list":
		fs.BoolVarP(&f.allNamespaces, "all-namespaces", "A", false, "list in every namespace")
		fs.StringVarP(&f.output, "output", "o", "", "output format: json, yaml or wide (default: a table)")
		wantNames = 0
	case "release":
		fs.StringVar(&f.service, "service", "", "the Service the analysis steered (default: canary.io/service, else the one selecting the pods)")
		fs.DurationVar(&f.proxyWait, "proxy-wait", 30*time.Second, "how long every proxy gets to have the new routes before the canary's pods go")
	case "get":
		fs.BoolVarP(&f.watch, "watch", "w", false, "redraw on every change")
		fs.StringVarP(&f.output, "output", "o", "", "output format: json or yaml (default: the view)")
	case "history":
		fs.StringVarP(&f.output, "output", "o", "", "output format: json, yaml or wide (default: a table)")
	default:
		return nil, nil, 0, false
	}
	return fs, f, wantNames, true
}

// connect loads the kubeconfig as kubectl does, with kubectl's flags
// (--kubeconfig, --context, --as, ...), and returns a client and the
// namespace to use: the flag, else the context's namespace, else
// "default".
func connect(f *flags) (kubernetes.Interface, string, *rest.Config, error) {
	cfg, err := f.config.ToRESTConfig()
	if err != nil {
		return nil, "", nil, fmt.Errorf("load kubeconfig: %w", err)
	}
	namespace, _, err := f.config.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return nil, "", nil, fmt.Errorf("read namespace from kubeconfig: %w", err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, "", nil, fmt.Errorf("create client: %w", err)
	}
	return cs, namespace, cfg, nil
}

// list prints the opted-in Deployments of namespace ("" for all), as a
// table or in output's format.
func (p *Plugin) list(ctx context.Context, cs kubernetes.Interface, namespace, output string) error {
	deployments, err := cs.AppsV1().Deployments(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("list deployments: %w", err)
	}
	if output == "json" || output == "yaml" {
		var list StatusList
		for i := range deployments.Items {
			if d := &deployments.Items[i]; OptedIn(d) {
				list.Items = append(list.Items, StatusOf(d))
			}
		}
		return p.print(list, output)
	}
	table := RenderList(deployments.Items, namespace == metav1.NamespaceAll, p.Now())
	if output == "wide" {
		table = RenderWideList(deployments.Items, namespace == metav1.NamespaceAll, p.Now())
	}
	if table == "" {
		where := "in any namespace"
		if namespace != metav1.NamespaceAll {
			where = fmt.Sprintf("in namespace %s", namespace)
		}
		fmt.Fprintf(p.ErrOut, "No Deployments with %s=true found %s.\n", contract.KeyEnabled, where)
		return nil
	}
	_, err = io.WriteString(p.Out, table)
	return err
}

// get prints the view of one Deployment once, or its status in output's
// format.
func (p *Plugin) get(ctx context.Context, cs kubernetes.Interface, namespace, name, output string) error {
	d, err := cs.AppsV1().Deployments(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("get deployment %s/%s: %w", namespace, name, err)
	}
	if output != "" {
		return p.print(StatusOf(d), output)
	}
	events, err := eventsOf(ctx, cs, d)
	if err != nil {
		return err
	}
	_, err = io.WriteString(p.Out, RenderView(d, events, p.Now()))
	return err
}

// eventsOf lists the Events about Deployment d.
func eventsOf(ctx context.Context, cs kubernetes.Interface, d *appsv1.Deployment) ([]corev1.Event, error) {
	events, err := cs.CoreV1().Events(d.Namespace).List(ctx, metav1.ListOptions{FieldSelector: eventSelector(d.Name).String()})
	if err != nil {
		return nil, fmt.Errorf("list events of deployment %s/%s: %w", d.Namespace, d.Name, err)
	}
	return events.Items, nil
}

// eventSelector selects the Events about the Deployment name. Events the
// controller records through events.k8s.io/v1 (regarding) are stored as
// core/v1 Events (involvedObject), so one list finds both.
func eventSelector(name string) fields.Selector {
	return fields.Set{"involvedObject.kind": "Deployment", "involvedObject.name": name}.AsSelector()
}

// control writes control c on the Deployment with a merge patch and prints
// one line. It refuses a Deployment that is not opted in, on which the
// control would do nothing.
func (p *Plugin) control(ctx context.Context, cs kubernetes.Interface, namespace, name string, c Control) error {
	deployments := cs.AppsV1().Deployments(namespace)
	d, err := deployments.Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("get deployment %s/%s: %w", namespace, name, err)
	}
	if !OptedIn(d) {
		return fmt.Errorf("deployment %s/%s is not opted in (%s is not \"true\"): %s would do nothing", namespace, name, contract.KeyEnabled, c)
	}
	patch, done, err := ControlPatch(c, p.Now())
	if err != nil {
		return err
	}
	if _, err := deployments.Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("%s deployment %s/%s: %w", c, namespace, name, err)
	}
	_, err = fmt.Fprintf(p.Out, "deployment.apps/%s %s\n", name, done)
	return err
}
