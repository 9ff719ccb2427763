package faults_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/canary-io/canary/contract"
	"github.com/canary-io/canary/e2e/bookinfo"
	"github.com/canary-io/canary/e2e/cluster"
	"github.com/canary-io/canary/e2e/kit"
)

// TestControllerWritesRefused: for a while, an admission policy refuses
// every write the controller makes to Deployments (as the validating
// webhook did to the controller's own writes during a certificate
// renewal, or a quota or policy might). No weight moves without its
// record, the analysis holds, and once writes are allowed again it goes on
// to promotion.
func TestControllerWritesRefused(t *testing.T) {
	cs, ic := clients(t)
	version := nextVersion(t, true)
	mon := startMonitor(t)
	applyUntilFirstStep(t, cs, version)
	remove := kit.DenyPolicy(t, cs, "refuse-controller-writes", ns,
		[]admissionregistrationv1.OperationType{admissionregistrationv1.Update, admissionregistrationv1.Create}, []string{"deployments", "deployments/status"},
		fmt.Sprintf("request.userInfo.username != %q", cluster.ControllerUser), "the controller's writes are refused for now (fault injected)")
	// The policy takes effect within a moment; then the controller's
	// writes are refused for four intervals: a step's end, its checks and
	// the next step's start all fall inside.
	time.Sleep(2 * time.Second)
	before, err := cs.AppsV1().Deployments(ns).Get(t.Context(), "reviews", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(4 * interval)
	d, err := cs.AppsV1().Deployments(ns).Get(t.Context(), "reviews", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	refused := strings.Contains(ctrl.Log(), "the controller's writes are refused for now")
	remove()
	if !refused {
		t.Error("the controller's log shows no refused write: the policy did not take effect")
	}
	if p := contract.Phase(d.Annotations[contract.KeyPhase]); p != contract.PhaseProgressing || d.ResourceVersion != before.ResourceVersion && d.Annotations[contract.KeyWeight] != before.Annotations[contract.KeyWeight] {
		t.Errorf("while refused: phase %s weight %s, want Progressing at %s (nothing recorded)", p, d.Annotations[contract.KeyWeight], before.Annotations[contract.KeyWeight])
	}
	start := time.Now()
	kit.WaitDeployment(t, cs, ns, "reviews", 2*time.Minute, "promoted once writes are allowed", func(d *appsv1.Deployment) bool {
		return d.Annotations[contract.KeyPhase] == string(contract.PhaseSucceeded) || d.Annotations[contract.KeyPhase] == string(contract.PhaseRolledBack)
	})
	fmt.Printf("BENCH controller writes refused for %s: promoted %s after they were allowed again\n", 4*interval, time.Since(start).Round(100*time.Millisecond))
	checkEnded(t, cs, ic, contract.PhaseSucceeded)
	checkUserObjects(t, cs, bookinfo.Image(version))
	for _, b := range verdict(mon.end(), meshLag) {
		t.Error(b)
	}
	stable = version
}
