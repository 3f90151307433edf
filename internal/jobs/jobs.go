// Package jobs runs background jobs once per cluster (token refresh today; expiry,
// aggregation and cleanup later). Every node runs a Runner with the same jobs; for each job,
// a lease in the coordination store decides which node runs it. The holder keeps the lease by
// renewing it, on every tick and while a run lasts; when it dies, the lease lapses within
// two periods and another node takes over. Each run is recorded in the store under the
// lease's fencing token, so an owner whose lease lapsed mid-run cannot overwrite its
// successor's record.
package jobs

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/fluxcode/fluxcode/internal/coord"
	"github.com/fluxcode/fluxcode/internal/secret"
	"github.com/fluxcode/fluxcode/internal/store"
)

// Job is one periodic job.
type Job struct {
	Name string
	// Every is the period between runs (at least 100ms).
	Every time.Duration
	// Run does the work; its context ends when the node stops or loses the lease. The result
	// is a short summary for the record ("3 refreshed, 0 failed").
	Run func(ctx context.Context) (result string, err error)
}

// Recorder keeps the last run of each job.
type Recorder interface {
	RecordJobRun(ctx context.Context, r store.JobRun) error
	ListJobRuns(ctx context.Context) ([]store.JobRun, error)
}

// Runner runs jobs on this node when it holds their lease.
type Runner struct {
	leases coord.Leases
	rec    Recorder
	log    *slog.Logger
	node   string
	owner  string
	now    func() time.Time

	wg   sync.WaitGroup
	ctx  context.Context // ends with Close
	stop context.CancelFunc
}

// New returns a runner for node. log nil discards.
func New(leases coord.Leases, rec Recorder, node string, log *slog.Logger) *Runner {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, stop := context.WithCancel(context.Background())
	return &Runner{leases: leases, rec: rec, log: log.With("component", "jobs"), node: node,
		owner: node + "/" + secret.RandomToken(6), now: time.Now, ctx: ctx, stop: stop}
}

// Start runs every job in the background until Close. It may be called more than once,
// with different jobs.
func (r *Runner) Start(jobs ...Job) {
	ctx := r.ctx
	for _, j := range jobs {
		if j.Every < 100*time.Millisecond {
			j.Every = 100 * time.Millisecond
		}
		r.wg.Add(1)
		go func() { defer r.wg.Done(); r.loop(ctx, j) }()
	}
}

// Close stops the jobs, waits for runs in progress to see their context end, and gives
// up the leases so another node takes over at once.
func (r *Runner) Close() {
	r.stop()
	r.wg.Wait()
}

func leaseName(j Job) string { return "job:" + j.Name }

// ttl: the holder renews every period, so a lease of two periods survives one slow tick.
func ttl(j Job) time.Duration { return 2 * j.Every }

func (r *Runner) loop(ctx context.Context, j Job) {
	defer r.release(j)
	t := time.NewTicker(j.Every)
	defer t.Stop()
	for {
		r.tick(ctx, j)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// tick runs j once when this node holds (or takes) its lease.
func (r *Runner) tick(ctx context.Context, j Job) {
	ok, fence, err := r.leases.AcquireLease(ctx, leaseName(j), r.owner, ttl(j))
	if err != nil {
		if ctx.Err() == nil {
			r.log.Warn("job lease unavailable; skipping this run", "job", j.Name, "err", err)
		}
		return
	}
	if !ok {
		return // another node runs it
	}
	if !r.due(ctx, j) {
		return
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	renewed := make(chan struct{})
	go func() { defer close(renewed); r.renew(runCtx, cancel, j) }()
	run := store.JobRun{Name: j.Name, Fence: fence, Node: r.node, StartedAt: r.now()}
	result, err := j.Run(runCtx)
	cancel()
	<-renewed
	run.FinishedAt, run.Result = r.now(), result
	if err != nil {
		run.Error = err.Error()
		r.log.Warn("job failed", "job", j.Name, "err", err)
	}
	r.log.Info("job ran", "job", j.Name, "fence", fence, "started", run.StartedAt, "finished", run.FinishedAt,
		"result", result)
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer rcancel()
	if err := r.rec.RecordJobRun(rctx, run); errors.Is(err, store.ErrConflict) {
		r.log.Warn("a newer owner recorded this job meanwhile; this run's record is dropped", "job", j.Name)
	} else if err != nil {
		r.log.Warn("recording a job run failed", "job", j.Name, "err", err)
	}
}

// due reports whether j's last run, wherever it ran, began at least half a period ago. The
// holder's own ticks are a period apart; the check matters when the lease has just moved
// (the previous holder stopped right after a run), so the job still runs about once per
// period across the cluster. A record that cannot be read does not hold the job up.
func (r *Runner) due(ctx context.Context, j Job) bool {
	runs, err := r.rec.ListJobRuns(ctx)
	if err != nil {
		r.log.Warn("reading the last job runs failed; running anyway", "job", j.Name, "err", err)
		return true
	}
	for _, run := range runs {
		if run.Name == j.Name {
			return !r.now().Before(run.StartedAt.Add(j.Every / 2))
		}
	}
	return true
}

// renew extends the lease while a run lasts, and cancels the run when the lease is lost.
func (r *Runner) renew(ctx context.Context, cancel context.CancelFunc, j Job) {
	t := time.NewTicker(ttl(j) / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		ok, _, err := r.leases.AcquireLease(ctx, leaseName(j), r.owner, ttl(j))
		if ctx.Err() != nil {
			return
		}
		if err != nil || !ok {
			r.log.Warn("job lease lost mid-run; stopping the run", "job", j.Name, "err", err)
			cancel()
			return
		}
	}
}

func (r *Runner) release(j Job) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = r.leases.ReleaseLease(ctx, leaseName(j), r.owner) // otherwise it lapses on its own
}
