package sequential_test

import (
	"fmt"
	"time"

	"github.com/canary-io/canary/stepper/sequential"
)

// A bad canary at 20% of 50 requests/s failing 10%, read every 5 s: the
// second read decides.
func ExampleRollout() {
	r, err := sequential.NewRollout(sequential.Settings{Confidence: 99, Tolerance: 0.20})
	if err != nil {
		panic(err)
	}
	reads := []sequential.Interval{
		{Duration: 5 * time.Second, Canary: sequential.Arm{Requests: 48, Bad: 6}, Stable: sequential.Arm{Requests: 203}},
		{Duration: 5 * time.Second, Canary: sequential.Arm{Requests: 51, Bad: 4}, Stable: sequential.Arm{Requests: 197, Bad: 1}},
	}
	for _, in := range reads {
		r = r.Update(in, sequential.Interval{})
		fmt.Println(r.Decide().Summary)
	}
	// Output:
	// canary error rate 12.5% vs stable 0% after 48 canary requests in 5 s: not worse so far (p = 0.012, needs 0.01)
	// canary error rate 10.1% vs stable 0.2%: worse with 99% confidence (at least 2.9x) after 99 canary requests in 10 s
}

// Counts from raw counter samples: the canary's 503 series appears with its
// first 503, the stable pod restarts.
func ExampleArmCounts() {
	start := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	sec := func(s int) time.Time { return start.Add(time.Duration(s) * time.Second) }
	ends := sequential.Bounds(start, 5*time.Second, sec(11))
	canary := sequential.ArmCounts(
		[]sequential.Series{
			{ID: `code="200"`, Samples: []sequential.Sample{{At: sec(4), Value: 45}, {At: sec(9), Value: 90}}},
			{ID: `code="503"`, Samples: []sequential.Sample{{At: sec(4), Value: 5}, {At: sec(9), Value: 11}}},
		},
		[]sequential.Series{{ID: `code="503"`, Samples: []sequential.Sample{{At: sec(4), Value: 5}, {At: sec(9), Value: 11}}}},
		start, ends)
	stable := sequential.ArmCounts(
		[]sequential.Series{{ID: `code="200"`, Samples: []sequential.Sample{{At: sec(-3), Value: 98000}, {At: sec(2), Value: 98200}, {At: sec(7), Value: 150}}}},
		nil, start, ends)
	for _, in := range sequential.Intervals(canary, stable, start, ends) {
		fmt.Printf("%v: canary %v of %v, stable %v of %v\n", in.Duration, in.Canary.Bad, in.Canary.Requests, in.Stable.Bad, in.Stable.Requests)
	}
	// Output:
	// 5s: canary 5 of 50, stable 0 of 200
	// 5s: canary 6 of 51, stable 0 of 150
}
