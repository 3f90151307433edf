package startup

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/fluxcode/fluxcode/internal/secret"
	"github.com/fluxcode/fluxcode/internal/testenv"
)

// TestThreeNodesStartTogether starts three nodes at the same moment against one empty
// PostgreSQL and one Redis, with neither ADMIN_PASSWORD nor JWT_SECRET set (issue 2, must-show
// 3): every migration is applied by exactly one node and recorded once, exactly one admin
// exists, exactly one generated-password line appears across the three outputs, all three are
// healthy, and a token from node 1 is accepted by nodes 2 and 3.
func TestThreeNodesStartTogether(t *testing.T) {
	bin := buildFluxcode(t)
	dsn := testenv.PostgresDSN(t)
	rd := testenv.StartRedis(t, testenv.WithPassword("startup-redis-pw"))
	key := secret.NewMasterKey()

	var nodes []*node
	for i, ip := range []string{"127.0.0.11", "127.0.0.12", "127.0.0.13"} {
		port := strconv.Itoa(testenv.FreePortOn(t, ip))
		name := fmt.Sprintf("node%d", i+1)
		env := map[string]string{
			"SERVER_HOST":             ip,
			"SERVER_PORT":             port,
			"NODE_NAME":               name,
			"DATABASE_URL":            dsn,
			"DATABASE_MAX_OPEN_CONNS": "5",
			"DATABASE_MAX_IDLE_CONNS": "2",
			"REDIS_URL":               rd.URL(),
			"ENCRYPTION_KEY":          key,
			"LOG_FORMAT":              "json",
		}
		nodes = append(nodes, newNode(t, bin, name, t.TempDir(), net.JoinHostPort(ip, port), env))
	}

	// Release all three at once.
	testenv.StartAll(t, nodes...)
	for _, n := range nodes {
		n.waitHealthy(t)
	}

	// One generated password across the three outputs, printed by the node that created the admin.
	var lines [][2]string
	for _, n := range nodes {
		lines = append(lines, passwordLines(n.Output())...)
		if !strings.Contains(n.Output(), "JWT_SECRET is not set") {
			t.Errorf("%s did not warn about the generated JWT secret", n.Name())
		}
	}
	if len(lines) != 1 {
		t.Fatalf("want exactly one generated-password line across three nodes, got %d: %v", len(lines), lines)
	}
	email, password := lines[0][0], lines[0][1]

	// Each migration applied by exactly one node, and recorded once.
	appliedBy := map[string][]string{}
	for _, n := range nodes {
		for _, v := range appliedMigrations(t, n.Output()) {
			appliedBy[v] = append(appliedBy[v], n.Name())
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	recorded := queryStrings(t, conn, "SELECT version FROM schema_migrations ORDER BY version")
	if len(recorded) == 0 {
		t.Fatal("no migration recorded")
	}
	if dups := queryStrings(t, conn, "SELECT version FROM schema_migrations GROUP BY version HAVING count(*) > 1"); len(dups) > 0 {
		t.Errorf("migrations recorded more than once: %v", dups)
	}
	var logged []string
	for v, by := range appliedBy {
		logged = append(logged, v)
		if len(by) != 1 {
			t.Errorf("migration %s applied by %v", v, by)
		}
	}
	sort.Strings(logged)
	if strings.Join(logged, ",") != strings.Join(recorded, ",") {
		t.Errorf("applied %v, recorded %v", logged, recorded)
	}

	// Exactly one admin; one shared JWT secret.
	var admins, secrets int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM users WHERE role = 'admin'").Scan(&admins); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM settings WHERE key = 'system.jwt_secret'").Scan(&secrets); err != nil {
		t.Fatal(err)
	}
	if admins != 1 || secrets != 1 {
		t.Errorf("admins = %d, jwt secrets = %d; want 1 and 1", admins, secrets)
	}

	// A token from node 1 works on nodes 2 and 3; the password works on every node.
	token := testenv.Login(t, nodes[0].base(), email, password)
	for _, n := range nodes[1:] {
		if code, body := testenv.CallJSON(t, "GET", n.base()+"/api/v1/me", token, nil); code != 200 || !strings.Contains(string(body), email) {
			t.Errorf("%s refused node1's token: %d %s", n.Name(), code, body)
		}
		testenv.Login(t, n.base(), email, password)
	}

	for _, n := range nodes {
		n.stop(t)
	}
}

// appliedMigrations reads the versions a node logged as applied (JSON log lines).
func appliedMigrations(t *testing.T, out string) []string {
	t.Helper()
	var versions []string
	for _, rec := range testenv.JSONLines[struct {
		Msg     string `json:"msg"`
		Version string `json:"version"`
	}](t, out) {
		if rec.Msg == "database migration applied" {
			versions = append(versions, rec.Version)
		}
	}
	return versions
}

func queryStrings(t *testing.T, conn *pgx.Conn, sql string) []string {
	t.Helper()
	rows, err := conn.Query(context.Background(), sql)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return out
}
