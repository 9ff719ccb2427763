package webhook

import (
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/canary-io/canary/contract"
)

// Egress is where the cluster admin lets the URLs users write point (the
// controller's --allow-hook-destinations and
// --allow-prometheus-destinations). The zero value allows any destination
// but loopback, link-local and the apiserver.
type Egress struct {
	Hooks, Prometheus contract.Destinations
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
