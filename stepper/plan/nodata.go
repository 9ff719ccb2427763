package plan

import (
	"fmt"
	"strings"
	"time"

	"github.com/canary-io/canary/contract"
)

// NoDataFacts are what the gatherer found out when a built-in check had no
// data: a few direct reads of the raw counters behind it, and what the
// continuous comparison counted.
type NoDataFacts struct {
	// Namespace and Canary are the labels the checks select
	// (destination_workload_namespace, destination_workload).
	Namespace, Canary string
	// Window is the checks' query window; Scrape is Prometheus' scrape
	// interval as discovered (or set, or assumed).
	Window, Scrape time.Duration
	// Series is how many series of istio_requests_total
	// (reporter="destination") the canary has in the window.
	Series int
	// MaxSamples is the most samples any of those series has in the
	// window; rate() needs two.
	MaxSamples int
	// SingleSample is how many of those series have one sample in the
	// window: series that began since the last scrape, which rate() and
	// increase() do not count yet.
	SingleSample int
	// Requests is how much the canary's counters grew over the window
	// (requests counted, as increase() reads them).
	Requests float64
	// Workloads, read when Series is zero, are the destination_workload
	// values of the namespace's series in the window, sorted; at most a
	// few.
	Workloads []string
	// ComparedRequests is how many canary requests the continuous
	// comparison counted since the analysis started; negative when it
	// did not run.
	ComparedRequests float64
}

// ExplainNoData says why the built-in checks read no data, for the
// message: the window held too few scrapes, the canary's series are not
// labelled as the checks select them, or the canary took no requests in
// the window. It never turns no data into a pass: the no-data policy
// still decides. Empty when the facts explain nothing.
//
// Examples:
//
//	the canary's series have 1 sample in the 10s window and rate() needs two (Prometheus scrapes every 15s): set canary.io/window to at least 1m, or remove it
//	no series of istio_requests_total has destination_workload="reviews-canary" in namespace bookinfo over 1m, though the comparison counted 1431 canary requests; the namespace's series name the workloads reviews, reviews-v2: the mesh labels workloads differently than the checks select them
//	the canary took no requests in the 1m window (its counters did not move): is traffic routed to it?
func ExplainNoData(f NoDataFacts) string {
	window := contract.PromDuration(f.Window)
	scrapes := fmt.Sprintf("Prometheus scrapes every %s", contract.PromDuration(f.Scrape))
	compared := ""
	if f.ComparedRequests > 0 {
		compared = fmt.Sprintf(", though the comparison counted %.0f canary requests", f.ComparedRequests)
	}
	switch {
	case f.Series > 0 && f.MaxSamples < 2:
		msg := fmt.Sprintf("the canary's series have %d sample%s in the %s window and rate() needs two (%s)",
			f.MaxSamples, plural(f.MaxSamples), window, scrapes)
		if f.Scrape > 0 && f.Window < 2*f.Scrape {
			return msg + fmt.Sprintf(": set %s to at least %s, or remove it", contract.KeyWindow,
				contract.PromDuration(contract.ScrapesPerWindow*f.Scrape))
		}
		return msg + ": the next scrape brings the second"
	case f.Series == 0 && len(f.Workloads) > 0:
		return fmt.Sprintf("no series of istio_requests_total has destination_workload=%q in namespace %s over %s%s; the namespace's series name the workloads %s: if the canary's requests are among them, the mesh labels workloads differently than the checks select them",
			f.Canary, f.Namespace, window, compared, strings.Join(f.Workloads, ", "))
	case f.Series == 0:
		return fmt.Sprintf("no series of istio_requests_total (reporter=\"destination\") in namespace %s over %s%s: is Prometheus scraping the mesh's sidecars?",
			f.Namespace, window, compared)
	case f.Requests <= 0 && f.SingleSample > 0:
		// The series that did have two samples did not move; the new
		// ones (the canary's first requests, or a new response code)
		// count from the next scrape.
		return fmt.Sprintf("%d of the canary's %d series have 1 sample in the %s window and rate() needs two (%s): the next scrape brings the second",
			f.SingleSample, f.Series, window, scrapes)
	case f.Requests <= 0:
		return fmt.Sprintf("the canary took no requests in the %s window (its counters did not move)%s: is traffic routed to it?", window, compared)
	}
	return ""
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// HiddenErrors says why the success rate waits when some of the canary's
// 5xx answers are in series that have a single sample in the window:
// rate() needs two samples of a series, so a series of errors that began
// since the last scrape counts for nothing yet, and the success rate
// read beside it would be too high. Fail closed: the check has no data
// until the next scrape brings the second sample.
//
// Example: 1 series, window 30s, scrape 15s →
// the canary answered 5xx errors that rate() cannot count yet: 1 series of them has 1 sample in the 30s window (Prometheus scrapes every 15s): the next scrape brings the second
func HiddenErrors(series int, window, scrape time.Duration) string {
	of := "series of them has"
	if series != 1 {
		of = "series of them have"
	}
	return fmt.Sprintf("the canary answered 5xx errors that rate() cannot count yet: %d %s 1 sample in the %s window (Prometheus scrapes every %s): the next scrape brings the second",
		series, of, contract.PromDuration(window), contract.PromDuration(scrape))
}
