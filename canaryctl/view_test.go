package canaryctl

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/canary-io/canary/contract"
)

func TestWeightBar(t *testing.T) {
	for _, tc := range []struct {
		weight string
		want   string
	}{
		{"0", "[....................] 0%"},
		{"20", "[####................] 20%"},
		{"40", "[########............] 40%"},
		{"42", "[########............] 42%"}, // 8.4 cells round to 8
		{"43", "[#########...........] 43%"}, // 8.6 cells round to 9
		{"100", "[####################] 100%"},
		{"", "-"},
		{"abc", "abc"},
		{"101", "101"},
		{"-1", "-1"},
	} {
		if got := WeightBar(tc.weight, 20); got != tc.want {
			t.Errorf("WeightBar(%q) = %q, want %q", tc.weight, got, tc.want)
		}
	}
}

func TestRenderView(t *testing.T) {
	web := "web"
	for _, tc := range []struct {
		name   string
		view   func() string // the view under test
		want   []string      // lines (trimmed of trailing space) that must appear, in order
		absent []string
	}{
		{
			name: "progressing with events, newest last",
			view: func() string {
				return RenderView(progressing("shop", web), []corev1.Event{
					event(web, "StepPassed", "step 1/3 passed", 10*time.Second),
					event(web, "StepStarted", "step 1/3 started:\nweight 20%", 95*time.Second),
				}, now)
			},
			want: []string{
				"Deployment:      shop/web",
				"Phase:           Progressing",
				"Weight:          [####................] 20%",
				"Step:            1/3",
				"Failed checks:   0/3",
				"Revision:        7f9c4d",
				"Stable revision: 5b6a21",
				"Last transition: 2026-05-01T09:58:30Z (90s ago)",
				"Message:         step 1/3 started: weight 20%",
				"Events:",
				"  AGE  TYPE    REASON       MESSAGE",
				"  95s  Normal  StepStarted  step 1/3 started: weight 20%",
				"  10s  Normal  StepPassed   step 1/3 passed",
			},
			absent: []string{"Canary:", "Rejected revision:"},
		},
		{
			name: "rolled back, with the message carrying the checks' values",
			view: func() string {
				return RenderView(progressing("shop", web,
					contract.KeyPhase, string(contract.PhaseRolledBack),
					contract.KeyWeight, "0",
					contract.KeyFailedChecks, "3/3",
					contract.KeyRejectedRevision, "7f9c4d",
					contract.KeyMessage, "rolled back: success rate 97.1% (min 99%, stable 99.9%)",
				), []corev1.Event{event(web, "ChecksFailed", "success rate 97.1%", time.Minute)}, now)
			},
			want: []string{
				"Phase:             RolledBack",
				"Weight:            [....................] 0%",
				"Failed checks:     3/3",
				"Rejected revision: 7f9c4d",
				"Message:           rolled back: success rate 97.1% (min 99%, stable 99.9%)",
				"  60s  Normal  ChecksFailed  success rate 97.1%",
			},
		},
		{
			name: "pause requested but not yet acted on",
			view: func() string {
				return RenderView(progressing("shop", web, contract.KeyPause, "true"), nil, now)
			},
			want: []string{"Phase:           Progressing (canary.io/pause requested)", "Events: <none>"},
		},
		{
			name: "never analysed: status annotations absent",
			view: func() string {
				return RenderView(deployment("shop", web), nil, now)
			},
			want: []string{"Phase:           -", "Weight:          -", "Step:            -", "Last transition: -", "Message:         -"},
		},
		{
			name: "not opted in",
			view: func() string {
				return RenderView(deployment("shop", web, contract.KeyEnabled, ""), nil, now)
			},
			want: []string{`Canary:          not enabled (canary.io/enabled is not "true")`},
		},
		{
			name: "events of an earlier Deployment of the same name are left out",
			view: func() string {
				old := event(web, "Succeeded", "old", time.Hour)
				old.InvolvedObject.UID = "uid-previous"
				unset := event(web, "Promoting", "no uid", time.Minute)
				unset.InvolvedObject.UID = ""
				return RenderView(progressing("shop", web), []corev1.Event{old, unset}, now)
			},
			want:   []string{"  60s  Normal  Promoting  no uid"},
			absent: []string{"old"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.view()
			var lines []string
			for l := range strings.SplitSeq(got, "\n") {
				lines = append(lines, strings.TrimRight(l, " "))
			}
			i := 0
			for _, w := range tc.want {
				for i < len(lines) && lines[i] != w {
					i++
				}
				if i == len(lines) {
					t.Fatalf("line %q missing (or out of order) in\n%s", w, got)
				}
			}
			for _, a := range tc.absent {
				if strings.Contains(got, a) {
					t.Errorf("view holds %q:\n%s", a, got)
				}
			}
		})
	}
}

func TestRecentEvents(t *testing.T) {
	var events []corev1.Event
	for i := range 15 {
		events = append(events, event("web", "R"+string(rune('a'+i)), "", time.Duration(i)*time.Second))
	}
	got := RecentEvents(events, 10)
	if len(got) != 10 || got[0].Reason != "Rj" || got[9].Reason != "Ra" {
		t.Fatalf("RecentEvents kept %d, first %s last %s; want 10 from Rj (oldest kept) to Ra (newest)", len(got), got[0].Reason, got[len(got)-1].Reason)
	}
}

func TestEventTime(t *testing.T) {
	at := func(d time.Duration) metav1.Time { return metav1.NewTime(now.Add(-d)) }
	for _, tc := range []struct {
		name string
		e    corev1.Event
		want time.Time
	}{
		{"series wins", corev1.Event{Series: &corev1.EventSeries{LastObservedTime: metav1.NewMicroTime(now)}, EventTime: metav1.NewMicroTime(now.Add(-time.Hour))}, now},
		{"events.k8s.io event time", corev1.Event{EventTime: metav1.NewMicroTime(now.Add(-time.Minute)), LastTimestamp: at(time.Hour)}, now.Add(-time.Minute)},
		{"core last timestamp", corev1.Event{LastTimestamp: at(time.Second), FirstTimestamp: at(time.Hour)}, now.Add(-time.Second)},
		{"core first timestamp", corev1.Event{FirstTimestamp: at(time.Hour)}, now.Add(-time.Hour)},
		{"creation", corev1.Event{ObjectMeta: metav1.ObjectMeta{CreationTimestamp: at(2 * time.Hour)}}, now.Add(-2 * time.Hour)},
	} {
		if got := EventTime(tc.e); !got.Equal(tc.want) {
			t.Errorf("%s: EventTime = %v, want %v", tc.name, got, tc.want)
		}
	}
}
