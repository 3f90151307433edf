package sqlstore_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fluxcode/fluxcode/internal/secret"
	"github.com/fluxcode/fluxcode/internal/store"
	"github.com/fluxcode/fluxcode/internal/store/sqlstore"
	"github.com/fluxcode/fluxcode/internal/store/storetest"
	"github.com/fluxcode/fluxcode/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// quiet drops the store's migration log lines from test output.
var quiet = slog.New(slog.DiscardHandler)

func testKeys(t testing.TB) *secret.Keys {
	t.Helper()
	master, err := secret.ParseMasterKey(secret.NewMasterKey())
	if err != nil {
		t.Fatal(err)
	}
	keys, err := secret.NewKeys(master)
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// MustOpen opens a migrated store on dsn, closed when t ends.
func MustOpen(t testing.TB, dsn string) *sqlstore.DB {
	t.Helper()
	db, err := sqlstore.Open(context.Background(), sqlstore.Config{DSN: dsn, Keys: testKeys(t), MaxOpenConns: 8, Logger: quiet})
	if err != nil {
		t.Fatalf("Open(%s): %v", dsn, err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func sqliteDSN(t testing.TB) string { return filepath.Join(t.TempDir(), "fluxcode.db") }

// dialects are the two databases every dialect-sensitive test runs on.
var dialects = []struct {
	name string
	dsn  func(testing.TB) string
}{{"SQLite", sqliteDSN}, {"Postgres", testenv.PostgresDSN}}

func TestContractSQLite(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return MustOpen(t, sqliteDSN(t)) })
}

func TestContractPostgres(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return MustOpen(t, testenv.PostgresDSN(t)) })
}

func TestOpenRefusesWithoutKeys(t *testing.T) {
	_, err := sqlstore.Open(context.Background(), sqlstore.Config{DSN: sqliteDSN(t)})
	if err == nil || !strings.Contains(err.Error(), "Keys") {
		t.Fatalf("Open without keys: %v, want an error naming Keys", err)
	}
}

func TestOpenSQLiteForms(t *testing.T) {
	dir := t.TempDir()
	for _, dsn := range []string{
		filepath.Join(dir, "nested", "plain.db"),
		"file:" + filepath.Join(dir, "file.db"),
		"sqlite://" + filepath.Join(dir, "url.db"),
		":memory:",
	} {
		t.Run(dsn, func(t *testing.T) {
			db := MustOpen(t, dsn)
			if db.Dialect() != sqlstore.DriverSQLite {
				t.Fatalf("Dialect = %s", db.Dialect())
			}
			var mode string
			if err := db.RawDB().QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
				t.Fatalf("journal_mode = %q, %v; want wal", mode, err)
			}
			var fk int
			if err := db.RawDB().QueryRow("PRAGMA foreign_keys").Scan(&fk); err != nil || fk != 1 {
				t.Fatalf("foreign_keys = %d, %v; want 1", fk, err)
			}
		})
	}
}

func TestMigrationsRecordedOnceAndRerunsApplyNothing(t *testing.T) {
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			dsn := d.dsn(t)
			first := MustOpen(t, dsn)
			if len(first.Applied()) == 0 {
				t.Fatal("the first Open applied no migration")
			}
			second := MustOpen(t, dsn)
			if len(second.Applied()) != 0 {
				t.Fatalf("the second Open applied %v again", second.Applied())
			}
			again, err := second.Migrate(t.Context())
			if err != nil || len(again) != 0 {
				t.Fatalf("Migrate on a migrated database: applied %v, err %v", again, err)
			}
			recorded, err := second.Migrations(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if len(recorded) != len(first.Applied()) {
				t.Fatalf("recorded %d migrations, the first Open applied %d", len(recorded), len(first.Applied()))
			}

			// A released migration must never change: a different checksum stops start-up.
			_, err = second.RawDB().Exec("UPDATE schema_migrations SET checksum = 'edited' WHERE version = $1", recorded[0].Version)
			must(t, err)
			if _, err := second.Migrate(t.Context()); err == nil || !strings.Contains(err.Error(), "changed after it was applied") {
				t.Fatalf("Migrate with an altered checksum: %v, want a refusal", err)
			}
		})
	}
}

// `fluxcode migrate` opens without migrating, then migrates explicitly.
func TestOpenWithoutMigrationThenMigrate(t *testing.T) {
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			db, err := sqlstore.Open(t.Context(), sqlstore.Config{DSN: d.dsn(t), Keys: testKeys(t), SkipMigrate: true, Logger: quiet})
			must(t, err)
			defer db.Close()
			if _, err := db.KeyAuthByHash(t.Context(), []byte("x")); err == nil {
				t.Fatal("KeyAuthByHash on an unmigrated database succeeded")
			}
			applied, err := db.Migrate(t.Context())
			must(t, err)
			if len(applied) == 0 {
				t.Fatal("Migrate applied nothing on an empty database")
			}
			_, err = db.KeyAuthByHash(t.Context(), []byte("x"))
			if !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("KeyAuthByHash after Migrate: %v, want ErrNotFound", err)
			}
		})
	}
}

// Five nodes starting at once against one empty PostgreSQL database: the advisory lock lets
// exactly one apply each migration; the others wait and find it recorded.
func TestMigrationRacePostgres(t *testing.T) {
	dsn := testenv.PostgresDSN(t)
	const nodes = 5
	dbs := make([]*sqlstore.DB, nodes)
	errs := make([]error, nodes)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range nodes {
		wg.Go(func() {
			<-start
			dbs[i], errs[i] = sqlstore.Open(context.Background(), sqlstore.Config{DSN: dsn, Keys: testKeys(t), MaxOpenConns: 2, Logger: quiet})
		})
	}
	close(start)
	wg.Wait()
	appliedBy := map[string]int{}
	for i := range nodes {
		if errs[i] != nil {
			t.Fatalf("node %d: Open: %v", i, errs[i])
		}
		defer dbs[i].Close()
		for _, v := range dbs[i].Applied() {
			appliedBy[v]++
		}
	}
	recorded, err := dbs[0].Migrations(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(recorded) == 0 {
		t.Fatal("no migration recorded")
	}
	for _, m := range recorded {
		if appliedBy[m.Version] != 1 {
			t.Errorf("migration %s applied by %d nodes, want 1", m.Version, appliedBy[m.Version])
		}
	}
	if len(appliedBy) != len(recorded) {
		t.Errorf("applied %v, recorded %v", appliedBy, recorded)
	}
}

// Issue 2, must-show 5: credentials, proxy passwords and API keys are not readable in the
// database, neither in the rows (read with plain SQL) nor, for SQLite, in the files.
func TestSecretsAreNotStoredInPlaintext(t *testing.T) {
	const (
		apiKeySecret  = "sk-ant-api03-PLAINTEXT-APIKEY-0123456789"
		accessToken   = "sk-ant-oat01-PLAINTEXT-ACCESS-0123456789"
		refreshToken  = "sk-ant-ort01-PLAINTEXT-REFRESH-0123456789"
		proxyPassword = "PLAINTEXT-PROXY-PASSWORD-0123456789"
	)
	userKey := secret.NewAPIKey()
	secrets := []string{apiKeySecret, accessToken, refreshToken, proxyPassword, userKey}

	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			dsn := d.dsn(t)
			keys := testKeys(t)
			db, err := sqlstore.Open(t.Context(), sqlstore.Config{DSN: dsn, Keys: keys, Logger: quiet})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			ctx := t.Context()
			u := storetest.MustUser(t, db)
			g := storetest.MustGroup(t, db, store.BillingBalance)
			k := &store.APIKey{UserID: u.ID, GroupID: g.ID, Hash: keys.HashAPIKey(userKey), Prefix: userKey[:7]}
			must(t, db.CreateAPIKey(ctx, k))
			p := &store.Proxy{Protocol: "socks5", Host: "127.0.0.1", Port: 1080, Username: "u", Password: proxyPassword}
			must(t, db.CreateProxy(ctx, p))
			for _, c := range []store.Credentials{{APIKey: apiKeySecret}, {AccessToken: accessToken, RefreshToken: refreshToken}} {
				a := &store.Account{Name: "a", Platform: store.PlatformAnthropic, Type: store.AccountTypeOAuth,
					Credentials: c, ProxyID: &p.ID, Schedulable: true, GroupIDs: []int64{g.ID}}
				must(t, db.CreateAccount(ctx, a))
			}
			// The store itself still hands the secrets back.
			ka, err := db.KeyAuthByHash(ctx, keys.HashAPIKey(userKey))
			must(t, err)
			if ka.Key.ID != k.ID {
				t.Fatalf("key lookup by hash found key %d, want %d", ka.Key.ID, k.ID)
			}
			accounts, err := db.AccountsByGroup(ctx, g.ID)
			must(t, err)
			if accounts[0].Credentials.APIKey != apiKeySecret || accounts[1].Credentials.RefreshToken != refreshToken {
				t.Fatalf("credentials did not round-trip: %+v", accounts)
			}

			dump := dumpTables(t, db.RawDB(), "users", "api_keys", "accounts", "proxies", "account_groups")
			for _, s := range secrets {
				if bytes.Contains(dump, []byte(s)) {
					t.Errorf("plaintext secret %q found in the raw rows", s)
				}
			}
			if !bytes.Contains(dump, keys.HashAPIKey(userKey)) {
				t.Error("the API key's hash is not in the raw rows: the dump reads nothing")
			}
			if !bytes.Contains(dump, []byte("v2:"+keys.KeyID()+":")) {
				t.Error("no sealed value in the raw rows: the dump reads nothing")
			}

			if d.name == "SQLite" {
				must(t, db.Close())
				for _, suffix := range []string{"", "-wal"} {
					raw, err := os.ReadFile(dsn + suffix)
					if err != nil && suffix == "" {
						t.Fatal(err)
					}
					for _, s := range secrets {
						if bytes.Contains(raw, []byte(s)) {
							t.Errorf("plaintext secret %q found in the database file %s", s, filepath.Base(dsn+suffix))
						}
					}
				}
			}
		})
	}
}

// dumpTables reads every column of every row of the tables as raw bytes.
func dumpTables(t *testing.T, db *sql.DB, tables ...string) []byte {
	t.Helper()
	var out bytes.Buffer
	for _, table := range tables {
		rows, err := db.Query("SELECT * FROM " + table)
		must(t, err)
		cols, err := rows.Columns()
		must(t, err)
		vals := make([]any, len(cols))
		for i := range vals {
			vals[i] = new(any)
		}
		n := 0
		for rows.Next() {
			must(t, rows.Scan(vals...))
			for _, v := range vals {
				switch x := (*v.(*any)).(type) {
				case []byte:
					out.Write(x)
				default:
					fmt.Fprint(&out, x)
				}
				out.WriteByte('|')
			}
			n++
		}
		must(t, rows.Err())
		rows.Close()
		if n == 0 {
			t.Fatalf("table %s is empty: nothing to inspect", table)
		}
	}
	return out.Bytes()
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// The pool never opens more than MaxOpenConns connections to PostgreSQL, however many
// goroutines query at once (the deployment sizes PostgreSQL as nodes × this number).
func TestPostgresPoolSizeBoundsConnections(t *testing.T) {
	dsn := testenv.PostgresDSN(t)
	const maxOpen = 3
	db, err := sqlstore.Open(t.Context(), sqlstore.Config{DSN: dsn, Keys: testKeys(t), MaxOpenConns: maxOpen, Logger: quiet})
	must(t, err)
	defer db.Close()
	monitor, err := sql.Open("pgx", dsn)
	must(t, err)
	defer monitor.Close()
	monitor.SetMaxOpenConns(1)

	// Each query holds its connection until release is closed, so the pool saturates.
	release := make(chan struct{})
	var wg sync.WaitGroup
	for range 12 {
		wg.Go(func() {
			conn, err := db.RawDB().Conn(t.Context())
			if err != nil {
				t.Errorf("Conn: %v", err)
				return
			}
			defer conn.Close()
			if _, err := conn.ExecContext(t.Context(), "SELECT 1"); err != nil {
				t.Errorf("query: %v", err)
			}
			<-release
		})
	}
	count := func() int {
		var n int
		must(t, monitor.QueryRow(`SELECT COUNT(*) FROM pg_stat_activity
			WHERE datname = current_database() AND pid <> pg_backend_pid()`).Scan(&n))
		return n
	}
	// Wait until the pool is full (the goroutines beyond maxOpen are queued in Go).
	for count() < maxOpen {
		time.Sleep(5 * time.Millisecond)
	}
	if n := count(); n != maxOpen {
		t.Errorf("%d connections with 12 concurrent users, want exactly MaxOpenConns=%d", n, maxOpen)
	}
	close(release)
	wg.Wait()
}

// Billing a batch costs PostgreSQL a fixed number of statements, not one per row: BEGIN, one
// multi-row INSERT, one UPDATE per user, a locked read and an UPDATE per subscription, COMMIT.
func TestPostgresRecordUsageStatementsPerBatch(t *testing.T) {
	db := MustOpen(t, testenv.PostgresDSN(t))
	ctx := t.Context()
	subGroup := storetest.MustGroup(t, db, store.BillingSubscription)
	var users []*store.User
	for i := range 10 {
		u := storetest.MustUser(t, db)
		if i < 3 {
			must(t, db.CreateSubscription(ctx, &store.Subscription{UserID: u.ID, GroupID: subGroup.ID,
				ExpiresAt: time.Now().Add(time.Hour)}))
		}
		users = append(users, u)
	}
	var rows []store.Usage
	for i := range 100 {
		u := users[i%len(users)]
		r := store.Usage{RequestID: fmt.Sprintf("stmt-%d", i), UserID: u.ID, Charged: 10, BillingType: store.BillingBalance}
		if i%len(users) < 3 && (i/len(users))%2 == 1 { // half the rows of the first three users
			r.GroupID, r.BillingType = subGroup.ID, store.BillingSubscription
		}
		rows = append(rows, r)
	}
	before := db.Statements()
	_, err := db.RecordUsage(ctx, rows)
	must(t, err)
	got := db.Statements() - before
	want := int64(1 + 1 + 10 + 2*3 + 1)
	if got > want {
		t.Fatalf("RecordUsage of %d rows sent %d statements, want at most %d", len(rows), got, want)
	}
	if got < 3 {
		t.Fatalf("counted %d statements: the counter does not see the store's queries", got)
	}
	balances := int64(0)
	for _, u := range users {
		got, err := db.GetUser(ctx, u.ID)
		must(t, err)
		balances += int64(got.Balance)
	}
	if balances != -int64(10*(100-15)) { // 15 of the 100 rows bill subscriptions
		t.Fatalf("sum of balances = %d, want %d", balances, -10*(100-15))
	}
}

func TestOpenPostgresKeyValueDSN(t *testing.T) {
	u, err := url.Parse(testenv.PostgresDSN(t))
	must(t, err)
	pw, _ := u.User.Password()
	kv := fmt.Sprintf("host=%s port=%s user=%s password=%s dbname=%s sslmode=disable",
		u.Hostname(), u.Port(), u.User.Username(), pw, strings.TrimPrefix(u.Path, "/"))
	db := MustOpen(t, kv)
	if db.Dialect() != sqlstore.DriverPostgres {
		t.Fatalf("key=value DSN opened %s, want postgres", db.Dialect())
	}
}

// The SQLite writer never checkpoints the WAL itself (a checkpoint inside a ledger commit
// holds up the answers waiting for it); the checkpointer does (TestCheckpointerCopiesTheWAL).
func TestSQLiteWriterNeverCheckpoints(t *testing.T) {
	db := MustOpen(t, sqliteDSN(t))
	var pages int
	must(t, db.RawDB().QueryRowContext(t.Context(), "PRAGMA wal_autocheckpoint").Scan(&pages))
	if pages != 0 {
		t.Fatalf("the writer's wal_autocheckpoint = %d pages, want 0 (off)", pages)
	}
}

// SQLite syncs every commit by default (SyncFull: a billed answer survives a power loss);
// SyncNormal is the operator's explicit choice to sync only at checkpoints. The writer is
// the connection that commits the ledger.
func TestSQLiteSynchronousSetting(t *testing.T) {
	for _, c := range []struct {
		setting string
		want    int // PRAGMA synchronous: 1 NORMAL, 2 FULL
	}{{"", 2}, {sqlstore.SyncFull, 2}, {sqlstore.SyncNormal, 1}} {
		t.Run("setting="+c.setting, func(t *testing.T) {
			db, err := sqlstore.Open(t.Context(), sqlstore.Config{DSN: sqliteDSN(t), Keys: testKeys(t), SQLiteSync: c.setting, Logger: quiet})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			var got int
			must(t, db.RawDB().QueryRowContext(t.Context(), "PRAGMA synchronous").Scan(&got))
			if got != c.want {
				t.Fatalf("the writer's synchronous = %d, want %d", got, c.want)
			}
		})
	}
	if _, err := sqlstore.Open(t.Context(), sqlstore.Config{DSN: sqliteDSN(t), Keys: testKeys(t), SQLiteSync: "off", Logger: quiet}); err == nil {
		t.Fatal("synchronous=off accepted: a power loss could corrupt the database")
	}
}
