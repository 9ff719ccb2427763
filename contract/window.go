package contract

import (
	"fmt"
	"time"
)

// ScrapesPerWindow is how many scrape intervals a check's window spans at
// least: rate() needs two samples of a series in the window, and with
// four the window holds three or four of them wherever it falls, so a
// scrape that is late or missed does not empty it.
const ScrapesPerWindow = 4

// Window is the query window of the threshold checks (and of {{interval}}
// in custom metrics): canary.io/window when the user set it (override
// above zero), otherwise the longer of the step interval and
// ScrapesPerWindow scrape intervals. A scrape interval of zero (unknown)
// leaves the interval.
//
// Worked examples: interval 10s, scrapes every 15s → 4 × 15s = 1m, longer
// than 10s, so 1m; interval 2m, scrapes every 15s → 2m; interval 10s,
// scrapes every 1s → 10s; canary.io/window 30s → 30s whatever the rest.
func Window(interval, override, scrape time.Duration) time.Duration {
	if override > 0 {
		return override
	}
	return max(interval, ScrapesPerWindow*scrape)
}

// UnjudgedWarning is the admission warning for a blue-green analysis
// that nothing sends traffic to (no canary.io/mirror, no pre-rollout or
// rollout hook to load-test it), or "": its checks will have no data.
func UnjudgedWarning(s Settings) string {
	if s.Strategy != StrategyBlueGreen || s.Mirror > 0 ||
		len(OfType(s.Webhooks, HookPreRollout)) > 0 || len(OfType(s.Webhooks, HookRollout)) > 0 {
		return ""
	}
	return fmt.Sprintf("%s %q sends the canary no user traffic, and nothing else sends it any (no %s, no pre-rollout or rollout hook in %s): its checks will have no data (%s %q)",
		KeyStrategy, StrategyBlueGreen, KeyMirror, KeyWebhooks, KeyNoData, s.NoData)
}

// ShortIntervalWarning is the admission warning for an interval shorter
// than two scrapes of Prometheus, or "" when it is not (or the scrape
// interval is unknown, zero): each step's checks then read a window
// longer than the step, which the user should know.
//
// Example: interval 10s, scrapes every 15s, no window set →
// "canary.io/interval 10s is shorter than two scrapes of Prometheus
// (15s): the checks read 1m windows".
func ShortIntervalWarning(interval, override, scrape time.Duration) string {
	if scrape <= 0 || interval >= 2*scrape {
		return ""
	}
	w := Window(interval, override, scrape)
	msg := fmt.Sprintf("%s %s is shorter than two scrapes of Prometheus (%s): the checks read %s windows",
		KeyInterval, PromDuration(interval), PromDuration(scrape), PromDuration(w))
	if override > 0 && override < 2*scrape {
		msg += fmt.Sprintf(" (%s), which hold fewer than two scrapes: expect no data", KeyWindow)
	} else if override > 0 {
		msg += fmt.Sprintf(" (%s)", KeyWindow)
	}
	return msg
}
