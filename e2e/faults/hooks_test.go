package faults_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/canary-io/canary/contract"
	"github.com/canary-io/canary/e2e/bookinfo"
	"github.com/canary-io/canary/e2e/kit"
)

// TestHangingHooksFreezeNoOne: with two reconcile workers, two other
// teams' analyses whose pre-rollout hooks hang (timeout 1h, capped by the
// controller's --max-hook-timeout) must not delay a third, failing
// analysis: it reaches RolledBack within its interval plus 30 s. Once the
// two analyses are gone, their hook calls end.
func TestHangingHooksFreezeNoOne(t *testing.T) {
	cs, ic := clients(t)
	var inFlight, calls atomic.Int32
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // read whole: then the server sees the client go away
		calls.Add(1)
		inFlight.Add(1)
		defer inFlight.Add(-1)
		<-r.Context().Done()
	}))
	t.Cleanup(func() {
		hang.CloseClientConnections() // Close waits for the requests in flight
		hang.Close()
	})
	restartController(t, "--workers=2")
	t.Cleanup(func() { restartController(t) })

	hooks, _ := json.Marshal(fmt.Sprintf(`[{"name": "never-answers", "type": "pre-rollout", "url": %q, "timeout": "1h"}]`, hang.URL))
	var teams []string
	for range 2 {
		team := kit.Namespace(t, cs, "team", nil)
		teams = append(teams, team)
		kit.Kubectl(t, env, kit.Service(team, "reviews", "reviews", 9080), "apply", "-f", "-")
		annotations := []string{`canary.io/enabled: "true"`, `canary.io/steps: "50"`, `canary.io/interval: "3s"`, "canary.io/webhooks: " + string(hooks)}
		kit.Kubectl(t, env, kit.Reviews(team, "v1", "reviews:v1", 1, annotations, nil), "apply", "-f", "-")
		kit.WaitDeployment(t, cs, team, "reviews", time.Minute, "v1 Idle", func(d *appsv1.Deployment) bool {
			return d.Annotations[contract.KeyPhase] == string(contract.PhaseIdle) && d.Status.AvailableReplicas == 1
		})
		kit.Kubectl(t, env, kit.Reviews(team, "v2", "reviews:v2", 1, annotations, nil), "apply", "-f", "-")
	}
	kit.Eventually(t, time.Minute, "both teams' pre-rollout hooks hanging", func(context.Context) error {
		if n := inFlight.Load(); n < 2 {
			return fmt.Errorf("%d hook calls in flight", n)
		}
		return nil
	})

	version := nextVersion(t, false)
	mon := startMonitor(t)
	kubectl(t, reviews(version), "apply", "-f", "-")
	start := time.Now()
	d := kit.WaitDeployment(t, cs, ns, "reviews", interval+30*time.Second, "the failing analysis rolled back within its interval plus 30s", func(d *appsv1.Deployment) bool {
		return d.Annotations[contract.KeyPhase] == string(contract.PhaseRolledBack) || d.Annotations[contract.KeyPhase] == string(contract.PhaseSucceeded)
	})
	fmt.Printf("BENCH two analyses' hooks hanging, --workers=2: a third, failing analysis rolled back %s after its apply\n", time.Since(start).Round(100*time.Millisecond))
	if !strings.HasPrefix(d.Annotations[contract.KeyMessage], "rolled back: ") {
		t.Errorf("message %q", d.Annotations[contract.KeyMessage])
	}
	for _, team := range teams {
		st, err := cs.AppsV1().Deployments(team).Get(t.Context(), "reviews", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if msg := st.Annotations[contract.KeyMessage]; !strings.Contains(msg, "waiting for the pre-rollout hooks") {
			t.Errorf("%s: message %q, want it to say the analysis waits for its pre-rollout hooks", team, msg)
		}
	}
	checkEnded(t, cs, ic, contract.PhaseRolledBack)
	checkUserObjects(t, cs, bookinfo.Image(version))
	for _, b := range verdict(mon.end(), meshLag) {
		t.Error(b)
	}

	// The hanging calls belong to their analyses: gone with them.
	for _, team := range teams {
		if err := cs.AppsV1().Deployments(team).Delete(t.Context(), "reviews", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	kit.Eventually(t, 10*time.Second, "the hanging hook calls ended with their Deployments", func(context.Context) error {
		if n := inFlight.Load(); n > 0 {
			return fmt.Errorf("%d hook calls still in flight", n)
		}
		return nil
	})
	if n := calls.Load(); n != 2 {
		t.Errorf("%d calls to the hanging hook, want 2 (one per analysis: a call in flight is never repeated)", n)
	}
	backToStable(t)
}
