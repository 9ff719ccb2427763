package integration

import (
	"context"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
	ar := cs.AdmissionregistrationV1()
	m, err := ar.MutatingWebhookConfigurations().Get(t.Context(), webhook.ConfigurationName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	v, err := ar.ValidatingWebhookConfigurations().Get(t.Context(), webhook.ConfigurationName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	broken := func(raw *string) *string { // port 1: nothing listens, connections are refused
		u, err := url.Parse(*raw)
		if err != nil {
			t.Fatal(err)
		}
		u.Host = "127.0.0.1:1"
		return ptr.To(u.String())
	}
	bm, bv := m.DeepCopy(), v.DeepCopy()
	for i := range bm.Webhooks {
		bm.Webhooks[i].ClientConfig.URL = broken(bm.Webhooks[i].ClientConfig.URL)
	}
	for i := range bv.Webhooks {
		bv.Webhooks[i].ClientConfig.URL = broken(bv.Webhooks[i].ClientConfig.URL)
	}
	if _, err := ar.MutatingWebhookConfigurations().Update(t.Context(), bm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	restored := false
	restore = func() {
		if restored {
			return
		}
		restored = true
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, put := range []func() error{
			func() error {
				cur, err := ar.MutatingWebhookConfigurations().Get(ctx, m.Name, metav1.GetOptions{})
				if err == nil {
					cur.Webhooks = m.Webhooks
					_, err = ar.MutatingWebhookConfigurations().Update(ctx, cur, metav1.UpdateOptions{})
				}
				return err
			},
			func() error {
				cur, err := ar.ValidatingWebhookConfigurations().Get(ctx, v.Name, metav1.GetOptions{})
				if err == nil {
					cur.Webhooks = v.Webhooks
					_, err = ar.ValidatingWebhookConfigurations().Update(ctx, cur, metav1.UpdateOptions{})
				}
				return err
			},
		} {
			if err := put(); err != nil {
				t.Errorf("restore the webhook configurations: %v", err)
			}
		}
	}
	t.Cleanup(restore)
	if _, err := ar.ValidatingWebhookConfigurations().Update(t.Context(), bv, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	return restore
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
	var moved []string
	for _, w := range weights() {
		if w != "0" && w != "" {
			moved = append(moved, w)
		}
	}
	if !slices.Equal(moved, []string{"20", "40", "60"}) {
		t.Errorf("weights recorded %v, want 20, 40, 60 (40 and 60 during the outage)", moved)
	}
}
