//go:build faultinject

package crash

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
)

// Enabled reports whether crash points are built in.
const Enabled = true

var (
	mu      sync.Mutex
	pattern string
	nth     int
	seen    int
)

func init() {
	spec := os.Getenv("CANARY_CRASH_AT")
	if spec == "" {
		return
	}
	p, n, ok := strings.Cut(spec, "#")
	count, err := strconv.Atoi(n)
	if !ok || err != nil || count < 1 {
		fmt.Fprintf(os.Stderr, "CANARY_CRASH_AT=%q: want POINT#N or *#N\n", spec)
		os.Exit(2)
	}
	pattern, nth = p, count
}

// point kills the process with SIGKILL when it is the point
// CANARY_CRASH_AT selects.
func point(name string) {
	mu.Lock()
	defer mu.Unlock()
	if pattern == "" || (pattern != "*" && pattern != name) {
		return
	}
	seen++
	fmt.Fprintf(os.Stderr, "crash point %q reached (%d of %d)\n", name, seen, nth)
	if seen == nth {
		fmt.Fprintf(os.Stderr, "CRASH after %q\n", name)
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // SIGKILL is not caught: never return
	}
}

// Client wraps c: every write it makes successfully is followed by the
// crash point "after VERB KIND NAME", e.g. "after update Deployment
// reviews", "after patch Service reviews", "after update
// Deployment/status reviews".
func Client(c client.Client) client.Client { return &crashing{Client: c} }

type crashing struct{ client.Client }

func (c *crashing) after(verb string, obj runtime.Object, err error) error {
	if err == nil {
		point(fmt.Sprintf("after %s %s %s", verb, kind(c.Client, obj), name(obj)))
	}
	return err
}

func (c *crashing) Create(ctx context.Context, obj client.Object, opts ...client.CreateOption) error {
	return c.after("create", obj, c.Client.Create(ctx, obj, opts...))
}

func (c *crashing) Update(ctx context.Context, obj client.Object, opts ...client.UpdateOption) error {
	return c.after("update", obj, c.Client.Update(ctx, obj, opts...))
}

func (c *crashing) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
	return c.after("patch", obj, c.Client.Patch(ctx, obj, patch, opts...))
}

func (c *crashing) Delete(ctx context.Context, obj client.Object, opts ...client.DeleteOption) error {
	return c.after("delete", obj, c.Client.Delete(ctx, obj, opts...))
}

func (c *crashing) Status() client.SubResourceWriter { return c.SubResource("status") }

func (c *crashing) SubResource(sub string) client.SubResourceClient {
	return &crashingSub{SubResourceClient: c.Client.SubResource(sub), c: c, sub: sub}
}

type crashingSub struct {
	client.SubResourceClient
	c   *crashing
	sub string
}

func (s *crashingSub) Update(ctx context.Context, obj client.Object, opts ...client.SubResourceUpdateOption) error {
	return s.c.after("update", &sub2{obj, s.sub}, s.SubResourceClient.Update(ctx, obj, opts...))
}

func (s *crashingSub) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
	return s.c.after("patch", &sub2{obj, s.sub}, s.SubResourceClient.Patch(ctx, obj, patch, opts...))
}

// sub2 names an object's subresource in a crash point.
type sub2 struct {
	client.Object
	sub string
}

func kind(c client.Client, obj runtime.Object) string {
	if s, ok := obj.(*sub2); ok {
		return kind(c, s.Object) + "/" + s.sub
	}
	gvk, err := apiutil.GVKForObject(obj, c.Scheme())
	if err != nil {
		return fmt.Sprintf("%T", obj)
	}
	return gvk.Kind
}

func name(obj runtime.Object) string {
	if s, ok := obj.(*sub2); ok {
		return s.GetName()
	}
	if o, ok := obj.(client.Object); ok {
		return o.GetName()
	}
	return ""
}
