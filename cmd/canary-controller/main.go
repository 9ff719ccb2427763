// Command canary-controller is the canary.io system in one binary: the
// admission webhook that holds new pod templates of opted-in Deployments
// back, and (with leader election) the stepper that runs their analyses.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	istionetv1 "istio.io/client-go/pkg/apis/networking/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/prometheus/client_golang/prometheus"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/canary-io/canary/contract"
	"github.com/canary-io/canary/stepper"
	"github.com/canary-io/canary/stepper/crash"
	"github.com/canary-io/canary/stepper/notify"
	"github.com/canary-io/canary/webhook"
)

// options are the controller's flags.
type options struct {
	controllerIdentity string
	webhookHost        string
	webhookPort        int
	certDir            string
	registerURL        string
	registerCA         string
	metricsAddr        string
	pprofAddr          string
	probeAddr          string
	prometheusURL      string
	propagationDelay   time.Duration
	removalDelay       time.Duration
	maxHookTimeout     time.Duration
	queryTimeout       time.Duration
	scrapeInterval     time.Duration
	scrapeRefresh      time.Duration
	comparisonPeriod   time.Duration
	hookDestinations   string
	promDestinations   string
	promHTTPConfig     string
	maxPromAnswer      int64
	namespaces         string
	notifyProviders    string
	workers            int
	leaderElect        bool
	enableStepper      bool
	leaderElectionNS   string
}

func main() {
	var o options
	flag.StringVar(&o.controllerIdentity, "controller-identity", "system:serviceaccount:canary-system:canary-controller",
		"the user name the controller's own writes arrive as (its service account, or a user out of cluster): only it may unpause a revision being promoted and write status annotations")
	flag.StringVar(&o.webhookHost, "webhook-host", "", "address the webhook server listens on (empty: all)")
	flag.IntVar(&o.webhookPort, "webhook-port", 9443, "port of the webhook server")
	flag.StringVar(&o.certDir, "webhook-cert-dir", "/tmp/k8s-webhook-server/serving-certs", "directory holding the webhook's tls.crt and tls.key")
	flag.StringVar(&o.registerURL, "register-webhook-url", "",
		"for running out of cluster: write a self-signed certificate into --webhook-cert-dir and register the webhook configurations at this base URL (e.g. https://127.0.0.1:9443)")
	flag.StringVar(&o.registerCA, "register-ca-file", "",
		"with --register-webhook-url: register the webhook configurations with this CA bundle (PEM) and serve the certificate found in --webhook-cert-dir, issued by that CA, instead of writing a self-signed one; the files are reloaded when they change")
	flag.StringVar(&o.metricsAddr, "metrics-bind-address", ":8080", "address of the metrics endpoint (0 disables it)")
	flag.StringVar(&o.pprofAddr, "pprof-bind-address", "", "address of Go's profiling endpoints, /debug/pprof/ (empty: off)")
	flag.StringVar(&o.probeAddr, "health-probe-bind-address", ":8081", "address of the health probes")
	flag.StringVar(&o.prometheusURL, "prometheus-url", "", "Prometheus URL for the analyses (canary.io/prometheus overrides it per Deployment)")
	flag.DurationVar(&o.propagationDelay, "propagation-delay", 2*time.Second,
		"how long new endpoints or route weights must have been in place before traffic relies on them (Envoy configuration propagation)")
	flag.DurationVar(&o.removalDelay, "canary-removal-delay", 30*time.Second,
		"how long the canary's pods stay after the weight left them (rollback, promotion), so that every proxy has the new routes first (Argo Rollouts' default is 30s)")
	flag.DurationVar(&o.maxHookTimeout, "max-hook-timeout", 2*time.Minute,
		"upper bound of every hook's timeout (canary.io/webhooks): a hook that asks for more is cut at this")
	flag.DurationVar(&o.queryTimeout, "query-timeout", 10*time.Second, "timeout of each Prometheus query")
	flag.DurationVar(&o.scrapeInterval, "scrape-interval", 0,
		"Prometheus' scrape interval of Istio's metrics; the checks read windows of at least four of them (0: discover it from each Prometheus' targets API, assuming 1m when that fails)")
	flag.DurationVar(&o.scrapeRefresh, "scrape-interval-refresh", time.Minute, "how long a discovered scrape interval is kept before Prometheus is asked again")
	flag.DurationVar(&o.comparisonPeriod, "comparison-period", 5*time.Second,
		"how often the continuous canary-vs-stable comparison reads the counters (a few Prometheus scrape intervals; 0 turns it off)")
	flag.StringVar(&o.hookDestinations, "allow-hook-destinations", "",
		"where the URLs of canary.io/webhooks may point: comma-separated CIDRs, host names and patterns *.suffix (empty: anywhere but loopback, link-local and the apiserver; \"none\": nowhere)")
	flag.StringVar(&o.promDestinations, "allow-prometheus-destinations", "",
		"where canary.io/prometheus may point, in the form of --allow-hook-destinations (\"none\" turns the annotation off); --prometheus-url is always allowed")
	flag.StringVar(&o.promHTTPConfig, "prometheus-http-config", "",
		"file in Prometheus' http_config format (authorization, basic_auth, tls_config, ...) for requests to --prometheus-url, e.g. to a tenant-enforcing proxy; never used for canary.io/prometheus")
	flag.Int64Var(&o.maxPromAnswer, "max-prometheus-answer-bytes", 32<<20, "the most of one Prometheus answer the controller reads: a larger answer is an error")
	flag.StringVar(&o.notifyProviders, "notification-providers", "",
		"file of notification providers (Slack, Microsoft Teams, JSON webhooks) that canary.io/notify may name; see docs/notifications.md")
	flag.StringVar(&o.namespaces, "namespaces", "",
		"comma-separated namespaces the controller serves, with Roles there instead of a ClusterRole (manifests/overlays/namespaced); empty: every namespace")
	flag.IntVar(&o.workers, "workers", 64, "Deployments stepped at once: a pass waits only on its own writes to the apiserver (hooks and Prometheus are read in the background), so that many analyses stepping together are not queued behind each other's writes")
	flag.BoolVar(&o.enableStepper, "enable-stepper", true, "run the stepper (false: serve only the webhook)")
	flag.BoolVar(&o.leaderElect, "leader-elect", true, "step only while holding the leader lease (every replica serves the webhook)")
	flag.StringVar(&o.leaderElectionNS, "leader-election-namespace", "", "namespace of the leader lease (default: the pod's namespace)")
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))

	if err := run(ctrl.SetupSignalHandler(), o); err != nil {
		ctrl.Log.Error(err, "canary-controller failed")
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("load kubeconfig: %w", err)
	}
	if err := checkIdentity(ctx, cfg, o.controllerIdentity); err != nil {
		return err
	}
	var caBundle []byte
	if o.registerURL != "" {
		host, err := urlHost(o.registerURL)
		if err != nil {
			return err
		}
		if o.registerCA != "" {
			if caBundle, err = os.ReadFile(o.registerCA); err != nil {
				return fmt.Errorf("--register-ca-file: %w", err)
			}
		} else if caBundle, err = webhook.WriteSelfSignedCert(o.certDir, host); err != nil {
			return err
		}
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return fmt.Errorf("register kubernetes types: %w", err)
	}
	if err := istionetv1.AddToScheme(scheme); err != nil {
		return fmt.Errorf("register istio types: %w", err)
	}
	if err := gwv1.Install(scheme); err != nil {
		return fmt.Errorf("register gateway api types: %w", err)
	}
	mgr, err := ctrl.NewManager(cfg, manager.Options{
		Scheme: scheme,
		// Of all Pods, only the canaries' are read: the cache holds no
		// other Pod of the cluster.
		Cache: cache.Options{
			ByObject: map[client.Object]cache.ByObject{
				&corev1.Pod{}: {Label: labels.SelectorFromSet(labels.Set{stepper.LabelCanary: "true"})},
				// Deployments the system has nothing to do with are
				// kept as little more than metadata.
				&appsv1.Deployment{}: {Transform: stepper.SlimDeployments},
			},
			DefaultNamespaces: servedNamespaces(o.namespaces),
			// No object's managedFields are read: the cache keeps none
			// (a third of a Deployment's size, or more). Updates from a
			// cached copy send none, which the apiserver reads as "keep".
			DefaultTransform: cache.TransformStripManagedFields(),
		},
		LeaderElection:          o.leaderElect && o.enableStepper,
		LeaderElectionID:        "canary-stepper",
		LeaderElectionNamespace: o.leaderElectionNS,
		// A replica that stops hands the lease over at once.
		LeaderElectionReleaseOnCancel: true,
		Metrics:                       metricsserver.Options{BindAddress: o.metricsAddr},
		PprofBindAddress:              o.pprofAddr,
		HealthProbeBindAddress:        o.probeAddr,
		WebhookServer: crwebhook.NewServer(crwebhook.Options{
			Host: o.webhookHost, Port: o.webhookPort, CertDir: o.certDir,
		}),
	})
	if err != nil {
		return fmt.Errorf("create manager: %w", err)
	}
	decisions := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "canary_webhook_decisions_total",
		Help: "Admission decisions on opted-in Deployments, by webhook (mutate, validate) and outcome (allowed, denied, invalid).",
	}, []string{"webhook", "outcome"})
	metrics.Registry.MustRegister(decisions)
	count := func(w, outcome string) { decisions.WithLabelValues(w, outcome).Inc() }
	egress, err := egressPolicy(o, cfg.Host)
	if err != nil {
		return err
	}
	var providers map[string]notify.Provider
	if o.notifyProviders != "" {
		if providers, err = notify.Load(o.notifyProviders); err != nil {
			return fmt.Errorf("--notification-providers: %w", err)
		}
		egress.Providers = map[string]bool{}
		for name := range providers {
			egress.Providers[name] = true
		}
	}
	access, err := stepper.NewPrometheusAccess(o.prometheusURL, o.promHTTPConfig, egress.Prometheus, o.maxPromAnswer)
	if err != nil {
		return err
	}
	scrape := &stepper.ScrapeIntervals{
		Fixed: o.scrapeInterval, Default: o.prometheusURL, Refresh: o.scrapeRefresh, Timeout: o.queryTimeout,
		Discoverer: func(url string) (stepper.ScrapeDiscoverer, error) { return access.New(url) },
	}
	if err := mgr.Add(scrape); err != nil {
		return fmt.Errorf("add scrape interval discovery: %w", err)
	}
	srv := mgr.GetWebhookServer()
	srv.Register(webhook.MutatePath, &crwebhook.Admission{Handler: &webhook.Handler{
		ControllerUser: o.controllerIdentity, Clock: clock.RealClock{}, Decisions: count, ScrapeInterval: scrape.Known, Egress: egress,
	}})
	srv.Register(webhook.ValidatePath, &crwebhook.Admission{Handler: &webhook.Handler{
		ControllerUser: o.controllerIdentity, Clock: clock.RealClock{}, Validating: true, Decisions: count, Egress: egress,
		Unskipped: unskippedReporter(o.controllerIdentity),
	}})
	if o.enableStepper {
		stepperMetrics, err := stepper.NewMetrics(metrics.Registry)
		if err != nil {
			return fmt.Errorf("register the stepper's metrics: %w", err)
		}
		background := &stepper.Background{Limit: stepper.DefaultBackgroundLimit, PerOwner: stepper.DefaultBackgroundPerOwner}
		if err := mgr.Add(background); err != nil {
			return fmt.Errorf("add the background calls' owner: %w", err)
		}
		gatewayAPI, err := servesHTTPRoutes(mgr.GetRESTMapper())
		if err != nil {
			return err
		}
		if !gatewayAPI {
			ctrl.Log.Info("the cluster serves no HTTPRoutes (gateway.networking.k8s.io/v1): analyses that use the gateway-api router stop with a conflict until the Gateway API's CRDs are installed and the controller restarted")
		}
		stepperReconciler := &stepper.Reconciler{
			GatewayAPI: gatewayAPI,
			Background: background,
			Metrics:    stepperMetrics,
			Client:     crash.Client(mgr.GetClient()), APIReader: mgr.GetAPIReader(), Recorder: mgr.GetEventRecorder("canary.io"), Clock: clock.RealClock{},
			Prometheus: o.prometheusURL, PropagationDelay: o.propagationDelay, RemovalDelay: o.removalDelay, MaxHookTimeout: o.maxHookTimeout, QueryTimeout: o.queryTimeout, Scrape: scrape,
			ComparisonPeriod: o.comparisonPeriod,
			NewQuerier:       func(url string) (stepper.Querier, error) { return access.New(url) },
			HookClient:       stepper.NoRedirects(&http.Client{Transport: stepper.EgressTransport(egress.Hooks, 1<<20)}),
			Notify: &notify.Sender{Providers: providers, Go: background.Go, Failed: func(p string, err error) {
				ctrl.Log.Info("notification not delivered", "provider", p, "err", err.Error())
			}},
		}
		reader := &stepper.Reader{
			Period: o.comparisonPeriod, QueryTimeout: o.queryTimeout, Clock: clock.RealClock{},
			Querier: stepperReconciler.Querier, Wake: stepperReconciler.WakeUp,
		}
		if err := mgr.Add(reader); err != nil {
			return fmt.Errorf("add the Prometheus reader: %w", err)
		}
		stepperReconciler.Reader = reader
		if err := stepperReconciler.SetupWithManager(mgr, o.workers); err != nil {
			return fmt.Errorf("set up the stepper: %w", err)
		}
		unpinner := &stepper.Unpinner{Client: crash.Client(mgr.GetClient()), Recorder: mgr.GetEventRecorder("canary.io")}
		if err := unpinner.SetupWithManager(mgr); err != nil {
			return fmt.Errorf("set up the unpinner: %w", err)
		}
	}
	srv.Register(webhook.ServicePath, &crwebhook.Admission{Handler: &webhook.ServiceHandler{ControllerUser: o.controllerIdentity}})
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return fmt.Errorf("add health check: %w", err)
	}
	if err := mgr.AddReadyzCheck("webhook", srv.StartedChecker()); err != nil {
		return fmt.Errorf("add ready check: %w", err)
	}
	if o.registerURL != "" {
		cs, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			return fmt.Errorf("client: %w", err)
		}
		if err := webhook.Register(ctx, cs, webhook.URLClientConfig(o.registerURL, caBundle), o.controllerIdentity); err != nil {
			return err
		}
		ctrl.Log.Info("registered the webhook configurations", "url", o.registerURL)
	}
	ctrl.Log.Info("starting", "controllerIdentity", o.controllerIdentity, "webhookPort", o.webhookPort)
	return mgr.Start(ctx)
}

// servedNamespaces is the cache's namespaces for --namespaces: nil (every
// namespace) when empty.
func servedNamespaces(list string) map[string]cache.Config {
	var out map[string]cache.Config
	for _, ns := range strings.Split(list, ",") {
		if ns = strings.TrimSpace(ns); ns != "" {
			if out == nil {
				out = map[string]cache.Config{}
			}
			out[ns] = cache.Config{}
		}
	}
	return out
}

// checkIdentity asks the apiserver who the controller is
// (SelfSubjectReview) and refuses to start when that is not the identity
// its webhook trusts (--controller-identity): every write of the stepper
// would otherwise be judged as a user's, and every analysis would loop.
func checkIdentity(ctx context.Context, cfg *rest.Config, want string) error {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	review, err := cs.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("ask the apiserver who the controller is (SelfSubjectReview): %w", err)
	}
	if got := review.Status.UserInfo.Username; got != want {
		return fmt.Errorf("the controller runs as %q but --controller-identity is %q: the webhook would take the controller's own writes for a user's; set --controller-identity=%s", got, want, got)
	}
	return nil
}

// unskippedReporter counts the controller's status writes that reached
// the webhook although its configurations' match conditions should leave
// them out, and says why at most every ten minutes: a configuration that
// names another identity would leave that identity's status writes
// unjudged (docs/security.md).
func unskippedReporter(identity string) func() {
	unskipped := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "canary_webhook_unskipped_controller_writes_total",
		Help: "Status writes of the controller that reached the webhook although the webhook configurations' match conditions should leave them out: the configurations name another identity than --controller-identity, or the apiserver ignores match conditions.",
	})
	metrics.Registry.MustRegister(unskipped)
	var mu sync.Mutex
	var last time.Time
	return func() {
		unskipped.Inc()
		mu.Lock()
		defer mu.Unlock()
		if now := time.Now(); now.Sub(last) >= 10*time.Minute {
			last = now
			ctrl.Log.Error(nil, "a status write of the controller reached the webhook: the webhook configurations' match conditions do not name --controller-identity (or the apiserver ignores them); apply the configurations with this identity (docs/security.md)",
				"controllerIdentity", identity)
		}
	}
}

// egressPolicy parses the allow-lists and adds the apiserver's addresses
// (from the controller's own connection, and the in-cluster Service's) to
// what they refuse unless listed.
func egressPolicy(o options, apiserver string) (webhook.Egress, error) {
	var e webhook.Egress
	var err error
	if e.Hooks, err = contract.ParseDestinations(o.hookDestinations); err != nil {
		return e, fmt.Errorf("--allow-hook-destinations: %w", err)
	}
	if e.Prometheus, err = contract.ParseDestinations(o.promDestinations); err != nil {
		return e, fmt.Errorf("--allow-prometheus-destinations: %w", err)
	}
	var denied []netip.Addr
	hosts := []string{os.Getenv("KUBERNETES_SERVICE_HOST")}
	if u, err := url.Parse(apiserver); err == nil {
		hosts = append(hosts, u.Hostname())
	}
	for _, h := range hosts {
		if h == "" {
			continue
		}
		if a, err := netip.ParseAddr(h); err == nil {
			denied = append(denied, a)
			continue
		}
		ips, _ := net.LookupIP(h)
		for _, ip := range ips {
			if a, ok := contract.AddrOf(ip); ok {
				denied = append(denied, a)
			}
		}
	}
	e.Hooks.Denied, e.Prometheus.Denied = denied, denied
	return e, nil
}

// urlHost is the host of a base URL, without its port.
func urlHost(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return "", fmt.Errorf("--register-webhook-url %q: want https://HOST:PORT", raw)
	}
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil {
		return u.Host, nil //nolint:nilerr // no port: the host is the whole
	}
	if _, err := strconv.Atoi(port); err != nil {
		return "", errors.New("--register-webhook-url: the port is not a number")
	}
	return host, nil
}

// servesHTTPRoutes reports whether the cluster serves the Gateway API's
// HTTPRoutes (v1): whether the Gateway API router can work.
func servesHTTPRoutes(m meta.RESTMapper) (bool, error) {
	_, err := m.RESTMapping(schema.GroupKind{Group: gwv1.GroupName, Kind: "HTTPRoute"}, gwv1.GroupVersion.Version)
	if meta.IsNoMatchError(err) {
		return false, nil
	} else if err != nil {
		return false, fmt.Errorf("look up the Gateway API's HTTPRoutes: %w", err)
	}
	return true, nil
}
