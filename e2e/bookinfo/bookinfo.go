// Package bookinfo holds the bookinfo application the end-to-end test and
// the demo deploy: Istio's sample, written as a user would, with reviews
// opted in.
package bookinfo

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"strings"
	"text/template"
	"time"
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
	return ReviewsWithHooks(version, interval, "")
}

// ReviewsWithHooks is Reviews with canary.io/webhooks set to webhooks (a
// YAML or JSON list; empty for none).
func ReviewsWithHooks(version string, interval time.Duration, webhooks string) string {
	quoted := ""
	if webhooks != "" {
		data, _ := json.Marshal(webhooks) // a string always encodes; JSON strings are YAML strings
		quoted = string(data)
	}
	var b strings.Builder
	if err := reviewsTemplate.Execute(&b, map[string]string{"Version": version, "Interval": interval.String(), "Webhooks": quoted}); err != nil {
		panic(fmt.Sprintf("render reviews: %v", err)) // the template is ours and fixed
	}
	return b.String()
}

// Image is the image of reviews at a version.
func Image(version string) string {
	return "docker.io/istio/examples-bookinfo-reviews-" + version + ":1.20.2"
}
