package sqlstore_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/fluxcode/fluxcode/internal/store"
	"github.com/fluxcode/fluxcode/internal/store/sqlstore"
	"github.com/fluxcode/fluxcode/internal/store/storetest"
	"github.com/fluxcode/fluxcode/internal/testenv"
)

// Through a PostgreSQL outage the pool stops dialing: requests fail at once with an error
// that says the server is unreachable, and one loop reconnects. The connection it gets
// through is warmed (the key lookup and the group's accounts prepared) and handed to the next
// request; the pool serves again without anyone reopening it, and grows back to its size.
func TestPostgresOutageReconnectsWarm(t *testing.T) {
	pg := testenv.StartPostgres(t)
	must(t, pg.CreateDB("outage"))
	var logs testenv.Buffer
	db, err := sqlstore.Open(t.Context(), sqlstore.Config{DSN: pg.DSN("outage"), Keys: testKeys(t), MaxOpenConns: 4,
		Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	must(t, err)
	defer db.Close()
	ctx := t.Context()
	u := storetest.MustUser(t, db)
	g := storetest.MustGroup(t, db, store.BillingBalance)
	k := &store.APIKey{UserID: u.ID, GroupID: g.ID, Name: "outage", Hash: []byte("outage-key-hash"), Prefix: "sk-out"}
	must(t, db.CreateAPIKey(ctx, k))

	must(t, pg.Stop())
	for i := range 3 {
		_, err := db.KeyAuthByHash(ctx, k.Hash)
		if err == nil || errors.Is(err, store.ErrNotFound) || !sqlstore.Unreachable(err) {
			t.Fatalf("lookup %d with PostgreSQL stopped: %v; want an unreachable error", i, err)
		}
	}
	must(t, pg.Start())

	deadline := time.Now().Add(30 * time.Second)
	for {
		ka, err := db.KeyAuthByHash(ctx, k.Hash)
		if err == nil {
			if ka.Key.ID != k.ID {
				t.Fatalf("after the outage the lookup found key %d, want %d", ka.Key.ID, k.ID)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the pool does not serve 30 s after PostgreSQL is back: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}

	// The connection that served was opened and warmed by the reconnection.
	conn, err := db.RawDB().Conn(ctx)
	must(t, err)
	defer conn.Close()
	var prepared []string
	rows, err := conn.QueryContext(ctx, "SELECT statement FROM pg_prepared_statements")
	must(t, err)
	for rows.Next() {
		var s string
		must(t, rows.Scan(&s))
		prepared = append(prepared, s)
	}
	must(t, rows.Err())
	for _, want := range []string{"FROM api_keys k", "FROM account_groups"} {
		if !strings.Contains(strings.Join(prepared, "\n"), want) {
			t.Errorf("the reconnected session has not prepared the statement %q; it has:\n%s", want, strings.Join(prepared, "\n"))
		}
	}

	// The pool, shrunk while it reconnected, grows back to its configured size.
	for db.RawDB().Stats().MaxOpenConnections != 4 {
		if time.Now().After(deadline) {
			t.Fatalf("the pool's size is %d 30 s after PostgreSQL is back, want MaxOpenConns 4", db.RawDB().Stats().MaxOpenConnections)
		}
		time.Sleep(10 * time.Millisecond)
	}

	out := logs.String()
	for _, msg := range []string{`"msg":"database unreachable, reconnecting"`, `"msg":"database reachable again"`} {
		if n := strings.Count(out, msg); n != 1 {
			t.Errorf("logged %s %d times, want once:\n%s", msg, n, out)
		}
	}
}

// A failed dial for any other reason (here a database that does not exist) is no outage:
// each request tries again itself.
func TestPostgresRefusalIsNoOutage(t *testing.T) {
	pg := testenv.StartPostgres(t)
	_, err := sqlstore.Open(context.Background(), sqlstore.Config{DSN: pg.DSN("missing"), Keys: testKeys(t), Logger: quiet})
	if err == nil || sqlstore.Unreachable(err) {
		t.Fatalf("Open of a missing database: %v; want an error that is not unreachable", err)
	}
}

// What counts as "not now" (retry, reconnect) and what does not.
func TestUnreachable(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	for name, c := range map[string]struct {
		err  error
		want bool
	}{
		"refused":              {refused, true},
		"starting up":          {&pgconn.PgError{Code: "57P03"}, true},
		"shutting down":        {fmt.Errorf("query: %w", &pgconn.PgError{Code: "57P01"}), true},
		"standby, primary off": {errors.Join(refused, pgconn.ErrReadOnlyConnection), true},
		"standby only":         {pgconn.ErrReadOnlyConnection, true},
		"wrong password":       {&pgconn.PgError{Code: "28P01"}, false},
		"no such database":     {&pgconn.PgError{Code: "3D000"}, false},
		"bad statement":        {&pgconn.PgError{Code: "42601"}, false},
		"caller gave up":       {context.Canceled, false},
	} {
		if got := sqlstore.Unreachable(c.err); got != c.want {
			t.Errorf("%s: Unreachable(%v) = %v, want %v", name, c.err, got, c.want)
		}
	}
}
