package stepper

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/event"
)

// TestSlimDeployments: the cache keeps a Deployment the system has
// nothing to do with as metadata, replicas, selector and template labels;
// an opted-in one, one whose analysis' status is still there and a
// canary whole; none with managed fields.
func TestSlimDeployments(t *testing.T) {
	deployment := func(annotations, labels map[string]string) *appsv1.Deployment {
		return &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: "reviews", Namespace: "shop", UID: "u1", Annotations: annotations, Labels: labels,
				ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}},
			Spec: appsv1.DeploymentSpec{
				Replicas: ptr.To[int32](3),
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "reviews"}},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "reviews", "version": "v1"}},
					Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "reviews", Image: "reviews:v1", Env: []corev1.EnvVar{{Name: "A", Value: "b"}}}}},
				},
			},
			Status: appsv1.DeploymentStatus{ReadyReplicas: 3},
		}
	}
	for _, tc := range []struct {
		name      string
		d         *appsv1.Deployment
		wantWhole bool
	}{
		{"not opted in", deployment(map[string]string{"team": "a"}, nil), false},
		{"opted in", deployment(map[string]string{"canary.io/enabled": "true"}, nil), true},
		{"opted out, its analysis' status still there", deployment(map[string]string{"canary.io/phase": "Succeeded"}, nil), true},
		{"a canary", deployment(nil, map[string]string{LabelCanary: "true"}), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := SlimDeployments(tc.d.DeepCopy())
			if err != nil {
				t.Fatal(err)
			}
			got := out.(*appsv1.Deployment)
			if len(got.ManagedFields) != 0 {
				t.Error("managed fields kept")
			}
			whole := len(got.Spec.Template.Spec.Containers) == 1 && got.Status.ReadyReplicas == 3
			if whole != tc.wantWhole {
				t.Errorf("kept whole %v, want %v: %+v", whole, tc.wantWhole, got)
			}
			if got.Name != "reviews" || got.UID != "u1" || *got.Spec.Replicas != 3 || got.Spec.Selector.MatchLabels["app"] != "reviews" ||
				got.Spec.Template.Labels["version"] != "v1" || len(got.Annotations) != len(tc.d.Annotations) {
				t.Errorf("lost what the stepper reads: %+v", got)
			}
		})
	}
}

// TestCanaryChanged: the deployment controller's status writes that
// change nothing a pass reads (conditions, observed generation) wake no
// pass; a new spec, replica counts or deletion do.
func TestCanaryChanged(t *testing.T) {
	base := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "reviews-canary", Generation: 2, Labels: map[string]string{"canary.io/canary": "true"}}}
	base.Status = appsv1.DeploymentStatus{ObservedGeneration: 1, Replicas: 2, UpdatedReplicas: 2, ReadyReplicas: 1, AvailableReplicas: 1}
	for _, tc := range []struct {
		name   string
		change func(*appsv1.Deployment)
		want   bool
	}{
		{"observed generation", func(d *appsv1.Deployment) { d.Status.ObservedGeneration = 2 }, false},
		{"a condition's time", func(d *appsv1.Deployment) {
			d.Status.Conditions = []appsv1.DeploymentCondition{{Type: appsv1.DeploymentProgressing, LastUpdateTime: metav1.Now()}}
		}, false},
		{"resourceVersion only", func(d *appsv1.Deployment) { d.ResourceVersion = "7" }, false},
		{"a pod ready", func(d *appsv1.Deployment) { d.Status.ReadyReplicas = 2 }, true},
		{"a pod available", func(d *appsv1.Deployment) { d.Status.AvailableReplicas = 2 }, true},
		{"a pod more", func(d *appsv1.Deployment) { d.Status.Replicas = 3 }, true},
		{"updated", func(d *appsv1.Deployment) { d.Status.UpdatedReplicas = 1 }, true},
		{"spec", func(d *appsv1.Deployment) { d.Generation = 3 }, true},
		{"a label", func(d *appsv1.Deployment) { d.Labels["x"] = "y" }, true},
		{"deleted", func(d *appsv1.Deployment) { now := metav1.Now(); d.DeletionTimestamp = &now }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := base.DeepCopy()
			tc.change(n)
			if got := canaryChanged(event.UpdateEvent{ObjectOld: base, ObjectNew: n}); got != tc.want {
				t.Errorf("canaryChanged = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestCanaryPodWakesItsDeployment: a canary pod maps to the Deployment
// whose canary runs it, and only a change of its readiness (or its
// deletion) wakes it.
func TestCanaryPodWakesItsDeployment(t *testing.T) {
	pod := func(rs string, ready corev1.ConditionStatus) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: "books", Name: rs + "-x7k2p", Labels: map[string]string{LabelCanary: "true"},
				OwnerReferences: []metav1.OwnerReference{{Kind: "ReplicaSet", Name: rs, Controller: ptr.To(true)}}},
			Status: corev1.PodStatus{Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: ready}}},
		}
	}
	for _, tc := range []struct {
		rs, want string
	}{
		{"reviews-canary-5d8f9c7b6", "reviews"},
		{"book-reviews-canary-6c9", "book-reviews"},
		{"reviews-5d8f9c7b6", ""}, // not a canary's ReplicaSet
		{"canary-5d8f9c7b6", ""},
	} {
		got := canaryPodOwner(t.Context(), pod(tc.rs, corev1.ConditionTrue))
		switch {
		case tc.want == "" && len(got) != 0:
			t.Errorf("%s: woke %v, want nobody", tc.rs, got)
		case tc.want != "" && (len(got) != 1 || got[0].Namespace != "books" || got[0].Name != tc.want):
			t.Errorf("%s: woke %v, want books/%s", tc.rs, got, tc.want)
		}
	}
	notReady, ready := pod("reviews-canary-5d8", corev1.ConditionFalse), pod("reviews-canary-5d8", corev1.ConditionTrue)
	relabelled := ready.DeepCopy()
	relabelled.Annotations = map[string]string{"x": "y"}
	deleting := ready.DeepCopy()
	deleting.DeletionTimestamp = ptr.To(metav1.Now())
	for _, tc := range []struct {
		name     string
		old, new *corev1.Pod
		want     bool
	}{
		{"became ready", notReady, ready, true},
		{"no longer ready", ready, notReady, true},
		{"deletion begun", ready, deleting, true},
		{"nothing about readiness", ready, relabelled, false},
	} {
		if got := podReadinessChanged(event.UpdateEvent{ObjectOld: tc.old, ObjectNew: tc.new}); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
