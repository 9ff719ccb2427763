package contract

// Prefix starts every annotation key of the contract. A key with this prefix
// that is not one of the keys below is refused by [Validate], so a typo does
// not silently do nothing.
const Prefix = "canary.io/"

// Settings: written by the user, read when a template is held and fixed for
// that analysis. [ParseSettings] documents the accepted values.
const (
	// KeyEnabled opts the Deployment in when exactly "true".
	KeyEnabled = "canary.io/enabled"
	// KeyService names the Service whose traffic is shifted; by default the
	// one Service whose selector matches the pod template.
	KeyService = "canary.io/service"
	// KeySteps lists the canary traffic weights in percent, e.g. "20,40,60".
	KeySteps = "canary.io/steps"
	// KeyInterval is how long each step lasts, e.g. "1m"; the threshold
	// checks' window is at least this long (see [KeyWindow]).
	KeyInterval = "canary.io/interval"
	// KeyThreshold is the number of failed threshold checks tolerated; the
	// next one rolls back.
	KeyThreshold = "canary.io/threshold"
	// KeyMinSuccessRate is the built-in check's minimum percent of canary
	// requests that are not 5xx.
	KeyMinSuccessRate = "canary.io/min-success-rate"
	// KeyMaxLatency is the built-in check's maximum p99 request duration of
	// the canary.
	KeyMaxLatency = "canary.io/max-latency"
	// KeyMetrics holds extra checks: a YAML or JSON list of
	// {name, query, min, max}.
	KeyMetrics = "canary.io/metrics"
	// KeyConfidence is the confidence, in percent, of the continuous
	// canary-vs-stable comparison, or "off".
	KeyConfidence = "canary.io/confidence"
	// KeyTolerance is how much worse than stable, relative, the canary may
	// be before the comparison calls it worse, e.g. "20%".
	KeyTolerance = "canary.io/tolerance"
	// KeyNoData says what a check with no data means: hold, fail or pass.
	KeyNoData = "canary.io/no-data"
	// KeyProgressDeadline is the longest wait (pods ready, data arriving, a
	// gate, the promotion's rolling update) before rolling back.
	KeyProgressDeadline = "canary.io/progress-deadline"
	// KeyVirtualService names existing VirtualServices to steer, comma
	// separated; by default the system generates one.
	KeyVirtualService = "canary.io/virtualservice"
	// KeyPrometheus is the Prometheus URL for this Deployment; by default
	// the controller's flag.
	KeyPrometheus = "canary.io/prometheus"
	// KeyWebhooks holds hooks in Flagger's webhook format.
	KeyWebhooks = "canary.io/webhooks"
	// KeyWindow is the query window of the threshold checks (and of
	// {{interval}} in custom metrics), e.g. "2m"; by default the longer of
	// [KeyInterval] and four scrape intervals of Prometheus. A contract
	// addition (v1.1).
	KeyWindow = "canary.io/window"
	// KeyRouter is the kind of route the system generates when the user
	// names none: "istio" (a VirtualService, the default) or "gateway-api"
	// (an HTTPRoute attached to the Service). A contract addition (v1.1).
	KeyRouter = "canary.io/router"
	// KeyHTTPRoute names existing HTTPRoutes to steer, comma separated
	// (the mesh route attached to the Service, ingress routes attached to
	// a Gateway); only their backendRefs to the Service are steered. It
	// implies the Gateway API router. A contract addition (v1.1).
	KeyHTTPRoute = "canary.io/httproute"
	// KeyStrategy is how the analysis sends traffic to the canary:
	// "canary" (weight steps, the default), "ab" (only the requests
	// matching [KeyMatch], for [KeyIterations] intervals) or "blue-green"
	// (a full-size canary without user traffic for [KeyIterations]
	// intervals, then all traffic at once). A contract addition (v1.1).
	KeyStrategy = "canary.io/strategy"
	// KeyIterations is the number of intervals of an "ab" or "blue-green"
	// analysis (default 10). A contract addition (v1.1).
	KeyIterations = "canary.io/iterations"
	// KeyMatch is, for "ab", the requests that go to the canary: a YAML
	// list in Flagger's match format (headers, cookies through the cookie
	// header, query parameters). A contract addition (v1.1).
	KeyMatch = "canary.io/match"
	// KeyMirror is a percentage of stable's requests copied to the canary
	// while the analysis runs (its answers discarded): during every
	// iteration of "ab" and "blue-green", and in a first step at weight 0
	// of "canary". A contract addition (v1.1).
	KeyMirror = "canary.io/mirror"
	// KeySticky is a cookie name: with it, a client once served by the
	// canary during a "canary" analysis keeps reaching it for the rest of
	// the analysis (the canary's answers set the cookie, a route matching
	// it comes before the weighted one). A contract addition (v1.1).
	KeySticky = "canary.io/sticky"
	// KeyNotify names the notification providers (configured by the
	// cluster admin) told of this Deployment's analyses, comma separated,
	// e.g. "team-chat, oncall". A contract addition (v1.1).
	KeyNotify = "canary.io/notify"
)

// Controls: written by the user, safe to keep in git. The system records the
// last value it acted on, so a value kept in git never fires twice.
const (
	// KeyPause holds the weight while "true"; analysis keeps running.
	KeyPause = "canary.io/pause"
	// KeyPromote promotes the analysis in flight when its value changes.
	KeyPromote = "canary.io/promote"
	// KeyAbort rolls back the analysis in flight when its value changes.
	KeyAbort = "canary.io/abort"
	// KeyRetry analyses again a rolled-back revision when its value changes.
	KeyRetry = "canary.io/retry"
	// KeySkipAnalysis, "true" in the same update as a new template, rolls
	// that template out directly (the emergency path).
	KeySkipAnalysis = "canary.io/skip-analysis"
)

// Status: written by the system only; the webhook keeps them as the system
// last wrote them.
const (
	// KeyPhase is the [Phase] of the Deployment's canary analysis.
	KeyPhase = "canary.io/phase"
	// KeyWeight is the percent of traffic on the canary now, e.g. "40".
	KeyWeight = "canary.io/weight"
	// KeyStep is the step in progress, 1-based, over the number of steps:
	// "2/3" while the second of three steps runs (or is being prepared),
	// "3/3" once all have passed.
	KeyStep = "canary.io/step"
	// KeyRevision is the short hash of the pod template under test.
	KeyRevision = "canary.io/revision"
	// KeyStableRevision is the short hash of the pod template serving users.
	KeyStableRevision = "canary.io/stable-revision"
	// KeyFailedChecks is the failed checks over the threshold, e.g. "1/3".
	KeyFailedChecks = "canary.io/failed-checks"
	// KeyMessage is one human sentence: what was decided and why.
	KeyMessage = "canary.io/message"
	// KeyLastTransition is the RFC 3339 time of the last phase change.
	KeyLastTransition = "canary.io/last-transition"
	// KeyRejectedRevision is the hash of the last revision rolled back;
	// applying it again holds it until [KeyRetry] changes.
	KeyRejectedRevision = "canary.io/rejected-revision"
)

// SettingKeys are the analysis settings a user may write, in the order of
// the contract's table.
var SettingKeys = []string{
	KeyEnabled, KeyService, KeySteps, KeyInterval, KeyThreshold,
	KeyMinSuccessRate, KeyMaxLatency, KeyMetrics, KeyConfidence,
	KeyTolerance, KeyNoData, KeyProgressDeadline, KeyVirtualService,
	KeyPrometheus, KeyWebhooks, KeyWindow, KeyNotify, KeyRouter,
	KeyHTTPRoute, KeyStrategy, KeyIterations, KeyMatch, KeyMirror,
	KeySticky,
}

// ControlKeys are the controls a user may write.
var ControlKeys = []string{
	KeyPause, KeyPromote, KeyAbort, KeyRetry, KeySkipAnalysis,
}

// StatusKeys are the annotations the system writes and users cannot.
var StatusKeys = []string{
	KeyPhase, KeyWeight, KeyStep, KeyRevision, KeyStableRevision,
	KeyFailedChecks, KeyMessage, KeyLastTransition, KeyRejectedRevision,
}

// Phase is the value of [KeyPhase].
//
//	Idle → Progressing (⇄ Paused) → Promoting → Succeeded
//	any in-flight phase → RolledBack
type Phase string

const (
	// PhaseIdle means no analysis is in flight (also after a skip-analysis
	// rollout, or after the stable template is applied again to end a hold).
	PhaseIdle Phase = "Idle"
	// PhaseProgressing means an analysis is in flight and the weight advances.
	PhaseProgressing Phase = "Progressing"
	// PhasePaused means an analysis is in flight and the weight holds because
	// of [KeyPause]; it can still roll back.
	PhasePaused Phase = "Paused"
	// PhasePromoting means the analysis passed and the ordinary rolling update
	// is moving the Deployment to the new template.
	PhasePromoting Phase = "Promoting"
	// PhaseSucceeded means the new template is promoted and rolled out.
	PhaseSucceeded Phase = "Succeeded"
	// PhaseRolledBack means the analysis failed or was aborted; the Deployment
	// stays paused with the stable ReplicaSet serving.
	PhaseRolledBack Phase = "RolledBack"
)

// keyKind says who writes an annotation. The lookup is built from the
// constants, not from the exported slices, so a caller that modifies those
// cannot change what [Validate] accepts.
type keyKind int

const (
	kindSetting keyKind = iota + 1
	kindControl
	kindStatus
)

var knownKeys = func() map[string]keyKind {
	m := map[string]keyKind{}
	for _, k := range []string{
		KeyEnabled, KeyService, KeySteps, KeyInterval, KeyThreshold,
		KeyMinSuccessRate, KeyMaxLatency, KeyMetrics, KeyConfidence,
		KeyTolerance, KeyNoData, KeyProgressDeadline, KeyVirtualService,
		KeyPrometheus, KeyWebhooks, KeyWindow, KeyNotify, KeyRouter,
		KeyHTTPRoute, KeyStrategy, KeyIterations, KeyMatch, KeyMirror,
		KeySticky,
	} {
		m[k] = kindSetting
	}
	for _, k := range []string{KeyPause, KeyPromote, KeyAbort, KeyRetry, KeySkipAnalysis} {
		m[k] = kindControl
	}
	for _, k := range SystemKeys {
		m[k] = kindStatus
	}
	return m
}()
