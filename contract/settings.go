package contract

import (
	"fmt"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// NoDataPolicy is the value of [KeyNoData]: what a check with no data (an
// empty result or NaN) means.
type NoDataPolicy string

const (
	// NoDataHold counts the check as neither passed nor failed: the step
	// waits for data, bounded by the progress deadline.
	NoDataHold NoDataPolicy = "hold"
	// NoDataFail counts the check as failed.
	NoDataFail NoDataPolicy = "fail"
	// NoDataPass counts the check as passed.
	NoDataPass NoDataPolicy = "pass"
)

// Router is the value of [KeyRouter]: the kind of route the analysis
// steers.
type Router string

const (
	// RouterIstio steers Istio VirtualServices (the default).
	RouterIstio Router = "istio"
	// RouterGatewayAPI steers Gateway API HTTPRoutes.
	RouterGatewayAPI Router = "gateway-api"
)

// Strategy is the value of [KeyStrategy]: how the analysis sends traffic
// to the canary.
type Strategy string

const (
	// StrategyCanary moves a share of all requests to the canary, step by
	// step (canary.io/steps; the default).
	StrategyCanary Strategy = "canary"
	// StrategyAB sends only the requests matching canary.io/match to the
	// canary, for canary.io/iterations intervals.
	StrategyAB Strategy = "ab"
	// StrategyBlueGreen runs a full-size canary with no user traffic for
	// canary.io/iterations intervals (it takes load tests through the
	// hooks), then switches all traffic to it at once and promotes.
	StrategyBlueGreen Strategy = "blue-green"
)

// DefaultIterations is the default of [KeyIterations].
const DefaultIterations = 10

// MaxIterations bounds [KeyIterations].
const MaxIterations = 100

// Settings are the analysis settings of one Deployment, parsed from its
// annotations by [ParseSettings]. The zero value is not meaningful; start
// from [DefaultSettings].
type Settings struct {
	// Service is the Service whose traffic is shifted; empty means the one
	// Service whose selector matches the pod template.
	Service string
	// Steps are the canary weights in percent, strictly ascending, each
	// 1..99. Default 20, 40, 60.
	Steps []int32
	// Interval is how long each step lasts. Default 1m. The threshold
	// checks' window is at least this long (see Window).
	Interval time.Duration
	// Threshold is the number of failed checks tolerated. Default 3.
	Threshold int
	// MinSuccessRate is the minimum percent (0..100) of canary requests
	// that are not 5xx. Default 99.
	MinSuccessRate float64
	// MaxLatency is the maximum p99 request duration of the canary.
	// Default 500ms.
	MaxLatency time.Duration
	// Metrics are the user's extra checks. Default none.
	Metrics []Metric
	// Confidence is the confidence in percent (strictly between 50 and 100)
	// with which the comparison must find the canary worse than stable to
	// roll back. Default 99; 0 when ConfidenceOff.
	Confidence float64
	// ConfidenceOff turns the canary-vs-stable comparison off ("off").
	ConfidenceOff bool
	// Tolerance is how much worse than stable the canary may be, as a
	// fraction of stable's rate: 0.20 means 20% worse. Default 0.20.
	Tolerance float64
	// NoData says what a check with no data means. Default hold.
	NoData NoDataPolicy
	// ProgressDeadline is the longest wait before rolling back. Default 10m.
	ProgressDeadline time.Duration
	// VirtualServices are the user's VirtualServices to steer; empty means
	// the system generates one.
	VirtualServices []string
	// Prometheus is the Prometheus URL; empty means the controller's flag.
	Prometheus string
	// Webhooks are the user's hooks. Default none.
	Webhooks []Webhook
	// Window is the query window of the threshold checks; zero (the
	// default) means the longer of Interval and four scrape intervals.
	Window time.Duration
	// Notify names the notification providers told of the analysis
	// (canary.io/notify); none by default.
	Notify []string
	// Router is the kind of route steered: RouterIstio by default,
	// RouterGatewayAPI when canary.io/router says so or HTTPRoutes are
	// named.
	Router Router
	// HTTPRoutes are the user's HTTPRoutes to steer (canary.io/httproute);
	// empty with RouterGatewayAPI means the system generates one.
	HTTPRoutes []string
	// Strategy is how traffic reaches the canary: StrategyCanary (the
	// default) or StrategyAB.
	Strategy Strategy
	// Iterations is the number of intervals of an ab analysis; default
	// DefaultIterations.
	Iterations int
	// Match are, for StrategyAB, the requests that go to the canary.
	Match []Match
	// Mirror is the percentage of stable's requests copied to the canary
	// while the analysis runs (canary.io/mirror); 0, the default, copies
	// none.
	Mirror int32
	// Sticky is the cookie that keeps a client on the canary once it
	// served it (canary.io/sticky); empty, the default, for none.
	Sticky string
}

// DefaultSettings returns the defaults of the contract's table, the settings
// of a Deployment that sets nothing but canary.io/enabled.
func DefaultSettings() Settings {
	return Settings{
		Steps:            []int32{20, 40, 60},
		Interval:         time.Minute,
		Threshold:        3,
		MinSuccessRate:   99,
		MaxLatency:       500 * time.Millisecond,
		Confidence:       99,
		Tolerance:        0.20,
		NoData:           NoDataHold,
		ProgressDeadline: 10 * time.Minute,
		Router:           RouterIstio,
		Strategy:         StrategyCanary,
		Iterations:       DefaultIterations,
	}
}

// Enabled reports whether the annotations opt the Deployment in: only the
// exact value "true" does, the same comparison as the webhook's
// matchConditions.
func Enabled(annotations map[string]string) bool {
	return annotations[KeyEnabled] == "true"
}

// ParseSettings reads the settings annotations (see [SettingKeys]) over
// [DefaultSettings]. A key that is absent keeps its default; a key whose value
// is invalid also keeps its default and adds one field.Invalid error at
// metadata.annotations[<key>] whose detail says why. Other keys (controls,
// status, unknown canary.io/* keys) are ignored here; [Validate] checks them.
//
// An empty or blank value is an error for every key: remove the annotation to
// get the default. Otherwise, values are trimmed of surrounding white space,
// except the boolean canary.io/enabled. The accepted values:
//
//   - enabled: exactly "true" or "false".
//   - service: a DNS-1035 label (a Service name).
//   - steps: comma-separated whole numbers, spaces around commas allowed, at
//     least 1 and at most 20, each 1..99, strictly ascending ("20, 40, 60").
//   - interval: a Go duration from 1s to 24h ("1m", "90s").
//   - window: a Go duration from 1s to 24h ("2m").
//   - threshold: a whole number from 1 to 1000.
//   - min-success-rate: a decimal number from 0 to 100, with an optional
//     trailing "%" ("99", "99.5%").
//   - max-latency: a Go duration ("500ms", "1s"), or a bare decimal number of
//     milliseconds ("500"); more than 0 and at most 1h, the largest bucket of
//     Istio's request duration histogram.
//   - confidence: "off", or a decimal number strictly between 50 and 100,
//     with an optional trailing "%" ("99", "99.9", "95%").
//   - tolerance: a decimal percentage, "%" optional, at least 0 and below
//     1000 ("20%" and "20" both mean 0.20).
//   - no-data: "hold", "fail" or "pass".
//   - progress-deadline: a Go duration of at least 1s. It is deliberately not
//     compared with the interval: it bounds waits (pods becoming ready, data
//     arriving, a gate, the promotion's rolling update) that do not scale
//     with the step length, so a 2m deadline with 10m steps is coherent; and
//     a rule across keys would make fixing one annotation surface an error on
//     another.
//   - virtualservice: comma-separated DNS-1123 subdomain names, no empty
//     entries, no duplicates.
//   - prometheus: an absolute http or https URL with a host.
//   - metrics: see [Metric].
//   - webhooks: see [Webhook].
//
// Numbers are plain decimals (digits with an optional fraction): no sign, no
// exponent, no NaN or Inf.
func ParseSettings(annotations map[string]string) (Settings, field.ErrorList) {
	s := DefaultSettings()
	var errs field.ErrorList
	for _, p := range settingParsers {
		value, ok := annotations[p.key]
		if !ok {
			continue
		}
		if strings.TrimSpace(value) == "" {
			errs = append(errs, field.Invalid(annotationPath(p.key), value,
				"must not be empty; remove the annotation to use the default"))
			continue
		}
		if err := p.apply(&s, value); err != nil {
			errs = append(errs, field.Invalid(annotationPath(p.key), value, err.Error()))
		}
	}
	errs = append(errs, routerErrors(&s, annotations)...)
	return s, append(errs, strategyErrors(&s, annotations, errs)...)
}

// failed reports whether errs hold an error for the annotation key.
func failed(errs field.ErrorList, key string) bool {
	path := annotationPath(key).String()
	for _, e := range errs {
		if e.Field == path {
			return true
		}
	}
	return false
}

// strategyErrors checks the strategy against the settings it needs or
// excludes. The annotation in error keeps its default.
func strategyErrors(s *Settings, annotations map[string]string, before field.ErrorList) field.ErrorList {
	var errs field.ErrorList
	if s.Strategy == StrategyAB {
		why := ""
		switch {
		case len(s.Match) == 0:
			why = fmt.Sprintf("%q sends the requests matching %s to the canary: set it", StrategyAB, KeyMatch)
		case len(s.VirtualServices) > 0 || len(s.HTTPRoutes) > 0:
			why = fmt.Sprintf("%q routes through the route the system generates: remove %s and %s", StrategyAB, KeyVirtualService, KeyHTTPRoute)
		}
		if why != "" {
			errs = append(errs, field.Invalid(annotationPath(KeyStrategy), annotations[KeyStrategy], why))
			s.Strategy = StrategyCanary
		}
	}
	if _, set := annotations[KeyMatch]; set && len(s.Match) > 0 && s.Strategy != StrategyAB {
		errs = append(errs, field.Invalid(annotationPath(KeyMatch), annotations[KeyMatch],
			fmt.Sprintf("is for %s: %q only", KeyStrategy, StrategyAB)))
		s.Match = nil
	}
	if _, set := annotations[KeyIterations]; set && s.Strategy == StrategyCanary && !failed(before, KeyIterations) {
		errs = append(errs, field.Invalid(annotationPath(KeyIterations), annotations[KeyIterations],
			fmt.Sprintf("is for %s: %q or %q (the %q strategy steps through %s)", KeyStrategy, StrategyAB, StrategyBlueGreen, StrategyCanary, KeySteps)))
		s.Iterations = DefaultIterations
	}
	if s.Mirror > 0 && (len(s.VirtualServices) > 0 || len(s.HTTPRoutes) > 0) {
		errs = append(errs, field.Invalid(annotationPath(KeyMirror), annotations[KeyMirror],
			fmt.Sprintf("mirrors through the route the system generates: remove %s and %s, or the mirror", KeyVirtualService, KeyHTTPRoute)))
		s.Mirror = 0
	}
	if s.Sticky != "" {
		why := ""
		switch {
		case s.Strategy != StrategyCanary:
			why = fmt.Sprintf("keeps a client on the canary during the %q strategy's weight steps; %q has none (%s)", StrategyCanary, s.Strategy, KeyStrategy)
		case len(s.VirtualServices) > 0 || len(s.HTTPRoutes) > 0:
			why = fmt.Sprintf("routes through the route the system generates: remove %s and %s, or the sticky cookie", KeyVirtualService, KeyHTTPRoute)
		}
		if why != "" {
			errs = append(errs, field.Invalid(annotationPath(KeySticky), annotations[KeySticky], why))
			s.Sticky = ""
		}
	}
	if _, set := annotations[KeySteps]; set && s.Strategy != StrategyCanary && !failed(before, KeySteps) {
		errs = append(errs, field.Invalid(annotationPath(KeySteps), annotations[KeySteps],
			fmt.Sprintf("is for %s: %q only (%q runs %s intervals)", KeyStrategy, StrategyCanary, s.Strategy, KeyIterations)))
		s.Steps = DefaultSettings().Steps
	}
	return errs
}

// routerErrors checks the route settings against each other, and makes
// named HTTPRoutes choose the Gateway API router: each router steers
// its own kind of route, never both. The annotation in error is the one
// that names routes, and its setting keeps its default.
func routerErrors(s *Settings, annotations map[string]string) field.ErrorList {
	var errs field.ErrorList
	if len(s.HTTPRoutes) > 0 {
		if _, set := annotations[KeyRouter]; set && s.Router != RouterGatewayAPI {
			errs = append(errs, field.Invalid(annotationPath(KeyHTTPRoute), annotations[KeyHTTPRoute],
				fmt.Sprintf("HTTPRoutes are steered by the %q router, but %s is %q: set it to %q or remove it", RouterGatewayAPI, KeyRouter, s.Router, RouterGatewayAPI)))
			s.HTTPRoutes = nil
		} else {
			s.Router = RouterGatewayAPI
		}
	}
	if len(s.VirtualServices) > 0 && s.Router == RouterGatewayAPI {
		errs = append(errs, field.Invalid(annotationPath(KeyVirtualService), annotations[KeyVirtualService],
			fmt.Sprintf("VirtualServices are steered by the %q router, but this Deployment uses %q (%s or %s): name either VirtualServices or HTTPRoutes", RouterIstio, RouterGatewayAPI, KeyRouter, KeyHTTPRoute)))
		s.VirtualServices = nil
	}
	return errs
}

// annotationPath is the field path of one annotation, which renders as
// metadata.annotations[canary.io/steps].
func annotationPath(key string) *field.Path {
	return field.NewPath("metadata", "annotations").Key(key)
}

// settingParsers parse one key each and assign the field only on success, so
// an invalid value leaves the default in place.
var settingParsers = []struct {
	key   string
	apply func(s *Settings, value string) error
}{
	{KeyEnabled, func(_ *Settings, v string) error {
		_, err := parseBool(v)
		return err
	}},
	{KeyService, func(s *Settings, v string) error {
		name, err := parseServiceName(v)
		if err == nil {
			s.Service = name
		}
		return err
	}},
	{KeySteps, func(s *Settings, v string) error {
		steps, err := parseSteps(v)
		if err == nil {
			s.Steps = steps
		}
		return err
	}},
	{KeyInterval, func(s *Settings, v string) error {
		d, err := parseDuration(v, minInterval, maxInterval)
		if err == nil {
			s.Interval = d
		}
		return err
	}},
	{KeyThreshold, func(s *Settings, v string) error {
		n, err := parseThreshold(v)
		if err == nil {
			s.Threshold = n
		}
		return err
	}},
	{KeyMinSuccessRate, func(s *Settings, v string) error {
		rate, err := parseSuccessRate(v)
		if err == nil {
			s.MinSuccessRate = rate
		}
		return err
	}},
	{KeyMaxLatency, func(s *Settings, v string) error {
		d, err := parseLatency(v)
		if err == nil {
			s.MaxLatency = d
		}
		return err
	}},
	{KeyMetrics, func(s *Settings, v string) error {
		metrics, err := parseMetrics(v)
		if err == nil {
			s.Metrics = metrics
		}
		return err
	}},
	{KeyConfidence, func(s *Settings, v string) error {
		confidence, off, err := parseConfidence(v)
		if err == nil {
			s.Confidence, s.ConfidenceOff = confidence, off
		}
		return err
	}},
	{KeyTolerance, func(s *Settings, v string) error {
		t, err := parseTolerance(v)
		if err == nil {
			s.Tolerance = t
		}
		return err
	}},
	{KeyNoData, func(s *Settings, v string) error {
		policy, err := parseNoData(v)
		if err == nil {
			s.NoData = policy
		}
		return err
	}},
	{KeyProgressDeadline, func(s *Settings, v string) error {
		d, err := parseDuration(v, minProgressDeadline, 0)
		if err == nil {
			s.ProgressDeadline = d
		}
		return err
	}},
	{KeyVirtualService, func(s *Settings, v string) error {
		names, err := parseVirtualServices(v)
		if err == nil {
			s.VirtualServices = names
		}
		return err
	}},
	{KeyPrometheus, func(s *Settings, v string) error {
		u, err := parseHTTPURL(v)
		if err == nil {
			s.Prometheus = u
		}
		return err
	}},
	{KeyWebhooks, func(s *Settings, v string) error {
		hooks, err := parseWebhooks(v)
		if err == nil {
			s.Webhooks = hooks
		}
		return err
	}},
	{KeyNotify, func(s *Settings, v string) error {
		names, err := parseNames(v, "provider", validation.IsDNS1123Label)
		if err == nil {
			s.Notify = names
		}
		return err
	}},
	{KeyRouter, func(s *Settings, v string) error {
		router, err := parseRouter(v)
		if err == nil {
			s.Router = router
		}
		return err
	}},
	{KeyHTTPRoute, func(s *Settings, v string) error {
		names, err := parseNames(v, "HTTPRoute", validation.IsDNS1123Subdomain)
		if err == nil {
			s.HTTPRoutes = names
		}
		return err
	}},
	{KeyStrategy, func(s *Settings, v string) error {
		strategy, err := parseStrategy(v)
		if err == nil {
			s.Strategy = strategy
		}
		return err
	}},
	{KeyIterations, func(s *Settings, v string) error {
		n, err := parseIterations(v)
		if err == nil {
			s.Iterations = n
		}
		return err
	}},
	{KeyMirror, func(s *Settings, v string) error {
		n, err := parseMirror(v)
		if err == nil {
			s.Mirror = n
		}
		return err
	}},
	{KeySticky, func(s *Settings, v string) error {
		name, err := parseCookieName(v)
		if err == nil {
			s.Sticky = name
		}
		return err
	}},
	{KeyMatch, func(s *Settings, v string) error {
		m, err := parseMatch(v)
		if err == nil {
			s.Match = m
		}
		return err
	}},
	{KeyWindow, func(s *Settings, v string) error {
		d, err := parseDuration(v, minInterval, maxInterval)
		if err == nil {
			s.Window = d
		}
		return err
	}},
}
