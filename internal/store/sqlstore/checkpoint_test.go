package sqlstore_test

import (
	"context"
	"database/sql"
	"fmt"
	"testing"
	"time"

	"github.com/fluxcode/fluxcode/internal/store"
)

// TestCheckpointerCopiesTheWAL: the writer never checkpoints (no commit waits for one), so
// rows reach the database file only through the checkpointer. Read the file as SQLite sees
// it without its WAL (immutable=1) until the new users are there.
func TestCheckpointerCopiesTheWAL(t *testing.T) {
	path := sqliteDSN(t)
	db := MustOpen(t, path)
	ctx := context.Background()
	for i := range 50 {
		u := &store.User{Email: fmt.Sprintf("wal-%d@example.com", i), PasswordHash: "x", Role: store.RoleUser, Status: store.StatusActive}
		if err := db.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	file, err := sql.Open("sqlite", "file:"+path+"?immutable=1&mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var n int
		err := file.QueryRow("SELECT count(*) FROM users WHERE email LIKE 'wal-%'").Scan(&n)
		if err == nil && n == 50 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the database file holds %d of 50 users after 10 s (err %v): the WAL was never checkpointed", n, err)
		}
		// immutable=1 lets the reader cache pages; a fresh connection sees the file anew.
		file.SetMaxIdleConns(0)
		time.Sleep(50 * time.Millisecond)
	}
}
