package stepper

import (
	"context"
	"sync"
)

// Background owns the stepper's background calls (the rollback hooks
// asked between passes, the post-rollout and event hooks told): they run
// under the leader lease only, their context ends when the lease is lost
// or the controller stops, Start returns only once every one of them has
// returned, and at most Limit run at once, so that one tenant's hanging
// hooks cannot pile up without bound. It is a manager.Runnable that needs
// the leader lease.
type Background struct {
	// Limit is the most calls in flight at once (default 64).
	Limit int

	mu      sync.Mutex
	ctx     context.Context // nil when not running
	running int
	wg      sync.WaitGroup
}

// Start runs until ctx ends, then waits for the calls in flight.
func (b *Background) Start(ctx context.Context) error {
	b.mu.Lock()
	b.ctx = ctx
	b.mu.Unlock()
	<-ctx.Done()
	b.mu.Lock()
	b.ctx = nil
	b.mu.Unlock()
	b.wg.Wait()
	return nil
}

// NeedLeaderElection implements manager.LeaderElectionRunnable.
func (b *Background) NeedLeaderElection() bool { return true }

// Go runs f in the background with the owned context and reports true, or
// reports false and does not run it: not running (no lease, stopping), or
// Limit calls already in flight. A nil Background runs f with a context
// of its own (for tests that build a Reconciler by hand).
func (b *Background) Go(f func(ctx context.Context)) bool {
	if b == nil {
		go f(context.Background())
		return true
	}
	limit := b.Limit
	if limit <= 0 {
		limit = 64
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ctx == nil || b.ctx.Err() != nil || b.running >= limit {
		return false
	}
	b.running++
	b.wg.Add(1)
	ctx := b.ctx
	go func() {
		defer b.wg.Done()
		defer func() {
			b.mu.Lock()
			b.running--
			b.mu.Unlock()
		}()
		f(ctx)
	}()
	return true
}
