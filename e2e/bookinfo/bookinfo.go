// Package bookinfo holds the bookinfo application the end-to-end test and
// the demo deploy: Istio's sample, written as a user would, with reviews
// opted in.
package bookinfo

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"text/template"
	"time"

	"github.com/canary-io/canary/contract"
)

// App is productpage, details, ratings and the reviews Service.
//
//go:embed bookinfo.yaml
var App string

//go:embed reviews.yaml
var reviewsYAML string

var reviewsTemplate = template.Must(template.New("reviews").Parse(reviewsYAML))

// Reviews is the reviews Deployment at a version ("v1" … "v4") with a
// step interval.
func Reviews(version string, interval time.Duration) string {
	return ReviewsFrom(ReviewsOptions{Version: version, Interval: interval})
}

// ReviewsWithHooks is Reviews with canary.io/webhooks set to webhooks (a
// YAML or JSON list; empty for none).
func ReviewsWithHooks(version string, interval time.Duration, webhooks string) string {
	return ReviewsFrom(ReviewsOptions{Version: version, Interval: interval, Webhooks: webhooks})
}

// ReviewsOptions are what the reviews manifest varies in.
type ReviewsOptions struct {
	Version  string
	Interval time.Duration
	// Webhooks is canary.io/webhooks (a YAML or JSON list); empty for
	// none.
	Webhooks string
	// Annotations are more settings, e.g. canary.io/router.
	Annotations map[string]string
}

// ReviewsFrom is the reviews Deployment as o says.
func ReviewsFrom(o ReviewsOptions) string {
	quote := func(v string) string {
		data, _ := json.Marshal(v) // a string always encodes; JSON strings are YAML strings
		return string(data)
	}
	quoted := ""
	if o.Webhooks != "" {
		quoted = quote(o.Webhooks)
	}
	type pair struct{ Key, Value string }
	var extra []pair
	for _, k := range slices.Sorted(maps.Keys(o.Annotations)) {
		extra = append(extra, pair{k, quote(o.Annotations[k])})
	}
	var b strings.Builder
	if err := reviewsTemplate.Execute(&b, map[string]any{"Version": o.Version, "Interval": o.Interval.String(), "Webhooks": quoted, "Extra": extra,
		"Steps": o.Annotations[contract.KeyStrategy] == "" && o.Annotations[contract.KeySteps] == ""}); err != nil {
		panic(fmt.Sprintf("render reviews: %v", err)) // the template is ours and fixed
	}
	return b.String()
}

// Image is the image of reviews at a version.
func Image(version string) string {
	return "docker.io/istio/examples-bookinfo-reviews-" + version + ":1.20.2"
}
