package canaryctl

import (
	"context"
	"fmt"
	"io"
	"regexp"
	"strings"
	"text/tabwriter"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/canary-io/canary/contract"
	"github.com/canary-io/canary/stepper/plan"
)

// Outcomes of an analysis in the history, besides the phase of one still
// running (Progressing, Paused, Promoting).
const (
	OutcomeSucceeded  = "Succeeded"
	OutcomeRolledBack = "RolledBack"
	// OutcomeReplaced: another revision was applied during the analysis,
	// which restarted for it.
	OutcomeReplaced = "Replaced"
	// OutcomeRejected: a revision rolled back earlier, applied again and
	// held without analysis (HeldRejected).
	OutcomeRejected = "Rejected"
	// OutcomeSkipped: rolled out unanalysed (canary.io/skip-analysis).
	OutcomeSkipped = "Skipped"
)

// Analysis is one past (or the current) analysis of a Deployment, as its
// Events and annotations tell it.
type Analysis struct {
	// Revision is the analysed revision ("" when its start is older than
	// the Events kept).
	Revision string `json:"revision"`
	// Stable is the revision it was compared with, when known.
	Stable string `json:"stable,omitempty"`
	// Started is when it was held (nil when older than the Events kept).
	Started *time.Time `json:"started,omitempty"`
	// Ended is when it ended (nil while it runs).
	Ended *time.Time `json:"ended,omitempty"`
	// Outcome is one of the Outcome constants, or the phase of an
	// analysis still running.
	Outcome string `json:"outcome"`
	// Reason is the reason of the Event that ended it (or of the last one).
	Reason string `json:"reason,omitempty"`
	// Message is that Event's message.
	Message string `json:"message,omitempty"`
}

// History is what history -o json and -o yaml print.
type History struct {
	Namespace string     `json:"namespace"`
	Name      string     `json:"name"`
	Analyses  []Analysis `json:"analyses"`
}

// ending maps the reasons of the Events that end an analysis to its
// outcome.
var ending = map[string]string{
	plan.ReasonSucceeded:                OutcomeSucceeded,
	plan.ReasonChecksFailed:             OutcomeRolledBack,
	plan.ReasonCanaryWorse:              OutcomeRolledBack,
	plan.ReasonRollbackHook:             OutcomeRolledBack,
	plan.ReasonAborted:                  OutcomeRolledBack,
	plan.ReasonProgressDeadlineExceeded: OutcomeRolledBack,
	plan.ReasonConflict:                 OutcomeRolledBack,
	plan.ReasonRevertedByUser:           OutcomeRolledBack,
}

// revisionIn finds the revisions in an Event's message: "revision R held
// for canary analysis against stable revision S", "analysis restarted:
// revision R replaced revision Q under analysis (stable S)".
var (
	revisionIn = regexp.MustCompile(`revision ([0-9a-z]+)`)
	stableIn   = regexp.MustCompile(`stable (?:revision )?([0-9a-z]+)`)
)

// HistoryOf reconstructs d's analyses, oldest first, from its Events
// (any order; those about another object of the same name are ignored)
// and its status annotations, which describe the last analysis even once
// its Events have expired (the apiserver keeps Events for --event-ttl,
// one hour by default).
//
// Example: Events Held ("revision 7d9f held … stable revision 5c4b") then
// CanaryWorse ("rolled back: …") make one Analysis{Revision: "7d9f",
// Stable: "5c4b", Outcome: "RolledBack", Reason: "CanaryWorse", …}.
func HistoryOf(d *appsv1.Deployment, events []corev1.Event) []Analysis {
	var out []Analysis
	var open *Analysis
	closeOpen := func(at time.Time, outcome, reason, message string) {
		open.Ended, open.Outcome, open.Reason, open.Message = &at, outcome, reason, message
		out = append(out, *open)
		open = nil
	}
	for _, e := range RecentEvents(eventsAbout(&d.ObjectMeta, events), len(events)) {
		at := EventTime(e)
		msg := oneLine(e.Message)
		switch e.Reason {
		case plan.ReasonHeld:
			if open != nil {
				closeOpen(at, OutcomeReplaced, e.Reason, msg)
			}
			a := Analysis{Started: &at, Outcome: string(contract.PhaseProgressing), Reason: e.Reason, Message: msg}
			if m := revisionIn.FindStringSubmatch(msg); m != nil {
				a.Revision = m[1]
			}
			if m := stableIn.FindStringSubmatch(msg); m != nil {
				a.Stable = m[1]
			}
			open = &a
		case plan.ReasonHeldRejected, plan.ReasonAnalysisSkipped:
			if open != nil {
				closeOpen(at, OutcomeReplaced, e.Reason, msg)
			}
			outcome := OutcomeRejected
			if e.Reason == plan.ReasonAnalysisSkipped {
				outcome = OutcomeSkipped
			}
			a := Analysis{Started: &at, Ended: &at, Outcome: outcome, Reason: e.Reason, Message: msg}
			if m := revisionIn.FindStringSubmatch(msg); m != nil {
				a.Revision = m[1]
			}
			out = append(out, a)
		default:
			outcome, ends := ending[e.Reason]
			if !ends {
				if open != nil {
					open.Reason, open.Message = e.Reason, msg
				}
				continue
			}
			if open == nil {
				// Its start is older than the Events kept.
				open = &Analysis{}
			}
			closeOpen(at, outcome, e.Reason, msg)
		}
	}
	if open != nil {
		out = append(out, *open)
	}
	return withAnnotations(d, out)
}

// withAnnotations completes the last analysis from d's status
// annotations: its revision and phase, or a row of its own when its
// Events are gone.
func withAnnotations(d *appsv1.Deployment, out []Analysis) []Analysis {
	a := d.Annotations
	rev, phase := a[contract.KeyRevision], contract.Phase(a[contract.KeyPhase])
	if rev == "" || phase == "" || phase == contract.PhaseIdle {
		return out
	}
	if n := len(out); n > 0 && (out[n-1].Revision == rev || out[n-1].Revision == "") {
		last := &out[n-1]
		last.Revision = rev
		if last.Stable == "" {
			last.Stable = a[contract.KeyStableRevision]
		}
		if last.Ended == nil {
			last.Outcome = string(phase)
			last.Message = oneLine(a[contract.KeyMessage])
		}
		return out
	}
	row := Analysis{Revision: rev, Stable: a[contract.KeyStableRevision], Outcome: string(phase), Message: oneLine(a[contract.KeyMessage])}
	if phase == contract.PhaseSucceeded || phase == contract.PhaseRolledBack {
		if t, err := time.Parse(time.RFC3339, a[contract.KeyLastTransition]); err == nil {
			row.Ended = &t
		}
	}
	return append(out, row)
}

// RenderHistory renders analyses as a table, oldest first; wide adds the
// message.
func RenderHistory(analyses []Analysis, wide bool, now time.Time) string {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	header := "REVISION\tSTABLE\tOUTCOME\tREASON\tSTARTED\tDURATION"
	if wide {
		header += "\tMESSAGE"
	}
	fmt.Fprintln(tw, header)
	for _, a := range analyses {
		started, duration := none, none
		if a.Started != nil {
			started = age(*a.Started, now) + " ago"
			end := now
			if a.Ended != nil {
				end = *a.Ended
			}
			duration = end.Sub(*a.Started).Round(time.Second).String()
		}
		line := fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s", orNone(a.Revision), orNone(a.Stable), a.Outcome, orNone(a.Reason), started, duration)
		if wide {
			line += "\t" + a.Message
		}
		fmt.Fprintln(tw, line)
	}
	tw.Flush()
	return b.String()
}

// history prints the analyses of one Deployment.
func (p *Plugin) history(ctx context.Context, cs kubernetes.Interface, namespace, name, output string) error {
	d, err := cs.AppsV1().Deployments(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("get deployment %s/%s: %w", namespace, name, err)
	}
	events, err := eventsOf(ctx, cs, d)
	if err != nil {
		return err
	}
	analyses := HistoryOf(d, events)
	if output == "json" || output == "yaml" {
		return p.print(History{Namespace: namespace, Name: name, Analyses: analyses}, output)
	}
	if len(analyses) == 0 {
		fmt.Fprintf(p.ErrOut, "No analyses of deployment %s/%s in its Events (kept for the apiserver's --event-ttl, 1h by default) or annotations.\n", namespace, name)
		return nil
	}
	_, err = io.WriteString(p.Out, RenderHistory(analyses, output == "wide", p.Now()))
	return err
}
