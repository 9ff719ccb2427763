package stepper

import (
	"sync"
	"time"
)

// recentWritesFor is how long a pass takes a create or delete this
// stepper made for done while the cache has not caught up with it: the
// passes that follow (woken by the write's own events) would otherwise
// make it again, each for a 409 or a 404, and a Service's repeated create
// costs the apiserver a cluster IP allocated and released.
const recentWritesFor = 10 * time.Second

// recentWrites remembers, by key, when this stepper made a write, for
// recentWritesFor; expired keys are dropped on each record, so it holds
// at most the writes of the last recentWritesFor.
type recentWrites struct {
	mu sync.Mutex
	at map[string]time.Time
}

// made reports whether the write key was recorded less than
// recentWritesFor before now.
func (r *recentWrites) made(key string, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	at, ok := r.at[key]
	return ok && now.Sub(at) < recentWritesFor
}

// record remembers the write key made at now.
func (r *recentWrites) record(key string, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.at == nil {
		r.at = map[string]time.Time{}
	}
	for k, t := range r.at {
		if now.Sub(t) >= recentWritesFor {
			delete(r.at, k)
		}
	}
	r.at[key] = now
}

// forget drops the write key: a create undone by a delete may be made
// again at once.
func (r *recentWrites) forget(key string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.at, key)
}
