package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/client-go/kubernetes"
)

// pkiFiles are the certificate files the control plane components read.
type pkiFiles struct {
	caCert, servingCert, servingKey, saKey, saPub string
	controllerManager, scheduler                  string // kubeconfigs
}

// writePKI creates the CA, the apiserver's serving certificate, the
// service account key pair and a kubeconfig per credential.
func (c *Cluster) writePKI() (pkiFiles, error) {
	dir := filepath.Join(c.Dir, "pki")
	ca, err := NewAuthority()
	if err != nil {
		return pkiFiles{}, err
	}
	servingCert, servingKey, err := ca.Issue("kube-apiserver", nil, []string{
		"127.0.0.1", "localhost", "10.96.0.1", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
		"kubernetes.default.svc.cluster.local",
	})
	if err != nil {
		return pkiFiles{}, err
	}
	f := pkiFiles{
		caCert:            filepath.Join(dir, "ca.crt"),
		servingCert:       filepath.Join(dir, "apiserver.crt"),
		servingKey:        filepath.Join(dir, "apiserver.key"),
		controllerManager: filepath.Join(dir, "kube-controller-manager.kubeconfig"),
		scheduler:         filepath.Join(dir, "kube-scheduler.kubeconfig"),
	}
	if err := writeFiles(map[string][]byte{f.caCert: ca.CertPEM, f.servingCert: servingCert, f.servingKey: servingKey}); err != nil {
		return pkiFiles{}, err
	}
	if f.saKey, f.saPub, err = writeServiceAccountKey(dir); err != nil {
		return pkiFiles{}, err
	}
	c.CAFile = f.caCert
	c.AdminKubeconfig = filepath.Join(c.Dir, "admin.kubeconfig")
	c.ControllerKubeconfig = filepath.Join(c.Dir, "controller.kubeconfig")
	for _, k := range []struct {
		path, user string
		groups     []string
	}{
		{c.AdminKubeconfig, AdminUser, []string{"system:masters"}},
		{c.ControllerKubeconfig, ControllerUser, nil},
		// The components' own users, which the default RBAC roles name. The
		// controller manager runs every controller under its own credential
		// (--use-service-account-credentials=false), which its default role
		// does not cover: on a throwaway cluster it may do anything.
		{f.controllerManager, "system:kube-controller-manager", []string{"system:masters"}},
		{f.scheduler, "system:kube-scheduler", nil},
	} {
		if err := ca.writeKubeconfig(k.path, c.APIServerURL, k.user, k.groups); err != nil {
			return pkiFiles{}, err
		}
	}
	return f, nil
}

func etcdArgs(dir string, p ports) []string {
	client := fmt.Sprintf("http://127.0.0.1:%d", p.etcdClient)
	peer := fmt.Sprintf("http://127.0.0.1:%d", p.etcdPeer)
	return []string{
		"--name=local", "--data-dir=" + filepath.Join(dir, "etcd"),
		"--listen-client-urls=" + client, "--advertise-client-urls=" + client,
		"--listen-peer-urls=" + peer, "--initial-advertise-peer-urls=" + peer,
		"--initial-cluster=local=" + peer,
		// A test cluster's data is thrown away: durability buys nothing.
		"--unsafe-no-fsync", "--quota-backend-bytes=8589934592",
		"--log-level=warn",
	}
}

func apiserverArgs(dir string, p ports, f pkiFiles) []string {
	return []string{
		"--etcd-servers=" + fmt.Sprintf("http://127.0.0.1:%d", p.etcdClient),
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", "--secure-port=" + itoa(p.apiserver),
		"--tls-cert-file=" + f.servingCert, "--tls-private-key-file=" + f.servingKey,
		"--client-ca-file=" + f.caCert,
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + f.saPub, "--service-account-signing-key-file=" + f.saKey,
		"--service-cluster-ip-range=" + serviceCIDR,
		"--authorization-mode=RBAC", "--allow-privileged=true",
		"--cert-dir=" + filepath.Join(dir, "pki"),
		// Endpoints may not hold loopback addresses: publish none for the
		// kubernetes Service rather than log a rejected write forever.
		"--endpoint-reconciler-type=none",
		"--max-requests-inflight=1000", "--max-mutating-requests-inflight=500",
		"--profiling=false", "--v=1",
	}
}

func controllerManagerArgs(dir string, f pkiFiles) []string {
	return []string{
		"--kubeconfig=" + f.controllerManager,
		"--secure-port=0", "--leader-elect=false",
		"--service-account-private-key-file=" + f.saKey, "--root-ca-file=" + f.caCert,
		"--use-service-account-credentials=false",
		// Scale tests create thousands of objects; the defaults (20/30) throttle.
		"--kube-api-qps=300", "--kube-api-burst=600",
		"--concurrent-deployment-syncs=10", "--concurrent-replicaset-syncs=10",
		"--concurrent-service-endpoint-syncs=10", "--concurrent-gc-syncs=40",
		"--v=1",
	}
}

// writeSchedulerConfig writes the scheduler's configuration file: its
// client limits can only be raised there.
func writeSchedulerConfig(dir, kubeconfig string) (string, error) {
	path := filepath.Join(dir, "kube-scheduler.yaml")
	cfg := fmt.Sprintf(`apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
clientConnection:
  kubeconfig: %q
  qps: 300
  burst: 600
leaderElection:
  leaderElect: false
`, kubeconfig)
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		return "", fmt.Errorf("write scheduler config: %w", err)
	}
	return path, nil
}

func kwokArgs(kubeconfig, stages string, p ports) []string {
	return []string{
		"--kubeconfig=" + kubeconfig, "--config=" + stages,
		"--manage-all-nodes=false", "--manage-nodes-with-annotation-selector=" + kwokNodeAnnotation + "=fake",
		"--cidr=" + podCIDR,
		"--server-address=" + fmt.Sprintf("127.0.0.1:%d", p.kwok),
	}
}

func istiodEnv() []string {
	return []string{"POD_NAMESPACE=istio-system", "POD_NAME=istiod-local", "REVISION=default"}
}

func istiodArgs(kubeconfig string, p ports) []string {
	return []string{
		"discovery", "--kubeconfig=" + kubeconfig,
		"--httpAddr=" + fmt.Sprintf("127.0.0.1:%d", p.istiodHTTP),
		"--grpcAddr=" + fmt.Sprintf("127.0.0.1:%d", p.istiodGRPC),
		"--monitoringAddr=" + fmt.Sprintf("127.0.0.1:%d", p.istiodMonitoring),
		// Every listener on loopback and a port of its own, so that two
		// clusters (two test packages) can run side by side.
		"--httpsAddr=" + fmt.Sprintf("127.0.0.1:%d", p.istiodHTTPS),
		"--ctrlz_address=127.0.0.1", "--ctrlz_port=" + itoa(p.istiodCtrlz),
		"--secureGRPCAddr=", "--caCertFile=", "--domain=cluster.local",
	}
}

// waitAPIServer waits until kube-apiserver answers /readyz.
func (c *Cluster) waitAPIServer(ctx context.Context) error {
	caPEM, err := os.ReadFile(c.CAFile)
	if err != nil {
		return fmt.Errorf("read CA: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	return c.waitHTTP(ctx, "kube-apiserver", c.APIServerURL+"/readyz", client)
}

// waitHTTP waits until url answers 200.
func (c *Cluster) waitHTTP(ctx context.Context, what, url string, client *http.Client) error {
	if client == nil {
		client = http.DefaultClient
	}
	return c.poll(ctx, what, 60*time.Second, func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
		}
		return nil
	})
}

// waitReady waits until every node is Ready and kube-controller-manager
// has done its first work (the default namespace's service account).
func (c *Cluster) waitReady(ctx context.Context, cs kubernetes.Interface) error {
	if err := c.poll(ctx, "kwok nodes", 60*time.Second, func(ctx context.Context) error {
		return nodesReady(ctx, cs, c.opts.Nodes)
	}); err != nil {
		return err
	}
	return c.poll(ctx, "kube-controller-manager", 60*time.Second, func(ctx context.Context) error {
		return defaultServiceAccount(ctx, cs)
	})
}
