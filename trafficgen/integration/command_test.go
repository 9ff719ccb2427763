package integration_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/canary-io/canary/e2e/kit"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestCommand runs cmd/trafficgen as a user would, against the cluster's
// apiserver and istiod, with a bad image, and reads its metrics.
func TestCommand(t *testing.T) {
	cs, _ := clients(t)
	ctx := t.Context()
	ns := namespace(t, cs)
	for _, d := range []struct {
		name   string
		labels map[string]string
		image  string
	}{
		{"productpage-v1", map[string]string{"app": "productpage", "version": "v1"}, "example.com/bookinfo/productpage:v1"},
		{"reviews", map[string]string{"app": "reviews", "version": "v4"}, "example.com/bookinfo/reviews:v4"},
	} {
		if _, err := cs.AppsV1().Deployments(ns).Create(ctx, deployment(ns, d.name, 2, d.labels, d.image), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		waitAvailable(t, cs, ns, d.name, 2)
	}
	if _, err := cs.CoreV1().Services(ns).Create(ctx, service(ns, "reviews", map[string]string{"app": "reviews"}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	bin := filepath.Join(t.TempDir(), "trafficgen")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/canary-io/canary/cmd/trafficgen").CombinedOutput(); err != nil {
		t.Fatalf("build cmd/trafficgen: %v\n%s", err, out)
	}
	addr := freeAddr(t)
	var logs bytes.Buffer
	cmd := exec.CommandContext(ctx, bin,
		"--kubeconfig", env.AdminKubeconfig, "--istiod", env.IstiodGRPCAddr,
		"--namespace", ns, "--source-pod", "productpage", "--host", "reviews", "--port", "9080",
		"--rps", "100", "--bypass-rps", "10", "--bad-images", "reviews:v4=0.5", "--duration", "6s",
		"--metrics-address", addr)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	// Both kinds of answers of the bad image, reported by the destination.
	kit.Eventually(t, 30*time.Second, "the command's metrics", func(ctx context.Context) error {
		body, err := get(ctx, "http://"+addr+"/metrics")
		if err != nil {
			return err
		}
		for _, code := range []string{"200", "500"} {
			if !hasSeries(body, "istio_requests_total", `reporter="destination"`, `destination_workload="reviews"`,
				`destination_version="v4"`, `source_workload="productpage-v1"`, `response_code="`+code+`"`) {
				return fmt.Errorf("no istio_requests_total of reviews answering %s", code)
			}
		}
		return nil
	})
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("trafficgen: %v\n%s", err, logs.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("trafficgen did not stop after --duration\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "traffic sent") {
		t.Errorf("no summary in the command's log:\n%s", logs.String())
	}
	t.Logf("trafficgen's log:\n%s", logs.String())
}

// hasSeries reports whether a metrics text has a series of the metric
// with all the label pairs.
func hasSeries(text, metric string, pairs ...string) bool {
	for line := range strings.Lines(text) {
		if !strings.HasPrefix(line, metric+"{") {
			continue
		}
		all := true
		for _, p := range pairs {
			all = all && strings.Contains(line, p)
		}
		if all {
			return true
		}
	}
	return false
}

// freeAddr is a loopback address with a port free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// get fetches a URL's body.
func get(ctx context.Context, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return string(b), nil
}
