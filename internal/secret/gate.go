package secret

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"time"
)

// ErrBusy is returned by PasswordGate when every hashing slot stayed taken for the whole wait,
// or too many callers already wait: the caller should answer "retry shortly".
var ErrBusy = errors.New("secret: too many password hashes in progress")

// GateOptions configures a PasswordGate. Zero values take the defaults.
type GateOptions struct {
	// Max is how many argon2id computations may run at once on this node. Each holds
	// argonMemory (19 MiB) while it runs. Default: GOMAXPROCS, at least 2 and at most 8 —
	// more would not finish sooner, as argon2id with one lane keeps one core busy.
	Max int
	// Wait is how long a caller waits for a slot before ErrBusy. Default 2 s.
	Wait time.Duration
	// MaxWaiting bounds the callers waiting for a slot; beyond it ErrBusy comes at once.
	// Default 32 × Max.
	MaxWaiting int
	// OnHash, when set, is called inside the slot before each computation with the number
	// running at that moment (itself included). Tests use it to observe and hold slots.
	OnHash func(inFlight int)
}

// PasswordGate bounds the password hashing of one node, so parallel logins or sign-ups
// cannot multiply argon2id's memory without limit. It is a per-node bound on a per-node
// resource (memory), so it is deliberately not shared between nodes. Safe for concurrent use.
type PasswordGate struct {
	slots      chan struct{}
	wait       time.Duration
	maxWaiting int64
	onHash     func(int)

	waiting  atomic.Int64
	inFlight atomic.Int64
}

// NewPasswordGate returns a gate with the options' bounds.
func NewPasswordGate(o GateOptions) *PasswordGate {
	if o.Max <= 0 {
		o.Max = min(max(runtime.GOMAXPROCS(0), 2), 8)
	}
	if o.Wait <= 0 {
		o.Wait = 2 * time.Second
	}
	if o.MaxWaiting <= 0 {
		o.MaxWaiting = 32 * o.Max
	}
	return &PasswordGate{slots: make(chan struct{}, o.Max), wait: o.Wait, maxWaiting: int64(o.MaxWaiting), onHash: o.OnHash}
}

// Hash is HashPassword inside a slot.
func (g *PasswordGate) Hash(ctx context.Context, pw string) (string, error) {
	var out string
	err := g.run(ctx, func() { out = HashPassword(pw) })
	return out, err
}

// Check is CheckPassword inside a slot. The error is ErrBusy or the context's; the password
// was then not checked.
func (g *PasswordGate) Check(ctx context.Context, encoded, pw string) (bool, error) {
	var ok bool
	err := g.run(ctx, func() { ok = CheckPassword(encoded, pw) })
	return ok, err
}

func (g *PasswordGate) run(ctx context.Context, fn func()) error {
	if err := g.acquire(ctx); err != nil {
		return err
	}
	defer func() {
		g.inFlight.Add(-1)
		<-g.slots
	}()
	n := g.inFlight.Add(1)
	if g.onHash != nil {
		g.onHash(int(n))
	}
	fn()
	return nil
}

func (g *PasswordGate) acquire(ctx context.Context) error {
	select {
	case g.slots <- struct{}{}:
		return nil
	default:
	}
	if g.waiting.Add(1) > g.maxWaiting {
		g.waiting.Add(-1)
		return ErrBusy
	}
	defer g.waiting.Add(-1)
	timer := time.NewTimer(g.wait)
	defer timer.Stop()
	select {
	case g.slots <- struct{}{}:
		return nil
	case <-timer.C:
		return ErrBusy
	case <-ctx.Done():
		return fmt.Errorf("secret: wait for a password hashing slot: %w", ctx.Err())
	}
}
