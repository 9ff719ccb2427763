package integration

import (
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/canary-io/canary/contract"
	"github.com/canary-io/canary/e2e/kit"
	"github.com/canary-io/canary/webhook"
)

// breakWebhooks points every canary.io webhook at a closed port, as an
// outage of the webhook server would leave them, until the returned
// function (also a cleanup) puts them back.
func breakWebhooks(t *testing.T, cs kubernetes.Interface) (restore func()) {
	t.Helper()
	broken := func(cc *admissionregistrationv1.WebhookClientConfig) { // port 1: nothing listens, connections are refused
		u, err := url.Parse(*cc.URL)
		if err != nil {
			t.Fatal(err)
		}
		u.Host = "127.0.0.1:1"
		cc.URL = ptr.To(u.String())
	}
	return kit.ChangeWebhooks(t, cs, webhook.ConfigurationName, func(m *admissionregistrationv1.MutatingWebhookConfiguration, v *admissionregistrationv1.ValidatingWebhookConfiguration) {
		for i := range m.Webhooks {
			broken(&m.Webhooks[i].ClientConfig)
		}
		for i := range v.Webhooks {
			broken(&v.Webhooks[i].ClientConfig)
		}
	})
}

// TestWebhookOutageMidAnalysis: with the webhook server unreachable, an
// analysis in flight goes on recording its steps (the controller's status
// writes are not sent to the webhooks), its promotion, whose unpause the
// webhook must judge, waits and says so, and it completes once the
// webhook is back; a user's write is refused meanwhile. Serial: it
// changes the webhook configurations every test relies on.
func TestWebhookOutageMidAnalysis(t *testing.T) {
	ns, cs, _ := setup(t)
	prom.Set(ns, kit.Healthy)
	weights := watchWeights(t, cs, ns)
	kubectl(t, manifest(ns, "v2"), "apply", "-f", "-")
	waitFor(t, cs, ns, 60*time.Second, "weight 20", func(d *appsv1.Deployment) bool { return d.Annotations[contract.KeyWeight] == "20" })

	restore := breakWebhooks(t, cs)
	out, err := kit.TryKubectl(t.Context(), env, "", "annotate", "deployment/reviews", "-n", ns, "team=books")
	if err == nil || !strings.Contains(out, "deployments.mutate.canary.io") {
		t.Fatalf("a user's write during the outage: err %v, output %q: want a refusal naming the webhook", err, out)
	}
	d := waitFor(t, cs, ns, 60*time.Second, "the promotion waiting for the unpause", func(d *appsv1.Deployment) bool {
		return d.Annotations[contract.KeyPhase] == string(contract.PhasePromoting) && d.Spec.Paused &&
			strings.Contains(d.Annotations[contract.KeyFailing], "Unpause")
	})
	if msg := d.Annotations[contract.KeyMessage]; !strings.Contains(msg, "the promotion retries until it can") {
		t.Errorf("message during the refused unpause: %q, want that the promotion retries", msg)
	}
	if got := d.Spec.Template.Spec.Containers[0].Image; got != "reviews:v2" {
		t.Errorf("template image %s during the outage, want reviews:v2 held", got)
	}

	restore()
	waitFor(t, cs, ns, 60*time.Second, "v2 promoted once the webhook is back", func(d *appsv1.Deployment) bool {
		return d.Annotations[contract.KeyPhase] == string(contract.PhaseSucceeded) && !d.Spec.Paused &&
			d.Annotations[contract.KeyFailing] == ""
	})
	moved := movedWeights(weights())
	if !slices.Equal(moved, []string{"20", "40", "60"}) {
		t.Errorf("weights recorded %v, want 20, 40, 60 (40 and 60 during the outage)", moved)
	}
}
