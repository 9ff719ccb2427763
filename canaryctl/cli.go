package canaryctl

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	istioclient "istio.io/client-go/pkg/clientset/versioned"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/canary-io/canary/contract"
)

// Usage is the plugin's help text.
const Usage = `kubectl canary: read and steer canary.io analyses of Deployments.

Usage:
  kubectl canary list [-n NAMESPACE | -A]
  kubectl canary get NAME [-n NAMESPACE] [--watch]
  kubectl canary promote|abort|retry NAME [-n NAMESPACE]
  kubectl canary pause|resume NAME [-n NAMESPACE]
  kubectl canary release NAME [-n NAMESPACE] [--service SERVICE] [--proxy-wait 30s]
      once the controller is removed (docs/uninstall.md): all traffic to the
      stable pods, the canary removed, the Service unpinned, the canary.io
      annotations removed; the Deployment's template and pause are left to you

Flags of every command:
  --kubeconfig PATH     kubeconfig file (default: $KUBECONFIG or ~/.kube/config)
  -n, --namespace NS    namespace (default: the context's namespace, else "default")
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
type flags struct {
	kubeconfig, namespace string
	allNamespaces, watch  bool
	service               string
	proxyWait             time.Duration
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
	var f flags
	fs := flag.NewFlagSet("kubectl canary "+cmd, flag.ContinueOnError)
	fs.SetOutput(p.ErrOut)
	fs.Usage = func() { fmt.Fprint(p.ErrOut, Usage) }
	fs.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig file")
	fs.StringVar(&f.namespace, "namespace", "", "namespace")
	fs.StringVar(&f.namespace, "n", "", "namespace (shorthand)")
	wantNames := 1
	switch Control(cmd) {
	case Promote, Abort, Retry, Pause, Resume:
	default:
		switch cmd {
		case "list":
			fs.BoolVar(&f.allNamespaces, "all-namespaces", false, "list in every namespace")
			fs.BoolVar(&f.allNamespaces, "A", false, "list in every namespace (shorthand)")
			wantNames = 0
		case "release":
			fs.StringVar(&f.service, "service", "", "the Service the analysis steered (default: canary.io/service, else the one selecting the pods)")
			fs.DurationVar(&f.proxyWait, "proxy-wait", 30*time.Second, "how long every proxy gets to have the new routes before the canary's pods go")
		case "get":
			fs.BoolVar(&f.watch, "watch", false, "redraw on every change")
			fs.BoolVar(&f.watch, "w", false, "redraw on every change (shorthand)")
		default:
			fmt.Fprintf(p.ErrOut, "unknown command %q\n\n%s", cmd, Usage)
			return ErrUsage
		}
	}
	names, err := parseInterspersed(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return ErrUsage
	}
	if len(names) != wantNames {
		fmt.Fprintf(p.ErrOut, "%s takes %d NAME argument(s), got %d\n\n%s", cmd, wantNames, len(names), Usage)
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
		return p.release(ctx, cs, ic, namespace, names[0], f.service, f.proxyWait)
	case "list":
		if f.allNamespaces {
			namespace = metav1.NamespaceAll
		}
		return p.list(ctx, cs, namespace)
	case "get":
		if f.watch {
			return p.watch(ctx, cs, namespace, names[0], isTerminal(p.Out))
		}
		return p.get(ctx, cs, namespace, names[0])
	default:
		return p.control(ctx, cs, namespace, names[0], Control(cmd))
	}
}

// parseInterspersed parses flags before, between and after the positional
// arguments, as kubectl does (`get web -n shop`), and returns the latter.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return positional, nil
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// connect loads the kubeconfig as kubectl does and returns a client and the
// namespace to use: the flag, else the context's namespace, else "default".
func connect(f flags) (kubernetes.Interface, string, *rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = f.kubeconfig
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{})
	cfg, err := cc.ClientConfig()
	if err != nil {
		return nil, "", nil, fmt.Errorf("load kubeconfig: %w", err)
	}
	namespace := f.namespace
	if namespace == "" {
		if namespace, _, err = cc.Namespace(); err != nil {
			return nil, "", nil, fmt.Errorf("read namespace from kubeconfig: %w", err)
		}
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, "", nil, fmt.Errorf("create client: %w", err)
	}
	return cs, namespace, cfg, nil
}

// list prints the opted-in Deployments of namespace ("" for all).
func (p *Plugin) list(ctx context.Context, cs kubernetes.Interface, namespace string) error {
	deployments, err := cs.AppsV1().Deployments(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("list deployments: %w", err)
	}
	table := RenderList(deployments.Items, namespace == metav1.NamespaceAll, p.Now())
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

// get prints the view of one Deployment once.
func (p *Plugin) get(ctx context.Context, cs kubernetes.Interface, namespace, name string) error {
	d, err := cs.AppsV1().Deployments(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("get deployment %s/%s: %w", namespace, name, err)
	}
	events, err := cs.CoreV1().Events(namespace).List(ctx, metav1.ListOptions{FieldSelector: eventSelector(name).String()})
	if err != nil {
		return fmt.Errorf("list events of deployment %s/%s: %w", namespace, name, err)
	}
	_, err = io.WriteString(p.Out, RenderView(d, events.Items, p.Now()))
	return err
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
