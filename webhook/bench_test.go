package webhook

import (
	"encoding/json"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/canary-io/canary/contract"
)

// realisticReviews is bookinfo's reviews Deployment as a cluster stores
// it: defaulted, with resources, probes, env and a couple of volumes.
func realisticReviews(image string) *appsv1.Deployment {
	d := deployment(image, annotate(contract.KeySteps, "20,40,60", contract.KeyInterval, "1m",
		"kubectl.kubernetes.io/last-applied-configuration", `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"annotations":{"canary.io/enabled":"true"},"labels":{"app":"reviews"},"name":"reviews","namespace":"bookinfo"},"spec":{"replicas":3}}`))
	c := &d.Spec.Template.Spec.Containers[0]
	c.Env = []corev1.EnvVar{{Name: "LOG_DIR", Value: "/tmp/logs"}, {Name: "ENABLE_RATINGS", Value: "true"}}
	c.Resources = corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi")},
		Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("512Mi")},
	}
	c.VolumeMounts = []corev1.VolumeMount{{Name: "tmp", MountPath: "/tmp"}, {Name: "wlp-output", MountPath: "/opt/ibm/wlp/output"}}
	c.ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/health"}}, PeriodSeconds: 10}
	c.ImagePullPolicy = corev1.PullIfNotPresent
	c.TerminationMessagePath = "/dev/termination-log"
	d.Spec.Template.Spec.Volumes = []corev1.Volume{
		{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		{Name: "wlp-output", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
	}
	d.Spec.Template.Spec.ServiceAccountName = "bookinfo-reviews"
	d.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyAlways
	d.Spec.Template.Spec.DNSPolicy = corev1.DNSClusterFirst
	return d
}

func admissionRequest(b testing.TB, old, new *appsv1.Deployment) admission.Request {
	b.Helper()
	raw := func(d *appsv1.Deployment) []byte {
		data, err := json.Marshal(d)
		if err != nil {
			b.Fatal(err)
		}
		return data
	}
	return admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID: "1", Name: new.Name, Namespace: new.Namespace, Operation: admissionv1.Update,
		UserInfo:  authenticationv1.UserInfo{Username: "alice"},
		Object:    runtime.RawExtension{Raw: raw(new)},
		OldObject: runtime.RawExtension{Raw: raw(old)},
	}}
}

// BenchmarkAdmission measures one admission review of bookinfo's reviews
// end to end in the handler (decode both objects, decide, patch): an image
// update that is held, and the validating review of the result. Run with
// -cpu 1 for the one-core figure in docs/benchmarks.md.
func BenchmarkAdmission(b *testing.B) {
	old := mustMutateNoT(nil, realisticReviews("reviews:v1"))
	newer := edit(old, image("reviews:v2"))
	mutated := Mutate(Request{Old: old, New: newer, Now: now}).Object
	for _, bc := range []struct {
		name    string
		h       *Handler
		req     admission.Request
		allowed bool
	}{
		{"mutate/image-update-held", &Handler{Clock: clock.RealClock{}}, admissionRequest(b, old, newer), true},
		{"validate/held-result", &Handler{Clock: clock.RealClock{}, Validating: true}, admissionRequest(b, old, mutated), true},
		{"mutate/label-change", &Handler{Clock: clock.RealClock{}}, admissionRequest(b, old, edit(old, func(d *appsv1.Deployment) { d.Labels["x"] = "y" })), true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if resp := bc.h.Handle(b.Context(), bc.req); resp.Allowed != bc.allowed {
					b.Fatalf("allowed %v: %v", resp.Allowed, resp.Result)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reviews/s")
		})
	}
}
