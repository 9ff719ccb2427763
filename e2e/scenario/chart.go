package scenario

import (
	"fmt"
	"html"
	"math"
	"strings"
	"time"
)

// Sample is one moment of a rollout as the demo and the end-to-end test
// record it: the canary's weight and each arm's success rate and p99
// latency (NaN where there was no data).
type Sample struct {
	// At is the time since the rollout's apply.
	At time.Duration
	// Weight is canary.io/weight in percent.
	Weight float64
	// CanarySuccess and StableSuccess are success rates in percent.
	CanarySuccess, StableSuccess float64
	// CanaryP99 and StableP99 are p99 latencies in milliseconds.
	CanaryP99, StableP99 float64
	// Phase is canary.io/phase at that moment.
	Phase string
}

// Rollout is one rollout's timeline.
type Rollout struct {
	// Title names it, e.g. "v1 → v2".
	Title string
	// Outcome is how it ended, e.g. "Succeeded in 58s".
	Outcome string
	// Samples are in time order.
	Samples []Sample
}

// Chart geometry, in SVG user units.
const (
	panelWidth  = 360.0
	panelHeight = 110.0
	marginLeft  = 48.0
	marginTop   = 58.0
	gapX        = 36.0
	gapY        = 28.0
)

// RenderSVG draws one column per rollout with three panels each: the
// canary's weight, the success rate and the p99 latency of canary (red)
// and stable (blue), over time. The result is a standalone SVG document.
func RenderSVG(rollouts []Rollout) []byte {
	width := marginLeft + float64(len(rollouts))*(panelWidth+gapX)
	height := marginTop + 3*(panelHeight+gapY) + 20
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="sans-serif" font-size="11">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	for i, r := range rollouts {
		x := marginLeft + float64(i)*(panelWidth+gapX)
		fmt.Fprintf(&b, `<text x="%.1f" y="16" font-size="14" font-weight="bold">%s</text>`+"\n", x, html.EscapeString(r.Title))
		fmt.Fprintf(&b, `<text x="%.1f" y="31" fill="#555">%s</text>`+"\n", x, html.EscapeString(r.Outcome))
		end := time.Second
		for _, s := range r.Samples {
			end = max(end, s.At)
		}
		panels := []struct {
			title          string
			canary, stable func(Sample) float64
			lo, hi         float64
			unit           string
		}{
			{"canary weight", func(s Sample) float64 { return s.Weight }, nil, 0, 100, "%"},
			{"success rate", func(s Sample) float64 { return s.CanarySuccess }, func(s Sample) float64 { return s.StableSuccess }, 80, 100, "%"},
			{"p99 latency", func(s Sample) float64 { return s.CanaryP99 }, func(s Sample) float64 { return s.StableP99 }, 0, p99Max(r.Samples), "ms"},
		}
		for j, p := range panels {
			y := marginTop + float64(j)*(panelHeight+gapY)
			panel(&b, x, y, p.title, p.lo, p.hi, p.unit, end)
			if p.stable != nil {
				line(&b, x, y, r.Samples, p.stable, p.lo, p.hi, end, "#1f77b4")
			}
			line(&b, x, y, r.Samples, p.canary, p.lo, p.hi, end, "#d62728")
		}
	}
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" fill="#d62728">— canary</text><text x="%.1f" y="%.1f" fill="#1f77b4">— stable</text>`+"\n",
		marginLeft, height-6, marginLeft+70, height-6)
	b.WriteString("</svg>\n")
	return []byte(b.String())
}

// panel draws a panel's frame, title and axis labels.
func panel(b *strings.Builder, x, y float64, title string, lo, hi float64, unit string, end time.Duration) {
	fmt.Fprintf(b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="none" stroke="#ccc"/>`+"\n", x, y, panelWidth, panelHeight)
	fmt.Fprintf(b, `<text x="%.1f" y="%.1f" fill="#333">%s</text>`+"\n", x+4, y-4, html.EscapeString(title))
	fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="end" fill="#777">%s%s</text>`+"\n", x-4, y+10, trim(hi), unit)
	fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="end" fill="#777">%s%s</text>`+"\n", x-4, y+panelHeight, trim(lo), unit)
	fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="end" fill="#777">%s</text>`+"\n", x+panelWidth, y+panelHeight+12, end.Round(time.Second))
}

// line draws one series as a polyline, broken where there is no data.
func line(b *strings.Builder, x, y float64, samples []Sample, value func(Sample) float64, lo, hi float64, end time.Duration, color string) {
	var pts []string
	flush := func() {
		if len(pts) > 0 {
			fmt.Fprintf(b, `<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"/>`+"\n", color, strings.Join(pts, " "))
		}
		pts = nil
	}
	for _, s := range samples {
		v := value(s)
		if math.IsNaN(v) {
			flush()
			continue
		}
		v = math.Max(lo, math.Min(hi, v))
		px := x + panelWidth*float64(s.At)/float64(end)
		py := y + panelHeight*(1-(v-lo)/(hi-lo))
		pts = append(pts, fmt.Sprintf("%.1f,%.1f", px, py))
	}
	flush()
}

// p99Max is the latency panel's top: the largest p99 seen, rounded up to
// a round number, at least 100 ms.
func p99Max(samples []Sample) float64 {
	top := 100.0
	for _, s := range samples {
		for _, v := range []float64{s.CanaryP99, s.StableP99} {
			if !math.IsNaN(v) && v > top {
				top = v
			}
		}
	}
	return math.Ceil(top/100) * 100
}

func trim(v float64) string { return strings.TrimSuffix(fmt.Sprintf("%.0f", v), ".0") }
