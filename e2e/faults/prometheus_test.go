package faults_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/canary-io/canary/contract"
	"github.com/canary-io/canary/e2e/bookinfo"
	"github.com/canary-io/canary/e2e/kit"
)

// TestPrometheusFaults: Prometheus answering errors, hanging, and gone
// (a killed process) mid-step is never a pass: the step does not advance
// while it is broken, the message says why, and once it is back the
// analysis goes on to promotion. A bad version analysed while Prometheus
// answers only errors is rolled back at the progress deadline.
func TestPrometheusFaults(t *testing.T) {
	t.Run("mid-step", prometheusMidStep)
	t.Run("bad version, no Prometheus", prometheusGoneBadVersion)
}

func prometheusMidStep(t *testing.T) {
	cs, ic := clients(t)
	version := nextVersion(t, true)
	mon := startMonitor(t)
	applyUntilFirstStep(t, cs, version)
	t.Cleanup(func() { prom.set(promOK) })
	// The faults follow one another with no good answer between them: a
	// step judged in a gap could be the last one, and the analysis would
	// rightly go on to promotion. The three together stay inside the
	// progress deadline (30s).
	prom.set(promError)
	time.Sleep(time.Second) // a pass begun before the fault may still judge on good answers
	d, err := cs.AppsV1().Deployments(ns).Get(t.Context(), "reviews", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	passed := d.Annotations[contract.KeyStepsPassed]
	for _, mode := range []promMode{promError, promHang, promDown} {
		prom.set(mode)
		var messages []string
		for end := time.Now().Add(2*interval + 2*time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
			d, err := cs.AppsV1().Deployments(ns).Get(t.Context(), "reviews", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if got := d.Annotations[contract.KeyStepsPassed]; got != passed {
				t.Errorf("Prometheus %s: steps passed %s → %s while every query failed (%s)", mode, passed, got, d.Annotations[contract.KeyMessage])
			}
			if p := contract.Phase(d.Annotations[contract.KeyPhase]); p != contract.PhaseProgressing {
				t.Fatalf("Prometheus %s: phase %s (%s)", mode, p, d.Annotations[contract.KeyMessage])
			}
			if m := d.Annotations[contract.KeyMessage]; len(messages) == 0 || messages[len(messages)-1] != m {
				messages = append(messages, m)
			}
		}
		t.Logf("Prometheus %s: messages %q", mode, messages)
		if !saysWhy(messages, mode) {
			t.Errorf("Prometheus %s: no message says the analysis waits for data because of it: %q", mode, messages)
		}
	}
	prom.set(promOK)
	start := time.Now()
	kit.WaitDeployment(t, cs, ns, "reviews", 2*time.Minute, "promoted once Prometheus is back", func(d *appsv1.Deployment) bool {
		return d.Annotations[contract.KeyPhase] == string(contract.PhaseSucceeded) || d.Annotations[contract.KeyPhase] == string(contract.PhaseRolledBack)
	})
	fmt.Printf("BENCH Prometheus faults: promoted %s after Prometheus came back\n", time.Since(start).Round(100*time.Millisecond))
	d = checkEnded(t, cs, ic, contract.PhaseSucceeded)
	checkUserObjects(t, cs, bookinfo.Image(version))
	for _, b := range verdict(mon.end(), meshLag) {
		t.Error(b)
	}
	if !strings.HasPrefix(d.Annotations[contract.KeyMessage], "promoted") {
		t.Errorf("message %q", d.Annotations[contract.KeyMessage])
	}
	stable = version
}

func prometheusGoneBadVersion(t *testing.T) {
	cs, ic := clients(t)
	version := nextVersion(t, false)
	mon := startMonitor(t)
	prom.set(promError)
	t.Cleanup(func() { prom.set(promOK) })
	kubectl(t, reviews(version), "apply", "-f", "-")
	start := time.Now()
	kit.WaitDeployment(t, cs, ns, "reviews", 2*time.Minute, "rolled back", func(d *appsv1.Deployment) bool {
		return d.Annotations[contract.KeyPhase] == string(contract.PhaseRolledBack) || d.Annotations[contract.KeyPhase] == string(contract.PhaseSucceeded)
	})
	fmt.Printf("BENCH Prometheus answering errors: the bad version rolled back %s after the apply (progress deadline 30s)\n", time.Since(start).Round(100*time.Millisecond))
	prom.set(promOK)
	d := checkEnded(t, cs, ic, contract.PhaseRolledBack)
	if msg := d.Annotations[contract.KeyMessage]; !strings.Contains(msg, "no data arrived for 30s (progress deadline)") {
		t.Errorf("message %q, want the progress deadline's no-data rollback", msg)
	}
	checkUserObjects(t, cs, bookinfo.Image(version))
	for _, b := range verdict(mon.end(), meshLag) {
		t.Error(b)
	}
	backToStable(t)
}

// saysWhy reports whether one of an analysis' messages says it waits
// for data and names the Prometheus fault the test injected.
func saysWhy(messages []string, mode promMode) bool {
	why := map[promMode][]string{
		promError: {"503"},
		promHang:  {"deadline exceeded", "timeout"},
		promDown:  {"EOF", "connection reset", "connection refused"},
	}[mode]
	for _, m := range messages {
		if !strings.Contains(m, "waiting for data") {
			continue
		}
		for _, w := range why {
			if strings.Contains(m, w) {
				return true
			}
		}
	}
	return false
}
