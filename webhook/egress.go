package webhook

import (
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/canary-io/canary/contract"
)

// Egress is where the cluster admin lets the URLs users write point (the
// controller's --allow-hook-destinations and
// --allow-prometheus-destinations). The zero value allows any destination
// but loopback, link-local and the apiserver.
type Egress struct {
	Hooks, Prometheus contract.Destinations
	// Providers are the notification providers the controller has
	// (--notification-providers): canary.io/notify may name only those.
	Providers map[string]bool
}

// check denies, with the field and the reason, a hook or Prometheus URL
// the allow-lists refuse. Only URLs a write sets or changes are checked:
// an analysis frozen with an older URL is not blocked by a stricter list
// (the controller checks the address again when it dials).
func (e Egress) check(old, new map[string]string) field.ErrorList {
	var errs field.ErrorList
	annotations := field.NewPath("metadata", "annotations")
	if v, ok := new[contract.KeyPrometheus]; ok && v != "" && (old == nil || old[contract.KeyPrometheus] != v) {
		if err := e.Prometheus.AllowsURL(v); err != nil {
			errs = append(errs, field.Forbidden(annotations.Key(contract.KeyPrometheus), err.Error()))
		}
	}
	if v, ok := new[contract.KeyNotify]; ok && (old == nil || old[contract.KeyNotify] != v) {
		s, _ := contract.ParseSettings(map[string]string{contract.KeyNotify: v})
		for i, name := range s.Notify {
			if !e.Providers[name] {
				errs = append(errs, field.NotFound(annotations.Key(contract.KeyNotify).Index(i), name+
					" (the controller's notification providers, --notification-providers: "+known(e.Providers)+")"))
			}
		}
	}
	if v, ok := new[contract.KeyWebhooks]; ok && (old == nil || old[contract.KeyWebhooks] != v) {
		hooks, perr := contract.ParseWebhooks(v)
		if perr != nil {
			return errs // contract.Validate reports it
		}
		for i, h := range hooks {
			if err := e.Hooks.AllowsURL(h.URL); err != nil {
				errs = append(errs, field.Forbidden(annotations.Key(contract.KeyWebhooks).Index(i).Child("url"),
					"hook "+h.Name+": "+err.Error()))
			}
		}
	}
	return errs
}

// known lists the configured providers for a message.
func known(providers map[string]bool) string {
	if len(providers) == 0 {
		return "none configured"
	}
	var names []string
	for n := range providers {
		names = append(names, n)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}
