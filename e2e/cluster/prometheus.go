package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"github.com/prometheus/common/model"
)

// startPrometheus writes Prometheus' configuration and starts it. Besides
// scraping itself, etcd and istiod, it reads scrape targets from files in
// Dir/prometheus/targets, which AddScrapeTarget writes: tests and the demo
// add targets there without a reload.
func (c *Cluster) startPrometheus(p ports) error {
	c.promPorts = p
	path, err := c.writePrometheusConfig(c.opts.ScrapeInterval)
	if err != nil {
		return err
	}
	return c.run("prometheus", nil, c.tools.bin("prometheus"),
		"--config.file="+path,
		"--storage.tsdb.path="+filepath.Join(c.Dir, "prometheus", "data"),
		"--storage.tsdb.retention.time=1d",
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", p.prometheus),
		"--web.enable-lifecycle",
		"--log.level=warn",
	)
}

// writePrometheusConfig writes Prometheus' configuration with the given
// scrape interval and returns its path.
func (c *Cluster) writePrometheusConfig(scrape time.Duration) (string, error) {
	p := c.promPorts
	dir := filepath.Join(c.Dir, "prometheus")
	interval := model.Duration(scrape).String()
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
	// Write then rename: a reload must never read a half-written file.
	if err := os.WriteFile(path+".tmp", []byte(cfg), 0o644); err != nil {
		return "", fmt.Errorf("write prometheus config: %w", err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		return "", fmt.Errorf("write prometheus config: %w", err)
	}
	return path, nil
}

// SetScrapeInterval reloads Prometheus with a new scrape (and evaluation)
// interval, as an operator editing its configuration would, and returns
// once its targets API reports the new interval for its own job.
func (c *Cluster) SetScrapeInterval(ctx context.Context, d time.Duration) error {
	if _, err := c.writePrometheusConfig(d); err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.PrometheusURL+"/-/reload", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("reload prometheus: %w", err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("reload prometheus: %s", resp.Status)
	}
	want := model.Duration(d).String()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, err := c.scrapeIntervalOf(ctx, "prometheus")
		if err == nil && got == want {
			c.opts.ScrapeInterval = d
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("prometheus reloaded, but its targets report scrape interval %q (err %v), want %q after 30s", got, err, want)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// ScrapeInterval is the scrape interval Prometheus runs with now.
func (c *Cluster) ScrapeInterval() time.Duration { return c.opts.ScrapeInterval }

// scrapeIntervalOf reads the scrape interval the targets API reports for
// the active targets of a job.
func (c *Cluster) scrapeIntervalOf(ctx context.Context, job string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.PrometheusURL+"/api/v1/targets?state=active", nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var answer struct {
		Data struct {
			ActiveTargets []struct {
				ScrapePool     string `json:"scrapePool"`
				ScrapeInterval string `json:"scrapeInterval"`
			} `json:"activeTargets"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil {
		return "", err
	}
	for _, t := range answer.Data.ActiveTargets {
		if t.ScrapePool == job {
			return t.ScrapeInterval, nil
		}
	}
	return "", fmt.Errorf("no active target of job %s", job)
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
