// Package kit is what the tests against the local cluster share: the
// admin's clients, a namespace of a test's own, kubectl, waiting for a
// Deployment, and a Prometheus stand-in.
package kit

import (
	"context"
	"strings"
	"testing"
	"time"

	istioclient "istio.io/client-go/pkg/clientset/versioned"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/canary-io/canary/e2e/cluster"
)

// Clients returns the admin's Kubernetes and Istio clients, with client
// rate limits raised for tests that poll.
func Clients(t testing.TB, c *cluster.Cluster) (*kubernetes.Clientset, *istioclient.Clientset) {
	t.Helper()
	cfg := *c.Admin
	cfg.QPS, cfg.Burst = 100, 200
	cs, err := kubernetes.NewForConfig(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	ic, err := istioclient.NewForConfig(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cs, ic
}

// Namespace creates a namespace named prefix-<random> with labels, and
// returns its name.
func Namespace(t testing.TB, cs kubernetes.Interface, prefix string, labels map[string]string) string {
	t.Helper()
	ns, err := cs.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-", Labels: labels},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

// TryKubectl runs the cluster's kubectl with stdin and returns its
// combined output and error.
func TryKubectl(ctx context.Context, c *cluster.Cluster, stdin string, args ...string) (string, error) {
	cmd := c.Kubectl(ctx, args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// Kubectl is TryKubectl that fails the test on an error, with the output.
func Kubectl(t testing.TB, c *cluster.Cluster, stdin string, args ...string) string {
	t.Helper()
	out, err := TryKubectl(context.Background(), c, stdin, args...)
	if err != nil {
		t.Fatalf("kubectl %v: %v\n%s", args, err, out)
	}
	return out
}

// WaitDeployment polls a Deployment every 100ms until cond holds and
// returns it; at the timeout the test fails with what was awaited and the
// Deployment's annotations.
func WaitDeployment(t testing.TB, cs kubernetes.Interface, ns, name string, timeout time.Duration, what string, cond func(*appsv1.Deployment) bool) *appsv1.Deployment {
	t.Helper()
	var last *appsv1.Deployment
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		d, err := cs.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		last = d
		return cond(d), nil
	})
	if err != nil {
		var ann map[string]string
		if last != nil {
			ann = last.Annotations
		}
		t.Fatalf("%s: %v\nannotations: %v", what, err, ann)
	}
	return last
}
