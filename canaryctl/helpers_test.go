package canaryctl

import (
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/canary-io/canary/contract"
)

// now is the fixed clock of the table tests.
var now = time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)

// deployment builds an opted-in Deployment with the given annotations on
// top of canary.io/enabled=true.
func deployment(namespace, name string, kv ...string) *appsv1.Deployment {
	a := map[string]string{contract.KeyEnabled: "true"}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "" {
			delete(a, kv[i])
			continue
		}
		a[kv[i]] = kv[i+1]
	}
	return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, UID: "uid-" + types.UID(name), Annotations: a}}
}

// progressing is the status the system writes at step 1 of 3.
func progressing(namespace, name string, kv ...string) *appsv1.Deployment {
	return deployment(namespace, name, append([]string{
		contract.KeyPhase, string(contract.PhaseProgressing),
		contract.KeyWeight, "20",
		contract.KeyStep, "1/3",
		contract.KeyFailedChecks, "0/3",
		contract.KeyRevision, "7f9c4d",
		contract.KeyStableRevision, "5b6a21",
		contract.KeyLastTransition, now.Add(-90 * time.Second).Format(time.RFC3339),
		contract.KeyMessage, "step 1/3 started: weight 20%",
	}, kv...)...)
}

// event builds an Event about the Deployment name (uid "uid-"+name) that
// happened ago before now.
func event(name, reason, message string, ago time.Duration) corev1.Event {
	return corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Name: name + "." + reason},
		InvolvedObject: corev1.ObjectReference{Kind: "Deployment", Name: name, UID: "uid-" + types.UID(name)},
		Type:           corev1.EventTypeNormal,
		Reason:         reason,
		Message:        message,
		EventTime:      metav1.NewMicroTime(now.Add(-ago)),
	}
}
