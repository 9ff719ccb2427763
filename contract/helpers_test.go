package contract

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation/field"
)

// annotations builds an annotation map from key, value pairs.
func annotations(kv ...string) map[string]string {
	if len(kv)%2 != 0 {
		panic("annotations: odd number of arguments")
	}
	m := map[string]string{}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

// defaultsWith returns DefaultSettings changed by mutate.
func defaultsWith(mutate func(*Settings)) Settings {
	s := DefaultSettings()
	mutate(&s)
	return s
}

func ptr(f float64) *float64 { return &f }

// wantOneInvalid checks that errs is exactly one field.Invalid error at the
// annotation key, carrying value, whose detail mentions reason.
func wantOneInvalid(t *testing.T, errs field.ErrorList, key, value, reason string) {
	t.Helper()
	if len(errs) != 1 {
		t.Fatalf("got %d errors, want 1: %v", len(errs), errs.ToAggregate())
	}
	e := errs[0]
	if e.Type != field.ErrorTypeInvalid {
		t.Errorf("type = %s, want %s", e.Type, field.ErrorTypeInvalid)
	}
	if want := "metadata.annotations[" + key + "]"; e.Field != want {
		t.Errorf("field = %q, want %q", e.Field, want)
	}
	if e.BadValue != value {
		t.Errorf("bad value = %#v, want %q", e.BadValue, value)
	}
	if !strings.Contains(e.Detail, reason) {
		t.Errorf("detail = %q, want it to mention %q", e.Detail, reason)
	}
}
