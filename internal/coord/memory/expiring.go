package memory

import (
	"sync"
	"time"
)

// expiring is a mutex-guarded map whose entries die at their expiry (zero: never). Reads
// drop a dead entry they meet; writes sweep the whole map at most once per sweepEvery.
type expiring[V any] struct {
	mu        sync.Mutex
	m         map[string]entry[V]
	lastSweep time.Time
}

type entry[V any] struct {
	value   V
	expires time.Time
}

// get returns the live entry for key; the caller holds mu.
func (e *expiring[V]) get(key string, now time.Time) (entry[V], bool) {
	v, ok := e.m[key]
	if ok && expired(v.expires, now) {
		delete(e.m, key)
		return entry[V]{}, false
	}
	return v, ok
}

// put stores v for key; the caller holds mu.
func (e *expiring[V]) put(key string, v entry[V], now time.Time) {
	if e.m == nil {
		e.m = make(map[string]entry[V])
	}
	if now.Sub(e.lastSweep) >= sweepEvery {
		e.lastSweep = now
		for k, old := range e.m {
			if expired(old.expires, now) {
				delete(e.m, k)
			}
		}
	}
	e.m[key] = v
}
