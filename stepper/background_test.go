package stepper

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// TestBackground: no call runs without the lease (before Start, after its
// end); calls get a context that ends with the lease; at most Limit run at
// once; Start returns only after every call returned.
func TestBackground(t *testing.T) {
	b := &Background{Limit: 2}
	if b.Go(func(context.Context) {}) {
		t.Fatal("a call ran before Start (without the lease)")
	}
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { _ = b.Start(ctx); close(stopped) }()
	var started bool
	for deadline := time.Now().Add(5 * time.Second); !started && time.Now().Before(deadline); {
		started = b.Go(func(context.Context) {})
		time.Sleep(time.Millisecond)
	}
	if !started {
		t.Fatal("Go never ran after Start")
	}
	for b.runningNow() > 0 {
		time.Sleep(time.Millisecond)
	}
	var ended atomic.Int32
	release := make(chan struct{})
	hang := func(ctx context.Context) {
		<-ctx.Done() // a hook that hangs until its context ends
		<-release
		ended.Add(1)
	}
	first := b.Go(hang)
	second := b.Go(hang)
	if !first || !second {
		t.Fatal("Go refused below the limit")
	}
	if b.Go(hang) {
		t.Error("a third call ran with Limit 2")
	}
	cancel() // the lease is lost
	select {
	case <-stopped:
		t.Fatal("Start returned with calls still in flight")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("Start did not return once the calls returned")
	}
	if ended.Load() != 2 {
		t.Errorf("%d calls ended, want 2", ended.Load())
	}
	if b.Go(func(context.Context) {}) {
		t.Error("a call ran after the lease was lost")
	}
}

func (b *Background) runningNow() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.running
}
