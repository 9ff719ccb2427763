package canaryctl

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	appsv1 "k8s.io/api/apps/v1"

	"github.com/canary-io/canary/contract"
)

// OptedIn reports whether a Deployment opted in to canary analysis
// (canary.io/enabled is exactly "true").
func OptedIn(d *appsv1.Deployment) bool {
	return d.Annotations[contract.KeyEnabled] == "true"
}

// RenderList is the table `kubectl canary list` prints: one row per opted-in
// Deployment, sorted by namespace and name, with the NAMESPACE column when
// allNamespaces is set. AGE is the time since the last phase change. It
// returns "" when no Deployment is opted in.
//
// Example row (without NAMESPACE):
//
//	NAME  PHASE        WEIGHT  STEP  REVISION  STABLE  AGE
//	web   Progressing  20      1/3   7f9c4d    5b6a21  2m
func RenderList(deployments []appsv1.Deployment, allNamespaces bool, now time.Time) string {
	return renderList(deployments, allNamespaces, false, now)
}

// RenderWideList is RenderList with the failed checks and the message.
func RenderWideList(deployments []appsv1.Deployment, allNamespaces bool, now time.Time) string {
	return renderList(deployments, allNamespaces, true, now)
}

func renderList(deployments []appsv1.Deployment, allNamespaces, wide bool, now time.Time) string {
	var rows []appsv1.Deployment
	for _, d := range deployments {
		if OptedIn(&d) {
			rows = append(rows, d)
		}
	}
	if len(rows) == 0 {
		return ""
	}
	slices.SortFunc(rows, func(x, y appsv1.Deployment) int {
		return cmp.Or(strings.Compare(x.Namespace, y.Namespace), strings.Compare(x.Name, y.Name))
	})
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	header := "NAME\tPHASE\tWEIGHT\tSTEP\tREVISION\tSTABLE\tAGE"
	if allNamespaces {
		header = "NAMESPACE\t" + header
	}
	if wide {
		header += "\tFAILED-CHECKS\tMESSAGE"
	}
	fmt.Fprintln(tw, header)
	for _, d := range rows {
		a := d.Annotations
		if allNamespaces {
			fmt.Fprintf(tw, "%s\t", d.Namespace)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s", d.Name,
			orNone(a[contract.KeyPhase]), orNone(a[contract.KeyWeight]), orNone(a[contract.KeyStep]),
			orNone(a[contract.KeyRevision]), orNone(a[contract.KeyStableRevision]),
			lastTransitionAge(a[contract.KeyLastTransition], now))
		if wide {
			fmt.Fprintf(tw, "\t%s\t%s", orNone(a[contract.KeyFailedChecks]), oneLine(a[contract.KeyMessage]))
		}
		fmt.Fprintln(tw)
	}
	_ = tw.Flush()
	return b.String()
}
