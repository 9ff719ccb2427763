package stepper

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestChangedMeanwhile: a conflict retry writes the decision over a fresh
// version only when nothing but the status, the resourceVersion and the
// managed fields changed.
func TestChangedMeanwhile(t *testing.T) {
	read := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{
		Name: "reviews", ResourceVersion: "1", Generation: 2,
		Labels: map[string]string{"app": "reviews"}, Annotations: map[string]string{"canary.io/enabled": "true"},
	}}
	for _, c := range []struct {
		name    string
		change  func(*appsv1.Deployment)
		changed bool
	}{
		{"status and resourceVersion only", func(d *appsv1.Deployment) { d.ResourceVersion = "2"; d.Status.ReadyReplicas = 3 }, false},
		{"type information (a cached copy has none)", func(d *appsv1.Deployment) {
			d.TypeMeta = metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"}
		}, false},
		{"managed fields", func(d *appsv1.Deployment) {
			d.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "kube-controller-manager"}}
		}, false},
		{"a label", func(d *appsv1.Deployment) { d.Labels["team"] = "books" }, true},
		{"an annotation", func(d *appsv1.Deployment) { d.Annotations["canary.io/abort"] = "1" }, true},
		{"a finalizer", func(d *appsv1.Deployment) { d.Finalizers = []string{"example.com/keep"} }, true},
		{"the spec", func(d *appsv1.Deployment) { d.Spec.Paused = true }, true},
	} {
		fresh := read.DeepCopy()
		c.change(fresh)
		if got := changedMeanwhile(read, fresh); got != c.changed {
			t.Errorf("%s: changedMeanwhile %v, want %v", c.name, got, c.changed)
		}
	}
}
