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
	if b.Go("ns", func(context.Context) {}) {
		t.Fatal("a call ran before Start (without the lease)")
	}
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { _ = b.Start(ctx); close(stopped) }()
	var started bool
	for deadline := time.Now().Add(5 * time.Second); !started && time.Now().Before(deadline); {
		started = b.Go("ns", func(context.Context) {})
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
	first := b.Go("ns", hang)
	second := b.Go("ns", hang)
	if !first || !second {
		t.Fatal("Go refused below the limit")
	}
	if b.Go("ns", hang) {
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
	if b.Go("ns", func(context.Context) {}) {
		t.Error("a call ran after the lease was lost")
	}
}

func (b *Background) runningNow() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.running
}

// TestBackgroundPerOwner: one owner's hanging calls take at most PerOwner
// slots; another owner's calls still run.
func TestBackgroundPerOwner(t *testing.T) {
	b := &Background{Limit: 10, PerOwner: 2}
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { _ = b.Start(ctx); close(stopped) }()
	defer func() { cancel(); <-stopped }()
	hang := func(ctx context.Context) { <-ctx.Done() }
	for deadline := time.Now().Add(5 * time.Second); !b.Go("team-a", hang); {
		if time.Now().After(deadline) {
			t.Fatal("Go never ran after Start")
		}
		time.Sleep(time.Millisecond)
	}
	if !b.Go("team-a", hang) {
		t.Fatal("team-a's second call refused below PerOwner")
	}
	if b.Go("team-a", hang) {
		t.Error("team-a's third call ran with PerOwner 2")
	}
	if !b.Go("team-b", hang) {
		t.Error("team-b's call refused while team-a holds its own slots only")
	}
}
