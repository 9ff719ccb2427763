package kit

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
)

// Reviews is the user's reviews Deployment as YAML, the way it sits in
// git: replicas pods labelled app=reviews and version, running image,
// listening on 9080. annotations are lines under metadata.annotations
// (`canary.io/enabled: "true"`); spec are extra lines under spec
// (`paused: false`).
//
// Example: Reviews("ns", "v2", "reviews:v2", 3, []string{`canary.io/enabled: "true"`}, nil).
func Reviews(ns, version, image string, replicas int, annotations, spec []string) string {
	var ann, extra strings.Builder
	for _, a := range annotations {
		ann.WriteString("\n    " + a)
	}
	for _, s := range spec {
		extra.WriteString("  " + s + "\n")
	}
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: reviews
  namespace: %s
  labels: {app: reviews}
  annotations:%s
spec:
%s  replicas: %d
  selector: {matchLabels: {app: reviews}}
  template:
    metadata:
      labels: {app: reviews, version: %s}
    spec:
      containers:
      - name: reviews
        image: %s
        ports: [{containerPort: 9080}]
`, ns, ann.String(), extra.String(), replicas, version, image)
}

// Eventually polls cond every 100ms until it returns nil; at the timeout
// the test fails with what was awaited and cond's last complaint.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func(ctx context.Context) error) {
	t.Helper()
	var last error
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		last = cond(ctx)
		return last == nil, nil
	})
	if err != nil {
		t.Fatalf("%s: %v (last: %v)", what, err, last)
	}
}

// Service is a Service as YAML: name in ns, selecting app=app, with one
// port named http.
//
// Example: Service("shop", "reviews", "reviews", 9080).
func Service(ns, name, app string, port int) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Service
metadata: {name: %s, namespace: %s}
spec:
  selector: {app: %s}
  ports: [{name: http, port: %d}]
`, name, ns, app, port)
}
