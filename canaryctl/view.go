package canaryctl

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"

	"github.com/canary-io/canary/contract"
)

// barWidth is the number of cells in the weight bar.
const barWidth = 20

// maxEvents is how many of the most recent Events the view shows.
const maxEvents = 10

// none stands for a status annotation the system has not written.
const none = "-"

// RenderView is the text `kubectl canary get` prints for one Deployment: the
// phase, the weight as a bar, step, failed checks, revisions, the last
// transition, the message and the most recent Events about the Deployment.
// now is the time ages are measured from.
//
// For a Deployment at weight 40 on step 2/3 the top of the view reads
//
//	Deployment:      shop/web
//	Phase:           Progressing
//	Weight:          [########............] 40%
//	Step:            2/3
func RenderView(d *appsv1.Deployment, events []corev1.Event, now time.Time) string {
	a := d.Annotations
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 1, ' ', 0)
	line := func(label, value string) { fmt.Fprintf(tw, "%s:\t%s\n", label, value) }
	line("Deployment", d.Namespace+"/"+d.Name)
	if a[contract.KeyEnabled] != "true" {
		line("Canary", fmt.Sprintf("not enabled (%s is not \"true\")", contract.KeyEnabled))
	}
	phase := orNone(a[contract.KeyPhase])
	if a[contract.KeyPause] == "true" && phase != string(contract.PhasePaused) {
		phase += fmt.Sprintf(" (%s requested)", contract.KeyPause)
	}
	line("Phase", phase)
	line("Weight", WeightBar(a[contract.KeyWeight], barWidth))
	line("Step", orNone(a[contract.KeyStep]))
	line("Failed checks", orNone(a[contract.KeyFailedChecks]))
	line("Revision", orNone(a[contract.KeyRevision]))
	line("Stable revision", orNone(a[contract.KeyStableRevision]))
	if r := a[contract.KeyRejectedRevision]; r != "" {
		line("Rejected revision", r)
	}
	line("Last transition", transition(a[contract.KeyLastTransition], now))
	line("Message", orNone(a[contract.KeyMessage]))
	_ = tw.Flush()

	b.WriteString("\nEvents:")
	recent := RecentEvents(eventsAbout(&d.ObjectMeta, events), maxEvents)
	if len(recent) == 0 {
		b.WriteString(" <none>\n")
		return b.String()
	}
	b.WriteString("\n")
	tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  AGE\tTYPE\tREASON\tMESSAGE")
	for _, e := range recent {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", age(EventTime(e), now), e.Type, e.Reason, oneLine(e.Message))
	}
	_ = tw.Flush()
	return b.String()
}

// WeightBar draws a weight annotation as a bar of width cells, one '#' per
// filled cell, rounded to the nearest cell. A value that is not a whole
// percent (or absent) is shown as "-".
//
// Example: WeightBar("40", 20) is "[########............] 40%", since 40% of
// 20 cells is 8.
func WeightBar(weight string, width int) string {
	w, err := strconv.Atoi(weight)
	if err != nil || w < 0 || w > 100 {
		return orNone(weight)
	}
	filled := (w*width + 50) / 100
	return "[" + strings.Repeat("#", filled) + strings.Repeat(".", width-filled) + "] " + weight + "%"
}

// EventTime is when an Event last happened: the series' last observation,
// the event time (events.k8s.io/v1 Events), the last or first timestamp
// (core/v1 Events), or when it was created, the first that is set.
func EventTime(e corev1.Event) time.Time {
	switch {
	case e.Series != nil && !e.Series.LastObservedTime.IsZero():
		return e.Series.LastObservedTime.Time
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp.Time
	case !e.FirstTimestamp.IsZero():
		return e.FirstTimestamp.Time
	}
	return e.CreationTimestamp.Time
}

// RecentEvents returns the n most recent events, oldest first, so the
// newest is on the view's last line. Ties keep their name order, so the
// view is stable between redraws.
func RecentEvents(events []corev1.Event, n int) []corev1.Event {
	sorted := slices.Clone(events)
	slices.SortStableFunc(sorted, func(x, y corev1.Event) int {
		return cmp.Or(EventTime(x).Compare(EventTime(y)), strings.Compare(x.Name, y.Name))
	})
	if len(sorted) > n {
		sorted = sorted[len(sorted)-n:]
	}
	return sorted
}

// transition renders the last-transition annotation with its age, e.g.
// "2026-05-01T10:00:00Z (90s ago)".
func transition(v string, now time.Time) string {
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return orNone(v)
	}
	return fmt.Sprintf("%s (%s ago)", v, age(t, now))
}

// age is the time from t to now as kubectl prints it ("90s", "5m", "3d"),
// or "-" when t is unknown.
func age(t, now time.Time) string {
	if t.IsZero() {
		return none
	}
	return duration.HumanDuration(now.Sub(t))
}

// lastTransitionAge is the AGE column of the list: how long ago the
// Deployment's phase last changed.
func lastTransitionAge(v string, now time.Time) string {
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return none
	}
	return age(t, now)
}

func orNone(s string) string {
	if s == "" {
		return none
	}
	return s
}

// oneLine keeps a table row on one line whatever an Event's message holds.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// eventsAbout keeps the Events about d itself, not about an earlier
// Deployment of the same name.
func eventsAbout(d *metav1.ObjectMeta, events []corev1.Event) []corev1.Event {
	var out []corev1.Event
	for _, e := range events {
		if e.InvolvedObject.UID == "" || e.InvolvedObject.UID == d.UID {
			out = append(out, e)
		}
	}
	return out
}
