package trafficgen

import (
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestAnswerByImage(t *testing.T) {
	b := DefaultBehaviour()
	b.BadImages = []BadImage{{Image: "reviews:v4", ErrorShare: 0.10}, {Image: "ratings:v2", ErrorShare: 1}, {Image: "details:v2", ErrorShare: 0},
		{Image: "reviews:v5", Latency: Latency{Min: 600 * time.Millisecond, Max: 900 * time.Millisecond}}}
	tests := []struct {
		image     string
		wantShare float64 // of 500s
		latency   Latency
	}{
		{"example.com/bookinfo/reviews:v1", 0, b.Healthy},
		{"example.com/bookinfo/reviews:v4", 0.10, b.Bad},
		{"reviews:v4", 0.10, b.Bad},
		{"registry.local:5000/team/reviews:v4", 0.10, b.Bad},
		{"example.com/reviews:v41", 0, b.Healthy},
		{"example.com/bad-reviews:v4", 0, b.Healthy},
		{"ratings:v2", 1, b.Bad},
		{"details:v2", 0, b.Bad},
		{"example.com/reviews:v5", 0, Latency{Min: 600 * time.Millisecond, Max: 900 * time.Millisecond}}, // slow only
		{"", 0, b.Healthy}, // an unknown pod
	}
	const n = 20000
	for _, tt := range tests {
		t.Run(tt.image, func(t *testing.T) {
			rnd := seeded()
			errors := 0
			for range n {
				a := b.Answer(tt.image, rnd)
				switch a.Code {
				case 500:
					errors++
				case 200:
				default:
					t.Fatalf("code %d", a.Code)
				}
				if a.Latency < tt.latency.Min || a.Latency > tt.latency.Max {
					t.Fatalf("latency %v outside %v", a.Latency, tt.latency)
				}
			}
			tol := 5 * math.Sqrt(tt.wantShare*(1-tt.wantShare)/n)
			if s := float64(errors) / n; math.Abs(s-tt.wantShare) > tol {
				t.Errorf("share of 500s %.4f, want %.2f ± %.4f", s, tt.wantShare, tol)
			}
		})
	}
}

func TestLatencyDrawCoversTheRange(t *testing.T) {
	l := Latency{Min: 5 * time.Millisecond, Max: 30 * time.Millisecond}
	rnd := seeded()
	var lo, hi time.Duration = time.Hour, 0
	for range 10000 {
		d := l.draw(rnd)
		lo, hi = min(lo, d), max(hi, d)
	}
	if lo > 6*time.Millisecond || hi < 29*time.Millisecond {
		t.Errorf("draws span %v..%v, want about %v", lo, hi, l)
	}
	if d := (Latency{Min: 7 * time.Millisecond, Max: 7 * time.Millisecond}).draw(rnd); d != 7*time.Millisecond {
		t.Errorf("fixed latency drew %v", d)
	}
}

func TestParseBadImages(t *testing.T) {
	tests := []struct {
		in      string
		want    []BadImage
		wantErr string
	}{
		{"", nil, ""},
		{"reviews:v4=0.10", []BadImage{{Image: "reviews:v4", ErrorShare: 0.10}}, ""},
		{" reviews:v4 = 0.1 , ratings:v2=1,", []BadImage{{Image: "reviews:v4", ErrorShare: 0.1}, {Image: "ratings:v2", ErrorShare: 1}}, ""},
		{"example.com/reviews:v4=0", []BadImage{{Image: "example.com/reviews:v4", ErrorShare: 0}}, ""},
		{"reviews:v4", nil, "want IMAGE=SHARE"},
		{"=0.1", nil, "want IMAGE=SHARE"},
		{"reviews:v4=ten", nil, "not a number from 0 to 1"},
		{"reviews:v4=1.5", nil, "not a number from 0 to 1"},
		{"reviews:v4=-0.1", nil, "not a number from 0 to 1"},
		{"reviews:v4=NaN", nil, "not a number from 0 to 1"},
		{"reviews:v4=0.1,reviews:v4=0.2", nil, "listed twice"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseBadImages(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

func TestParseLatency(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		in      string
		want    Latency
		wantErr bool
	}{
		{"5ms-30ms", Latency{5 * ms, 30 * ms}, false},
		{" 100ms - 1s ", Latency{100 * ms, time.Second}, false},
		{"20ms", Latency{20 * ms, 20 * ms}, false},
		{"0s-0s", Latency{}, false},
		{"30ms-5ms", Latency{}, true},
		{"-5ms", Latency{}, true},
		{"fast", Latency{}, true},
		{"5ms-", Latency{}, true},
		{"", Latency{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseLatency(tt.in)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Fatalf("got %v, %v; want %v, error %v", got, err, tt.want, tt.wantErr)
			}
			if err == nil {
				if again, err := ParseLatency(got.String()); err != nil || again != got {
					t.Fatalf("String %q reads back as %v, %v", got.String(), again, err)
				}
			}
		})
	}
}

func FuzzParseBadImages(f *testing.F) {
	for _, s := range []string{"reviews:v4=0.10", "a=1,b=0", "x", "=", "a=1e-3,", "a=0x1p-2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseBadImages(s)
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, b := range got {
			if b.Image == "" || strings.ContainsAny(b.Image, ",=") || !(b.ErrorShare >= 0 && b.ErrorShare <= 1) || seen[b.Image] {
				t.Fatalf("ParseBadImages(%q) accepted %+v", s, got)
			}
			seen[b.Image] = true
		}
	})
}

func FuzzParseLatency(f *testing.F) {
	for _, s := range []string{"5ms-30ms", "1s", "1h-2h", "-", "0-0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, err := ParseLatency(s)
		if err != nil {
			return
		}
		if l.Min < 0 || l.Max < l.Min {
			t.Fatalf("ParseLatency(%q) accepted %v", s, l)
		}
		if d := l.draw(seeded()); d < l.Min || d > l.Max {
			t.Fatalf("draw %v outside %v", d, l)
		}
	})
}
