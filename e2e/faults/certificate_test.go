package faults_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/canary-io/canary/contract"
	"github.com/canary-io/canary/e2e/bookinfo"
	"github.com/canary-io/canary/e2e/cluster"
	"github.com/canary-io/canary/e2e/kit"
)

// TestCertificateRenewedMidAnalysis: the webhook's serving certificate is
// issued by a CA, as cert-manager does from manifests/base/certificate.yaml, and
// the apiserver trusts the CA. Mid-analysis the certificate is replaced by
// a new one from the same CA (a renewal): the controller serves it without
// a restart, and no admission fails, before, during or after.
func TestCertificateRenewedMidAnalysis(t *testing.T) {
	cs, ic := clients(t)
	ca, err := cluster.NewAuthority()
	if err != nil {
		t.Fatal(err)
	}
	certs := filepath.Join(ctrl.Dir, "certs")
	writeLeaf(t, certs, ca, "canary-webhook-1")
	caFile := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(caFile, ca.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	restartController(t, "--register-ca-file="+caFile)
	t.Cleanup(func() { restartController(t) }) // back to a self-signed certificate of its own
	if got := servedName(t); got != "canary-webhook-1" {
		t.Fatalf("the webhook serves %q, want the CA-issued canary-webhook-1", got)
	}

	// Admissions all along: the user's own annotation, patched twice a second.
	var admitted, failed atomic.Int32
	var mu sync.Mutex
	var failures []string
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ctx.Err() == nil; i++ {
			patch := fmt.Sprintf(`{"metadata":{"annotations":{"faults.example.com/ping":"%d"}}}`, i)
			_, err := cs.AppsV1().Deployments(ns).Patch(ctx, "reviews", types.MergePatchType, []byte(patch), metav1.PatchOptions{})
			switch {
			case err == nil:
				admitted.Add(1)
			case ctx.Err() == nil:
				failed.Add(1)
				mu.Lock()
				failures = append(failures, err.Error())
				mu.Unlock()
			}
			time.Sleep(500 * time.Millisecond)
		}
	}()
	defer func() { stop(); <-done }()

	version := nextVersion(t, true)
	mon := startMonitor(t)
	applyUntilFirstStep(t, cs, version)
	writeLeaf(t, certs, ca, "canary-webhook-2")
	renewed := time.Now()
	kit.Eventually(t, 30*time.Second, "the renewed certificate served", func(context.Context) error {
		if got := servedName(t); got != "canary-webhook-2" {
			return fmt.Errorf("%q served", got)
		}
		return nil
	})
	fmt.Printf("BENCH webhook certificate renewed on disk: served %s later, without a restart\n", time.Since(renewed).Round(100*time.Millisecond))
	if !ctrl.Running() {
		t.Fatal("the controller exited")
	}
	kit.WaitDeployment(t, cs, ns, "reviews", 2*time.Minute, "promoted", func(d *appsv1.Deployment) bool {
		return d.Annotations[contract.KeyPhase] == string(contract.PhaseSucceeded) || d.Annotations[contract.KeyPhase] == string(contract.PhaseRolledBack)
	})
	checkEnded(t, cs, ic, contract.PhaseSucceeded)
	checkUserObjects(t, cs, bookinfo.Image(version))
	stable = version
	for _, b := range verdict(mon.end(), meshLag) {
		t.Error(b)
	}
	stop()
	<-done
	fmt.Printf("BENCH admissions while the certificate was renewed: %d admitted, %d failed\n", admitted.Load(), failed.Load())
	if failed.Load() > 0 {
		t.Errorf("%d admissions failed: %v", failed.Load(), failures)
	}
	if admitted.Load() < 10 {
		t.Errorf("only %d admissions made", admitted.Load())
	}
}

// writeLeaf issues a serving certificate for 127.0.0.1 named cn from ca
// and replaces tls.crt and tls.key in dir, each by a rename, as the kubelet
// updates a mounted Secret.
func writeLeaf(t *testing.T, dir string, ca *cluster.Authority, cn string) {
	t.Helper()
	certPEM, keyPEM, err := ca.Issue(cn, nil, []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"tls.key": keyPEM, "tls.crt": certPEM} {
		tmp := filepath.Join(dir, "."+name+".new")
		if err := os.WriteFile(tmp, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
}

// servedName is the common name of the certificate the webhook serves.
func servedName(t *testing.T) string {
	t.Helper()
	conn, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", ctrl.Webhook), &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // only reads the certificate
	if err != nil {
		return ""
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].Subject.CommonName
}
