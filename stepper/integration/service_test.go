package integration

import (
	"strings"
	"testing"
	"time"

	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/canary-io/canary/contract"
	"github.com/canary-io/canary/e2e/kit"
)

// TestNamedServiceMustSelectThePods: canary.io/service naming a Service
// that does not select the Deployment's pods (another team's) stops the
// analysis before any traffic moves, says why, and leaves that Service as
// it was.
func TestNamedServiceMustSelectThePods(t *testing.T) {
	t.Parallel()
	ns, cs, _ := setup(t)
	kubectl(t, kit.Service(ns, "payments", "payments", 8080), "apply", "-f", "-")
	before, err := cs.CoreV1().Services(ns).Get(t.Context(), "payments", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	prom.Set(ns, kit.Healthy)
	kubectl(t, manifest(ns, "v2", `canary.io/service: payments`), "apply", "-f", "-")
	d := phaseOf(t, cs, ns, contract.PhaseRolledBack, 60*time.Second)
	want := "Service payments named in canary.io/service does not select the Deployment's pods"
	if msg := d.Annotations[contract.KeyMessage]; !strings.Contains(msg, want) {
		t.Errorf("message %q, want it to say %q", msg, want)
	}
	if w := d.Annotations[contract.KeyWeight]; w != "0" {
		t.Errorf("weight %s: traffic moved", w)
	}
	time.Sleep(2 * time.Second) // anything the stepper would do to it, done
	after, err := cs.CoreV1().Services(ns).Get(t.Context(), "payments", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if after.ResourceVersion != before.ResourceVersion || !apiequality.Semantic.DeepEqual(after.Spec.Selector, before.Spec.Selector) {
		t.Errorf("the other team's Service was written: selector %v, annotations %v", after.Spec.Selector, after.Annotations)
	}
}
