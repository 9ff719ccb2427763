package canaryctl

import (
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"sync"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// clearScreen moves the cursor home and clears a terminal.
const clearScreen = "\x1b[H\x1b[2J"

// watch prints the view of one Deployment, then again on every change of
// its annotations or its Events, until ctx ends. Two informers (one
// Deployment, its Events) keep the objects, so a redraw makes no API call.
// On a terminal each view replaces the last; otherwise views are separated
// by a blank line, so the output can be read back (and tested).
func (p *Plugin) watch(ctx context.Context, cs kubernetes.Interface, namespace, name string, terminal bool) error {
	// Fail fast, as get does, on a name that does not exist.
	if _, err := cs.AppsV1().Deployments(namespace).Get(ctx, name, metav1.GetOptions{}); err != nil {
		return fmt.Errorf("get deployment %s/%s: %w", namespace, name, err)
	}
	changed := make(chan struct{}, 1)
	notify := func() {
		select {
		case changed <- struct{}{}:
		default: // a redraw is already due; it will read the newest objects
		}
	}
	deployments, deploymentsInformer := cache.NewInformerWithOptions(cache.InformerOptions{
		ListerWatcher: listWatch(
			func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
				return cs.AppsV1().Deployments(namespace).List(ctx, o)
			},
			func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
				return cs.AppsV1().Deployments(namespace).Watch(ctx, o)
			},
			fields.OneTermEqualSelector("metadata.name", name)),
		ObjectType: &appsv1.Deployment{},
		Handler: cache.ResourceEventHandlerFuncs{
			AddFunc: func(any) { notify() },
			// Status updates (replicas becoming ready) don't change the view.
			UpdateFunc: func(old, cur any) {
				o, c := old.(*appsv1.Deployment), cur.(*appsv1.Deployment)
				if !maps.Equal(o.Annotations, c.Annotations) || o.UID != c.UID {
					notify()
				}
			},
			DeleteFunc: func(any) { notify() },
		},
	})
	events, eventsInformer := cache.NewInformerWithOptions(cache.InformerOptions{
		ListerWatcher: listWatch(
			func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
				return cs.CoreV1().Events(namespace).List(ctx, o)
			},
			func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
				return cs.CoreV1().Events(namespace).Watch(ctx, o)
			},
			eventSelector(name)),
		ObjectType: &corev1.Event{},
		Handler: cache.ResourceEventHandlerFuncs{
			AddFunc:    func(any) { notify() },
			UpdateFunc: func(any, any) { notify() },
			DeleteFunc: func(any) { notify() },
		},
	})
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() { deploymentsInformer.RunWithContext(ctx) })
	wg.Go(func() { eventsInformer.RunWithContext(ctx) })
	if !cache.WaitForCacheSync(ctx.Done(), deploymentsInformer.HasSynced, eventsInformer.HasSynced) {
		return nil // interrupted before the first view
	}
	for first := true; ; first = false {
		if err := p.draw(deployments, events, namespace, name, terminal, first); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		}
	}
}

// draw prints one view from the informers' stores.
func (p *Plugin) draw(deployments, events cache.Store, namespace, name string, terminal, first bool) error {
	var view string
	if obj, ok, _ := deployments.GetByKey(namespace + "/" + name); ok {
		var items []corev1.Event
		for _, e := range events.List() {
			items = append(items, *e.(*corev1.Event))
		}
		view = RenderView(obj.(*appsv1.Deployment), items, p.Now())
	} else {
		view = fmt.Sprintf("Deployment %s/%s not found (deleted?); waiting for it.\n", namespace, name)
	}
	switch {
	case terminal:
		view = clearScreen + view
	case !first:
		view = "\n" + view
	}
	_, err := io.WriteString(p.Out, view)
	return err
}

// listWatch is a ListerWatcher that lists and watches with fieldSelector.
func listWatch(
	list func(context.Context, metav1.ListOptions) (runtime.Object, error),
	watchFn func(context.Context, metav1.ListOptions) (watch.Interface, error),
	fieldSelector fields.Selector,
) *cache.ListWatch {
	return &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = fieldSelector.String()
			return list(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = fieldSelector.String()
			return watchFn(ctx, o)
		},
	}
}

// isTerminal reports whether w is a terminal (a character device), the
// only case in which the watch clears the screen between views.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	info, err := f.Stat()
	return err == nil && info.Mode()&os.ModeCharDevice != 0
}
