package stepper

import (
	"context"
	"sync"
)

// Background owns the stepper's calls made outside the reconcile workers
// (every hook call: the pre-rollout, rollout and confirm-promotion hooks
// whose answers a later pass reads, the rollback hooks asked between
// passes, the post-rollout and event hooks told): they run under the
// leader lease only, their context ends when the lease is lost or the
// controller stops, Start returns only once every one of them has
// returned, at most Limit run at once, and at most PerOwner for one owner
// (a namespace: a tenant), so that one tenant's hanging hooks can neither
// pile up without bound nor take the slots of another tenant's analyses.
// It is a manager.Runnable that needs the leader lease.
type Background struct {
	// Limit is the most calls in flight at once (default 256).
	Limit int
	// PerOwner is the most calls in flight at once for one owner (default
	// 16).
	PerOwner int

	mu      sync.Mutex
	ctx     context.Context // nil when not running
	running int
	owners  map[string]int
	wg      sync.WaitGroup
}

// Defaults of Background's limits.
const (
	DefaultBackgroundLimit    = 256
	DefaultBackgroundPerOwner = 16
)

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

// Go runs f in the background for owner with the owned context and
// reports true, or reports false and does not run it: not running (no
// lease, stopping), Limit calls already in flight, or PerOwner calls of
// owner. A nil Background runs f with a context of its own (for tests
// that build a Reconciler by hand).
func (b *Background) Go(owner string, f func(ctx context.Context)) bool {
	if b == nil {
		go f(context.Background())
		return true
	}
	limit, perOwner := b.Limit, b.PerOwner
	if limit <= 0 {
		limit = DefaultBackgroundLimit
	}
	if perOwner <= 0 {
		perOwner = DefaultBackgroundPerOwner
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ctx == nil || b.ctx.Err() != nil || b.running >= limit || b.owners[owner] >= perOwner {
		return false
	}
	if b.owners == nil {
		b.owners = map[string]int{}
	}
	b.running++
	b.owners[owner]++
	b.wg.Add(1)
	ctx := b.ctx
	go func() {
		defer b.wg.Done()
		defer func() {
			b.mu.Lock()
			b.running--
			if b.owners[owner]--; b.owners[owner] == 0 {
				delete(b.owners, owner)
			}
			b.mu.Unlock()
		}()
		f(ctx)
	}()
	return true
}
