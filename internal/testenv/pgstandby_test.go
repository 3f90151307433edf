package testenv

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// The pair replicates a commit to the standby; with the primary stopped, the multi-host URL
// finds no server that accepts writes until the standby is promoted, then finds it, with
// the commit there.
func TestPostgresPairFailsOverToThePromotedStandby(t *testing.T) {
	pair := StartPostgresPair(t)
	conn := mustConnectPG(t, pair.DSN("postgres"))
	ctx := context.Background()
	if _, err := conn.Exec(ctx, "CREATE TABLE committed (v int); INSERT INTO committed VALUES (42)"); err != nil {
		t.Fatal(err)
	}
	if err := pair.Primary.Stop(); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if c, err := pgx.Connect(cctx, pair.DSN("postgres")); err == nil {
		c.Close(ctx)
		t.Fatal("the multi-host URL connected to a read-only standby")
	}
	if err := pair.Promote(); err != nil {
		t.Fatal(err)
	}
	after := mustConnectPG(t, pair.DSN("postgres"))
	var v int
	if err := after.QueryRow(ctx, "SELECT v FROM committed").Scan(&v); err != nil || v != 42 {
		t.Fatalf("after the promotion: %d, %v", v, err)
	}
	if _, err := after.Exec(ctx, "INSERT INTO committed VALUES (43)"); err != nil {
		t.Fatalf("the promoted standby refuses a write: %v", err)
	}
}
