// Command benchscale is the scale benchmark (make bench-scale): on the
// local cluster with the real Prometheus, N opted-in Deployments with
// Services, a source of Istio's standard metrics for every stable and
// canary workload (scraped like the sidecars), then rounds of M image
// updates at once. It prints what a user and an operator see: the
// controller's idle CPU and memory, the time from the updates to every
// canary's first weight, the controller's and Prometheus' CPU, memory and
// query rate early and late in the analyses, the step lateness, the time
// until every analysis ends, and the apiserver writes per step.
//
//	go run ./hack/benchscale -n 500 -m 100
//	go run ./hack/benchscale -n 1000 -m 100,1000
package main

import (
	"context"
	"flag"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"

	"github.com/canary-io/canary/contract"
	"github.com/canary-io/canary/e2e/cluster"
	"github.com/canary-io/canary/e2e/controller"
	"github.com/canary-io/canary/e2e/scale"
)

type options struct {
	n, namespaces, nodes, replicas, parallel, workers int
	logLevel                                          int
	rounds                                            []int
	pprof                                             string
	interval, scrape, idle                            time.Duration
	steps                                             string
	rps                                               float64
}

func main() {
	var o options
	var rounds string
	flag.IntVar(&o.n, "n", 500, "opted-in Deployments")
	flag.StringVar(&o.pprof, "pprof", "", "the controller's --pprof-bind-address, to profile it during the run (go tool pprof http://ADDR/debug/pprof/profile)")
	flag.IntVar(&o.workers, "workers", 0, "the controller's --workers (0: its default)")
	flag.IntVar(&o.logLevel, "log-level", 0, "the controller's --zap-log-level (0: the local cluster's, 1; 2 logs every pass)")
	flag.StringVar(&rounds, "m", "100", "comma-separated sizes of the rounds of image updates applied at once")
	flag.IntVar(&o.namespaces, "namespaces", 10, "namespaces the Deployments are spread over")
	flag.IntVar(&o.nodes, "nodes", 10, "kwok nodes")
	flag.IntVar(&o.replicas, "replicas", 1, "replicas of each Deployment")
	flag.IntVar(&o.parallel, "parallel", 32, "concurrent API writes of the benchmark itself")
	flag.DurationVar(&o.interval, "interval", 40*time.Second, "canary.io/interval")
	flag.StringVar(&o.steps, "steps", "20,40,60", "canary.io/steps")
	flag.DurationVar(&o.scrape, "scrape", 5*time.Second, "Prometheus' scrape interval")
	flag.DurationVar(&o.idle, "idle", 30*time.Second, "how long the idle controller is measured")
	flag.Float64Var(&o.rps, "rps", 20, "requests a second of each workload in the metrics source")
	flag.Parse()
	for _, f := range strings.Split(rounds, ",") {
		m, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || m <= 0 {
			fail(fmt.Errorf("-m %q: want positive numbers", rounds))
		}
		if m > o.n {
			fail(fmt.Errorf("-m %d is more than -n %d", m, o.n))
		}
		o.rounds = append(o.rounds, m)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "benchscale:", err)
	os.Exit(1)
}

func say(format string, args ...any) {
	fmt.Printf("%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func run(ctx context.Context, o options) error {
	c, err := cluster.Start(ctx, cluster.Options{Nodes: o.nodes, ScrapeInterval: o.scrape, Progress: func(m string) { say("cluster: %s", m) }})
	if err != nil {
		return err
	}
	defer c.Stop()
	admin := rest.CopyConfig(c.Admin)
	admin.WarningHandler = rest.NoWarnings{} // the webhook's "held for canary analysis", once per update
	admin.QPS, admin.Burst = 200, 400
	cs, err := kubernetes.NewForConfig(admin)
	if err != nil {
		return err
	}

	// The mesh's metrics: every stable and canary workload.
	source := &scale.Source{RPS: o.rps}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go func() { _ = http.Serve(l, source) }()
	if err := c.AddScrapeTarget("istio-mesh", []string{l.Addr().String()}, nil); err != nil {
		return err
	}
	names := make([]key, o.n)
	for i := range names {
		names[i] = key{fmt.Sprintf("team-%d", i%o.namespaces), fmt.Sprintf("app-%d", i)}
		source.Add(scale.Workload{Namespace: names[i].ns, Name: names[i].name, Revision: "latest"},
			scale.Workload{Namespace: names[i].ns, Name: names[i].name + "-canary", Revision: "latest"})
	}
	say("metrics source: %d workloads (%d series), scraped every %v", source.Len(), source.Len()*(len(scale.Buckets)+4), o.scrape)

	ctrl, err := controller.Build(c)
	if err != nil {
		return err
	}
	args := []string{"--prometheus-url=" + c.PrometheusURL, "--scrape-interval=" + o.scrape.String(), "--pprof-bind-address=" + o.pprof}
	if o.workers > 0 {
		args = append(args, fmt.Sprintf("--workers=%d", o.workers))
	}
	if o.logLevel > 0 {
		args = append(args, fmt.Sprintf("--zap-log-level=%d", o.logLevel))
	}
	if err := ctrl.Start(args...); err != nil {
		return err
	}
	defer ctrl.Stop()
	promPid := c.Pid("prometheus")

	// N opted-in Deployments with their Services.
	start := time.Now()
	for i := range o.namespaces {
		_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("team-%d", i)}}, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return err
		}
	}
	err = parallel(ctx, o.parallel, names, func(ctx context.Context, k key) error {
		if _, err := cs.CoreV1().Services(k.ns).Create(ctx, service(k), metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return err
		}
		if _, err := cs.AppsV1().Deployments(k.ns).Create(ctx, deployment(k, o), metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return err
		}
		return nil
	})
	if err != nil {
		return err
	}
	say("created %d Deployments and Services in %v", o.n, time.Since(start).Round(time.Second))

	w := newWatcher(cs)
	go w.run(ctx)
	if err := waitUntil(ctx, 10*time.Minute, func() bool { return w.count(func(s *status) bool { return s.phase == "Idle" && !s.canary }) == o.n }); err != nil {
		return fmt.Errorf("waiting for %d Deployments to be Idle: %w (%d are)", o.n, err, w.count(func(s *status) bool { return s.phase == "Idle" && !s.canary }))
	}
	say("all %d Idle %v after the first create", o.n, time.Since(start).Round(time.Second))

	// Idle.
	time.Sleep(10 * time.Second)
	u0, err := scale.ReadUsage(ctrl.Pid())
	if err != nil {
		return err
	}
	time.Sleep(o.idle)
	u1, err := scale.ReadUsage(ctrl.Pid())
	if err != nil {
		return err
	}
	fmt.Printf("\nIDLE  %d opted in, nothing rolling: controller %.2f %% of a core, RSS %.0f MiB (over %v)\n\n", o.n, 100*scale.CoreShare(u0, u1), mib(u1.RSS), o.idle)

	for r, m := range o.rounds {
		if err := round(ctx, o, c, cs, w, ctrl, promPid, names[:m], fmt.Sprintf("v%d", r+2)); err != nil {
			return err
		}
	}
	return nil
}

type key struct{ ns, name string }

func service(k key) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: k.name, Namespace: k.ns},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": k.name},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 9080}},
		},
	}
}

func deployment(k key, o options) *appsv1.Deployment {
	labels := map[string]string{"app": k.name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: k.name, Namespace: k.ns, Labels: labels, Annotations: map[string]string{
			contract.KeyEnabled: "true", contract.KeySteps: o.steps, contract.KeyInterval: o.interval.String(),
		}},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(int32(o.replicas)),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "example.com/app:v1"}}},
			},
		},
	}
}

// parallel runs f for every key with at most n at once; the first error
// ends it.
func parallel(ctx context.Context, n int, keys []key, f func(context.Context, key) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	work := make(chan key)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			for k := range work {
				if err := f(ctx, k); err != nil {
					cancel(fmt.Errorf("%s/%s: %w", k.ns, k.name, err))
				}
			}
		})
	}
	for _, k := range keys {
		select {
		case work <- k:
		case <-ctx.Done():
		}
	}
	close(work)
	wg.Wait()
	return context.Cause(ctx)
}

func waitUntil(ctx context.Context, timeout time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %v", timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	return nil
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// status is what the watcher saw of one Deployment.
type status struct {
	canary             bool
	phase, weight      string
	updated            time.Time // the benchmark's update
	firstWeight, ended time.Time
	canaryReady        time.Time // the canary's first pod seen ready
	outcome            string
}

// watcher follows every Deployment through an informer.
type watcher struct {
	cs kubernetes.Interface
	mu sync.Mutex
	by map[key]*status
	// probeSeen is when each resourceVersion of the watch probe (see
	// probeWatch) came through the Deployment informer.
	probeSeen map[string]time.Time
}

func newWatcher(cs kubernetes.Interface) *watcher {
	return &watcher{cs: cs, by: map[key]*status{}, probeSeen: map[string]time.Time{}}
}

// probeName is a Deployment, not opted in and with no replicas, that the
// benchmark writes every half second during a round (probeWatch): the
// time from each write's answer to its arrival through the benchmark's
// own Deployment informer is the delay with which the benchmark sees any
// Deployment change, the controller's weights included.
const probeName = "bench-watch-probe"

// probeWatch writes the probe in namespace ns every half second until ctx
// ends and returns, per resourceVersion written, when the write answered.
func probeWatch(ctx context.Context, cs kubernetes.Interface, ns string) (written map[string]time.Time, err error) {
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: probeName, Namespace: ns, Labels: map[string]string{"app": probeName}},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(int32(0)), Paused: true,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": probeName}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": probeName}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "example.com/probe:v1"}}},
			},
		},
	}
	if d, err = cs.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); apierrors.IsAlreadyExists(err) {
		d, err = cs.AppsV1().Deployments(ns).Get(ctx, probeName, metav1.GetOptions{})
	}
	if err != nil {
		return nil, err
	}
	written = map[string]time.Time{}
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return written, nil
		case <-time.After(500 * time.Millisecond):
		}
		if d.Annotations == nil {
			d.Annotations = map[string]string{}
		}
		d.Annotations["bench/write"] = fmt.Sprint(i)
		u, err := cs.AppsV1().Deployments(ns).Update(ctx, d, metav1.UpdateOptions{})
		answered := time.Now()
		if err != nil {
			if ctx.Err() != nil {
				return written, nil
			}
			if d, err = cs.AppsV1().Deployments(ns).Get(ctx, probeName, metav1.GetOptions{}); err != nil {
				return written, err
			}
			continue
		}
		written[u.ResourceVersion], d = answered, u
	}
}

func (w *watcher) run(ctx context.Context) {
	f := informers.NewSharedInformerFactory(w.cs, 0)
	inf := f.Apps().V1().Deployments().Informer()
	on := func(obj any) {
		d, ok := obj.(*appsv1.Deployment)
		if !ok {
			return
		}
		w.seen(d)
	}
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: on, UpdateFunc: func(_, n any) { on(n) }})
	// The canary's pods, seen ready: the moment the controller's own
	// readiness check can see (the Deployment's readyReplicas comes later,
	// through the ReplicaSet's status).
	pf := informers.NewSharedInformerFactoryWithOptions(w.cs, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.LabelSelector = "canary.io/canary=true"
	}))
	onPod := func(obj any) {
		if p, ok := obj.(*corev1.Pod); ok {
			w.seenPod(p)
		}
	}
	_, _ = pf.Core().V1().Pods().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: onPod, UpdateFunc: func(_, n any) { onPod(n) }})
	f.Start(ctx.Done())
	pf.Start(ctx.Done())
	<-ctx.Done()
}

// seenPod records when a canary's first pod was seen ready. A pod of
// <name>-canary is named <name>-canary-<replica set hash>-<suffix>.
func (w *watcher) seenPod(p *corev1.Pod) {
	ready := false
	for _, c := range p.Status.Conditions {
		ready = ready || c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue
	}
	parts := strings.Split(p.Name, "-")
	if !ready || len(parts) < 3 {
		return
	}
	name, ok := strings.CutSuffix(strings.Join(parts[:len(parts)-2], "-"), "-canary")
	if !ok {
		return
	}
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	if s := w.get(key{p.Namespace, name}); !s.updated.IsZero() && s.canaryReady.IsZero() {
		s.canaryReady = now
	}
}

func (w *watcher) seen(d *appsv1.Deployment) {
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	if d.Name == probeName {
		w.probeSeen[d.ResourceVersion] = now
		return
	}
	if strings.HasSuffix(d.Name, "-canary") && d.Labels["canary.io/canary"] == "true" {
		return // the canary's readiness is its pods' (seenPod)
	}
	s := w.get(key{d.Namespace, d.Name})
	s.phase, s.weight = d.Annotations[contract.KeyPhase], d.Annotations[contract.KeyWeight]
	if s.updated.IsZero() {
		return
	}
	if s.firstWeight.IsZero() && s.weight != "" && s.weight != "0" {
		s.firstWeight = now
	}
	if s.ended.IsZero() && !s.firstWeight.IsZero() && (s.phase == "Succeeded" || s.phase == "RolledBack") {
		s.ended, s.outcome = now, s.phase
	}
}

func (w *watcher) get(k key) *status {
	s, ok := w.by[k]
	if !ok {
		s = &status{}
		w.by[k] = s
	}
	return s
}

func (w *watcher) count(f func(*status) bool) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, s := range w.by {
		if f(s) {
			n++
		}
	}
	return n
}

// round applies an image update to every Deployment of keys at once and
// follows the analyses to their ends.
func round(ctx context.Context, o options, c *cluster.Cluster, cs kubernetes.Interface, w *watcher, ctrl *controller.Process, promPid int, keys []key, image string) error {
	m := len(keys)
	say("round: %d image updates at once (%s)", m, image)
	w.mu.Lock()
	for _, k := range keys {
		*w.get(k) = status{phase: w.get(k).phase}
	}
	w.mu.Unlock()
	ctrlBefore, err := scale.ScrapeURL(ctrl.MetricsURL())
	if err != nil {
		return err
	}
	promBefore, err := scale.ScrapeURL(c.PrometheusURL + "/metrics")
	if err != nil {
		return err
	}
	apiBefore, err := apiserverMetrics(ctx, cs)
	if err != nil {
		return err
	}

	probeCtx, stopProbe := context.WithCancel(ctx)
	type probed struct {
		written map[string]time.Time
		err     error
	}
	probeDone := make(chan probed, 1)
	go func() {
		written, err := probeWatch(probeCtx, cs, keys[0].ns)
		probeDone <- probed{written, err}
	}()
	defer stopProbe()

	first := time.Now()
	err = parallel(ctx, o.parallel, keys, func(ctx context.Context, k key) error {
		for {
			d, err := cs.AppsV1().Deployments(k.ns).Get(ctx, k.name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			d.Spec.Template.Spec.Containers[0].Image = "example.com/app:" + image
			now := time.Now()
			if _, err := cs.AppsV1().Deployments(k.ns).Update(ctx, d, metav1.UpdateOptions{}); apierrors.IsConflict(err) {
				continue
			} else if err != nil {
				return err
			}
			w.mu.Lock()
			w.get(k).updated = now
			w.mu.Unlock()
			return nil
		}
	})
	if err != nil {
		return err
	}
	last := time.Now()
	say("applied %d updates in %v", m, last.Sub(first).Round(100*time.Millisecond))

	// Sample CPU, memory and Prometheus' query rate every 10s until every
	// analysis has ended.
	type sample struct {
		at                   time.Duration
		ctrlCPU, promCPU     float64
		machine              float64 // share of the machine's CPU busy
		ctrlRSS, promRSS     int64
		promQueries, ctrlQPS float64
		ended                int // analyses ended by then
	}
	var samples []sample
	prevCtrl, _ := scale.ReadUsage(ctrl.Pid())
	prevProm, _ := scale.ReadUsage(promPid)
	prevMachine, _ := scale.ReadMachine()
	prevPQ := promBefore.Sum("prometheus_http_requests_total", map[string]string{"handler": "/api/v1/query"})
	prevCQ := ctrlBefore.Sum("canary_prometheus_queries_total", nil)
	// Steps judged more than a second after their due moment, so far.
	lateSteps := func(s scale.Samples) float64 {
		return s.Sum("canary_step_lateness_seconds_count", nil) - s.Sum("canary_step_lateness_seconds_bucket", map[string]string{"le": "1"})
	}
	prevLate := lateSteps(ctrlBefore)
	inKeys := map[key]bool{}
	for _, k := range keys {
		inKeys[k] = true
	}
	ended := func(s *status) bool { return !s.ended.IsZero() }
	timeout := 3*time.Duration(len(strings.Split(o.steps, ",")))*o.interval + 15*time.Minute
	for w.countIn(inKeys, ended) < m {
		if time.Since(first) > timeout {
			return fmt.Errorf("%d of %d analyses ended within %v", w.countIn(inKeys, ended), m, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Second):
		}
		cu, err1 := scale.ReadUsage(ctrl.Pid())
		pu, err2 := scale.ReadUsage(promPid)
		ps, err3 := scale.ScrapeURL(c.PrometheusURL + "/metrics")
		cm, err4 := scale.ScrapeURL(ctrl.MetricsURL())
		mu, err5 := scale.ReadMachine()
		if err := firstErr(err1, err2, err3, err4, err5); err != nil {
			return err
		}
		pq := ps.Sum("prometheus_http_requests_total", map[string]string{"handler": "/api/v1/query"})
		cq := cm.Sum("canary_prometheus_queries_total", nil)
		dt := cu.At.Sub(prevCtrl.At).Seconds()
		samples = append(samples, sample{
			at: time.Since(first).Round(time.Second), ctrlCPU: scale.CoreShare(prevCtrl, cu), promCPU: scale.CoreShare(prevProm, pu),
			ctrlRSS: cu.RSS, promRSS: pu.RSS, promQueries: (pq - prevPQ) / dt, ctrlQPS: (cq - prevCQ) / dt,
			ended: w.countIn(inKeys, ended), machine: scale.BusyShare(prevMachine, mu),
		})
		s := samples[len(samples)-1]
		say("%4v  %d/%d at a weight, %d/%d ended, %.0f steps late by over 1s; controller %.0f%% of a core, %.0f MiB, %.0f workers busy, %.0f passes queued; Prometheus %.0f%%, %.0f MiB, %.1f queries/s (%.1f/s from the controller); machine %.0f%% busy",
			s.at, w.countIn(inKeys, func(s *status) bool { return !s.firstWeight.IsZero() }), m, w.countIn(inKeys, ended), m, lateSteps(cm)-prevLate,
			100*s.ctrlCPU, mib(s.ctrlRSS), cm.Sum("controller_runtime_active_workers", map[string]string{"controller": "stepper"}),
			cm.Sum("workqueue_depth", map[string]string{"name": "stepper"}),
			100*s.promCPU, mib(s.promRSS), s.promQueries, s.ctrlQPS, 100*s.machine)
		prevCtrl, prevProm, prevPQ, prevCQ, prevMachine, prevLate = cu, pu, pq, cq, mu, lateSteps(cm)
	}
	stopProbe()
	probe := <-probeDone
	if probe.err != nil {
		// The probe explains the figures; its failure does not void them.
		say("watch probe stopped: %v", probe.err)
	}
	ctrlAfter, err := scale.ScrapeURL(ctrl.MetricsURL())
	if err != nil {
		return err
	}
	apiAfter, err := apiserverMetrics(ctx, cs)
	if err != nil {
		return err
	}

	// The figures.
	w.mu.Lock()
	var watchLag []time.Duration
	for rv, answered := range probe.written {
		if at, ok := w.probeSeen[rv]; ok {
			watchLag = append(watchLag, max(0, at.Sub(answered)))
		}
	}
	var toWeight, readyToWeight, toEnd []time.Duration
	var lastWeight, lastEnd time.Time
	outcomes := map[string]int{}
	for _, k := range keys {
		s := w.by[k]
		toWeight = append(toWeight, s.firstWeight.Sub(s.updated))
		if !s.canaryReady.IsZero() {
			readyToWeight = append(readyToWeight, s.firstWeight.Sub(s.canaryReady))
		}
		toEnd = append(toEnd, s.ended.Sub(s.updated))
		lastWeight = later(lastWeight, s.firstWeight)
		lastEnd = later(lastEnd, s.ended)
		outcomes[s.outcome]++
	}
	w.mu.Unlock()
	steps := len(strings.Split(o.steps, ","))
	// Writes to what the controller writes (Deployments without a
	// subresource, less the benchmark's own updates; Services, Istio's
	// objects, events.k8s.io Events), and all writes (the Deployment and
	// ReplicaSet controllers, kwok's pods and nodes too).
	// byKind: the same writes per verb and resource ("PUT deployments":
	// the benchmark's own updates included), to tell which to cut.
	writes, all := -float64(m), 0.0
	var byKind []string
	for _, verb := range []string{"POST", "PUT", "PATCH", "DELETE"} {
		for _, r := range []map[string]string{
			{"resource": "deployments", "subresource": ""},
			{"resource": "services"}, {"resource": "virtualservices"}, {"resource": "destinationrules"},
			{"resource": "events", "group": "events.k8s.io"},
		} {
			match := map[string]string{"verb": verb}
			for k, v := range r {
				match[k] = v
			}
			n := apiAfter.Sum("apiserver_request_total", match) - apiBefore.Sum("apiserver_request_total", match)
			writes += n
			if n > 0 {
				byKind = append(byKind, fmt.Sprintf("%s %s %.1f", verb, r["resource"], n/float64(m)))
			}
		}
		all += apiAfter.Sum("apiserver_request_total", map[string]string{"verb": verb}) - apiBefore.Sum("apiserver_request_total", map[string]string{"verb": verb})
	}
	// Early and late in the analyses: the first and last third of the
	// samples taken while every one of them was in flight.
	running := samples
	for i, s := range samples {
		if s.ended > 0 {
			running = samples[:max(1, i)]
			break
		}
	}
	third := max(1, len(running)/3)
	early, late := running[:third], running[len(running)-third:]
	avg := func(ss []sample, f func(sample) float64) float64 {
		sum := 0.0
		for _, s := range ss {
			sum += f(s)
		}
		return sum / float64(len(ss))
	}
	peak := func(f func(sample) int64) int64 {
		var p int64
		for _, s := range samples {
			p = max(p, f(s))
		}
		return p
	}
	fmt.Printf("\nROUND  N=%d opted in, M=%d updates at once, steps %s every %v, scrapes every %v\n", o.n, m, o.steps, o.interval, o.scrape)
	fmt.Printf("| figure | measured |\n|---|---|\n")
	fmt.Printf("| updates applied | in %v |\n", last.Sub(first).Round(100*time.Millisecond))
	fmt.Printf("| update → first canary weight, per Deployment | median %v, p99 %v, max %v; the last %v after the first update |\n",
		pct(toWeight, 0.5), pct(toWeight, 0.99), pct(toWeight, 1), lastWeight.Sub(first).Round(100*time.Millisecond))
	if len(readyToWeight) > 0 {
		fmt.Printf("| canary pods ready → weight moved | median %v, p99 %v, max %v (the propagation delay is 2s); within 3s: %d of %d (%.2f %%) |\n",
			pct(readyToWeight, 0.5), pct(readyToWeight, 0.99), pct(readyToWeight, 1),
			countWithin(readyToWeight, 3*time.Second), len(readyToWeight), 100*float64(countWithin(readyToWeight, 3*time.Second))/float64(len(readyToWeight)))
	}
	routedIn := ctrlAfter.Sum("canary_ready_to_routed_seconds_bucket", map[string]string{"le": "3"}) - ctrlBefore.Sum("canary_ready_to_routed_seconds_bucket", map[string]string{"le": "3"})
	routedAll := ctrlAfter.Sum("canary_ready_to_routed_seconds_count", nil) - ctrlBefore.Sum("canary_ready_to_routed_seconds_count", nil)
	fmt.Printf("| the same as the controller saw it: pods ready → its route's write answered | p50 %.2fs, p99 %.2fs; within 3s: %.0f of %.0f (%.2f %%) |\n",
		scale.Quantile(0.5, "canary_ready_to_routed_seconds", ctrlBefore, ctrlAfter), scale.Quantile(0.99, "canary_ready_to_routed_seconds", ctrlBefore, ctrlAfter),
		routedIn, routedAll, 100*routedIn/routedAll)
	slices.Sort(watchLag)
	if len(watchLag) > 0 {
		q := func(f float64) time.Duration {
			return watchLag[max(0, min(len(watchLag)-1, int(math.Ceil(f*float64(len(watchLag))))-1))].Round(10 * time.Millisecond)
		}
		fmt.Printf("| the benchmark's own view: a Deployment write answered → seen through its informer (%d probe writes) | p50 %v, p99 %v, max %v |\n",
			len(watchLag), q(0.5), q(0.99), q(1))
	}
	fmt.Printf("| update → analysis ended | median %v, max %v; all %d ended %v after the first update; outcomes %v |\n",
		pct(toEnd, 0.5), pct(toEnd, 1), m, lastEnd.Sub(first).Round(time.Second), outcomes)
	fmt.Printf("| controller, early / late in the analyses | %.0f%% / %.0f%% of a core; RSS peak %.0f MiB |\n",
		100*avg(early, func(s sample) float64 { return s.ctrlCPU }), 100*avg(late, func(s sample) float64 { return s.ctrlCPU }), mib(peak(func(s sample) int64 { return s.ctrlRSS })))
	fmt.Printf("| machine (2 cores: control plane, controller, Prometheus, benchmark), early / late | %.0f%% / %.0f%% busy; peak %.0f%% |\n",
		100*avg(early, func(s sample) float64 { return s.machine }), 100*avg(late, func(s sample) float64 { return s.machine }),
		100*peakOf(samples, func(s sample) float64 { return s.machine }))
	fmt.Printf("| Prometheus, early / late | %.0f%% / %.0f%% of a core; RSS peak %.0f MiB |\n",
		100*avg(early, func(s sample) float64 { return s.promCPU }), 100*avg(late, func(s sample) float64 { return s.promCPU }), mib(peak(func(s sample) int64 { return s.promRSS })))
	fmt.Printf("| Prometheus queries/s, early / late | %.1f / %.1f (from the controller: %.1f / %.1f) |\n",
		avg(early, func(s sample) float64 { return s.promQueries }), avg(late, func(s sample) float64 { return s.promQueries }),
		avg(early, func(s sample) float64 { return s.ctrlQPS }), avg(late, func(s sample) float64 { return s.ctrlQPS }))
	for _, purpose := range []string{"check", "comparison", "workloads", "scrape-interval"} {
		n := ctrlAfter.Sum("canary_prometheus_queries_total", map[string]string{"purpose": purpose}) - ctrlBefore.Sum("canary_prometheus_queries_total", map[string]string{"purpose": purpose})
		fmt.Printf("| controller's queries: %s | %.0f, %.1f per analysis step |\n", purpose, n, n/float64(m*steps))
	}
	samplesRead := ctrlAfter.Sum("canary_comparison_samples_total", nil) - ctrlBefore.Sum("canary_comparison_samples_total", nil)
	fmt.Printf("| comparison samples read | %.0f (%.0f per analysis) |\n", samplesRead, samplesRead/float64(m))
	fmt.Printf("| step lateness | p50 %.2fs, p99 %.2fs |\n",
		scale.Quantile(0.5, "canary_step_lateness_seconds", ctrlBefore, ctrlAfter), scale.Quantile(0.99, "canary_step_lateness_seconds", ctrlBefore, ctrlAfter))
	within := func(name string) string {
		total := ctrlAfter.Sum(name+"_count", nil) - ctrlBefore.Sum(name+"_count", nil)
		in := ctrlAfter.Sum(name+"_bucket", map[string]string{"le": "1"}) - ctrlBefore.Sum(name+"_bucket", map[string]string{"le": "1"})
		return fmt.Sprintf("%.0f of %.0f (%.2f %%)", in, total, 100*in/total)
	}
	fmt.Printf("| steps within 1 s of their due moment | %s |\n", within("canary_step_lateness_seconds"))
	fmt.Printf("| a round of checks, start → an analysis' results | p50 %.2fs, p99 %.2fs |\n",
		scale.Quantile(0.5, "canary_check_round_seconds", ctrlBefore, ctrlAfter), scale.Quantile(0.99, "canary_check_round_seconds", ctrlBefore, ctrlAfter))
	fmt.Printf("| of which the wait for the comparison, after the checks were read | p50 %.2fs, p99 %.2fs |\n",
		scale.Quantile(0.5, "canary_check_round_comparison_wait_seconds", ctrlBefore, ctrlAfter), scale.Quantile(0.99, "canary_check_round_comparison_wait_seconds", ctrlBefore, ctrlAfter))
	fmt.Printf("| weight lateness (a ready canary's first weight recorded after its due moment: the controller's own part of ready → weight) | p50 %.2fs, p99 %.2fs |\n",
		scale.Quantile(0.5, "canary_weight_lateness_seconds", ctrlBefore, ctrlAfter), scale.Quantile(0.99, "canary_weight_lateness_seconds", ctrlBefore, ctrlAfter))
	fmt.Printf("| first weights recorded within 1 s of their due moment | %s |\n", within("canary_weight_lateness_seconds"))
	// Where a pass's time goes: waiting in the controller's queue, and
	// the apiserver's answer to its writes (our own webhooks included).
	fmt.Printf("| controller's queue: wait / pass | p50 %.3fs, p99 %.3fs / p50 %.3fs, p99 %.3fs |\n",
		scale.QuantileOf(0.5, "workqueue_queue_duration_seconds", map[string]string{"name": "stepper"}, ctrlBefore, ctrlAfter),
		scale.QuantileOf(0.99, "workqueue_queue_duration_seconds", map[string]string{"name": "stepper"}, ctrlBefore, ctrlAfter),
		scale.QuantileOf(0.5, "workqueue_work_duration_seconds", map[string]string{"name": "stepper"}, ctrlBefore, ctrlAfter),
		scale.QuantileOf(0.99, "workqueue_work_duration_seconds", map[string]string{"name": "stepper"}, ctrlBefore, ctrlAfter))
	for _, action := range []string{"gather", "WriteState", "EnsureCanary", "SetWeight", "PinService", "UnpinService", "Unpause", "DeleteCanary"} {
		match := map[string]string{"action": action}
		if n := ctrlAfter.Sum("canary_action_duration_seconds_count", match) - ctrlBefore.Sum("canary_action_duration_seconds_count", match); n > 0 {
			fmt.Printf("| controller's %s | %.0f, p50 %.3fs, p99 %.3fs |\n", action, n,
				scale.QuantileOf(0.5, "canary_action_duration_seconds", match, ctrlBefore, ctrlAfter),
				scale.QuantileOf(0.99, "canary_action_duration_seconds", match, ctrlBefore, ctrlAfter))
		}
	}
	for _, w := range []struct{ verb, resource string }{{"PUT", "deployments"}, {"PATCH", "virtualservices"}, {"PUT", "virtualservices"}, {"PATCH", "services"}, {"POST", "deployments"}, {"POST", "pods"}} {
		match := map[string]string{"verb": w.verb, "resource": w.resource, "subresource": ""}
		fmt.Printf("| apiserver latency, %s %s | p50 %.3fs, p99 %.3fs |\n", w.verb, w.resource,
			scale.QuantileOf(0.5, "apiserver_request_duration_seconds", match, apiBefore, apiAfter),
			scale.QuantileOf(0.99, "apiserver_request_duration_seconds", match, apiBefore, apiAfter))
	}
	// API Priority and Fairness: how long requests waited in the
	// apiserver's queues before it began them (not in the latencies above).
	for _, level := range []string{"exempt", "system", "workload-high", "workload-low", "global-default", "catch-all"} {
		match := map[string]string{"priority_level": level, "execute": "true"}
		if n := apiAfter.Sum("apiserver_flowcontrol_request_wait_duration_seconds_count", match) - apiBefore.Sum("apiserver_flowcontrol_request_wait_duration_seconds_count", match); n > 0 {
			fmt.Printf("| apiserver queue (priority and fairness), %s | %.0f requests, wait p50 %.3fs, p99 %.3fs |\n", level, n,
				scale.QuantileOf(0.5, "apiserver_flowcontrol_request_wait_duration_seconds", match, apiBefore, apiAfter),
				scale.QuantileOf(0.99, "apiserver_flowcontrol_request_wait_duration_seconds", match, apiBefore, apiAfter))
		}
	}
	fmt.Printf("| apiserver → the webhooks | p50 %.3fs, p99 %.3fs |\n",
		scale.Quantile(0.5, "apiserver_admission_webhook_admission_duration_seconds", apiBefore, apiAfter),
		scale.Quantile(0.99, "apiserver_admission_webhook_admission_duration_seconds", apiBefore, apiAfter))
	fmt.Printf("| apiserver writes of the controller's kinds | %.0f, %.1f per analysis step (all writes, kwok's and the built-in controllers' included: %.0f) |\n", writes, writes/float64(m*steps), all)
	fmt.Printf("| the same per analysis, by verb and resource (PUT deployments with the benchmark's update) | %s |\n\n", strings.Join(byKind, ", "))
	return nil
}

func (w *watcher) countIn(keys map[key]bool, f func(*status) bool) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for k := range keys {
		if s, ok := w.by[k]; ok && f(s) {
			n++
		}
	}
	return n
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func pct(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))].Round(100 * time.Millisecond)
}

// countWithin is how many of ds are at most d.
func countWithin(ds []time.Duration, d time.Duration) int {
	n := 0
	for _, x := range ds {
		if x <= d {
			n++
		}
	}
	return n
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// apiserverMetrics reads kube-apiserver's own metrics.
func apiserverMetrics(ctx context.Context, cs kubernetes.Interface) (scale.Samples, error) {
	body, err := cs.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return nil, fmt.Errorf("read the apiserver's metrics: %w", err)
	}
	return scale.Parse(strings.NewReader(string(body)))
}

// peakOf is the largest f of ss, 0 for none.
func peakOf[S any](ss []S, f func(S) float64) float64 {
	var p float64
	for _, s := range ss {
		p = max(p, f(s))
	}
	return p
}
