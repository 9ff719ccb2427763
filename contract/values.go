package contract

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Limits of the settings. They catch typos (an interval of "1000h", a step
// list pasted twice) rather than encode a deep rule.
const (
	minStepWeight       = 1
	maxStepWeight       = 99
	minInterval         = time.Second
	maxInterval         = 24 * time.Hour
	minProgressDeadline = time.Second
	maxThreshold        = 1000
	// maxLatencyLimit is the largest finite bucket of Istio's
	// istio_request_duration_milliseconds histogram: a p99 above it cannot
	// be measured.
	maxLatencyLimit     = time.Hour
	maxTolerancePercent = 1000
)

// decimal is the number syntax of every numeric setting: digits with an
// optional fraction. It leaves out what strconv.ParseFloat would also take
// (signs, exponents, hex, "NaN", "Inf") because none of it is a sensible
// percentage and all of it is a likely typo.
var decimal = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?$`)

// parseBool accepts exactly "true" or "false", without trimming: the
// apiserver's matchConditions compare the value as written.
func parseBool(v string) (bool, error) {
	switch v {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, errors.New(`must be exactly "true" or "false"`)
}

func parseServiceName(v string) (string, error) {
	name := strings.TrimSpace(v)
	if msgs := validation.IsDNS1035Label(name); len(msgs) > 0 {
		return "", fmt.Errorf("not a Service name: %s", strings.Join(msgs, "; "))
	}
	return name, nil
}

// parseSteps parses a comma-separated list of weights.
//
// Example: "20, 40,60" → [20 40 60]; "20,40,40" fails (not strictly
// ascending); "0,50" fails (0 is out of 1..99).
func parseSteps(v string) ([]int32, error) {
	parts := strings.Split(strings.TrimSpace(v), ",")
	if len(parts) > MaxSteps {
		return nil, fmt.Errorf("has %d steps; at most %d are allowed", len(parts), MaxSteps)
	}
	steps := make([]int32, 0, len(parts))
	for i, part := range parts {
		part = strings.TrimSpace(part)
		if part == "" {
			return nil, fmt.Errorf("step %d is empty", i+1)
		}
		n, err := parseWhole(part)
		if err != nil {
			return nil, fmt.Errorf("step %d (%q) is not a whole number", i+1, part)
		}
		if n < minStepWeight || n > maxStepWeight {
			return nil, fmt.Errorf("step %d (%d) is out of range: each step is a weight in percent from %d to %d",
				i+1, n, minStepWeight, maxStepWeight)
		}
		if i > 0 && int32(n) <= steps[i-1] {
			return nil, fmt.Errorf("steps must be strictly ascending: step %d (%d) is not above step %d (%d)",
				i+1, n, i, steps[i-1])
		}
		steps = append(steps, int32(n))
	}
	return steps, nil
}

// parseWhole parses digits only: no sign, no spaces.
func parseWhole(s string) (int, error) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, errors.New("not a whole number")
	}
	return strconv.Atoi(s)
}

func parseIterations(v string) (int, error) {
	n, err := parseWhole(strings.TrimSpace(v))
	if err != nil || n < 1 || n > MaxIterations {
		return 0, fmt.Errorf("must be a whole number from 1 to %d: the intervals of the analysis", MaxIterations)
	}
	return n, nil
}

// cookieName is a cookie's name as RFC 6265 allows it (an HTTP token),
// kept to letters, digits and "-", "_", "." so that it needs no quoting
// in a header regex.
var cookieName = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

func parseCookieName(v string) (string, error) {
	name := strings.TrimSpace(v)
	if !cookieName.MatchString(name) {
		return "", errors.New(`must be a cookie name: 1 to 64 letters, digits, "-", "_" or "."`)
	}
	if l := strings.ToLower(name); strings.HasPrefix(l, "__host-") || strings.HasPrefix(l, "__secure-") {
		// Browsers keep such a cookie only with Secure (and, for
		// __Host-, no Domain): the canary's plain Set-Cookie would be
		// dropped and nothing would stick.
		return "", errors.New(`must not start with "__Host-" or "__Secure-": browsers drop those cookies unless they are Secure, and the canary's cookie is not`)
	}
	return name, nil
}

func parseMirror(v string) (int32, error) {
	n, err := parseWhole(strings.TrimSpace(v))
	if err != nil || n < 1 || n > 100 {
		return 0, errors.New("must be a whole number from 1 to 100: the percentage of stable's requests copied to the canary")
	}
	return int32(n), nil
}

func parseThreshold(v string) (int, error) {
	n, err := parseWhole(strings.TrimSpace(v))
	if err != nil || n < 1 || n > maxThreshold {
		return 0, fmt.Errorf("must be a whole number from 1 to %d: the failed checks tolerated before rollback", maxThreshold)
	}
	return n, nil
}

// parsePercent parses a decimal number with an optional trailing "%" and
// returns it in percent: "99.5%" → 99.5.
func parsePercent(v string) (float64, error) {
	s := strings.TrimSuffix(strings.TrimSpace(v), "%")
	if !decimal.MatchString(s) {
		return 0, errors.New("not a number")
	}
	p, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(p, 0) {
		return 0, errors.New("number out of range")
	}
	return p, nil
}

func parseSuccessRate(v string) (float64, error) {
	p, err := parsePercent(v)
	if err != nil || p > 100 {
		return 0, errors.New(`must be a percentage from 0 to 100, e.g. "99" or "99.5%"`)
	}
	return p, nil
}

// parseConfidence returns the confidence in percent, or off.
func parseConfidence(v string) (percent float64, off bool, err error) {
	if strings.TrimSpace(v) == "off" {
		return 0, true, nil
	}
	p, err := parsePercent(v)
	if err != nil || p <= 50 || p >= 100 {
		return 0, false, errors.New(`must be "off" or a percentage above 50 and below 100, e.g. "99" or "99.9%"`)
	}
	return p, false, nil
}

// parseTolerance returns the tolerance as a fraction.
//
// Example: "20%" → 0.20; "20" → 0.20; "150%" → 1.5 (the canary may be 2.5
// times as bad as stable).
func parseTolerance(v string) (float64, error) {
	p, err := parsePercent(v)
	if err != nil || p >= maxTolerancePercent {
		return 0, fmt.Errorf(`must be a percentage from 0 up to (not including) %d, e.g. "20%%"`, maxTolerancePercent)
	}
	return p / 100, nil
}

func parseNoData(v string) (NoDataPolicy, error) {
	switch p := NoDataPolicy(strings.TrimSpace(v)); p {
	case NoDataHold, NoDataFail, NoDataPass:
		return p, nil
	}
	return "", fmt.Errorf("must be one of %q, %q, %q", NoDataHold, NoDataFail, NoDataPass)
}

func parseStrategy(v string) (Strategy, error) {
	switch st := Strategy(strings.TrimSpace(v)); st {
	case StrategyCanary, StrategyAB, StrategyBlueGreen:
		return st, nil
	}
	return "", fmt.Errorf("must be %q (weight steps), %q (matching requests only) or %q (no user traffic, then one switch)",
		StrategyCanary, StrategyAB, StrategyBlueGreen)
}

func parseRouter(v string) (Router, error) {
	switch r := Router(strings.TrimSpace(v)); r {
	case RouterIstio, RouterGatewayAPI:
		return r, nil
	}
	return "", fmt.Errorf("must be %q (VirtualServices) or %q (HTTPRoutes)", RouterIstio, RouterGatewayAPI)
}

// parseDuration parses a Go duration within [lo, hi]; hi 0 means no upper
// bound.
func parseDuration(v string, lo, hi time.Duration) (time.Duration, error) {
	d, err := time.ParseDuration(strings.TrimSpace(v))
	if err != nil {
		return 0, errors.New(`not a duration: use a number with a unit, e.g. "30s", "1m" or "1h30m"`)
	}
	if d < lo {
		return 0, fmt.Errorf("must be at least %s", PromDuration(lo))
	}
	if hi > 0 && d > hi {
		return 0, fmt.Errorf("must be at most %s", PromDuration(hi))
	}
	return d, nil
}

// parseLatency parses a Go duration, or a bare number of milliseconds.
//
// Example: "500ms" → 500ms; "500" → 500ms; "1.5" → 1.5ms; "0" fails.
func parseLatency(v string) (time.Duration, error) {
	s := strings.TrimSpace(v)
	var d time.Duration
	if decimal.MatchString(s) {
		ms, err := strconv.ParseFloat(s, 64)
		if err != nil || ms > float64(maxLatencyLimit/time.Millisecond) {
			return 0, fmt.Errorf("must be at most %s", PromDuration(maxLatencyLimit))
		}
		d = time.Duration(math.Round(ms * float64(time.Millisecond)))
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, errors.New(`not a duration: use e.g. "500ms" or "1s", or a number of milliseconds`)
		}
	}
	if d <= 0 {
		return 0, errors.New("must be more than 0")
	}
	if d > maxLatencyLimit {
		return 0, fmt.Errorf("must be at most %s, the largest bucket of Istio's request duration histogram",
			PromDuration(maxLatencyLimit))
	}
	return d, nil
}

func parseVirtualServices(v string) ([]string, error) {
	return parseNames(v, "VirtualService", validation.IsDNS1123Subdomain)
}

// parseNames reads a comma-separated list of distinct names that valid
// accepts (what, e.g. "provider", names them in errors).
func parseNames(v, what string, valid func(string) []string) ([]string, error) {
	var names []string
	seen := map[string]bool{}
	for i, part := range strings.Split(strings.TrimSpace(v), ",") {
		name := strings.TrimSpace(part)
		switch {
		case name == "":
			return nil, fmt.Errorf("entry %d is empty", i+1)
		case seen[name]:
			return nil, fmt.Errorf("%q is listed twice", name)
		}
		if msgs := valid(name); len(msgs) > 0 {
			return nil, fmt.Errorf("%q is not a %s name: %s", name, what, strings.Join(msgs, "; "))
		}
		seen[name] = true
		names = append(names, name)
	}
	return names, nil
}

// parseHTTPURL accepts an absolute http or https URL with a host and returns
// it trimmed. Credentials in the URL are refused: annotations are readable
// by anyone who can read the Deployment.
func parseHTTPURL(v string) (string, error) {
	s := strings.TrimSpace(v)
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return "", errors.New("not a URL")
	case u.Scheme != "http" && u.Scheme != "https":
		return "", errors.New(`must be an absolute URL with scheme "http" or "https"`)
	case u.Hostname() == "":
		return "", errors.New("must have a host")
	case u.User != nil:
		return "", errors.New("must not carry credentials: annotations are readable by anyone who can read the Deployment")
	}
	return s, nil
}

// MaxSteps is the most steps canary.io/steps may list.
const MaxSteps = 20

// Limits on what one Deployment may ask of the shared controller, checked
// at admission.
const (
	// MaxMetrics is the most custom metrics canary.io/metrics may list.
	MaxMetrics = 20
	// MaxWebhooks is the most hooks canary.io/webhooks may list.
	MaxWebhooks = 20
	// MaxWebhookTimeout is the longest timeout a hook may ask for; the
	// controller's --max-hook-timeout cuts it further.
	MaxWebhookTimeout = time.Hour
	// MaxSettingsBytes bounds the total size of a Deployment's canary.io
	// settings annotations: they are frozen into one more annotation, and
	// the Deployment must stay far below the apiserver's object size.
	MaxSettingsBytes = 64 << 10
)
