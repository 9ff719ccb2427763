package canaryctl

import (
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/canary-io/canary/contract"
)

func ExampleRenderView() {
	d := progressing("shop", "web",
		contract.KeyWeight, "40",
		contract.KeyStep, "2/3",
		contract.KeyMessage, "step 1/3 passed: success rate 99.8% (min 99%, stable 99.9%), p99 212ms (max 500ms, stable 198ms); weight 40%")
	fmt.Print(RenderView(d, []corev1.Event{
		event("web", "StepStarted", "step 1/3 started: weight 20%", 70*time.Second),
		event("web", "StepPassed", "step 1/3 passed", 5*time.Second),
	}, now))
	// Output:
	// Deployment:      shop/web
	// Phase:           Progressing
	// Weight:          [########............] 40%
	// Step:            2/3
	// Failed checks:   0/3
	// Revision:        7f9c4d
	// Stable revision: 5b6a21
	// Last transition: 2026-05-01T09:58:30Z (90s ago)
	// Message:         step 1/3 passed: success rate 99.8% (min 99%, stable 99.9%), p99 212ms (max 500ms, stable 198ms); weight 40%
	//
	// Events:
	//   AGE  TYPE    REASON       MESSAGE
	//   70s  Normal  StepStarted  step 1/3 started: weight 20%
	//   5s   Normal  StepPassed   step 1/3 passed
}
