package stepper

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/canary-io/canary/contract"
	"github.com/canary-io/canary/stepper/plan"
)

// HookPayload is the JSON body POSTed to every hook: Flagger's
// CanaryWebhookPayload, field for field, so that Flagger's load tester and
// hook servers written for Flagger read it unchanged.
type HookPayload struct {
	// Name is the Deployment's name.
	Name string `json:"name"`
	// Namespace is the Deployment's namespace.
	Namespace string `json:"namespace"`
	// Phase is canary.io/phase when the hook is called: Progressing or
	// Paused during an analysis, Succeeded or RolledBack for post-rollout.
	Phase contract.Phase `json:"phase"`
	// Checksum is canary.io/revision, the template hash under analysis:
	// it identifies one analysis of one configuration, as Flagger's does.
	Checksum string `json:"checksum"`
	// Metadata is the hook's metadata as written; event hooks also get
	// eventMessage, eventType and timestamp (Unix milliseconds), which the
	// hook's own metadata cannot override.
	Metadata map[string]string `json:"metadata,omitempty"`
}

// hookAnswer is how one hook answered one call.
type hookAnswer struct {
	hook   contract.Webhook
	status int    // 0 when there was no response
	text   string // the status line's text, e.g. "403 Forbidden"
	body   string // the start of the response body
	err    error  // no response: timeout, connection refused, ...
}

// ok reports Flagger's success rule: a response with status 200, 201 or
// 202. Anything else (204 too, and redirects that end elsewhere) is a
// failure whose reason is the response body.
func (a hookAnswer) ok() bool {
	return a.err == nil && a.status >= 200 && a.status <= 202
}

// String says how the hook answered, for messages. The start of the body
// (at most maxHookBody bytes) is quoted only for a failure, which it
// explains: a successful answer's body is never shown where everyone who
// can read the Deployment sees it.
//
// Examples: `answered 200 OK`; `answered 403 Forbidden: "Forbidden"`;
// `timed out after 10s`; `no answer: dial tcp 10.0.0.7:80: connect:
// connection refused`.
func (a hookAnswer) String() string {
	switch {
	case errors.Is(a.err, context.DeadlineExceeded):
		return "timed out after " + contract.PromDuration(a.hook.Timeout)
	case a.err != nil:
		return "no answer: " + a.err.Error()
	case a.body == "" || a.ok():
		return "answered " + a.text
	}
	return fmt.Sprintf("answered %s: %q", a.text, a.body)
}

// result is the answer as a check: failed unless ok.
func (a hookAnswer) result() plan.CheckResult {
	if a.ok() {
		return plan.HookResult(a.hook.Name, "")
	}
	return plan.HookResult(a.hook.Name, a.String())
}

// maxHookBody is how much of a response body a message quotes.
const maxHookBody = 200

// callHook POSTs payload to the hook's URL as JSON, bounded by the hook's
// timeout.
func callHook(ctx context.Context, c *http.Client, h contract.Webhook, payload HookPayload) hookAnswer {
	a := hookAnswer{hook: h}
	body, err := json.Marshal(payload)
	if err != nil {
		a.err = err
		return a
	}
	ctx, cancel := context.WithTimeout(ctx, h.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.URL, bytes.NewReader(body))
	if err != nil {
		a.err = err
		return a
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		} else {
			var uerr interface{ Unwrap() error }
			if errors.As(err, &uerr) && uerr.Unwrap() != nil {
				err = uerr.Unwrap() // drop the `Post "URL":` prefix: the hook is named already
			}
		}
		a.err = err
		return a
	}
	defer func() { _ = resp.Body.Close() }()
	start, _ := io.ReadAll(io.LimitReader(resp.Body, maxHookBody+1))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20)) // let the connection be reused
	a.status, a.text = resp.StatusCode, resp.Status
	a.body = strings.TrimSpace(string(start))
	if len(start) > maxHookBody {
		a.body = strings.TrimSpace(string(start[:maxHookBody])) + "…"
	}
	return a
}

// callHooks calls every hook concurrently with the same payload and
// returns their answers in the hooks' order.
func callHooks(ctx context.Context, c *http.Client, hooks []contract.Webhook, payload HookPayload) []hookAnswer {
	answers := make([]hookAnswer, len(hooks))
	var wg sync.WaitGroup
	for i, h := range hooks {
		p := payload
		p.Metadata = h.Metadata
		wg.Go(func() { answers[i] = callHook(ctx, c, h, p) })
	}
	wg.Wait()
	return answers
}

// callHooks calls hooks of d (callHooks) and counts each answer in
// canary_hook_calls_total.
func (r *Reconciler) callHooks(ctx context.Context, d *appsv1.Deployment, hooks []contract.Webhook, payload HookPayload) []hookAnswer {
	answers := callHooks(ctx, r.hookClient(), hooks, payload)
	for _, a := range answers {
		r.Metrics.hookAnswered(d.Namespace, d.Name, a.hook.Type, a.ok())
	}
	return answers
}

// payloadFor is the payload of a call for Deployment d in phase.
func payloadFor(d *appsv1.Deployment, phase contract.Phase) HookPayload {
	return HookPayload{Name: d.Name, Namespace: d.Namespace, Phase: phase, Checksum: d.Annotations[contract.KeyRevision]}
}

// results are the answers as checks.
func results(answers []hookAnswer) []plan.CheckResult {
	out := make([]plan.CheckResult, len(answers))
	for i, a := range answers {
		out[i] = a.result()
	}
	return out
}

// hookPollPeriod is how often the rollback hooks are asked while an
// analysis is in flight (Flagger asks once per analysis interval; here
// a rollback asked for is seen within seconds, whatever the interval).
const hookPollPeriod = 5 * time.Second

// hookRound is one call of one Deployment's hooks of one type for one
// moment of one analysis (its key), made in the background: a pass starts
// it, a later pass reads its answers.
type hookRound struct {
	key     string
	done    bool
	answers []hookAnswer
	cancel  context.CancelFunc // ends the call when it is no longer wanted
}

// inFlightHooks reads the answers of the hooks due in this pass into the
// observations, starting their calls in the background when they have not
// been made: the pre-rollout hooks when plan.PreRolloutDue, the rollout
// hooks beside the checks when plan.ChecksDue (a failing one is a failed
// check), the confirm-promotion hooks when plan.GateDue; all of them only
// when the pass judges them (plan.Judged), so that a load test never runs
// for a pass that a pause, a control or someone else's weights decide.
// No hook call holds a reconcile worker: a hook that hangs for its whole
// timeout (at most --max-hook-timeout) delays only its own analysis, which
// waits with a message saying for what, and never another's. The rollback
// hooks are asked in the background too (pollRollbackHooks) and their
// request was read before. It returns the rollout hooks' results, to be
// added to the checks, and whether they are in (true when none are due).
func (r *Reconciler) inFlightHooks(ctx context.Context, w *world) (rollout []plan.CheckResult, ready bool) {
	if !plan.Judged(w.state, w.obs) {
		if !inFlight(w.state.Phase) {
			r.endRounds(w.deployment.Namespace + "/" + w.deployment.Name)
		}
		return nil, true
	}
	analysis := analysisKey(w)
	now := w.obs.Now
	if hasHooks(w, contract.HookPreRollout) && plan.PreRolloutDue(w.spec, w.state, w.obs) {
		key := analysis + "/after " + w.state.PreRolloutFailed.UTC().Format(time.RFC3339)
		if a, ok := r.round(ctx, w, contract.HookPreRollout, key, false); ok {
			w.obs.PreRollout = results(a)
		}
	}
	ready = true
	if hasHooks(w, contract.HookRollout) && plan.ChecksDue(w.spec, w.state, now) {
		key := fmt.Sprintf("%s/step %d from %s", analysis, w.state.Step, w.state.StepStarted.UTC().Format(time.RFC3339))
		var a []hookAnswer
		a, ready = r.round(ctx, w, contract.HookRollout, key, false)
		rollout = results(a)
	}
	if hasHooks(w, contract.HookConfirmPromotion) && plan.GateDue(w.spec, w.state, now) {
		// Asked afresh for every pass that needs it: the answer is handed
		// out once.
		if a, ok := r.round(ctx, w, contract.HookConfirmPromotion, analysis, true); ok {
			open, closed := true, []string(nil)
			for _, x := range a {
				if !x.ok() {
					open = false
					closed = append(closed, fmt.Sprintf("hook %q %s", x.hook.Name, x))
				}
			}
			w.obs.GateOpen = &open
			w.obs.Gate = strings.Join(closed, ", ")
		}
	}
	return rollout, ready
}

// analysisKey identifies the analysis in flight: its revision and start
// (canary.io/analysis-started), so that no answer counts for a retry of
// the same revision.
func analysisKey(w *world) string {
	return w.state.Revision + "/" + w.analysisStarted.UTC().Format(time.RFC3339)
}

// inFlight reports whether phase is an analysis in flight.
func inFlight(phase contract.Phase) bool {
	return phase == contract.PhaseProgressing || phase == contract.PhasePaused
}

// round returns the answers of w's hooks of type t for the moment key once
// their call has ended. Until then it reports false, and starts the call
// when none is in flight for key: a call for another key still in flight
// is ended, its answer no longer wanted. With consume the answers are
// handed out once, and the next call for the same key calls again. A call
// the Background refuses (no lease, its limits reached) is tried again on
// the next pass.
func (r *Reconciler) round(ctx context.Context, w *world, t contract.HookType, key string, consume bool) ([]hookAnswer, bool) {
	d := w.deployment
	id := d.Namespace + "/" + d.Name + "/" + string(t)
	r.mu.Lock()
	defer r.mu.Unlock()
	if rd := r.rounds[id]; rd != nil {
		if rd.key == key {
			if !rd.done {
				return nil, false
			}
			if consume {
				delete(r.rounds, id)
			}
			return rd.answers, true
		}
		rd.cancel()
		delete(r.rounds, id)
	}
	hooks := contract.OfType(w.settings.Webhooks, t)
	payload := payloadFor(d, w.state.Phase)
	stop, cancel := context.WithCancel(context.Background())
	rd := &hookRound{key: key, cancel: cancel}
	started := r.Background.Go(d.Namespace, func(bg context.Context) {
		bg, end := context.WithCancel(bg)
		defer end()
		defer context.AfterFunc(stop, end)()
		answers := r.callHooks(bg, d, hooks, payload)
		r.mu.Lock()
		rd.answers, rd.done = answers, true
		r.mu.Unlock()
		cancel()
		r.wakeUp(d)
	})
	if !started {
		cancel()
		log.FromContext(ctx).Info("hooks not called yet: no lease, or too many background calls in flight", "type", t)
		return nil, false
	}
	if r.rounds == nil {
		r.rounds = map[string]*hookRound{}
	}
	r.rounds[id] = rd
	return nil, false
}

// endRounds ends the hook calls in flight for the Deployment key
// (namespace/name) and forgets their answers: its analysis has ended.
func (r *Reconciler) endRounds(key string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.endRoundsLocked(key)
}

// endRoundsLocked is endRounds with r.mu held.
func (r *Reconciler) endRoundsLocked(key string) {
	for id, rd := range r.rounds {
		if strings.HasPrefix(id, key+"/") {
			rd.cancel()
			delete(r.rounds, id)
		}
	}
}

// rollbackPoll is the background asking of one Deployment's rollback
// hooks: at most one round in flight, a request for a rollback kept for
// the analysis it was asked about.
type rollbackPoll struct {
	asked    time.Time
	inFlight bool
	analysis string // the analysis asked about: its revision and start
	request  string // "rollback hook ... answered ..." when one asked for a rollback
}

// pollRollbackHooks returns the rollback hooks' request for a rollback of
// the analysis in flight, if one has arrived, and starts a new round of
// asking every hookPollPeriod. The asking never holds up a pass: a hook
// that hangs for its whole timeout delays only the next round. A request
// counts only for the analysis it was asked about (the revision and the
// analysis' start, canary.io/analysis-started), so that it never rolls
// back a retry of the same revision.
func (r *Reconciler) pollRollbackHooks(ctx context.Context, w *world) string {
	hooks := contract.OfType(w.settings.Webhooks, contract.HookRollback)
	phase := w.state.Phase
	if len(hooks) == 0 || !inFlight(phase) {
		return ""
	}
	d, now := w.deployment, w.obs.Now
	key := d.Namespace + "/" + d.Name
	analysis := analysisKey(w)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.rollbackPolls == nil {
		r.rollbackPolls = map[string]*rollbackPoll{}
	}
	p := r.rollbackPolls[key]
	if p == nil {
		p = &rollbackPoll{}
		r.rollbackPolls[key] = p
	}
	if p.request != "" && p.analysis == analysis {
		return p.request
	}
	if !p.inFlight && now.Sub(p.asked) >= hookPollPeriod {
		payload := payloadFor(d, phase)
		started := r.Background.Go(d.Namespace, func(bg context.Context) {
			request := ""
			for _, a := range r.callHooks(bg, d, hooks, payload) {
				if a.ok() {
					request = fmt.Sprintf("rollback hook %q %s", a.hook.Name, a)
					break
				}
			}
			r.mu.Lock()
			p.inFlight, p.request = false, request
			r.mu.Unlock()
			if request != "" {
				r.wakeUp(d)
			}
		})
		if started {
			// (r.mu is held: the call's own update waits for it.)
			p.asked, p.inFlight, p.analysis, p.request = now, true, analysis, ""
		}
	}
	return ""
}

// hasHooks reports whether the analysis has hooks of type t.
func hasHooks(w *world, t contract.HookType) bool {
	return len(contract.OfType(w.settings.Webhooks, t)) > 0
}

// callPostRollout calls the post-rollout hooks, in the background, once an
// analysis has ended (phase Succeeded or RolledBack, whoever ended it) and
// reports each answer as an Event; a failure changes nothing else.
func (r *Reconciler) callPostRollout(ctx context.Context, w *world, d *appsv1.Deployment, phase contract.Phase) {
	hooks := contract.OfType(w.settings.Webhooks, contract.HookPostRollout)
	if len(hooks) == 0 {
		return
	}
	if !r.Background.Go(d.Namespace, func(bg context.Context) { r.postRollout(bg, w, d, hooks, phase) }) {
		log.FromContext(ctx).Info("post-rollout hooks not called: no lease, or too many background calls in flight", "deployment", d.Namespace+"/"+d.Name)
	}
}

func (r *Reconciler) postRollout(ctx context.Context, w *world, d *appsv1.Deployment, hooks []contract.Webhook, phase contract.Phase) {
	for _, a := range r.callHooks(ctx, d, hooks, payloadFor(d, phase)) {
		e := &plan.Event{Type: plan.EventNormal, Reason: ReasonPostRolloutHook,
			Message: fmt.Sprintf("post-rollout hook %q passed (%s)", a.hook.Name, a)}
		if !a.ok() {
			e = &plan.Event{Type: plan.EventWarning, Reason: ReasonPostRolloutHookFailed,
				Message: fmt.Sprintf("post-rollout hook %q failed: %s; nothing else changes", a.hook.Name, a)}
		}
		r.emit(ctx, w, d, e)
	}
}

// Reasons of the Events about post-rollout hooks.
const (
	ReasonPostRolloutHook       = "PostRolloutHook"
	ReasonPostRolloutHookFailed = "PostRolloutHookFailed"
)

// emit records e on the Deployment and sends it to the event hooks, in
// the background: an event hook never delays or fails a pass.
func (r *Reconciler) emit(ctx context.Context, w *world, d *appsv1.Deployment, e *plan.Event) {
	r.Recorder.Eventf(d, nil, string(e.Type), e.Reason, "Canary", "%s", e.Message)
	hooks := contract.OfType(w.settings.Webhooks, contract.HookEvent)
	if len(hooks) == 0 {
		return
	}
	payload := payloadFor(d, contract.Phase(d.Annotations[contract.KeyPhase]))
	logger := log.FromContext(ctx)
	at := r.Clock.Now()
	for _, h := range hooks {
		p := payload
		p.Metadata = map[string]string{
			"eventMessage": e.Message,
			"eventType":    string(e.Type),
			"timestamp":    strconv.FormatInt(at.UnixMilli(), 10),
		}
		for k, v := range h.Metadata {
			if _, taken := p.Metadata[k]; !taken {
				p.Metadata[k] = v
			}
		}
		called := r.Background.Go(d.Namespace, func(bg context.Context) {
			a := callHook(bg, r.hookClient(), h, p)
			r.Metrics.hookAnswered(d.Namespace, d.Name, h.Type, a.ok())
			if !a.ok() {
				logger.Info("event hook failed", "hook", h.Name, "answer", a.String())
			}
		})
		if !called {
			logger.Info("event hook not called: no lease, or too many background calls in flight", "hook", h.Name)
		}
	}
}

// hookClient is the HTTP client for hooks: HookClient, or one that
// follows no redirect.
func (r *Reconciler) hookClient() *http.Client {
	if r.HookClient != nil {
		return r.HookClient
	}
	return defaultHookClient
}

var defaultHookClient = NoRedirects(&http.Client{})
