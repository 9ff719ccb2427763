package webhook

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/canary-io/canary/contract"
)

func service(selector map[string]string, annotations map[string]string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "reviews", Namespace: "bookinfo", Annotations: annotations},
		Spec:       corev1.ServiceSpec{Selector: selector},
	}
}

func TestMutateService(t *testing.T) {
	pinned := service(map[string]string{"app": "reviews", "pod-template-hash": "abc"}, map[string]string{contract.KeyPinned: "abc"})
	tests := []struct {
		name         string
		old, new     *corev1.Service
		ctrl         bool
		wantSelector string // "" : the selector as sent
		warn         bool
	}{
		{"user's manifest replaces the selector (server-side apply, replace): pin restored",
			pinned, service(map[string]string{"app": "reviews"}, nil), false, "abc", true},
		{"user keeps the pin (client-side apply merges): untouched",
			pinned, service(map[string]string{"app": "reviews", "pod-template-hash": "abc"}, map[string]string{contract.KeyPinned: "abc", "x": "y"}), false, "", false},
		{"user changes the pinned hash: restored",
			pinned, service(map[string]string{"app": "reviews", "pod-template-hash": "zzz"}, map[string]string{contract.KeyPinned: "zzz"}), false, "abc", true},
		{"controller unpins: passes",
			pinned, service(map[string]string{"app": "reviews"}, nil), true, "", false},
		{"user drops the owner record: restored",
			service(map[string]string{"app": "reviews", "pod-template-hash": "abc"}, map[string]string{contract.KeyPinned: "abc", contract.KeyPinnedBy: "reviews/u1"}),
			service(map[string]string{"app": "reviews", "pod-template-hash": "abc"}, map[string]string{contract.KeyPinned: "abc"}), false, "abc", true},
		{"not pinned: passes",
			service(map[string]string{"app": "reviews"}, nil), service(map[string]string{"app": "other"}, nil), false, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, warnings := MutateService(ServiceRequest{Old: tt.old, New: tt.new, ByController: tt.ctrl})
			if tt.wantSelector == "" {
				if got != tt.new {
					t.Fatalf("changed the Service: %v", got.Spec.Selector)
				}
			} else if got.Spec.Selector["pod-template-hash"] != tt.wantSelector || got.Annotations[contract.KeyPinned] != tt.wantSelector || got.Spec.Selector["app"] != "reviews" {
				t.Fatalf("selector %v annotations %v, want the pin %s kept beside the user's selector", got.Spec.Selector, got.Annotations, tt.wantSelector)
			}
			if owner := tt.old.Annotations[contract.KeyPinnedBy]; owner != "" && got.Annotations[contract.KeyPinnedBy] != owner {
				t.Fatalf("owner record %q, want %q kept", got.Annotations[contract.KeyPinnedBy], owner)
			}
			if (len(warnings) > 0) != tt.warn || (tt.warn && !strings.Contains(warnings[0], "pins it to the stable pods")) {
				t.Fatalf("warnings %q, want warning %v", warnings, tt.warn)
			}
			if tt.new.Spec.Selector["pod-template-hash"] == "" && tt.new.Annotations[contract.KeyPinned] != "" {
				t.Fatalf("MutateService modified its argument")
			}
		})
	}
}
