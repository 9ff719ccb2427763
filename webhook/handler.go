package webhook

import (
	"context"
	"fmt"
	"net/http"
	"time"

	jsoniter "github.com/json-iterator/go"
	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// Paths the handlers are served on.
const (
	MutatePath   = "/mutate-deployments"
	ValidatePath = "/validate-deployments"
)

// Handler serves the admission reviews for Deployments: decode, decide
// (Mutate or Validate, pure), answer.
type Handler struct {
	// ControllerUser is the identity the system's controller writes as
	// (a user name or system:serviceaccount:NS:NAME).
	ControllerUser string
	// Clock gives the admission time.
	Clock clock.PassiveClock
	// Validating selects Validate instead of Mutate.
	Validating bool
	// Decisions, if set, counts each decision by outcome.
	Decisions func(webhook, outcome string)
	// ScrapeInterval, if set, is Prometheus' scrape interval as last
	// known (zero: unknown); it must not wait.
	ScrapeInterval func() time.Duration
	// Egress is where the URLs users write may point.
	Egress Egress
	// Unskipped, if set, is called (validating only) for a status write
	// of the controller that reached the webhook although the match
	// conditions should have left it out (StatusWriteOnly): the
	// configurations name another identity than ControllerUser, or the
	// apiserver ignores their match conditions. The write is judged as
	// any other.
	Unskipped func()
}

var _ admission.Handler = (*Handler)(nil)

// Handle implements admission.Handler.
func (h *Handler) Handle(_ context.Context, req admission.Request) admission.Response {
	r, err := h.decode(req)
	if err != nil {
		return admission.Errored(http.StatusBadRequest, err)
	}
	if h.Validating {
		if r.ByController && h.Unskipped != nil && StatusWriteOnly(r.Old, r.New) {
			h.Unskipped()
		}
		errs, reason := Validate(r)
		switch {
		case len(errs) > 0:
			h.count("validate", "invalid")
			invalid := apierrors.NewInvalid(schema.GroupKind{Group: appsv1.GroupName, Kind: "Deployment"}, req.Name, errs)
			return admission.Response{AdmissionResponse: admissionv1.AdmissionResponse{Allowed: false, Result: &invalid.ErrStatus}}
		case reason != "":
			h.count("validate", "denied")
			return admission.Denied(reason)
		}
		h.count("validate", "allowed")
		return admission.Allowed("")
	}
	resp := Mutate(r)
	if resp.Denied != "" {
		h.count("mutate", "denied")
		return admission.Denied(resp.Denied)
	}
	h.count("mutate", "allowed")
	return admission.Patched("", patch(r.New, resp.Object)...).WithWarnings(resp.Warnings...)
}

// jsonAPI decodes the two Deployments of a review. Decoding is most of
// an admission review's cost; json-iterator, configured to behave as
// encoding/json, does it in about a third of the time (see
// docs/benchmarks.md).
var jsonAPI = jsoniter.ConfigCompatibleWithStandardLibrary

func (h *Handler) decode(req admission.Request) (Request, error) {
	r := Request{ByController: req.UserInfo.Username == h.ControllerUser, Now: h.Clock.Now(), Egress: h.Egress, User: req.UserInfo.Username}
	if h.ScrapeInterval != nil {
		r.ScrapeInterval = h.ScrapeInterval()
	}
	r.New = &appsv1.Deployment{}
	if err := jsonAPI.Unmarshal(req.Object.Raw, r.New); err != nil {
		return r, fmt.Errorf("decode deployment: %w", err)
	}
	if len(req.OldObject.Raw) > 0 && req.Operation == admissionv1.Update {
		r.Old = &appsv1.Deployment{}
		if err := jsonAPI.Unmarshal(req.OldObject.Raw, r.Old); err != nil {
			return r, fmt.Errorf("decode old deployment: %w", err)
		}
	}
	return r, nil
}

func (h *Handler) count(webhook, outcome string) {
	if h.Decisions != nil {
		h.Decisions(webhook, outcome)
	}
}

// ServicePath is where the Service handler is served.
const ServicePath = "/mutate-services"

// ServiceHandler serves the admission reviews of pinned Services: the
// pin is restored on any write but the controller's.
type ServiceHandler struct {
	// ControllerUser is the identity the system's controller writes as.
	ControllerUser string
}

var _ admission.Handler = (*ServiceHandler)(nil)

// Handle implements admission.Handler.
func (h *ServiceHandler) Handle(_ context.Context, req admission.Request) admission.Response {
	if req.Operation != admissionv1.Update || len(req.OldObject.Raw) == 0 {
		return admission.Allowed("")
	}
	var old, svc corev1.Service
	if err := jsonAPI.Unmarshal(req.OldObject.Raw, &old); err != nil {
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("decode old service: %w", err))
	}
	if err := jsonAPI.Unmarshal(req.Object.Raw, &svc); err != nil {
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("decode service: %w", err))
	}
	out, warnings := MutateService(ServiceRequest{Old: &old, New: &svc, ByController: req.UserInfo.Username == h.ControllerUser})
	if out == &svc {
		return admission.Allowed("")
	}
	raw, err := jsonAPI.Marshal(out)
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, err)
	}
	return admission.PatchResponseFromRaw(req.Object.Raw, raw).WithWarnings(warnings...)
}
