package faults_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
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
	"github.com/canary-io/canary/e2e/kit"
)

// TestCertificateRenewedMidAnalysis: the webhook's serving certificate is
// issued by a CA, as cert-manager does from manifests/base/certificate.yaml, and
// the apiserver trusts the CA. Mid-analysis the certificate is replaced by
// a new one from the same CA (a renewal): the controller serves it without
// a restart, and no admission fails, before, during or after.
func TestCertificateRenewedMidAnalysis(t *testing.T) {
	cs, ic := clients(t)
	caCert, caKey, caPEM := newCA(t)
	certs := filepath.Join(ctrl.Dir, "certs")
	writeLeaf(t, certs, caCert, caKey, 1001)
	caFile := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(caFile, caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	restartController(t, "--register-ca-file="+caFile)
	t.Cleanup(func() { restartController(t) }) // back to a self-signed certificate of its own
	if got := servedSerial(t); got != 1001 {
		t.Fatalf("the webhook serves serial %d, want the CA-issued 1001", got)
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
	kubectl(t, reviews(version), "apply", "-f", "-")
	kit.WaitDeployment(t, cs, ns, "reviews", time.Minute, "step 1 running", func(d *appsv1.Deployment) bool {
		return d.Annotations[contract.KeyWeight] == "25"
	})
	writeLeaf(t, certs, caCert, caKey, 1002)
	renewed := time.Now()
	kit.Eventually(t, 30*time.Second, "the renewed certificate served", func(context.Context) error {
		if got := servedSerial(t); got != 1002 {
			return fmt.Errorf("serial %d served", got)
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

// newCA makes a self-signed CA, as cert-manager's canary-ca.
func newCA(t *testing.T) (*x509.Certificate, *ecdsa.PrivateKey, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "canary.io webhook CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// writeLeaf issues a serving certificate for 127.0.0.1 from the CA and
// replaces tls.crt and tls.key in dir, each by a rename, as the kubelet
// updates a mounted Secret.
func writeLeaf(t *testing.T, dir string, ca *x509.Certificate, caKey *ecdsa.PrivateKey, serial int64) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "canary-webhook"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{
		"tls.key": pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
		"tls.crt": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
	} {
		tmp := filepath.Join(dir, "."+name+".new")
		if err := os.WriteFile(tmp, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
}

// servedSerial is the serial number of the certificate the webhook serves.
func servedSerial(t *testing.T) int64 {
	t.Helper()
	conn, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", ctrl.Webhook), &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // only reads the certificate
	if err != nil {
		return -1
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
}
