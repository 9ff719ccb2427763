package contract

import (
	"testing"
	"time"
)

func TestWindow(t *testing.T) {
	const s = time.Second
	for _, tt := range []struct {
		name                       string
		interval, override, scrape time.Duration
		want                       time.Duration
	}{
		{"Istio addon scrape, README interval: four scrapes win", 10 * s, 0, 15 * s, time.Minute},
		{"long interval wins", 2 * time.Minute, 0, 15 * s, 2 * time.Minute},
		{"exactly four scrapes", time.Minute, 0, 15 * s, time.Minute},
		{"fast scrape: the interval", 10 * s, 0, s, 10 * s},
		{"60s scrape (many clusters)", time.Minute, 0, time.Minute, 4 * time.Minute},
		{"unknown scrape interval: the interval", 10 * s, 0, 0, 10 * s},
		{"override wins over both", 10 * s, 30 * s, 15 * s, 30 * s},
		{"override may be shorter than the interval", 5 * time.Minute, time.Minute, 15 * s, time.Minute},
		{"override below four scrapes is the user's call", 10 * s, 20 * s, 15 * s, 20 * s},
	} {
		if got := Window(tt.interval, tt.override, tt.scrape); got != tt.want {
			t.Errorf("%s: Window(%v, %v, %v) = %v, want %v", tt.name, tt.interval, tt.override, tt.scrape, got, tt.want)
		}
	}
}

func TestShortIntervalWarning(t *testing.T) {
	const s = time.Second
	for _, tt := range []struct {
		interval, override, scrape time.Duration
		want                       string
	}{
		{10 * s, 0, 15 * s, "canary.io/interval 10s is shorter than two scrapes of Prometheus (15s): the checks read 1m windows"},
		{29 * s, 0, 15 * s, "canary.io/interval 29s is shorter than two scrapes of Prometheus (15s): the checks read 1m windows"},
		{30 * s, 0, 15 * s, ""},
		{10 * s, 0, 0, ""},
		{10 * s, 0, s, ""},
		{10 * s, 2 * time.Minute, 15 * s, "canary.io/interval 10s is shorter than two scrapes of Prometheus (15s): the checks read 2m windows (canary.io/window)"},
		{10 * s, 20 * s, 15 * s, "canary.io/interval 10s is shorter than two scrapes of Prometheus (15s): the checks read 20s windows (canary.io/window), which hold fewer than two scrapes: expect no data"},
	} {
		if got := ShortIntervalWarning(tt.interval, tt.override, tt.scrape); got != tt.want {
			t.Errorf("ShortIntervalWarning(%v, %v, %v) = %q\nwant %q", tt.interval, tt.override, tt.scrape, got, tt.want)
		}
	}
}
