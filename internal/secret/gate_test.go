package secret

import (
	"context"
	"errors"
	"testing"
	"time"
)

// Beyond the waiters it allows, the gate refuses at once instead of queueing without bound;
// a waiter whose context ends stops waiting.
func TestPasswordGateRefusesBeyondItsWaiters(t *testing.T) {
	entered, hold := make(chan struct{}, 4), make(chan struct{})
	g := NewPasswordGate(GateOptions{Max: 1, MaxWaiting: 1, Wait: time.Hour, OnHash: func(int) {
		entered <- struct{}{}
		<-hold
	}})
	hash := HashPassword("right-password")
	first := make(chan error, 1)
	go func() { _, err := g.Check(context.Background(), hash, "right-password"); first <- err }()
	<-entered // the only slot is taken

	ctx, cancel := context.WithCancel(context.Background())
	waiter := make(chan error, 1)
	go func() { _, err := g.Check(ctx, hash, "right-password"); waiter <- err }()
	deadline := time.Now().Add(10 * time.Second)
	for g.waiting.Load() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the second caller never started waiting")
		}
		time.Sleep(time.Millisecond)
	}
	if _, err := g.Hash(context.Background(), "pw"); !errors.Is(err, ErrBusy) {
		t.Fatalf("a caller beyond MaxWaiting got %v, want ErrBusy", err)
	}
	cancel()
	if err := <-waiter; !errors.Is(err, context.Canceled) {
		t.Fatalf("a cancelled waiter got %v, want context.Canceled", err)
	}
	close(hold)
	if err := <-first; err != nil {
		t.Fatalf("the slot holder: %v", err)
	}
	ok, err := g.Check(context.Background(), hash, "right-password")
	if err != nil || !ok {
		t.Fatalf("Check after the slot freed = %v, %v", ok, err)
	}
}
