package webhook

import (
	"bytes"
	"fmt"
	"maps"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"

	"github.com/canary-io/canary/contract"
	"github.com/canary-io/canary/stepper/plan"
)

// Request is what the admission decision needs to know.
type Request struct {
	// Old is the stored Deployment; nil on create.
	Old *appsv1.Deployment
	// New is the Deployment as the client sent it (after defaulting).
	New *appsv1.Deployment
	// ByController is true when the system's own controller is writing.
	ByController bool
	// Now is the admission time (for canary.io/last-transition).
	Now time.Time
	// ScrapeInterval is Prometheus' scrape interval as the controller last
	// discovered it, zero when unknown: a step interval shorter than two
	// scrapes is warned about.
	ScrapeInterval time.Duration
	// Egress is where the URLs users write may point.
	Egress Egress
	// User is who makes the request (the admission request's user name):
	// the emergency path records it.
	User string
}

// Response is the admission decision.
type Response struct {
	// Denied, when not empty, refuses the request with this reason.
	Denied string
	// Object is what is stored: New as Mutate changed it. Nil when denied.
	Object *appsv1.Deployment
	// Warnings are shown to the client (kubectl prints them).
	Warnings []string
}

// Mutate decides what becomes of a write to a Deployment: see the package
// documentation for the table. It never modifies its arguments.
func Mutate(req Request) Response {
	// Mutate changes only spec.paused and the annotations: a shallow copy
	// with its own annotations map is enough, and an admission review
	// never pays for a deep copy of the whole object.
	obj := *req.New
	obj.Annotations = maps.Clone(req.New.Annotations)
	if obj.Annotations == nil {
		obj.Annotations = map[string]string{}
	}
	d := &decision{req: req, obj: &obj}
	switch {
	case req.Old == nil:
		d.create()
	case req.ByController:
		d.byController()
	default:
		d.byUser()
	}
	if d.denied != "" {
		return Response{Denied: d.denied}
	}
	d.warnShortInterval()
	d.warnUnjudged()
	if len(d.obj.Annotations) == 0 && len(req.New.Annotations) == 0 {
		d.obj.Annotations = req.New.Annotations // keep nil as nil: no spurious patch
	}
	return Response{Object: d.obj, Warnings: d.warnings}
}

// decision is one Mutate call's working state.
type decision struct {
	req      Request
	obj      *appsv1.Deployment // the object being decided: New with its own annotations; only they and spec.paused change
	warnings []string
	denied   string

	oldJSON, newJSON []byte // the templates' canonical JSON, computed once
}

// templates returns the canonical JSON of the old and new templates.
func (d *decision) templates() (old, new []byte) {
	if d.newJSON == nil {
		d.newJSON = contract.TemplateJSON(&d.obj.Spec.Template)
		if d.req.Old != nil {
			d.oldJSON = contract.TemplateJSON(&d.req.Old.Spec.Template)
		}
	}
	return d.oldJSON, d.newJSON
}

// templateChanged reports whether the update changes the pod template.
func (d *decision) templateChanged() bool {
	old, new := d.templates()
	return !bytes.Equal(old, new)
}

// newRevision and oldRevision are the templates' short hashes.
func (d *decision) newRevision() string { _, n := d.templates(); return contract.HashOfTemplateJSON(n) }
func (d *decision) oldRevision() string { o, _ := d.templates(); return contract.HashOfTemplateJSON(o) }

// warnShortInterval warns a user whose opted-in Deployment's step
// interval is shorter than two scrapes of Prometheus, with the window the
// checks will read instead: when it is created, when canary.io/interval
// or canary.io/window change, and when an analysis starts.
func (d *decision) warnShortInterval() {
	if d.req.ScrapeInterval <= 0 || !d.settingsWarningDue(contract.KeyInterval, contract.KeyWindow) {
		return
	}
	s, _ := contract.ParseSettings(d.obj.Annotations) // invalid settings are denied by Validate
	if msg := contract.ShortIntervalWarning(s.Interval, s.Window, d.req.ScrapeInterval); msg != "" {
		d.warn("%s", msg)
	}
}

// settingsWarningDue reports whether a warning about the settings keys
// is due for a user's write to an opted-in Deployment: when it is created
// or opted in, when any of keys changes, and when an analysis starts.
func (d *decision) settingsWarningDue(keys ...string) bool {
	req := d.req
	if req.ByController || !contract.OptedIn(d.obj) {
		return false
	}
	started := req.Old != nil && d.obj.Annotations[contract.KeyPhase] == string(contract.PhaseProgressing) &&
		d.obj.Annotations[contract.KeyRevision] != req.Old.Annotations[contract.KeyRevision]
	changed := req.Old == nil || !contract.OptedIn(req.Old)
	for _, k := range keys {
		changed = changed || req.Old.Annotations[k] != d.obj.Annotations[k]
	}
	return started || changed
}

// warnUnjudged warns a user whose blue-green analysis would get no
// traffic at all (contract.UnjudgedWarning): when the Deployment is
// created or opted in, when canary.io/strategy, canary.io/mirror or
// canary.io/webhooks change, and when an analysis starts.
func (d *decision) warnUnjudged() {
	if !d.settingsWarningDue(contract.KeyStrategy, contract.KeyMirror, contract.KeyWebhooks) {
		return
	}
	s, _ := contract.ParseSettings(d.obj.Annotations) // invalid settings are denied by Validate
	if msg := contract.UnjudgedWarning(s); msg != "" {
		d.warn("%s", msg)
	}
}

func (d *decision) warn(format string, args ...any) {
	d.warnings = append(d.warnings, "canary.io: "+fmt.Sprintf(format, args...))
}

func (d *decision) deny(format string, args ...any) {
	d.denied = "canary.io: " + fmt.Sprintf(format, args...)
}

// create: a Deployment created opted in starts Idle, its template stable.
// Status annotations in the manifest (an exported object, say) are
// replaced: they are the system's.
func (d *decision) create() {
	if !contract.OptedIn(d.obj) {
		return
	}
	d.clearStatus()
	rev := d.newRevision()
	d.set(contract.KeyRevision, rev)
	d.set(contract.KeyStableRevision, rev)
	d.transition(contract.PhaseIdle, plan.ReasonEnabled, fmt.Sprintf("canary analysis enabled; revision %s is stable", rev))
}

// byController applies the rules for the system's own writes: it may write
// status annotations; it never changes the template; it may unpause only a
// revision that passed (phase Promoting, template hash equal to
// canary.io/revision). Because the controller writes with the
// resourceVersion it decided on, a user's newer template cannot slip in.
func (d *decision) byController() {
	old := d.req.Old
	if d.templateChanged() {
		d.deny("the controller may not change spec.template")
		return
	}
	if old.Spec.Paused && !d.obj.Spec.Paused {
		phase := contract.Phase(d.obj.Annotations[contract.KeyPhase])
		rev := d.newRevision()
		if phase != contract.PhasePromoting || rev != d.obj.Annotations[contract.KeyRevision] {
			d.deny("the controller may unpause only a revision being promoted: phase is %q (want %s), template is %s, canary.io/revision is %q",
				phase, contract.PhasePromoting, rev, d.obj.Annotations[contract.KeyRevision])
		}
	}
}

func (d *decision) byUser() {
	old := d.req.Old
	wasOn, isOn := contract.OptedIn(old), contract.OptedIn(d.obj)
	if !wasOn && !isOn {
		return
	}
	d.restoreStatus()
	st := statusOf(old)
	if !wasOn {
		// Opting in: the template stored now is the stable one. Nothing
		// restarts: the template is not touched.
		st = status{Phase: contract.PhaseIdle}
	}
	if !held(old, st) || st.Stable == "" {
		// Nothing held: the template stored now is the one serving users.
		st.Stable = d.oldRevision()
	}
	if wasOn && !isOn {
		d.optOut(st)
		return
	}
	if !d.templateChanged() {
		d.sameTemplate(st, !wasOn)
		return
	}
	d.newTemplate(st)
}

// optOut: removing canary.io/enabled (or setting it to anything but true)
// is allowed when no template is held and the canary takes no traffic;
// the system's annotations go with it, and the stepper removes whatever
// the analysis left (the canary's objects, the generated VirtualService,
// the Service's pin). While a template is held it is refused: turning the
// system off then would either roll the held template out unanalysed or
// leave the Deployment paused with nobody to end the hold. While the
// canary still takes traffic (an analysis ended a moment ago) it is
// refused too: nobody would move that traffic back.
func (d *decision) optOut(st status) {
	if st.Phase == contract.PhasePromoting {
		d.deny("canary.io/enabled cannot be turned off while revision %s is being promoted: retry when the rollout completes", st.Revision)
		return
	}
	if held(d.req.Old, st) {
		d.deny("canary.io/enabled cannot be turned off while revision %s is held (phase %s): "+
			"end the hold first: set a new canary.io/abort or canary.io/promote value, or apply the stable template (%s) again",
			st.Revision, st.Phase, st.Stable)
		return
	}
	if w := d.req.Old.Annotations[contract.KeyWeight]; w != "" && w != "0" {
		// An analysis that just ended: its canary still takes traffic
		// until the stepper moves it away, within seconds.
		d.deny("canary.io/enabled cannot be turned off while the canary takes %s%% of the traffic (phase %s): retry once canary.io/weight is 0",
			w, orIdle(st.Phase))
		return
	}
	d.clearStatus()
}

// sameTemplate handles an update that leaves the template alone: replicas,
// labels, annotations, controls. A held Deployment stays paused.
func (d *decision) sameTemplate(st status, optingIn bool) {
	old := d.req.Old
	if optingIn || st.Phase == "" {
		// Opted in now, or before the webhook was installed: start Idle.
		rev := d.newRevision()
		d.set(contract.KeyRevision, rev)
		d.set(contract.KeyStableRevision, rev)
		d.transition(contract.PhaseIdle, plan.ReasonEnabled, fmt.Sprintf("canary analysis enabled; revision %s is stable", rev))
		return
	}
	if held(old, st) && !d.obj.Spec.Paused {
		if onlyUnpauses(old, d.req.New) {
			d.deny("revision %s is held for canary analysis (phase %s), so the Deployment stays paused: "+
				"to roll it out now set a new canary.io/promote value; to bypass the analysis apply the template with canary.io/skip-analysis: \"true\"",
				st.Revision, st.Phase)
			return
		}
		d.obj.Spec.Paused = true
		d.warn("kept spec.paused: true: revision %s is held for canary analysis (phase %s); use canary.io/promote to roll it out", st.Revision, st.Phase)
	}
	if st.Phase == contract.PhaseRolledBack && st.Revision == st.Rejected && d.controlChanged(contract.KeyRetry, st) {
		d.startAnalysis(st, st.Revision, fmt.Sprintf("retry: revision %s analysed again", st.Revision))
	}
}

// newTemplate handles an update that changes the pod template.
func (d *decision) newTemplate(st status) {
	old := d.req.Old
	rev := d.newRevision()
	skip := d.obj.Annotations[contract.KeySkipAnalysis] == "true" && old.Annotations[contract.KeySkipAnalysis] != "true"
	if skip {
		// The emergency path: roll out as plain Kubernetes would, even over a
		// rollout in progress. The stepper removes any canary left behind.
		d.obj.Spec.Paused = false
		d.set(contract.KeyRevision, rev)
		d.set(contract.KeyStableRevision, rev)
		d.transition(contract.PhaseIdle, plan.ReasonAnalysisSkipped, fmt.Sprintf("canary.io/skip-analysis by %s: revision %s rolled out without analysis (stable was %s)", orUnknown(d.req.User), rev, st.Stable))
		d.warn("revision %s rolls out without canary analysis (canary.io/skip-analysis), recorded as done by %s", rev, orUnknown(d.req.User))
		return
	}
	if st.Phase == contract.PhasePromoting || (!old.Spec.Paused && rolling(old)) {
		d.deny("deployment %s is still rolling out (phase %s); retry when the rollout completes", old.Name, orIdle(st.Phase))
		return
	}
	inFlight := st.Phase == contract.PhaseProgressing || st.Phase == contract.PhasePaused
	switch {
	case rev == st.Stable && inFlight:
		// A git revert during an analysis: the rollback the user asked for.
		// Nothing rolls (the template is the stable one); the stepper moves
		// the traffic back and removes the canary.
		d.obj.Spec.Paused = false
		d.set(contract.KeyRevision, rev)
		d.transition(contract.PhaseRolledBack, plan.ReasonRevertedByUser, fmt.Sprintf("rolled back: the stable template (revision %s) was applied again during the analysis of revision %s", rev, st.Revision))
		d.warn("analysis of revision %s ended: the stable template (revision %s) was applied again", st.Revision, rev)
	case rev == st.Stable:
		// Only a held Deployment can be given its stable template back:
		// otherwise the stable template is the old one, which changed.
		d.obj.Spec.Paused = false
		d.set(contract.KeyRevision, rev)
		d.transition(contract.PhaseIdle, plan.ReasonHoldEnded, fmt.Sprintf("hold ended: the stable template (revision %s) was applied again", rev))
	case rev == st.Rejected && !d.controlChanged(contract.KeyRetry, st):
		why := st.Rejection
		if why == "" {
			why = "an earlier analysis failed"
		}
		d.obj.Spec.Paused = true
		d.set(contract.KeyRevision, rev)
		d.transition(contract.PhaseRolledBack, plan.ReasonHeldRejected, fmt.Sprintf("revision %s is held without analysis: it was rolled back (%s); set a new canary.io/retry value to analyse it again", rev, why))
		d.warn("revision %s was rolled back (%s); it is held without a new analysis until canary.io/retry changes", rev, why)
	default:
		msg := fmt.Sprintf("revision %s held for canary analysis against stable revision %s", rev, st.Stable)
		if inFlight {
			msg = fmt.Sprintf("analysis restarted: revision %s replaced revision %s under analysis (stable %s)", rev, st.Revision, st.Stable)
		}
		d.startAnalysis(st, rev, msg)
	}
}

// startAnalysis holds rev for a new analysis against st.Stable and freezes
// the settings in force. Control values already on the old object are
// consumed, so that a value kept in git from an earlier analysis never
// fires on this one; a value set in this very update still counts.
func (d *decision) startAnalysis(st status, rev, msg string) {
	old := d.req.Old
	d.obj.Spec.Paused = true
	d.set(contract.KeyRevision, rev)
	d.set(contract.KeyStableRevision, st.Stable)
	settings, _ := contract.ParseSettings(d.obj.Annotations) // invalid settings are denied by Validate
	d.set(contract.KeyAnalysisSettings, contract.FreezeSettings(d.obj.Annotations))
	acted := maps.Clone(st.Acted)
	if acted == nil {
		acted = map[string]string{}
	}
	for _, k := range controlKeys {
		if v, ok := old.Annotations[k]; ok && v == d.obj.Annotations[k] {
			acted[k] = v
		}
	}
	if d.controlChanged(contract.KeyRetry, st) {
		acted[contract.KeyRetry] = d.obj.Annotations[contract.KeyRetry] // consumed by this analysis
	}
	// The state the stepper starts from, in the stepper's own encoding:
	// the first step prepared, nothing routed, no failed check, no time
	// recorded yet.
	start := plan.Encode(plan.SpecFrom(settings, 0, 0), plan.State{
		Phase: contract.PhaseProgressing, Revision: rev, Stable: st.Stable, Acted: acted,
	})
	for _, k := range plan.StateKeys {
		if v, ok := start[k]; ok {
			d.set(k, v)
		} else {
			d.delete(k)
		}
	}
	d.delete(contract.KeyAnalysisStarted)
	d.transition(contract.PhaseProgressing, plan.ReasonHeld, msg)
	d.warn("revision %s is held for canary analysis (stable revision %s); follow it with: kubectl rollout status deployment/%s -n %s",
		rev, st.Stable, d.obj.Name, d.obj.Namespace)
}

// controlChanged reports whether a once-per-value control carries a value
// the system has not acted on.
func (d *decision) controlChanged(key string, st status) bool {
	v, ok := d.obj.Annotations[key]
	return ok && v != "" && v != st.Acted[key]
}

// transition sets the phase and message, and the transition time when the
// phase changes. On reinvocation the time this decision already wrote is
// kept, so that running Mutate twice gives the same object.
func (d *decision) transition(phase contract.Phase, reason, msg string) {
	old := d.req.Old
	d.set(contract.KeyMessage, msg)
	// The stepper emits the Event of every transition it has not evented,
	// a transition being the phase, the revision and the time: a new
	// revision in the same phase (an analysis restarted, skip-analysis from
	// Idle) is one too, so the reason is recorded whatever the phase was.
	d.set(contract.KeyTransitionReason, reason)
	if old != nil && contract.OptedIn(old) && old.Annotations[contract.KeyPhase] == string(phase) {
		d.set(contract.KeyPhase, string(phase))
		return
	}
	d.set(contract.KeyPhase, string(phase))
	if written, ok := d.ownEarlierTransition(phase); ok {
		d.set(contract.KeyLastTransition, written)
		return
	}
	d.set(contract.KeyLastTransition, d.req.Now.UTC().Format(time.RFC3339))
}

// ownEarlierTransition finds the transition time an earlier invocation of
// this decision wrote into the incoming object (reinvocation): the same
// phase, a time that is not the old object's, and recent.
func (d *decision) ownEarlierTransition(phase contract.Phase) (string, bool) {
	in := d.req.New.Annotations
	written := in[contract.KeyLastTransition]
	if in[contract.KeyPhase] != string(phase) || written == "" {
		return "", false
	}
	if d.req.Old != nil && written == d.req.Old.Annotations[contract.KeyLastTransition] {
		return "", false
	}
	t, err := time.Parse(time.RFC3339, written)
	if err != nil || d.req.Now.Sub(t).Abs() > time.Minute {
		return "", false
	}
	return written, true
}

func (d *decision) set(key, value string) { d.obj.Annotations[key] = value }
func (d *decision) delete(key string)     { delete(d.obj.Annotations, key) }

// restoreStatus gives the object the old object's system annotations:
// users cannot write them. Dropping them (an apply or replace of a manifest
// without them, rollout undo's copy from a ReplicaSet) is silent; setting
// a different value is warned about.
func (d *decision) restoreStatus() {
	var overridden []string
	for _, k := range contract.SystemKeys {
		v, had := d.req.Old.Annotations[k]
		nv, has := d.obj.Annotations[k]
		if has && nv != v {
			overridden = append(overridden, k)
		}
		if had {
			d.obj.Annotations[k] = v
		} else {
			delete(d.obj.Annotations, k)
		}
	}
	if len(overridden) > 0 {
		d.warn("ignored your value of %s: written only by the system", strings.Join(overridden, ", "))
	}
}

// clearStatus removes every system annotation, warning about any a user
// wrote.
func (d *decision) clearStatus() {
	var written []string
	for _, k := range contract.SystemKeys {
		if _, ok := d.obj.Annotations[k]; ok {
			if d.req.Old == nil || d.req.Old.Annotations[k] != d.obj.Annotations[k] {
				written = append(written, k)
			}
			delete(d.obj.Annotations, k)
		}
	}
	if d.req.Old == nil && len(written) > 0 {
		d.warn("ignored your value of %s: written only by the system", strings.Join(written, ", "))
	}
}

// status is what the system last recorded on a Deployment.
type status struct {
	Phase                      contract.Phase
	Revision, Stable, Rejected string
	Message, LastTransition    string
	// Rejection says when and why Rejected was rolled back.
	Rejection string
	Acted     map[string]string
}

func statusOf(d *appsv1.Deployment) status {
	a := d.Annotations
	return status{
		Phase:          contract.Phase(a[contract.KeyPhase]),
		Revision:       a[contract.KeyRevision],
		Stable:         a[contract.KeyStableRevision],
		Rejected:       a[contract.KeyRejectedRevision],
		Message:        a[contract.KeyMessage],
		LastTransition: a[contract.KeyLastTransition],
		Rejection:      a[contract.KeyRejection],
		Acted:          decodeActed(a),
	}
}

// held reports whether the system holds a template back on d: an analysis
// in flight, or a rolled-back revision kept paused.
func held(d *appsv1.Deployment, st status) bool {
	switch st.Phase {
	case contract.PhaseProgressing, contract.PhasePaused:
		return true
	case contract.PhaseRolledBack:
		return d.Spec.Paused
	}
	return false
}

// rolling reports whether an ordinary rolling update is still under way:
// pods of an older template remain. (A generation not yet observed is not
// enough: a scale bumps it too, and refusing then would be spurious.)
func rolling(d *appsv1.Deployment) bool {
	s := d.Status
	return s.UpdatedReplicas < s.Replicas
}

// onlyUnpauses reports whether new differs from old in nothing but
// spec.paused (as kubectl rollout resume's patch does).
func onlyUnpauses(old, new *appsv1.Deployment) bool {
	o, n := old.DeepCopy(), new.DeepCopy()
	n.Spec.Paused = o.Spec.Paused
	for _, x := range []*appsv1.Deployment{o, n} {
		x.ManagedFields, x.ResourceVersion, x.Generation, x.Status = nil, "", 0, appsv1.DeploymentStatus{}
		if len(x.Annotations) == 0 {
			x.Annotations = nil
		}
	}
	return apiequality.Semantic.DeepEqual(o, n)
}

func orUnknown(user string) string {
	if user == "" {
		return "an unknown user"
	}
	return user
}

func orIdle(p contract.Phase) contract.Phase {
	if p == "" {
		return contract.PhaseIdle
	}
	return p
}

// controlKeys are the once-per-value controls.
var controlKeys = []string{contract.KeyPromote, contract.KeyAbort, contract.KeyRetry}

// decodeActed reads canary.io/acted with the stepper's decoder
// (plan.Decode): a value it cannot read (the system always writes one it
// can) reads as nothing acted on, and a new analysis writes it anew.
func decodeActed(a map[string]string) map[string]string {
	st, err := plan.Decode(map[string]string{contract.KeyActed: a[contract.KeyActed]})
	if err != nil || st.Acted == nil {
		return map[string]string{}
	}
	return st.Acted
}
