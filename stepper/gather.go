package stepper

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	istionetv1 "istio.io/client-go/pkg/apis/networking/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/canary-io/canary/contract"
	"github.com/canary-io/canary/stepper/plan"
	"github.com/canary-io/canary/stepper/sequential"
)

// world is what one pass read: the inputs of plan.Next and the objects the
// actions need.
type world struct {
	deployment *appsv1.Deployment
	settings   contract.Settings
	spec       plan.Spec
	state      plan.State
	obs        plan.Observations

	service        *corev1.Service // the user's Service; nil if none resolved
	canary         *appsv1.Deployment
	canaryService  *corev1.Service
	canaryRule     *istionetv1.DestinationRule
	userRule       *istionetv1.DestinationRule
	virtualService *istionetv1.VirtualService // the generated one, if it exists
	// leftoverVirtualService is a generated VirtualService the analysis no
	// longer uses (canary.io/virtualservice now names the user's own): it
	// is deleted, so that two VirtualServices never route the host.
	leftoverVirtualService *istionetv1.VirtualService
	// analysisStarted is the analysis' start for the continuous
	// comparison and the checks' windows (plan.AnalysisStart), zero
	// outside an analysis in flight.
	analysisStarted time.Time
	// comparison is the continuous comparison's verdict, if it ran;
	// comparisonErr why it could not.
	comparison    *sequential.Verdict
	comparisonErr error
	// comparisonPending: the comparison's first read has not ended (after
	// a restart, say); the step's checks wait for it.
	comparisonPending bool
	// scrape is the scrape interval of the Deployment's Prometheus, read
	// once per pass (scrapeInterval); zero until then.
	scrape time.Duration
	// userVirtualServices are the user's own, named in
	// canary.io/virtualservice; when set, no VirtualService is generated.
	userVirtualServices []*istionetv1.VirtualService
	// The Gateway API router's routes (canary.io/router: gateway-api):
	// the generated HTTPRoute <service>, if it exists, or the user's,
	// named in canary.io/httproute; and a generated one the analysis no
	// longer uses (the other router chosen, or the user's routes named),
	// deleted as leftoverVirtualService is.
	httpRoute         *gwv1.HTTPRoute
	userHTTPRoutes    []*gwv1.HTTPRoute
	leftoverHTTPRoute *gwv1.HTTPRoute
}

// gather reads everything Next needs. A failed read ends the pass with an
// error (retried with backoff); it never reaches Next as a zero value.
func (r *Reconciler) gather(ctx context.Context, d *appsv1.Deployment) (*world, error) {
	w := &world{deployment: d}
	var err error
	if w.state, err = plan.Decode(d.Annotations); err != nil {
		return nil, fmt.Errorf("decode state of %s/%s: %w", d.Namespace, d.Name, err)
	}
	var settingsErr error
	w.settings, settingsErr = contract.FrozenSettings(d.Annotations)
	w.settings.Webhooks = capHookTimeouts(w.settings.Webhooks, r.MaxHookTimeout)
	replicas := int32(1)
	if d.Spec.Replicas != nil {
		replicas = *d.Spec.Replicas
	}
	w.spec = plan.SpecFrom(w.settings, replicas, r.PropagationDelay)
	w.spec.RemovalDelay = r.RemovalDelay
	if !w.settings.ConfidenceOff && r.ComparisonPeriod > 0 {
		// The Reader wakes the pass of a regression at once: the
		// comparison's own look is only a safety net.
		w.spec.ComparisonPeriod = comparisonPoll(r.ComparisonPeriod)
	}
	if hasHooks(w, contract.HookRollback) {
		w.spec.RollbackHookPoll = hookPollPeriod
	}
	now := r.Clock.Now()
	w.obs = plan.Observations{
		Now:     now,
		Pause:   d.Annotations[contract.KeyPause] == "true",
		Promote: d.Annotations[contract.KeyPromote],
		Abort:   d.Annotations[contract.KeyAbort],
		Held:    d.Spec.Paused,
	}
	if err := r.resolveService(ctx, w); err != nil {
		return nil, err
	}
	if settingsErr != nil && w.obs.Conflict == "" {
		// Fail closed: an analysis never runs on defaults standing in for
		// settings it cannot read (after an upgrade, say).
		w.obs.Conflict = settingsErr.Error()
	}
	if err := r.readCanary(ctx, w); err != nil {
		return nil, err
	}
	if w.service != nil {
		if err := r.readTraffic(ctx, w); err != nil {
			return nil, err
		}
	}
	w.obs.UnroutedSince = r.unroutedSince(keyOf(d), w.obs.CanaryObjectsExist && !w.obs.Routed(), now)
	w.obs.RolloutComplete = rolloutComplete(d)
	if a := d.Annotations; a[contract.KeyLastTransition] != "" {
		id := transitionID(a)
		w.obs.Transition = plan.Transition{
			ID: id, Reason: a[contract.KeyTransitionReason], Message: a[contract.KeyMessage],
			Evented: a[contract.KeyEventedTransition] == id, Emitted: r.wasEmitted(d, id),
		}
	}
	if since, err := time.Parse(time.RFC3339, d.Annotations[contract.KeyFailingSince]); err == nil {
		w.obs.Failing, w.obs.FailingSince = d.Annotations[contract.KeyFailing], since
	}
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentProgressing {
			w.obs.ProgressingFailed = c.Status == corev1.ConditionFalse && c.Reason == "ProgressDeadlineExceeded"
		}
	}
	if r := d.Annotations[contract.KeyRejection]; r != "" && d.Annotations[contract.KeyRejectedRevision] == w.state.Revision {
		// "at <time>: <why>"
		if _, why, ok := strings.Cut(r, ": "); ok {
			w.obs.Rejection = why
		} else {
			w.obs.Rejection = r
		}
	}
	if err := r.runComparison(ctx, w, now); err != nil {
		log.FromContext(ctx).V(1).Info("continuous comparison unavailable", "err", err.Error())
		w.comparisonErr = err
	}
	w.obs.RollbackHook = r.pollRollbackHooks(ctx, w)
	rollout, hooksIn := r.inFlightHooks(ctx, w)
	if plan.ChecksDue(w.spec, w.state, now) && hooksIn && !w.comparisonPending && r.Reader != nil {
		// The rollout hooks (a load test, say) have answered, and the
		// comparison has its verdict: the checks read the window that
		// ends now, the hooks' traffic included, in the background.
		// Until they are in, Next waits for them (obs.Checks nil).
		if checks, ok := r.Reader.Checks(keyOf(d), checksRound(w.state), r.checkRun(ctx, w, now), r.prometheusURL(w), now); ok {
			w.obs.Checks = append(slices.Clone(checks), rollout...)
		}
	}
	return w, nil
}

// keyOf is a Deployment's namespace/name.
func keyOf(d *appsv1.Deployment) string { return d.Namespace + "/" + d.Name }

// prometheusURL is the Prometheus of w: canary.io/prometheus, or the
// controller's.
func (r *Reconciler) prometheusURL(w *world) string {
	if w.settings.Prometheus != "" {
		return w.settings.Prometheus
	}
	return r.Prometheus
}

// checksRound names the end-of-step checks of the step st runs: its
// analysis, the step and when it started.
//
// Example: revision 5d4f, analysis started 12:00:00, step 1 from 12:00:42
// → "5d4f/2026-12-03T12:00:00Z/step 1 from 2026-12-03T12:00:42Z".
func checksRound(st plan.State) string {
	return fmt.Sprintf("%s/%s/step %d from %s", st.Revision, st.AnalysisStarted.UTC().Format(time.RFC3339), st.Step, st.StepStarted.UTC().Format(time.RFC3339))
}

// expectChecks tells the Reader when the checks of the step next runs
// fall due, so that they are read in that moment's round even when the
// pass comes late (a busy queue); otherwise (no step running, paused, or
// rollout hooks, whose answers the checks wait for) it forgets them.
func (r *Reconciler) expectChecks(ctx context.Context, w *world, next plan.State) {
	if r.Reader == nil {
		return
	}
	key := keyOf(w.deployment)
	at, ok := plan.MovesAt(w.spec, next, w.obs)
	if !ok || next.StepStarted.IsZero() || !plan.ChecksDue(w.spec, next, at) || !at.After(w.obs.Now) || hasHooks(w, contract.HookRollout) {
		r.Reader.Unexpect(key)
		return
	}
	r.Reader.Expect(key, checksRound(next), r.checkRun(ctx, w, at), r.prometheusURL(w), at)
}

// checkRun is what the threshold checks of w read at now need: the
// window that ends then, from the scrape interval of the Deployment's
// Prometheus, and what the comparison counted.
func (r *Reconciler) checkRun(ctx context.Context, w *world, now time.Time) checkRun {
	scrape := r.scrapeInterval(ctx, w)
	run := checkRun{
		settings: w.settings, namespace: w.deployment.Namespace, canary: CanaryName(w.deployment.Name), stable: w.deployment.Name,
		scrape: scrape, window: checksWindow(contract.Window(w.settings.Interval, w.settings.Window, scrape), w.analysisStarted, now),
		comparedRequests: -1,
	}
	if w.comparison != nil {
		run.comparedRequests = w.comparison.Errors.CanaryRequests
	}
	return run
}

// scrapeInterval is the scrape interval of w's Prometheus, asked once per
// pass: the checks' window and the comparison's lookback use the same.
// On failure it is the last known one or AssumedScrapeInterval, which
// only lengthens both.
func (r *Reconciler) scrapeInterval(ctx context.Context, w *world) time.Duration {
	if w.scrape == 0 {
		var err error
		if w.scrape, err = r.Scrape.Get(ctx, w.settings.Prometheus); err != nil {
			log.FromContext(ctx).V(1).Info("scrape interval not discovered", "err", err.Error(), "using", w.scrape)
		}
	}
	return w.scrape
}

// checksWindow is the window the checks read: window, but never reaching
// back before the analysis started (zero: unknown), whole seconds, at
// least one. The canary's workload name outlives its revisions: before
// the start, its series are an earlier canary's (the previous analysis',
// healthy or not), never this revision's.
//
// Example: window 1m, started 14.6s ago → 14s; started 5m ago → 1m.
func checksWindow(window time.Duration, started, now time.Time) time.Duration {
	if started.IsZero() {
		return window
	}
	return max(min(window, now.Sub(started).Truncate(time.Second)), time.Second)
}

// runComparison takes the latest verdict of the continuous
// canary-vs-stable comparison (read in the background by the Reader)
// while an analysis is in flight and the canary takes traffic, unless
// canary.io/confidence is off. A regression reaches Next as
// ComparisonFailed; a comparison whose first read has not ended leaves
// the step's checks waiting (comparisonPending); an unavailable one
// leaves the threshold checks alone in charge.
func (r *Reconciler) runComparison(ctx context.Context, w *world, now time.Time) error {
	w.analysisStarted = w.state.AnalysisStarted
	phase := w.state.Phase
	key := keyOf(w.deployment)
	if phase != contract.PhaseProgressing && phase != contract.PhasePaused {
		if r.Reader != nil {
			r.Reader.Drop(key)
		}
		return nil
	}
	w.analysisStarted = plan.AnalysisStart(w.state, now)
	if w.settings.ConfidenceOff || !plan.TakesTraffic(w.spec, w.state) || r.ComparisonPeriod <= 0 {
		return nil
	}
	if r.Reader == nil {
		return fmt.Errorf("the controller has no reader of the comparison")
	}
	scrape := r.scrapeInterval(ctx, w)
	a := comparisonRequest{
		url: r.prometheusURL(w), namespace: w.deployment.Namespace, canary: CanaryName(w.deployment.Name), stable: w.deployment.Name,
		revision: canonicalRevision(w.deployment.Spec.Template.Labels), start: w.analysisStarted,
		confidence: w.settings.Confidence, tolerance: w.settings.Tolerance, edge: slowEdge(w.settings.MaxLatency),
		period: r.ComparisonPeriod, lookback: comparisonLookback(r.ComparisonPeriod, scrape),
	}
	v, pending, err := r.Reader.Compare(key, a, plan.ChecksDue(w.spec, w.state, now), now)
	if v != nil {
		w.comparison = v
		if v.Regression {
			// Whatever happened to the reads since: the regression stands.
			w.obs.ComparisonFailed = v.Summary
		}
	}
	w.comparisonPending = pending
	return err
}

// capHookTimeouts bounds every hook's timeout by limit (the controller's
// --max-hook-timeout; zero: no bound), so that no hook holds a worker
// longer than the cluster admin allows, whatever a Deployment asks.
//
// Example: limit 2m, a pre-rollout hook with timeout 1h → 2m; an event
// hook with 5s → 5s.
func capHookTimeouts(hooks []contract.Webhook, limit time.Duration) []contract.Webhook {
	if limit <= 0 {
		return hooks
	}
	out := slices.Clone(hooks)
	for i := range out {
		out[i].Timeout = min(out[i].Timeout, limit)
	}
	return out
}

// resolveService finds the user's Service: canary.io/service, or the one
// Service (not one of the system's) whose selector matches the pod
// template. None, or several, is a conflict.
func (r *Reconciler) resolveService(ctx context.Context, w *world) error {
	d := w.deployment
	if name := w.settings.Service; name != "" {
		var svc corev1.Service
		if err := r.Client.Get(ctx, types.NamespacedName{Namespace: d.Namespace, Name: name}, &svc); apierrors.IsNotFound(err) {
			w.obs.Conflict = fmt.Sprintf("Service %s named in %s does not exist", name, contract.KeyService)
			return nil
		} else if err != nil {
			return fmt.Errorf("get service %s/%s: %w", d.Namespace, name, err)
		}
		if !selects(&svc, d) {
			// Another team's Service, or a typo: never pinned nor steered.
			w.obs.Conflict = fmt.Sprintf("Service %s named in %s does not select the Deployment's pods (selector %s, pod labels %s): name the Deployment's own Service",
				name, contract.KeyService, labels.Set(withoutPin(svc.Spec.Selector)), labels.Set(d.Spec.Template.Labels))
			return nil
		}
		w.service = &svc
		return r.checkOneDeploymentPerService(ctx, w)
	}
	// Read only (the cache's own objects, not copies); the one chosen
	// is copied.
	matches, err := r.servicesSelecting(ctx, d)
	if err != nil {
		return fmt.Errorf("list services in %s: %w", d.Namespace, err)
	}
	switch len(matches) {
	case 1:
		w.service = matches[0].DeepCopy()
		return r.checkOneDeploymentPerService(ctx, w)
	case 0:
		w.obs.Conflict = "no Service selects the Deployment's pods: create one, or name it in " + contract.KeyService
	default:
		w.obs.Conflict = fmt.Sprintf("%d Services select the Deployment's pods (%s, %s, ...): name the one to steer in %s",
			len(matches), matches[0].Name, matches[1].Name, contract.KeyService)
	}
	return nil
}

// withoutPin is a Service selector without the stepper's pin.
func withoutPin(selector map[string]string) map[string]string {
	out := make(map[string]string, len(selector))
	for k, v := range selector {
		if k != podTemplateHash {
			out[k] = v
		}
	}
	return out
}

// selects reports whether a Service's selector, the pin aside, is not
// empty and selects the Deployment's pod template: the rule that makes a
// Service the Deployment's, whether named or found.
func selects(svc *corev1.Service, d *appsv1.Deployment) bool {
	sel := withoutPin(svc.Spec.Selector)
	return len(sel) > 0 && labels.SelectorFromSet(sel).Matches(labels.Set(d.Spec.Template.Labels))
}

// checkOneDeploymentPerService makes a second opted-in Deployment whose
// pods the same Service selects a conflict: two analyses would steer one
// VirtualService against each other.
func (r *Reconciler) checkOneDeploymentPerService(ctx context.Context, w *world) error {
	d, svc := w.deployment, w.service
	sel := withoutPin(svc.Spec.Selector)
	others, err := r.deploymentsSelectedBy(ctx, d.Namespace, sel)
	if err != nil {
		return fmt.Errorf("list deployments in %s: %w", d.Namespace, err)
	}
	for i := range others {
		other := &others[i]
		if other.UID == d.UID || !contract.OptedIn(other) || other.Spec.Template.Labels[LabelCanary] == "true" {
			continue
		}
		if len(sel) > 0 && labels.SelectorFromSet(sel).Matches(labels.Set(other.Spec.Template.Labels)) {
			w.obs.Conflict = fmt.Sprintf("Deployment %s is opted in too and Service %s selects its pods: one opted-in Deployment per Service", other.Name, svc.Name)
		}
	}
	return nil
}

// readCanary reads the canary objects and its pods.
func (r *Reconciler) readCanary(ctx context.Context, w *world) error {
	d := w.deployment
	if len(CanaryName(d.Name)) > 63 {
		w.obs.Conflict = fmt.Sprintf("the canary's name %s is longer than 63 characters", CanaryName(d.Name))
	}
	var canary appsv1.Deployment
	found, err := r.getOwned(ctx, d, CanaryName(d.Name), &canary, &w.obs)
	if err != nil {
		return err
	}
	if found {
		w.canary = &canary
		w.obs.CanaryObjectsExist = true
	}
	// Read only: the cache's own pods, not copies of every canary pod of
	// the namespace on every pass.
	var pods corev1.PodList
	if err := r.Client.List(ctx, &pods, client.InNamespace(d.Namespace), client.MatchingLabels{LabelCanary: "true"}, client.UnsafeDisableDeepCopy); err != nil {
		return fmt.Errorf("list canary pods in %s: %w", d.Namespace, err)
	}
	for i := range pods.Items {
		p := &pods.Items[i]
		if !ownedByName(p, CanaryName(d.Name)) {
			continue
		}
		w.obs.CanaryObjectsExist = true
		if p.DeletionTimestamp != nil || p.Labels[LabelRevision] != w.state.Revision {
			continue
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				w.obs.CanaryReady++
				if t := r.readySince(p, c.LastTransitionTime.Time); t.After(w.obs.CanaryReadySince) {
					w.obs.CanaryReadySince = t
				}
			}
		}
	}
	return nil
}

// readTraffic reads the user's Service pin, the canary Service and
// DestinationRule, the user's DestinationRule and the VirtualService.
func (r *Reconciler) readTraffic(ctx context.Context, w *world) error {
	d, svc := w.deployment, w.service
	_, w.obs.ServicePinned = svc.Spec.Selector[podTemplateHash]
	if len(CanaryName(svc.Name)) > 63 {
		w.obs.Conflict = fmt.Sprintf("the canary Service's name %s is longer than 63 characters", CanaryName(svc.Name))
	}
	var cs corev1.Service
	if found, err := r.getOwned(ctx, d, CanaryName(svc.Name), &cs, &w.obs); err != nil {
		return err
	} else if found {
		w.canaryService = &cs
		w.obs.CanaryObjectsExist = true
	}
	var dr istionetv1.DestinationRule
	if found, err := r.getOwned(ctx, d, CanaryName(svc.Name), &dr, &w.obs); err != nil {
		return err
	} else if found {
		w.canaryRule = &dr
		w.obs.CanaryObjectsExist = true
	}
	// Read only (the cache's objects); the one kept is copied.
	var rules istionetv1.DestinationRuleList
	if err := r.Client.List(ctx, &rules, client.InNamespace(d.Namespace), client.UnsafeDisableDeepCopy); err != nil {
		return fmt.Errorf("list destination rules in %s: %w", d.Namespace, err)
	}
	for _, rule := range rules.Items {
		if hostIs(rule.Spec.Host, svc) && !ownedBy(rule, d) {
			w.userRule = rule.DeepCopy()
		}
	}
	if w.settings.Router == contract.RouterGatewayAPI {
		return r.readHTTPRoutes(ctx, w)
	}
	if err := r.readVirtualServices(ctx, w); err != nil {
		return err
	}
	return r.readOtherRouter(ctx, w)
}

// readOtherRouter reads, for the Istio router, the HTTPRoutes of the
// namespace when the cluster has them: the generated one of an analysis
// that used the Gateway API router is a leftover, and a user's route
// attached to the Service is a conflict (two kinds of route for one host:
// which one a proxy follows is not the analysis' to guess).
func (r *Reconciler) readOtherRouter(ctx context.Context, w *world) error {
	if !r.GatewayAPI {
		return nil
	}
	d, svc := w.deployment, w.service
	var list gwv1.HTTPRouteList
	if err := r.Client.List(ctx, &list, client.InNamespace(d.Namespace), client.UnsafeDisableDeepCopy); err != nil {
		return fmt.Errorf("list HTTPRoutes in %s: %w", d.Namespace, err)
	}
	for i := range list.Items {
		rt := &list.Items[i]
		switch {
		case ownedBy(rt, d) && rt.Name == svc.Name:
			w.leftoverHTTPRoute = rt.DeepCopy()
			w.obs.GeneratedVirtualServiceReplaced = true
		case !ownedBy(rt, d) && attachedTo(rt, svc):
			w.obs.Conflict = fmt.Sprintf("HTTPRoute %s is attached to the Service %s, and this Deployment uses the %q router: set %s to %q and name it in %s, or remove it",
				rt.Name, svc.Name, contract.RouterIstio, contract.KeyRouter, contract.RouterGatewayAPI, contract.KeyHTTPRoute)
		}
	}
	return nil
}

// readHTTPRoutes reads, for the Gateway API router, the HTTPRoute(s) to
// steer: the user's, named in canary.io/httproute, or the generated
// <service>. A user's route attached to the Service that is not named, or
// a user's VirtualService for the Service's host, is a conflict: its
// routes would bypass the analysis. The generated VirtualService of an
// analysis that used the Istio router is a leftover.
func (r *Reconciler) readHTTPRoutes(ctx context.Context, w *world) error {
	d, svc := w.deployment, w.service
	if !r.GatewayAPI {
		w.obs.Conflict = fmt.Sprintf("this Deployment uses the %q router, but the cluster served no HTTPRoutes (gateway.networking.k8s.io/v1) when the controller started: install the Gateway API's CRDs and restart the controller",
			contract.RouterGatewayAPI)
		return nil
	}
	var vss istionetv1.VirtualServiceList
	if err := r.Client.List(ctx, &vss, client.InNamespace(d.Namespace), client.UnsafeDisableDeepCopy); err != nil {
		return fmt.Errorf("list virtual services in %s: %w", d.Namespace, err)
	}
	for _, vs := range vss.Items {
		switch {
		case ownedBy(vs, d) && vs.Name == svc.Name:
			w.leftoverVirtualService = vs.DeepCopy()
			w.obs.GeneratedVirtualServiceReplaced = true
		case !ownedBy(vs, d) && servesHost(vs, svc):
			w.obs.Conflict = fmt.Sprintf("VirtualService %s routes the host %s, and this Deployment uses the %q router: remove it, or use the %q router and name it in %s",
				vs.Name, svc.Name, contract.RouterGatewayAPI, contract.RouterIstio, contract.KeyVirtualService)
		}
	}
	var list gwv1.HTTPRouteList
	if err := r.Client.List(ctx, &list, client.InNamespace(d.Namespace), client.UnsafeDisableDeepCopy); err != nil {
		return fmt.Errorf("list HTTPRoutes in %s: %w", d.Namespace, err)
	}
	named := map[string]bool{}
	for _, n := range w.settings.HTTPRoutes {
		named[n] = true
	}
	versions := map[string]string{} // name -> resourceVersion in the cache
	for i := range list.Items {
		rt := &list.Items[i]
		versions[rt.Name] = rt.ResourceVersion
		switch {
		case named[rt.Name]:
			w.userHTTPRoutes = append(w.userHTTPRoutes, rt.DeepCopy())
		case ownedBy(rt, d) && rt.Name == svc.Name && len(named) == 0:
			w.httpRoute = rt.DeepCopy()
		case ownedBy(rt, d) && rt.Name == svc.Name:
			w.leftoverHTTPRoute = rt.DeepCopy()
			w.obs.GeneratedVirtualServiceReplaced = true
		case rt.Name == svc.Name && len(named) == 0:
			w.obs.Conflict = fmt.Sprintf("HTTPRoute %s exists and belongs to someone else", rt.Name)
		case !ownedBy(rt, d) && attachedTo(rt, svc):
			w.obs.Conflict = fmt.Sprintf("HTTPRoute %s is attached to the Service %s and is not named in %s: name it there to have it steered",
				rt.Name, svc.Name, contract.KeyHTTPRoute)
		}
	}
	names := w.settings.HTTPRoutes
	if len(names) == 0 {
		names = []string{svc.Name}
		if _, err := generatedHTTPRoute(d, svc, routing{}); err != nil {
			w.obs.Conflict = err.Error()
		}
	}
	// Our own last weight write must be in what this pass read (see
	// readVirtualServices).
	for _, n := range names {
		rv, found := versions[n]
		if r.routeStale("HTTPRoute", d.Namespace, n, found, rv) {
			return errStaleCache
		}
	}
	if len(w.userHTTPRoutes) != len(named) {
		w.obs.Conflict = fmt.Sprintf("an HTTPRoute named in %s (%v) does not exist", contract.KeyHTTPRoute, w.settings.HTTPRoutes)
	}
	for _, rt := range w.userHTTPRoutes {
		if err := steerHTTPRoute(rt.DeepCopy(), svc, 50); err != nil {
			w.obs.Conflict = fmt.Sprintf("%v: it cannot be steered", err)
		}
	}
	steered := w.userHTTPRoutes
	if w.httpRoute != nil {
		steered = []*gwv1.HTTPRoute{w.httpRoute}
	}
	for i, rt := range steered {
		weight := steeredRouteWeight(rt, svc)
		if w.settings.Strategy == contract.StrategyAB && ruleToCanary(rt, svc) {
			weight = 100 // the match rule
		}
		observeRouted(w, i == 0, rt, weight)
		if w.httpRoute != nil {
			// Only the generated route mirrors (a mirror in the user's
			// routes is theirs: never written, never removed here).
			w.obs.RoutedMirror = mirroredRouteShare(rt, svc)
		}
	}
	return nil
}

// observeRouted records what a steered route object routes: the first
// one's weight is the weight routed; one whose weight is not the system's
// record of its last write was changed by someone else.
func observeRouted(w *world, first bool, route client.Object, weight int32) {
	if first {
		w.obs.RoutedWeight = weight
	}
	if rec, ok := route.GetAnnotations()[AnnotationWeight]; ok && rec != strconv.Itoa(int(weight)) {
		w.obs.RoutingChangedBySomeoneElse = fmt.Sprintf("%s %s routes %d%% to the canary, but the system last wrote %s%%", kindOf(route), route.GetName(), weight, rec)
	}
}

// readVirtualServices reads the VirtualService(s) to steer: the user's,
// named in canary.io/virtualservice, or the generated <service>. A user
// VirtualService for the Service's host that is not named is a conflict:
// its routes would bypass the analysis.
func (r *Reconciler) readVirtualServices(ctx context.Context, w *world) error {
	d, svc := w.deployment, w.service
	// Read only (the cache's objects); the ones kept are copied.
	var list istionetv1.VirtualServiceList
	if err := r.Client.List(ctx, &list, client.InNamespace(d.Namespace), client.UnsafeDisableDeepCopy); err != nil {
		return fmt.Errorf("list virtual services in %s: %w", d.Namespace, err)
	}
	named := map[string]bool{}
	for _, n := range w.settings.VirtualServices {
		named[n] = true
	}
	for _, vs := range list.Items {
		switch {
		case named[vs.Name]:
			w.userVirtualServices = append(w.userVirtualServices, vs.DeepCopy())
		case ownedBy(vs, d) && vs.Name == svc.Name && len(named) == 0:
			w.virtualService = vs.DeepCopy()
		case ownedBy(vs, d) && vs.Name == svc.Name:
			w.leftoverVirtualService = vs.DeepCopy()
			w.obs.GeneratedVirtualServiceReplaced = true
		case !ownedBy(vs, d) && servesHost(vs, svc):
			w.obs.Conflict = fmt.Sprintf("VirtualService %s routes the host %s and is not named in %s: name it there to have it steered",
				vs.Name, svc.Name, contract.KeyVirtualService)
		}
	}
	// Our own last weight write must be in what this pass read: otherwise
	// a raise already recorded (write-ahead) reads as a weight lowered by
	// someone, and the step would start again.
	steered := map[string]string{} // name -> resourceVersion in the cache
	for _, vs := range list.Items {
		steered[vs.Name] = vs.ResourceVersion
	}
	names := w.settings.VirtualServices
	if len(names) == 0 {
		names = []string{svc.Name}
	}
	for _, n := range names {
		rv, found := steered[n]
		if r.routeStale("VirtualService", d.Namespace, n, found, rv) {
			return errStaleCache
		}
	}
	if len(w.userVirtualServices) != len(named) {
		w.obs.Conflict = fmt.Sprintf("a VirtualService named in %s (%v) does not exist", contract.KeyVirtualService, w.settings.VirtualServices)
	}
	steeredVS := w.userVirtualServices
	if w.virtualService != nil {
		steeredVS = []*istionetv1.VirtualService{w.virtualService}
	}
	for i, vs := range steeredVS {
		weight := steeredWeight(vs, svc)
		if w.settings.Strategy == contract.StrategyAB && routesToCanary(vs, svc) {
			weight = 100 // the match route
		}
		observeRouted(w, i == 0, vs, weight)
		if w.virtualService != nil {
			// Only the generated route mirrors (see readHTTPRoutes).
			w.obs.RoutedMirror = mirroredShare(vs, svc)
		}
	}
	return nil
}

// servesHost reports whether a VirtualService's hosts include the Service.
func servesHost(vs *istionetv1.VirtualService, svc *corev1.Service) bool {
	for _, h := range vs.Spec.Hosts {
		if hostIs(h, svc) {
			return true
		}
	}
	return false
}

// getOwned gets an object by name; one of another owner is a conflict.
func (r *Reconciler) getOwned(ctx context.Context, d *appsv1.Deployment, name string, obj client.Object, obs *plan.Observations) (bool, error) {
	err := r.Client.Get(ctx, types.NamespacedName{Namespace: d.Namespace, Name: name}, obj)
	if apierrors.IsNotFound(err) {
		return false, nil
	} else if err != nil {
		return false, fmt.Errorf("get %T %s/%s: %w", obj, d.Namespace, name, err)
	}
	if !ownedBy(obj, d) {
		obs.Conflict = fmt.Sprintf("%s %s exists and belongs to someone else", kindOf(obj), name)
		return false, nil
	}
	return true, nil
}

func kindOf(obj client.Object) string {
	switch obj.(type) {
	case *appsv1.Deployment:
		return "Deployment"
	case *corev1.Service:
		return "Service"
	case *istionetv1.DestinationRule:
		return "DestinationRule"
	case *istionetv1.VirtualService:
		return "VirtualService"
	case *gwv1.HTTPRoute:
		return "HTTPRoute"
	}
	return "object"
}

// hostIs reports whether an Istio host names the Service (short name or
// fully qualified).
func hostIs(host string, svc *corev1.Service) bool {
	return host == svc.Name || host == svc.Name+"."+svc.Namespace ||
		host == svc.Name+"."+svc.Namespace+".svc" || host == svc.Name+"."+svc.Namespace+".svc.cluster.local"
}

func controllerName(p *corev1.Pod) string {
	for _, ref := range p.OwnerReferences {
		if ref.Controller != nil && *ref.Controller {
			return ref.Name
		}
	}
	return ""
}

// ownedByName reports whether a canary pod belongs to a ReplicaSet of the
// named canary Deployment (ReplicaSets are named <deployment>-<hash>).
func ownedByName(p *corev1.Pod, deployment string) bool {
	name := controllerName(p)
	return len(name) > len(deployment) && name[:len(deployment)+1] == deployment+"-"
}

// rolloutComplete reports whether the Deployment's rolling update is done:
// every replica updated and available, no old pods left.
func rolloutComplete(d *appsv1.Deployment) bool {
	s := d.Status
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	return s.ObservedGeneration >= d.Generation && s.UpdatedReplicas == want &&
		s.Replicas == want && s.AvailableReplicas == want
}

// stableHash finds the pod-template-hash of the stable ReplicaSet: the
// Deployment's ReplicaSet whose template is canary.io/stable-revision.
func stableHash(d *appsv1.Deployment, rss []appsv1.ReplicaSet, stable string) (string, error) {
	for i := range rss {
		rs := &rss[i]
		if !ownedBy(rs, d) {
			continue
		}
		t := rs.Spec.Template.DeepCopy()
		hash := t.Labels[podTemplateHash]
		delete(t.Labels, podTemplateHash)
		if len(t.Labels) == 0 {
			t.Labels = nil
		}
		if contract.TemplateHash(t) == stable && hash != "" {
			return hash, nil
		}
	}
	return "", fmt.Errorf("no ReplicaSet of deployment %s/%s runs the stable revision %s", d.Namespace, d.Name, stable)
}
