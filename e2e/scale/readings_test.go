package scale

import (
	"math"
	"os"
	"strings"
	"testing"
	"time"
)

func TestQuantile(t *testing.T) {
	before, err := Parse(strings.NewReader(`# TYPE h histogram
h_bucket{le="0.5"} 10
h_bucket{le="1"} 10
h_bucket{le="+Inf"} 10
h_sum 1
h_count 10
`))
	if err != nil {
		t.Fatal(err)
	}
	after, err := Parse(strings.NewReader(`# TYPE h histogram
h_bucket{le="0.5"} 60
h_bucket{le="1"} 100
h_bucket{le="+Inf"} 110
h_sum 1
h_count 110
`))
	if err != nil {
		t.Fatal(err)
	}
	// Between the two: 50 at or under 0.5, 40 in (0.5, 1], 10 above.
	for _, tc := range []struct{ q, want float64 }{{0.5, 0.5}, {0.7, 0.75}, {0.99, 1}} {
		if got := Quantile(tc.q, "h", before, after); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("Quantile(%v) = %v, want %v", tc.q, got, tc.want)
		}
	}
	if got := Quantile(0.5, "h", after, after); !math.IsNaN(got) {
		t.Errorf("no observations between: %v, want NaN", got)
	}
	if got := after.Sum("h_count", nil); got != 110 {
		t.Errorf("Sum(h_count) = %v", got)
	}
}

func TestReadUsage(t *testing.T) {
	// The kernel counts CPU time in clock ticks (10 ms): spend some first,
	// or a fast test process may not have used one yet.
	var u Usage
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); {
		for x, end := 0, time.Now().Add(20*time.Millisecond); time.Now().Before(end); x++ {
			_ = x * x
		}
		var err error
		if u, err = ReadUsage(os.Getpid()); err != nil {
			t.Fatal(err)
		}
		if u.CPU > 0 {
			break
		}
	}
	if u.RSS < 1<<20 || u.CPU <= 0 {
		t.Errorf("this test's own process: RSS %d bytes, CPU %v", u.RSS, u.CPU)
	}
}

func TestParseCPULine(t *testing.T) {
	m, err := parseCPULine("cpu  100 0 50 800 50 0 0 0 7 0")
	if err != nil || m.Busy != 150 || m.Total != 1000 {
		t.Errorf("parseCPULine = %+v, %v; want busy 150, total 1000", m, err)
	}
	if _, err := parseCPULine("intr 1 2 3"); err == nil {
		t.Errorf("parseCPULine accepted a line that is not the cpu line")
	}
	if got := BusyShare(Machine{Busy: 100, Total: 1000}, Machine{Busy: 400, Total: 1400}); got != 0.75 {
		t.Errorf("BusyShare = %v, want 0.75", got)
	}
}
