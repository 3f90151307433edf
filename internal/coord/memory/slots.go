package memory

import (
	"context"
	"sync"
	"time"

	"github.com/fluxcode/fluxcode/internal/coord"
)

type slotTable struct {
	mu        sync.Mutex
	sets      map[string]map[string]time.Time // key -> holder -> expiry
	lastSweep time.Time
}

// live returns the set for key with expired holders removed, or nil when empty.
func (s *slotTable) live(key string, now time.Time) map[string]time.Time {
	set := s.sets[key]
	for h, exp := range set {
		if expired(exp, now) {
			delete(set, h)
		}
	}
	if set != nil && len(set) == 0 {
		delete(s.sets, key)
		return nil
	}
	return set
}

func (s *slotTable) sweep(now time.Time) {
	if now.Sub(s.lastSweep) < sweepEvery {
		return
	}
	s.lastSweep = now
	for key := range s.sets {
		s.live(key, now)
	}
}

// AcquireSlots takes one slot in every limited set for holder, or none.
func (c *Coordinator) AcquireSlots(ctx context.Context, holder string, ttl time.Duration, reqs ...coord.SlotReq) (bool, int, error) {
	if err := checkTTL("acquire slots", ttl); err != nil {
		return false, -1, err
	}
	if err := c.check(ctx); err != nil {
		return false, -1, err
	}
	now := c.now()
	s := &c.slots
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweep(now)
	for i, r := range reqs {
		if !s.room(r, holder, now) {
			return false, i, nil
		}
	}
	exp := now.Add(ttl)
	for _, r := range reqs {
		s.take(r, holder, exp)
	}
	return true, -1, nil
}

// room reports whether holder may have a slot of r: it has one already, the set has fewer
// live holders than the limit, or there is no limit. The caller holds mu.
func (s *slotTable) room(r coord.SlotReq, holder string, now time.Time) bool {
	if r.Limit <= 0 {
		return true
	}
	set := s.live(r.Key, now)
	_, mine := set[holder]
	return mine || len(set) < r.Limit
}

// take gives holder a slot of r until exp; an unlimited set stores nothing. The caller
// holds mu.
func (s *slotTable) take(r coord.SlotReq, holder string, exp time.Time) {
	if r.Limit <= 0 {
		return
	}
	set := s.sets[r.Key]
	if set == nil {
		set = make(map[string]time.Time)
		s.sets[r.Key] = set
	}
	set[holder] = exp
}

// ReleaseSlots removes holder from each set.
func (c *Coordinator) ReleaseSlots(ctx context.Context, holder string, keys ...string) error {
	if err := c.check(ctx); err != nil {
		return err
	}
	s := &c.slots
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, key := range keys {
		set := s.sets[key]
		delete(set, holder)
		if set != nil && len(set) == 0 {
			delete(s.sets, key)
		}
	}
	return nil
}

// RefreshSlots extends each live (key, holder); an expired holder stays gone, because its
// place may already be taken.
func (c *Coordinator) RefreshSlots(ctx context.Context, ttl time.Duration, held []coord.Held) error {
	if err := checkTTL("refresh slots", ttl); err != nil {
		return err
	}
	if err := c.check(ctx); err != nil {
		return err
	}
	now := c.now()
	exp := now.Add(ttl)
	s := &c.slots
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, h := range held {
		set := s.live(h.Key, now)
		if _, ok := set[h.Holder]; ok {
			set[h.Holder] = exp
		}
	}
	return nil
}

// SlotCount counts the live holders of key.
func (c *Coordinator) SlotCount(ctx context.Context, key string) (int, error) {
	if err := c.check(ctx); err != nil {
		return 0, err
	}
	now := c.now()
	s := &c.slots
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.live(key, now)), nil
}
