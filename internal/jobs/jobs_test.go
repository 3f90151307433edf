package jobs_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fluxcode/fluxcode/internal/coord/memory"
	"github.com/fluxcode/fluxcode/internal/gateway/gatewaytest"
	"github.com/fluxcode/fluxcode/internal/jobs"
)

// Two nodes run the same job: one runs it at a time, the record names the runner, and when
// that node stops the other takes over.
func TestAJobRunsOnOneNodeAtATimeAndMovesWhenItsNodeStops(t *testing.T) {
	c := memory.New()
	defer c.Close()
	st := gatewaytest.OpenSQLite(t, gatewaytest.NewKeys(t))

	var running, overlaps atomic.Int32
	var mu sync.Mutex
	ranOn := map[string]int{}
	job := func(node string) jobs.Job {
		return jobs.Job{Name: "tick", Every: 500 * time.Millisecond, Run: func(ctx context.Context) (string, error) {
			if running.Add(1) > 1 {
				overlaps.Add(1)
			}
			defer running.Add(-1)
			mu.Lock()
			ranOn[node]++
			mu.Unlock()
			time.Sleep(20 * time.Millisecond)
			return "ran on " + node, nil
		}}
	}
	a, b := jobs.New(c, st, "a", nil), jobs.New(c, st, "b", nil)
	a.Start(job("a"))
	// a takes the lease first. The lease lasts two periods (1s), so a starved machine does
	// not let it lapse between a's ticks.
	time.Sleep(50 * time.Millisecond)
	b.Start(job("b"))
	defer b.Close()

	waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return ranOn["a"] >= 3 })
	mu.Lock()
	if ranOn["b"] != 0 {
		t.Fatalf("b ran %d times while a held the lease", ranOn["b"])
	}
	mu.Unlock()
	a.Close()
	waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return ranOn["b"] >= 2 })
	if n := overlaps.Load(); n != 0 {
		t.Fatalf("%d runs overlapped", n)
	}
	runs, err := st.ListJobRuns(t.Context())
	if err != nil || len(runs) != 1 || runs[0].Node != "b" || runs[0].Result != "ran on b" || runs[0].Error != "" {
		t.Fatalf("runs %+v, %v", runs, err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 20s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
