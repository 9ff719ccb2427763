package integration

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/canary-io/canary/canaryctl"
	"github.com/canary-io/canary/contract"
	"github.com/canary-io/canary/e2e/cluster"
)

var (
	env *cluster.Cluster
	cs  kubernetes.Interface
)

func TestMain(m *testing.M) {
	os.Exit(cluster.RunTests(m, cluster.Options{Nodes: 1}, func(c *cluster.Cluster) {
		env = c
		cs = kubernetes.NewForConfigOrDie(c.Admin)
	}))
}

// namespace creates a namespace for one test, deleted when it ends.
func namespace(t *testing.T) string {
	t.Helper()
	ns, err := cs.CoreV1().Namespaces().Create(t.Context(), &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "kubectl-canary-"},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	t.Cleanup(func() {
		_ = cs.CoreV1().Namespaces().Delete(context.Background(), ns.Name, metav1.DeleteOptions{})
	})
	return ns.Name
}

// step1 are the status annotations the system writes when step 1 of 3
// starts.
func step1() map[string]string {
	return map[string]string{
		contract.KeyEnabled:        "true",
		contract.KeyPhase:          string(contract.PhaseProgressing),
		contract.KeyWeight:         "20",
		contract.KeyStep:           "1/3",
		contract.KeyFailedChecks:   "0/3",
		contract.KeyRevision:       "7f9c4d",
		contract.KeyStableRevision: "5b6a21",
		contract.KeyLastTransition: time.Now().UTC().Format(time.RFC3339),
		contract.KeyMessage:        "step 1/3 started: weight 20%",
	}
}

// createDeployment creates a Deployment with the annotations.
func createDeployment(t *testing.T, namespace, name string, annotations map[string]string) *appsv1.Deployment {
	t.Helper()
	labels := map[string]string{"app": name}
	d, err := cs.AppsV1().Deployments(namespace).Create(t.Context(), &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: annotations},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "example.com/app:v2"}}},
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create deployment: %v", err)
	}
	return d
}

// recordEvent records an events.k8s.io/v1 Event about d, as the
// controller does.
func recordEvent(t *testing.T, d *appsv1.Deployment, reason, note string) {
	t.Helper()
	_, err := cs.EventsV1().Events(d.Namespace).Create(t.Context(), &eventsv1.Event{
		ObjectMeta: metav1.ObjectMeta{GenerateName: d.Name + "-"},
		Regarding: corev1.ObjectReference{
			APIVersion: "apps/v1", Kind: "Deployment", Namespace: d.Namespace, Name: d.Name, UID: d.UID,
		},
		EventTime:           metav1.NowMicro(),
		ReportingController: "canary.io/controller",
		ReportingInstance:   "canary-controller-test",
		Action:              "Analyze",
		Reason:              reason,
		Note:                note,
		Type:                corev1.EventTypeNormal,
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("record event: %v", err)
	}
}

// patchAnnotations merge-patches annotations of a Deployment, as the
// system writes its status.
func patchAnnotations(t *testing.T, namespace, name string, annotations map[string]string) {
	t.Helper()
	patch := `{"metadata":{"annotations":{`
	sep := ""
	for k, v := range annotations {
		patch += fmt.Sprintf("%s%q:%q", sep, k, v)
		sep = ","
	}
	patch += "}}}"
	if _, err := cs.AppsV1().Deployments(namespace).Patch(t.Context(), name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatalf("patch deployment: %v", err)
	}
}

// run runs the plugin in-process as the admin and returns what it printed.
func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	p := &canaryctl.Plugin{Out: &out, ErrOut: &errOut, Now: time.Now}
	err := p.Run(t.Context(), append(args, "--kubeconfig", env.AdminKubeconfig))
	return out.String() + errOut.String(), err
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader goroutine.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitFor waits until cond holds on the buffer's text, or fails the test
// with what was printed.
func waitFor(t *testing.T, b *syncBuffer, what string, cond func(string) bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond(b.String()) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; output:\n%s", what, b.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// views splits watch output (not a terminal) into its views.
func views(s string) []string {
	return strings.Split(strings.TrimSpace(s), "\n\nDeployment:")
}

// pluginWriting is a plugin whose output goes to w.
func pluginWriting(w *syncBuffer) *canaryctl.Plugin {
	return &canaryctl.Plugin{Out: w, ErrOut: w, Now: time.Now}
}
