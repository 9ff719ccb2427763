package bookinfo

import (
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"sigs.k8s.io/yaml"

	"github.com/canary-io/canary/contract"
)

func TestReviewsRendersAValidOptedInDeployment(t *testing.T) {
	var d appsv1.Deployment
	if err := yaml.UnmarshalStrict([]byte(Reviews("v3", 10*time.Second)), &d); err != nil {
		t.Fatal(err)
	}
	if got := d.Spec.Template.Spec.Containers[0].Image; got != Image("v3") {
		t.Errorf("image %s, want %s", got, Image("v3"))
	}
	if d.Spec.Template.Labels["version"] != "v3" || d.Spec.Selector.MatchLabels["version"] != "" {
		t.Errorf("the version belongs on the pods, not the selector: %v / %v", d.Spec.Template.Labels, d.Spec.Selector.MatchLabels)
	}
	if errs := contract.Validate(d.Annotations); len(errs) > 0 {
		t.Errorf("annotations invalid: %v", errs.ToAggregate())
	}
	if d.Annotations[contract.KeyInterval] != "10s" {
		t.Errorf("interval %q", d.Annotations[contract.KeyInterval])
	}
	if !strings.Contains(App, "name: reviews") {
		t.Errorf("the app lacks the reviews Service")
	}
}

func TestReviewsWithHooksCarriesTheList(t *testing.T) {
	list := `[{"name":"approval","type":"confirm-promotion","url":"http://127.0.0.1:9090/gate/check"},` +
		`{"name":"load-test","type":"pre-rollout","url":"http://127.0.0.1:9090/","metadata":{"type":"bash","cmd":"printf 'a\\r\\n' | grep -q ' 200 '"}}]`
	var d appsv1.Deployment
	if err := yaml.UnmarshalStrict([]byte(ReviewsWithHooks("v3", 10*time.Second, list)), &d); err != nil {
		t.Fatal(err)
	}
	if got := d.Annotations[contract.KeyWebhooks]; got != list {
		t.Errorf("canary.io/webhooks = %q, want %q", got, list)
	}
	s, err := contract.ParseSettings(d.Annotations)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Webhooks) != 2 || s.Webhooks[1].Metadata["cmd"] != `printf 'a\r\n' | grep -q ' 200 '` {
		t.Errorf("webhooks parsed as %+v", s.Webhooks)
	}
	if _, ok := yamlAnnotations(t, Reviews("v3", 10*time.Second))[contract.KeyWebhooks]; ok {
		t.Error("Reviews without hooks carries canary.io/webhooks")
	}
}

func yamlAnnotations(t *testing.T, manifest string) map[string]string {
	t.Helper()
	var d appsv1.Deployment
	if err := yaml.UnmarshalStrict([]byte(manifest), &d); err != nil {
		t.Fatal(err)
	}
	return d.Annotations
}
