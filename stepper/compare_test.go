package stepper

import (
	"testing"
	"time"
)

func TestSlowEdge(t *testing.T) {
	for _, tt := range []struct {
		max  time.Duration
		want float64
	}{
		{500 * time.Millisecond, 500}, {300 * time.Millisecond, 500}, {500*time.Millisecond + time.Microsecond, 1000},
		{2 * time.Second, 2500}, {time.Millisecond, 1}, {2 * time.Hour, 3600000},
	} {
		if got := slowEdge(tt.max); got != tt.want {
			t.Errorf("slowEdge(%v) = %v, want %v", tt.max, got, tt.want)
		}
	}
}
