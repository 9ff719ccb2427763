package trafficgen

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Latency is a range of response times, drawn uniformly.
type Latency struct {
	// Min and Max bound the response time (Max >= Min).
	Min, Max time.Duration
}

// draw returns a latency uniformly in [Min, Max].
func (l Latency) draw(rnd *rand.Rand) time.Duration {
	if l.Max <= l.Min {
		return l.Min
	}
	// As uint64, the span plus one cannot overflow: both ends are >= 0.
	return l.Min + time.Duration(rnd.Uint64N(uint64(l.Max-l.Min)+1))
}

// String formats the range as ParseLatency reads it: "5ms-30ms".
func (l Latency) String() string { return l.Min.String() + "-" + l.Max.String() }

// ParseLatency reads a latency range "MIN-MAX" ("5ms-30ms") or a single
// duration ("20ms", meaning exactly that).
func ParseLatency(s string) (Latency, error) {
	first, second, isRange := strings.Cut(strings.TrimSpace(s), "-")
	low, err := time.ParseDuration(strings.TrimSpace(first))
	if err != nil {
		return Latency{}, fmt.Errorf("latency %q: %w", s, err)
	}
	high := low
	if isRange {
		if high, err = time.ParseDuration(strings.TrimSpace(second)); err != nil {
			return Latency{}, fmt.Errorf("latency %q: %w", s, err)
		}
	}
	if low < 0 || high < low {
		return Latency{}, fmt.Errorf("latency %q: want 0 <= min <= max", s)
	}
	return Latency{Min: low, Max: high}, nil
}

// BadImage is an image that answers badly.
type BadImage struct {
	// Image is matched against the last path element of a pod's image
	// ("reviews:v4" matches "example.com/bookinfo/reviews:v4").
	Image string
	// ErrorShare is the share of requests answered with a 500 (0..1).
	ErrorShare float64
	// Latency, when set (Max above zero), is this image's latency instead
	// of Behaviour.Bad: a version that is only slow.
	Latency Latency
}

// ParseBadImages reads a comma-separated list IMAGE=SHARE
// ("reviews:v4=0.10,ratings:v2=1") of images and their share of 5xx.
func ParseBadImages(s string) ([]BadImage, error) {
	var out []BadImage
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		image, share, ok := strings.Cut(item, "=")
		image = strings.TrimSpace(image)
		if !ok || image == "" {
			return nil, fmt.Errorf("bad image %q: want IMAGE=SHARE, e.g. reviews:v4=0.10", item)
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(share), 64)
		if err != nil || !(f >= 0 && f <= 1) {
			return nil, fmt.Errorf("bad image %q: share %q is not a number from 0 to 1", item, share)
		}
		if slices.ContainsFunc(out, func(b BadImage) bool { return b.Image == image }) {
			return nil, fmt.Errorf("bad image %q: listed twice", image)
		}
		out = append(out, BadImage{Image: image, ErrorShare: f})
	}
	return out, nil
}

// Behaviour is how the simulated pods answer, by image.
type Behaviour struct {
	// Healthy is the latency of a good version (default 5ms-30ms).
	Healthy Latency
	// Bad is the latency of a bad version (default 100ms-400ms).
	Bad Latency
	// BadImages are the bad versions and their share of 5xx.
	BadImages []BadImage
}

// DefaultBehaviour answers fast and well for every image.
func DefaultBehaviour() Behaviour {
	return Behaviour{
		Healthy: Latency{Min: 5 * time.Millisecond, Max: 30 * time.Millisecond},
		Bad:     Latency{Min: 100 * time.Millisecond, Max: 400 * time.Millisecond},
	}
}

// Answer is a simulated pod's response.
type Answer struct {
	// Code is the HTTP status (200 or 500).
	Code int
	// Latency is how long the pod took.
	Latency time.Duration
}

// Answer draws the answer of a pod running image to one request. A bad
// image answers with the Bad latency and a 500 with its error share; any
// other image answers 200 with the Healthy latency.
//
// Example: with BadImages [{reviews:v4 0.10}], a pod of
// "example.com/reviews:v4" answers about one request in ten with a 500,
// each after 100-400ms; a pod of "example.com/reviews:v3" answers every
// request with a 200 after 5-30ms. With {reviews:v5 0 600ms-900ms}, a pod
// of reviews:v5 answers every request with a 200 after 600-900ms.
func (b Behaviour) Answer(image string, rnd *rand.Rand) Answer {
	bad, ok := b.badImage(image)
	if !ok {
		return Answer{Code: 200, Latency: b.Healthy.draw(rnd)}
	}
	latency := b.Bad
	if bad.Latency.Max > 0 {
		latency = bad.Latency
	}
	a := Answer{Code: 200, Latency: latency.draw(rnd)}
	if rnd.Float64() < bad.ErrorShare {
		a.Code = 500
	}
	return a
}

// badImage finds the entry of BadImages that an image matches.
func (b Behaviour) badImage(image string) (BadImage, bool) {
	last := image[strings.LastIndex(image, "/")+1:]
	for _, bi := range b.BadImages {
		if bi.Image == image || bi.Image == last {
			return bi, true
		}
	}
	return BadImage{}, false
}
