package scenario

import (
	"encoding/xml"
	"math"
	"strings"
	"testing"
	"time"
)

func TestRenderSVGIsWellFormedWithEveryRollout(t *testing.T) {
	var rollouts []Rollout
	for _, title := range []string{"v1 → v2", "v2 → v3", "v3 → v4 (bad) & <rolled back>"} {
		r := Rollout{Title: title, Outcome: "Succeeded in 58s"}
		for i := range 60 {
			s := Sample{At: time.Duration(i) * time.Second, Weight: float64(min(60, i)), CanarySuccess: 99.5, StableSuccess: 99.9, CanaryP99: 20, StableP99: 18}
			if i%10 == 0 {
				s.CanarySuccess, s.CanaryP99 = math.NaN(), math.NaN() // no data
			}
			r.Samples = append(r.Samples, s)
		}
		rollouts = append(rollouts, r)
	}
	svg := RenderSVG(rollouts)
	dec := xml.NewDecoder(strings.NewReader(string(svg)))
	for {
		_, err := dec.Token()
		if err != nil {
			if err.Error() == "EOF" {
				break
			}
			t.Fatalf("not well-formed XML: %v", err)
		}
	}
	for _, want := range []string{"v1 → v2", "v2 → v3", "&lt;rolled back&gt;", "canary weight", "success rate", "p99 latency", "<polyline"} {
		if !strings.Contains(string(svg), want) {
			t.Errorf("the SVG lacks %q", want)
		}
	}
	if n := strings.Count(string(svg), "<polyline"); n < 3*5 {
		t.Errorf("%d polylines, want at least one per series and rollout", n)
	}
}
