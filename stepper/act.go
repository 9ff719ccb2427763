package stepper

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/canary-io/canary/contract"
	"github.com/canary-io/canary/stepper/notify"
	"github.com/canary-io/canary/stepper/plan"
)

// act executes a decision's actions in the order the plan gave them and
// stops at the first error; the next pass decides again from what was
// recorded. The state write (plan.ActionWriteState) is one update of the
// Deployment, followed by its Events; SetProgressingFailed writes the
// status after it.
func (r *Reconciler) act(ctx context.Context, w *world, dec plan.Decision) error {
	d := w.deployment.DeepCopy()
	var announced *plan.Event
	for _, a := range dec.Actions {
		var err error
		began := time.Now()
		switch a.Kind {
		case plan.ActionWriteState:
			if announced, err = r.writeState(ctx, w, dec, d); err == nil {
				// The metrics mirror what is recorded, from the moment it is.
				r.Metrics.observe(w, dec, w.obs.Now)
			}
		case plan.ActionEnsureCanary:
			err = r.ensureCanary(ctx, w, a.Replicas)
		case plan.ActionPinService:
			err = r.pin(ctx, w, true)
		case plan.ActionUnpinService:
			err = r.pin(ctx, w, false)
		case plan.ActionSetWeight:
			if err = r.setWeight(ctx, w, a.Weight, a.Mirror); err == nil {
				r.Metrics.routed(w, dec.Next, r.Clock.Now())
			}
		case plan.ActionDeleteCanary:
			err = r.deleteCanary(ctx, w)
		case plan.ActionDeleteGeneratedVirtualService:
			// The generated route of either router that this analysis
			// does not use.
			err = r.deleteLeftoverRoutes(ctx, w)
		case plan.ActionSetProgressingFailed:
			err = r.setProgressingFailed(ctx, d, a.Message)
		case plan.ActionUnpause:
			// A write of its own, after what the plan put before it (the
			// Service's unpin).
			if d.Spec.Paused {
				last := d.DeepCopy() // as the state write left it
				d.Spec.Paused = false
				if id := transitionID(d.Annotations); r.wasEmitted(d, id) {
					// The promotion's Event went out after its state
					// write (the pass before this one): this write
					// records it, and no state write is made for it.
					d.Annotations[contract.KeyEventedTransition] = id
				}
				// A conflict with the deployment controller's status
				// write since the state write is retried, not taken for
				// someone's change.
				err = r.updateDeploymentOver(ctx, w.deployment, last, d)
			}
		case plan.ActionRecordRejected:
			// Carried by the state write.
		}
		r.Metrics.took(string(a.Kind), time.Since(began))
		if err != nil {
			return fmt.Errorf("%s for deployment %s/%s: %w", a, d.Namespace, d.Name, err)
		}
	}
	if w.obs.Failing != "" && dec.Next.Phase == w.state.Phase {
		if err := r.clearFailure(ctx, w, dec, d); err != nil {
			return err
		}
	}
	if phase := contract.Phase(d.Annotations[contract.KeyPhase]); analysisEnded(w.state.Phase, dec.Next.Phase, announced) {
		r.callPostRollout(ctx, w, d, phase)
	}
	return nil
}

// clearFailure removes the failure record once a pass did all it decided,
// and puts the decision's message back.
func (r *Reconciler) clearFailure(ctx context.Context, w *world, dec plan.Decision, d *appsv1.Deployment) error {
	delete(d.Annotations, contract.KeyFailing)
	delete(d.Annotations, contract.KeyFailingSince)
	if dec.Message != "" {
		d.Annotations[contract.KeyMessage] = plan.CapMessage(dec.Message + comparisonNote(w, dec))
	}
	// An update on the version this pass wrote (the controller is granted
	// no patch of Deployments): a conflict decides again.
	if err := r.Client.Update(ctx, d); err != nil {
		return fmt.Errorf("clear the failure record of %s/%s: %w", d.Namespace, d.Name, err)
	}
	return nil
}

// writeState is the state write of a decision: one update of the
// Deployment d (a copy of the one the pass read, updated in place), with
// the resourceVersion this pass read, so that a newer template from a
// user makes it fail and the next pass decides on the new state; then the
// Events of the pass: the earlier transition's it announces, if any
// (returned), and its own.
func (r *Reconciler) writeState(ctx context.Context, w *world, dec plan.Decision, d *appsv1.Deployment) (*plan.Event, error) {
	next := plan.Encode(w.spec, dec.Next)
	for _, k := range plan.StateKeys {
		if v, ok := next[k]; ok {
			d.Annotations[k] = v
		} else {
			delete(d.Annotations, k)
		}
	}
	// While a failure is recorded its message stays (until the pass that
	// does all it decided clears it: clearFailure), so that failing passes
	// do not write the Deployment twice each.
	if dec.Message != "" && (w.obs.Failing == "" || dec.Next.Phase != w.state.Phase) {
		if recorded := d.Annotations[contract.KeyMessage]; !onlyTheNoteDiffers(recorded, dec.Message) {
			d.Annotations[contract.KeyMessage] = plan.CapMessage(dec.Message + comparisonNote(w, dec))
		}
	}
	transition := dec.Next.Phase != w.state.Phase
	if dec.Evented != "" {
		d.Annotations[contract.KeyEventedTransition] = dec.Evented
	}
	if transition {
		// The decision's time, not a second clock read; the reason lets
		// the Event be emitted again if this process stops before it.
		d.Annotations[contract.KeyLastTransition] = w.obs.Now.UTC().Format(time.RFC3339)
		if dec.Event != nil {
			d.Annotations[contract.KeyTransitionReason] = dec.Event.Reason
		}
	}
	if dec.Next.Phase != w.state.Phase {
		// A transition ends whatever kept failing in the phase it leaves.
		delete(d.Annotations, contract.KeyFailing)
		delete(d.Annotations, contract.KeyFailingSince)
	}
	for _, a := range dec.Actions {
		switch a.Kind {
		case plan.ActionRecordRejected:
			d.Annotations[contract.KeyRejectedRevision] = a.Revision
			d.Annotations[contract.KeyRejection] = fmt.Sprintf("at %s: %s", w.obs.Now.UTC().Format(time.RFC3339), a.Reason)
		}
	}
	if !maps.Equal(d.Annotations, w.deployment.Annotations) {
		if err := r.updateDeployment(ctx, w.deployment, d); err != nil {
			return nil, err
		}
	}
	for _, e := range []*plan.Event{dec.Announce, dec.Passed, dec.Event} {
		if e != nil {
			r.emit(ctx, w, d, e)
		}
	}
	if a := dec.Announce; a != nil && a.Reason == plan.ReasonAnalysisSkipped {
		r.Metrics.analysisSkipped(d.Namespace, d.Name)
	}
	if dec.Announce != nil {
		r.notifyTransition(w, d, dec.Announce)
	}
	if transition && dec.Event != nil {
		r.notifyTransition(w, d, dec.Event)
	}
	if transition && dec.Event != nil {
		r.emitted(d, transitionID(d.Annotations)) // recorded as evented by the next pass
	}
	return dec.Announce, nil
}

// notifyTransition tells the providers the Deployment names
// (canary.io/notify) of a transition, its Event e: warn for a warning (a
// rollback, a hold, skip-analysis), info otherwise. In the background:
// a provider never delays the pass.
func (r *Reconciler) notifyTransition(w *world, d *appsv1.Deployment, e *plan.Event) {
	if r.Notify == nil || len(w.settings.Notify) == 0 {
		return
	}
	a := d.Annotations
	n := notify.Notification{
		Namespace: d.Namespace, Deployment: d.Name, Revision: a[contract.KeyRevision], Phase: a[contract.KeyPhase],
		Reason: e.Reason, Severity: notify.Info, Message: e.Message,
		Step: a[contract.KeyStep], Weight: a[contract.KeyWeight], Time: w.obs.Now.UTC(),
	}
	if e.Type == plan.EventWarning {
		n.Severity = notify.Warn
	}
	r.Notify.Send(d.Namespace, w.settings.Notify, n)
}

// maxFailing bounds the error text kept in canary.io/failing.
const maxFailing = 512

// recordFailure makes a pass of an analysis in flight (or of a promotion,
// which never rolls back) that could not do what it decided visible and
// bounded: the error goes into the message and canary.io/failing, and
// canary.io/failing-since keeps when the failures began, so that
// plan.Next rolls back an analysis at the progress deadline.
// Best effort: when this write fails too (the apiserver refuses the
// controller's writes), the pass's error is retried with backoff.
func (r *Reconciler) recordFailure(ctx context.Context, w *world, dec plan.Decision, actErr error) {
	phase := w.state.Phase
	if phase != contract.PhaseProgressing && phase != contract.PhasePaused && phase != contract.PhasePromoting {
		return
	}
	since := w.obs.FailingSince
	if since.IsZero() {
		since = r.Clock.Now().UTC().Truncate(time.Second)
	}
	why := plan.Cap(actErr.Error(), maxFailing)
	var cur appsv1.Deployment
	if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(w.deployment), &cur); err != nil {
		return
	}
	if cur.Annotations[contract.KeyRevision] != w.state.Revision {
		return // a new analysis meanwhile: this failure is not its
	}
	if cur.Annotations == nil {
		cur.Annotations = map[string]string{}
	}
	cur.Annotations[contract.KeyFailing] = why
	cur.Annotations[contract.KeyFailingSince] = since.Format(time.RFC3339)
	promoteAsked := dec.Event != nil && dec.Event.Reason == plan.ReasonPromoteRequested
	if msg := failureMessage(contract.Phase(cur.Annotations[contract.KeyPhase]), promoteAsked, why, since.Add(w.spec.ProgressDeadline)); msg != "" {
		cur.Annotations[contract.KeyMessage] = plan.CapMessage(msg)
	}
	if err := r.Client.Update(ctx, &cur); err != nil { // on the version just read
		log.FromContext(ctx).Info("could not record the failure", "err", err.Error())
	}
}

// failureMessage is the message of a pass that could not act, in the
// phase the Deployment records: an analysis in flight rolls back at
// deadline if it keeps failing; a promotion (the pass recorded Promoting,
// then an action after it failed, the unpause say) is never rolled back:
// it retries. So is the promotion a user asked for (promoteAsked: a new
// canary.io/promote, which every pass acts on before the deadline until
// it is recorded). An analysis the pass ended (it recorded RolledBack or
// Succeeded, then its cleanup failed) keeps the message that says why it
// ended: "" (canary.io/failing holds the error until a pass succeeds).
func failureMessage(phase contract.Phase, promoteAsked bool, why string, deadline time.Time) string {
	switch {
	case phase == contract.PhasePromoting:
		return fmt.Sprintf("cannot act: %s; the promotion retries until it can (a promotion is not rolled back)", why)
	case promoteAsked && (phase == contract.PhaseProgressing || phase == contract.PhasePaused):
		return fmt.Sprintf("cannot act: %s; the promotion canary.io/promote asked for retries until it can (it is not rolled back at the progress deadline)", why)
	case phase == contract.PhaseProgressing || phase == contract.PhasePaused:
		return fmt.Sprintf("cannot act: %s; rolling back at %s if it keeps failing", why, deadline.UTC().Format(time.RFC3339))
	}
	return ""
}

// analysisEnded reports whether this pass recorded the end of an analysis:
// its own transition to Succeeded or RolledBack, or the webhook's rollback
// (the stable template applied again) announced.
func analysisEnded(from, to contract.Phase, announced *plan.Event) bool {
	if from != to {
		return to == contract.PhaseSucceeded || to == contract.PhaseRolledBack
	}
	return announced != nil && announced.Reason == plan.ReasonRevertedByUser
}

// transitionID names a transition: its phase, revision and time. The time
// alone has whole seconds and two transitions can share one (a template
// held the second the Deployment was created).
//
// Example: "Progressing/5bf786ccdb/2026-11-27T14:00:01Z".
func transitionID(a map[string]string) string {
	return a[contract.KeyPhase] + "/" + a[contract.KeyRevision] + "/" + a[contract.KeyLastTransition]
}

// onlyTheNoteDiffers reports whether the recorded message is the
// decision's message with a comparison note (or none): then the message
// is not written again for the note alone. The note changes with every
// read of the comparison (and is unknown to a new process until its
// first read): writing the Deployment for it would cost a write per
// period per analysis, and after a restart the first write would undo
// the last process's note rather than move the analysis on. The note is
// brought up to date by the next write the analysis makes (a step
// started, passed or failed, a wait); a regression rolls back, which is
// a write of its own.
func onlyTheNoteDiffers(recorded, message string) bool {
	rest, ok := strings.CutPrefix(recorded, message)
	if !ok {
		return false
	}
	for _, note := range []string{"", "; continuous comparison", "; canary error rate ", "; canary slow-request rate "} {
		if rest == note || note != "" && strings.HasPrefix(rest, note) {
			return true
		}
	}
	return false
}

// comparisonNote is the continuous comparison's evidence so far, appended
// to the message while an analysis runs: "; canary error rate 0.2% vs
// stable 0.1%: …", or that it cannot compare (no stable traffic, only
// header-matched routes), so the threshold checks decide alone.
func comparisonNote(w *world, dec plan.Decision) string {
	v := w.comparison
	phase := dec.Next.Phase
	if phase != contract.PhaseProgressing && phase != contract.PhasePaused {
		return ""
	}
	if v == nil && w.comparisonErr != nil {
		return "; continuous comparison unavailable: " + w.comparisonErr.Error()
	}
	if v == nil || v.Regression {
		return ""
	}
	if !v.Errors.Comparable {
		return "; continuous comparison: no stable traffic to compare with yet, the threshold checks decide alone"
	}
	return "; " + v.Summary
}

// updateDeployment writes the Deployment with the resourceVersion the
// decision was made on. When that write conflicts only because the
// deployment controller wrote the status since (same generation, same
// annotations), the decision still holds: it is written again on the
// fresh resourceVersion. Any other change fails the pass, and the next
// one decides anew.
func (r *Reconciler) updateDeployment(ctx context.Context, read, want *appsv1.Deployment) error {
	return r.updateDeploymentOver(ctx, read, read, want)
}

// updateDeploymentOver is updateDeployment for a pass's later write: last
// is the version its earlier write left (the apiserver's answer), which a
// conflict's fresh copy is compared with; read, the version it decided
// on, stays marked as written over.
func (r *Reconciler) updateDeploymentOver(ctx context.Context, read, last, want *appsv1.Deployment) error {
	err := retry.OnError(conflictBackoff, apierrors.IsConflict, func() error {
		base := want.ResourceVersion
		err := r.Client.Update(ctx, want)
		if err == nil {
			r.superseded(read, base, want.ResourceVersion)
		}
		if !apierrors.IsConflict(err) {
			return err
		}
		var fresh appsv1.Deployment
		if gerr := r.APIReader.Get(ctx, client.ObjectKeyFromObject(want), &fresh); gerr != nil {
			return gerr
		}
		if changedMeanwhile(last, &fresh) {
			return errChangedMeanwhile
		}
		want.ResourceVersion = fresh.ResourceVersion
		want.Status = fresh.Status
		return err
	})
	if err != nil {
		return fmt.Errorf("update deployment %s/%s: %w", want.Namespace, want.Name, err)
	}
	return nil
}

var errChangedMeanwhile = errors.New("changed since this pass read it")

// changedMeanwhile reports whether fresh differs from read in anything but
// what the system's state write may overwrite without loss: the status,
// the resourceVersion and the managed fields (and the type information,
// which a cached copy lacks). A change to labels,
// annotations, finalizers, owner references or the spec (a user's, or
// another controller's) makes the pass decide again on the new object
// rather than write its decision over it.
func changedMeanwhile(read, fresh *appsv1.Deployment) bool {
	a, b := read.DeepCopy(), fresh.DeepCopy()
	for _, x := range []*appsv1.Deployment{a, b} {
		// The cache's copy and the apiserver's differ in TypeMeta too.
		x.TypeMeta, x.ResourceVersion, x.ManagedFields, x.Status = metav1.TypeMeta{}, "", nil, appsv1.DeploymentStatus{}
	}
	return !apiequality.Semantic.DeepEqual(a, b)
}

// conflictBackoff retries writes that lost a race with the deployment
// controller's status updates.
var conflictBackoff = wait.Backoff{Steps: 8, Duration: 20 * time.Millisecond, Factor: 1.5, Jitter: 0.2}

// ensureCanary creates or updates <deployment>-canary with replicas, the
// canary Service and DestinationRule, and the generated VirtualService
// (all traffic to the user's Service until a weight is set).
func (r *Reconciler) ensureCanary(ctx context.Context, w *world, replicas int32) error {
	d := w.deployment
	want := canaryDeployment(d, w.state.Revision, replicas)
	if w.canary != nil && !apiequality.Semantic.DeepEqual(w.canary.Spec.Selector, want.Spec.Selector) {
		// The selector is immutable: a template whose labels changed needs
		// a new canary. Its weight is 0 here (the plan scales first).
		if err := r.Client.Delete(ctx, w.canary); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("replace deployment %s: %w", w.canary.Name, err)
		}
		return nil
	}
	// The canary's objects do not depend on each other, and nothing routes
	// to them before a later pass sets a weight: they are written at once,
	// one round trip to a busy apiserver rather than four in a row.
	var g errgroup.Group
	if w.canary == nil {
		g.Go(func() error {
			if err := r.Client.Create(ctx, want); err != nil {
				return fmt.Errorf("create deployment %s: %w", want.Name, err)
			}
			return nil
		})
	} else if !apiequality.Semantic.DeepEqual(w.canary.Spec.Template, want.Spec.Template) || *w.canary.Spec.Replicas != replicas {
		g.Go(func() error {
			c := w.canary.DeepCopy()
			c.Spec.Template, c.Spec.Replicas = want.Spec.Template, want.Spec.Replicas
			if err := r.Client.Update(ctx, c); err != nil {
				return fmt.Errorf("update deployment %s: %w", c.Name, err)
			}
			return nil
		})
	}
	if w.service == nil {
		return g.Wait()
	}
	if w.canaryService == nil {
		g.Go(func() error {
			if err := r.createOnce(ctx, canaryService(d, w.service)); err != nil {
				return fmt.Errorf("create service %s: %w", CanaryName(w.service.Name), err)
			}
			return nil
		})
	}
	wantRule := canaryDestinationRule(d, w.service, w.userRule)
	if w.canaryRule == nil {
		g.Go(func() error {
			if err := r.createOnce(ctx, wantRule); err != nil {
				return fmt.Errorf("create destination rule %s: %w", wantRule.Name, err)
			}
			return nil
		})
	} else if !apiequality.Semantic.DeepEqual(w.canaryRule.Spec.TrafficPolicy, wantRule.Spec.TrafficPolicy) {
		g.Go(func() error {
			rule := w.canaryRule.DeepCopy()
			rule.Spec.TrafficPolicy = wantRule.Spec.TrafficPolicy
			if err := r.Client.Update(ctx, rule); err != nil {
				return fmt.Errorf("update destination rule %s: %w", rule.Name, err)
			}
			return nil
		})
	}
	if generatesRoute(w) {
		g.Go(func() error { return r.setWeight(ctx, w, 0, 0) })
	}
	return g.Wait()
}

// stableHashOf is the pod-template-hash of w's stable ReplicaSet, read
// once per Deployment and stable revision: from the apiserver, only the
// ReplicaSets the Deployment's selector selects, so that no cache of
// every ReplicaSet of the cluster is kept for it, and remembered (a
// ReplicaSet's hash never changes).
func (r *Reconciler) stableHashOf(ctx context.Context, w *world) (string, error) {
	d := w.deployment
	key := fmt.Sprintf("%s/%s/%s/%s", d.Namespace, d.Name, d.UID, w.state.Stable)
	r.mu.Lock()
	hash, ok := r.stableHashes[key]
	r.mu.Unlock()
	if ok {
		return hash, nil
	}
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil {
		return "", fmt.Errorf("the selector of deployment %s/%s: %w", d.Namespace, d.Name, err)
	}
	var rss appsv1.ReplicaSetList
	if err := r.APIReader.List(ctx, &rss, client.InNamespace(d.Namespace), client.MatchingLabelsSelector{Selector: sel}); err != nil {
		return "", fmt.Errorf("list replica sets: %w", err)
	}
	if hash, err = stableHash(d, rss.Items, w.state.Stable); err != nil {
		return "", err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stableHashes == nil {
		r.stableHashes = map[string]string{}
	}
	for k := range r.stableHashes {
		if strings.HasPrefix(k, d.Namespace+"/"+d.Name+"/") {
			delete(r.stableHashes, k) // an earlier stable revision's
		}
	}
	r.stableHashes[key] = hash
	return hash, nil
}

// pin adds (or removes) the stable ReplicaSet's pod-template-hash to the
// user's Service selector.
func (r *Reconciler) pin(ctx context.Context, w *world, on bool) error {
	svc := w.service
	if svc == nil {
		return nil
	}
	updated := svc.DeepCopy()
	if on {
		hash, err := r.stableHashOf(ctx, w)
		if err != nil {
			return err
		}
		owner := PinOwner(w.deployment)
		if updated.Spec.Selector[podTemplateHash] == hash && updated.Annotations[contract.KeyPinned] == hash &&
			updated.Annotations[contract.KeyPinnedBy] == owner {
			return nil
		}
		updated.Spec.Selector = maps.Clone(updated.Spec.Selector)
		updated.Spec.Selector[podTemplateHash] = hash
		// The annotation, written with the pin, makes the webhook keep it.
		if updated.Annotations == nil {
			updated.Annotations = map[string]string{}
		}
		updated.Annotations[contract.KeyPinned] = hash
		updated.Annotations[contract.KeyPinnedBy] = owner
	} else {
		_, pinned := svc.Spec.Selector[podTemplateHash]
		_, marked := svc.Annotations[contract.KeyPinned]
		if !pinned && !marked {
			return nil
		}
		updated = unpinned(svc)
	}
	// A merge patch of what changed, on the version read: fields of the
	// Service this client does not know are kept as they are.
	if err := r.Client.Patch(ctx, updated, client.MergeFromWithOptions(svc, client.MergeFromWithOptimisticLock{})); err != nil {
		return fmt.Errorf("update service %s selector: %w", svc.Name, err)
	}
	w.service = updated
	return nil
}

// deleteLeftoverRoutes deletes the generated route of either router that
// this analysis does not use.
func (r *Reconciler) deleteLeftoverRoutes(ctx context.Context, w *world) error {
	var leftovers []client.Object
	if w.leftoverVirtualService != nil {
		leftovers = append(leftovers, w.leftoverVirtualService)
	}
	if w.leftoverHTTPRoute != nil {
		leftovers = append(leftovers, w.leftoverHTTPRoute)
	}
	for _, o := range leftovers {
		if err := r.deleteOnce(ctx, o); err != nil {
			return fmt.Errorf("delete %s %s: %w", kindOf(o), o.GetName(), err)
		}
	}
	return nil
}

// generatesRoute reports whether the analysis generates its route (the
// user names none) and it does not exist yet.
func generatesRoute(w *world) bool {
	if w.settings.Router == contract.RouterGatewayAPI {
		return w.httpRoute == nil && len(w.settings.HTTPRoutes) == 0
	}
	return w.virtualService == nil && len(w.settings.VirtualServices) == 0
}

// setWeight steers the generated VirtualService: weight percent to the
// canary, the rest to the user's Service, and the record of what it wrote.
func (r *Reconciler) setWeight(ctx context.Context, w *world, weight, mirror int32) error {
	if w.service == nil {
		return nil
	}
	if w.settings.Router == contract.RouterGatewayAPI {
		return r.setRouteWeight(ctx, w, weight, mirror)
	}
	if len(w.settings.VirtualServices) > 0 {
		for i, vs := range w.userVirtualServices {
			steered := vs.DeepCopy()
			steer(steered, w.service, weight)
			setRecordedWeight(steered, weight)
			patch, err := steerPatch(vs, steered)
			if err != nil {
				return fmt.Errorf("steer virtual service %s: %w", vs.Name, err)
			}
			if err := r.Client.Patch(ctx, steered, patch); err != nil {
				return fmt.Errorf("steer virtual service %s: %w", vs.Name, err)
			}
			if steered.ResourceVersion != vs.ResourceVersion {
				r.wroteRoute("VirtualService", vs.Namespace, vs.Name, vs.ResourceVersion)
			}
			w.userVirtualServices[i] = steered
		}
		return nil
	}
	want := generatedVirtualService(w.deployment, w.service, routingFor(w, weight, mirror))
	if w.virtualService == nil {
		if err := r.Client.Create(ctx, want); err != nil {
			return fmt.Errorf("create virtual service %s: %w", want.Name, err)
		}
		r.wroteRoute("VirtualService", want.Namespace, want.Name, "")
		w.virtualService = want
		return nil
	}
	vs := w.virtualService.DeepCopy()
	vs.Spec.Hosts, vs.Spec.Http = want.Spec.Hosts, want.Spec.Http
	setRecordedWeight(vs, weight)
	if err := r.Client.Update(ctx, vs); err != nil {
		return fmt.Errorf("update virtual service %s: %w", vs.Name, err)
	}
	if vs.ResourceVersion != w.virtualService.ResourceVersion {
		r.wroteRoute("VirtualService", vs.Namespace, vs.Name, w.virtualService.ResourceVersion)
	}
	w.virtualService = vs
	return nil
}

// setRouteWeight is setWeight for the Gateway API router: the user's
// HTTPRoutes named in canary.io/httproute (only their backendRefs to the
// Service, by a JSON patch on the version read), or the generated
// HTTPRoute <service>.
func (r *Reconciler) setRouteWeight(ctx context.Context, w *world, weight, mirror int32) error {
	if len(w.settings.HTTPRoutes) > 0 {
		for i, rt := range w.userHTTPRoutes {
			steered := rt.DeepCopy()
			if err := steerHTTPRoute(steered, w.service, weight); err != nil {
				return err
			}
			setRecordedRouteWeight(steered, weight)
			patch, err := steerHTTPRoutePatch(rt, steered)
			if err != nil {
				return fmt.Errorf("steer HTTPRoute %s: %w", rt.Name, err)
			}
			if err := r.Client.Patch(ctx, steered, patch); err != nil {
				return fmt.Errorf("steer HTTPRoute %s: %w", rt.Name, err)
			}
			if steered.ResourceVersion != rt.ResourceVersion {
				r.wroteRoute("HTTPRoute", rt.Namespace, rt.Name, rt.ResourceVersion)
			}
			w.userHTTPRoutes[i] = steered
		}
		return nil
	}
	want, err := generatedHTTPRoute(w.deployment, w.service, routingFor(w, weight, mirror))
	if err != nil {
		return err
	}
	if w.httpRoute == nil {
		if err := r.Client.Create(ctx, want); err != nil {
			return fmt.Errorf("create HTTPRoute %s: %w", want.Name, err)
		}
		r.wroteRoute("HTTPRoute", want.Namespace, want.Name, "")
		w.httpRoute = want
		return nil
	}
	rt := w.httpRoute.DeepCopy()
	rt.Spec.ParentRefs, rt.Spec.Rules = want.Spec.ParentRefs, want.Spec.Rules
	setRecordedRouteWeight(rt, weight)
	if err := r.Client.Update(ctx, rt); err != nil {
		return fmt.Errorf("update HTTPRoute %s: %w", rt.Name, err)
	}
	if rt.ResourceVersion != w.httpRoute.ResourceVersion {
		r.wroteRoute("HTTPRoute", rt.Namespace, rt.Name, w.httpRoute.ResourceVersion)
	}
	w.httpRoute = rt
	return nil
}

// deleteCanary deletes the canary objects the Deployment owns (never an
// object of another owner under the same name).
func (r *Reconciler) deleteCanary(ctx context.Context, w *world) error {
	var objs []client.Object
	if w.canary != nil {
		objs = append(objs, w.canary)
	}
	if w.canaryService != nil {
		objs = append(objs, w.canaryService)
	}
	if w.canaryRule != nil {
		objs = append(objs, w.canaryRule)
	}
	// Nothing routes to them any more (the plan deletes the canary only
	// after the weight left it): they go at once, one round trip to a
	// busy apiserver rather than three in a row.
	var g errgroup.Group
	for _, o := range objs {
		g.Go(func() error {
			if err := r.deleteOnce(ctx, o, client.PropagationPolicy(metav1.DeletePropagationBackground)); err != nil {
				return fmt.Errorf("delete %s %s: %w", kindOf(o), o.GetName(), err)
			}
			return nil
		})
	}
	return g.Wait()
}

// deleteOnce deletes o (its UID as a precondition: never another object
// under the same name), unless this stepper deleted it less than
// recentWritesFor ago and the cache still serves it; gone already is no
// error.
func (r *Reconciler) deleteOnce(ctx context.Context, o client.Object, opts ...client.DeleteOption) error {
	uid := o.GetUID()
	key := "delete/" + string(uid)
	if r.recent.made(key, r.Clock.Now()) {
		return nil
	}
	err := r.Client.Delete(ctx, o, append(opts, client.Preconditions{UID: &uid})...)
	if err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	r.recent.record(key, r.Clock.Now())
	r.recent.forget(createKey(o)) // an analysis that starts now creates it again
	return nil
}

// createKey names the create of o's kind and name for recentWrites.
func createKey(o client.Object) string {
	return fmt.Sprintf("create/%s/%s/%s", kindOf(o), o.GetNamespace(), o.GetName())
}

// createOnce creates o, unless this stepper created an object of its
// kind under its name less than recentWritesFor ago and the cache does
// not serve it yet; there already is no error.
func (r *Reconciler) createOnce(ctx context.Context, o client.Object) error {
	key := createKey(o)
	if r.recent.made(key, r.Clock.Now()) {
		return nil
	}
	if err := r.Client.Create(ctx, o); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	r.recent.record(key, r.Clock.Now())
	return nil
}

// setProgressingFailed sets the Deployment's Progressing condition to
// False with reason ProgressDeadlineExceeded, so that kubectl rollout
// status fails and GitOps tools report the failure. The deployment
// controller keeps that reason while the Deployment is paused.
func (r *Reconciler) setProgressingFailed(ctx context.Context, d *appsv1.Deployment, msg string) error {
	err := retry.OnError(conflictBackoff, apierrors.IsConflict, func() error {
		return r.writeProgressingFailed(ctx, d, msg)
	})
	if err != nil {
		return fmt.Errorf("set progressing condition of %s/%s: %w", d.Namespace, d.Name, err)
	}
	return nil
}

func (r *Reconciler) writeProgressingFailed(ctx context.Context, d *appsv1.Deployment, msg string) error {
	var cur appsv1.Deployment
	if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(d), &cur); err != nil {
		return err
	}
	now := metav1.NewTime(r.Clock.Now())
	cond := appsv1.DeploymentCondition{
		Type: appsv1.DeploymentProgressing, Status: corev1.ConditionFalse, Reason: "ProgressDeadlineExceeded",
		Message: "canary.io: " + msg, LastUpdateTime: now, LastTransitionTime: now,
	}
	replaced := false
	for i, c := range cur.Status.Conditions {
		if c.Type == appsv1.DeploymentProgressing {
			if c.Status == cond.Status && c.Reason == cond.Reason && c.Message == cond.Message {
				return nil
			}
			cur.Status.Conditions[i] = cond
			replaced = true
		}
	}
	if !replaced {
		cur.Status.Conditions = append(cur.Status.Conditions, cond)
	}
	return r.Client.Status().Update(ctx, &cur)
}
