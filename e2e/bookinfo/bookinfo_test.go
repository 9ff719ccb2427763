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
