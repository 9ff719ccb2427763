package scale

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// clockTicks is Linux's USER_HZ, the unit of /proc/<pid>/stat's times.
const clockTicks = 100

// Usage is a process' CPU time so far and its resident memory.
type Usage struct {
	CPU time.Duration
	RSS int64 // bytes
	At  time.Time
}

// ReadUsage reads process pid's CPU time (user and system) and RSS from
// /proc.
func ReadUsage(pid int) (Usage, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return Usage{}, err
	}
	// The command name, in parentheses, may hold spaces: count fields
	// after its closing parenthesis.
	rest := string(stat[strings.LastIndexByte(string(stat), ')')+2:])
	f := strings.Fields(rest)
	if len(f) < 13 {
		return Usage{}, fmt.Errorf("/proc/%d/stat: %d fields after the name", pid, len(f))
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return Usage{}, fmt.Errorf("/proc/%d/stat: utime %q stime %q", pid, f[11], f[12])
	}
	u := Usage{CPU: time.Duration(utime+stime) * time.Second / clockTicks, At: time.Now()}
	status, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return Usage{}, err
	}
	defer status.Close()
	sc := bufio.NewScanner(status)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return Usage{}, fmt.Errorf("/proc/%d/status VmRSS %q", pid, v)
			}
			u.RSS = kb * 1024
		}
	}
	return u, sc.Err()
}

// CoreShare is the share of one core the process used between a and b.
func CoreShare(a, b Usage) float64 {
	if !b.At.After(a.At) {
		return 0
	}
	return (b.CPU - a.CPU).Seconds() / b.At.Sub(a.At).Seconds()
}

// Samples are the samples of a metrics endpoint.
type Samples []*model.Sample

// ScrapeURL reads a metrics endpoint in Prometheus' text format.
func ScrapeURL(url string) (Samples, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return Parse(resp.Body)
}

// Parse reads samples in Prometheus' text format.
func Parse(r io.Reader) (Samples, error) {
	p := expfmt.NewTextParser(model.LegacyValidation)
	families, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, err
	}
	var out Samples
	for _, mf := range families {
		vec, err := expfmt.ExtractSamples(&expfmt.DecodeOptions{Timestamp: model.Now()}, mf)
		if err != nil {
			return nil, err
		}
		out = append(out, vec...)
	}
	return out, nil
}

// Sum is the sum of the samples of metric name whose labels hold every
// pair of match.
func (s Samples) Sum(name string, match map[string]string) float64 {
	var sum float64
	for _, smp := range s {
		if string(smp.Metric[model.MetricNameLabel]) != name {
			continue
		}
		if holds(smp.Metric, match) {
			sum += float64(smp.Value)
		}
	}
	return sum
}

// Quantile estimates quantile q of histogram name (its _bucket series,
// summed over every other label) between before and after, as
// histogram_quantile does: linear within the bucket that holds it; the
// largest finite edge when it falls in +Inf.
func Quantile(q float64, name string, before, after Samples) float64 {
	return QuantileOf(q, name, nil, before, after)
}

// QuantileOf is Quantile over the series whose labels hold every pair of
// match.
func QuantileOf(q float64, name string, match map[string]string, before, after Samples) float64 {
	counts := map[float64]float64{}
	add := func(s Samples, sign float64) {
		for _, smp := range s {
			if string(smp.Metric[model.MetricNameLabel]) != name+"_bucket" || !holds(smp.Metric, match) {
				continue
			}
			le, err := strconv.ParseFloat(string(smp.Metric["le"]), 64)
			if err == nil {
				counts[le] += sign * float64(smp.Value)
			}
		}
	}
	add(after, 1)
	add(before, -1)
	var edges []float64
	for e := range counts {
		edges = append(edges, e)
	}
	sort.Float64s(edges)
	if len(edges) == 0 || counts[edges[len(edges)-1]] <= 0 {
		return math.NaN()
	}
	total := counts[edges[len(edges)-1]]
	rank := q * total
	prevEdge, prevCount := 0.0, 0.0
	for _, e := range edges {
		c := counts[e]
		if c >= rank {
			if math.IsInf(e, 1) {
				return prevEdge
			}
			if c == prevCount {
				return e
			}
			return prevEdge + (e-prevEdge)*(rank-prevCount)/(c-prevCount)
		}
		prevEdge, prevCount = e, c
	}
	return prevEdge
}

// holds reports whether m has every label pair of match.
func holds(m model.Metric, match map[string]string) bool {
	for k, v := range match {
		if string(m[model.LabelName(k)]) != v {
			return false
		}
	}
	return true
}

// Machine is the machine's CPU time so far, busy and in all, from
// /proc/stat's first line.
type Machine struct {
	Busy, Total int64 // clock ticks
}

// ReadMachine reads the machine's CPU time from /proc/stat.
func ReadMachine() (Machine, error) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return Machine{}, err
	}
	line, _, _ := strings.Cut(string(data), "\n")
	return parseCPULine(line)
}

// parseCPULine reads /proc/stat's "cpu" line: user nice system idle
// iowait irq softirq steal ...; idle and iowait are not busy.
//
// Example: "cpu  100 0 50 800 50 0 0 0 0 0" → busy 150, total 1000.
func parseCPULine(line string) (Machine, error) {
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return Machine{}, fmt.Errorf("/proc/stat: first line %q", line)
	}
	var m Machine
	for i, v := range f[1:] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return Machine{}, fmt.Errorf("/proc/stat: %q", line)
		}
		if i >= 8 { // guest times are counted in user already
			break
		}
		m.Total += n
		if i != 3 && i != 4 {
			m.Busy += n
		}
	}
	return m, nil
}

// BusyShare is the share of the machine's CPU time that was busy between
// a and b (1: every core busy).
func BusyShare(a, b Machine) float64 {
	if b.Total <= a.Total {
		return 0
	}
	return float64(b.Busy-a.Busy) / float64(b.Total-a.Total)
}
