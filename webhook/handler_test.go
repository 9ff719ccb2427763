package webhook

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/utils/clock"

	"github.com/canary-io/canary/contract"
)

// TestUnskippedStatusWrites: the validating handler reports a status
// write of the controller that reached it (the match conditions should
// have left it out), and no other write.
func TestUnskippedStatusWrites(t *testing.T) {
	const controller = "system:serviceaccount:canary-system:canary-controller"
	old := realisticReviews("reviews:v2")
	old.Spec.Paused = true
	old.Annotations[contract.KeyPhase] = string(contract.PhaseProgressing)
	status := old.DeepCopy()
	status.Annotations[contract.KeyWeight] = "20"
	template := old.DeepCopy()
	template.Spec.Template.Spec.Containers[0].Image = "reviews:v3"
	setting := old.DeepCopy()
	setting.Annotations[contract.KeySteps] = "50"
	for _, tc := range []struct {
		name string
		user string
		new  *appsv1.Deployment
		want int
	}{
		{"the controller's status write", controller, status, 1},
		{"the controller's template change", controller, template, 0},
		{"the controller's setting", controller, setting, 0},
		{"a user's status write", "alice", status, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := 0
			h := &Handler{ControllerUser: controller, Clock: clock.RealClock{}, Validating: true, Unskipped: func() { n++ }}
			req := admissionRequest(t, old, tc.new)
			req.UserInfo.Username = tc.user
			h.Handle(t.Context(), req)
			if n != tc.want {
				t.Errorf("reported %d times, want %d", n, tc.want)
			}
		})
	}
}
