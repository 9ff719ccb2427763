package cluster

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
)

// startPrometheus writes Prometheus' configuration and starts it. Besides
// scraping itself, etcd and istiod, it reads scrape targets from files in
// Dir/prometheus/targets, which AddScrapeTarget writes: tests and the demo
// add targets there without a reload.
func (c *Cluster) startPrometheus(p ports) error {
	dir := filepath.Join(c.Dir, "prometheus")
	interval := c.opts.ScrapeInterval.String()
	cfg := fmt.Sprintf(`global:
  scrape_interval: %[1]s
  scrape_timeout: %[1]s
  evaluation_interval: %[1]s
scrape_configs:
- job_name: prometheus
  static_configs: [{targets: ["127.0.0.1:%[2]d"]}]
- job_name: etcd
  static_configs: [{targets: ["127.0.0.1:%[3]d"]}]
`, interval, p.prometheus, p.etcdClient)
	if c.opts.Istiod {
		cfg += fmt.Sprintf(`- job_name: istiod
  static_configs: [{targets: ["127.0.0.1:%d"]}]
`, p.istiodMonitoring)
	}
	// honor_labels: a target that exports Istio's metrics names its own
	// workloads and namespaces, as the real sidecars' metrics do once
	// Istio's usual relabelling has run.
	cfg += fmt.Sprintf(`- job_name: targets
  honor_labels: true
  file_sd_configs:
  - files: [%q]
    refresh_interval: 1s
`, filepath.Join(dir, "targets", "*.json"))
	path := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		return fmt.Errorf("write prometheus config: %w", err)
	}
	return c.run("prometheus", nil, c.tools.bin("prometheus"),
		"--config.file="+path,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--storage.tsdb.retention.time=1d",
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", p.prometheus),
		"--web.enable-lifecycle",
		"--log.level=warn",
	)
}

var targetName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)

// AddScrapeTarget makes Prometheus scrape the given host:port addresses
// under the job name, with extra labels on every series. Calling it again
// with the same job replaces its targets; Prometheus picks the change up
// within a couple of seconds.
func (c *Cluster) AddScrapeTarget(job string, addrs []string, labels map[string]string) error {
	if !targetName.MatchString(job) {
		return fmt.Errorf("scrape job name %q: want lower-case letters, digits and dashes", job)
	}
	l := map[string]string{"job": job}
	for k, v := range labels {
		l[k] = v
	}
	data, err := json.Marshal([]map[string]any{{"targets": addrs, "labels": l}})
	if err != nil {
		return fmt.Errorf("encode scrape targets: %w", err)
	}
	c.targetsMu.Lock()
	defer c.targetsMu.Unlock()
	dir := filepath.Join(c.Dir, "prometheus", "targets")
	// Write then rename: Prometheus must never read a half-written file.
	tmp := filepath.Join(dir, "."+job+".tmp")
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return fmt.Errorf("write scrape targets: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, job+".json")); err != nil {
		return fmt.Errorf("write scrape targets: %w", err)
	}
	return nil
}

// RemoveScrapeTarget stops scraping a job added with AddScrapeTarget.
func (c *Cluster) RemoveScrapeTarget(job string) error {
	err := os.Remove(filepath.Join(c.Dir, "prometheus", "targets", job+".json"))
	if err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("remove scrape targets: %w", err)
	}
	return nil
}
