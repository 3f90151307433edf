package sqlstore

import (
	"context"
	"database/sql"
	"log/slog"
	"time"
)

// checkpointEvery is how often the checkpointer copies the WAL into the database file. A
// pass with nothing to copy reads the WAL index and returns.
const checkpointEvery = 250 * time.Millisecond

// checkpointer copies SQLite's write-ahead log into the database file from a connection of
// its own. SQLite's automatic checkpoint runs inside the commit that grows the WAL past its
// mark, and on this store that commit is a ledger batch that requests' answers wait for: one
// answer in a few thousand waited for a whole checkpoint (a copy of up to thousands of pages
// and an fsync). A PASSIVE checkpoint on another connection neither takes the write lock nor
// waits for readers, so commits go on while it copies; the writer then restarts the WAL
// from its beginning once everything is copied, which keeps the file from growing.
type checkpointer struct {
	db   *sql.DB
	stop context.CancelFunc
	done chan struct{}
}

func startCheckpointer(db *sql.DB, log *slog.Logger) *checkpointer {
	ctx, cancel := context.WithCancel(context.Background())
	c := &checkpointer{db: db, stop: cancel, done: make(chan struct{})}
	go c.run(ctx, log)
	return c
}

func (c *checkpointer) run(ctx context.Context, log *slog.Logger) {
	defer close(c.done)
	t := time.NewTicker(checkpointEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var busy, frames, copied int
		err := c.db.QueryRowContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &frames, &copied)
		if err != nil && ctx.Err() == nil && log != nil {
			log.Warn("sqlite checkpoint failed", "err", err)
		}
	}
}

// close stops the loop and closes its connection.
func (c *checkpointer) close() error {
	c.stop()
	<-c.done
	return c.db.Close()
}
