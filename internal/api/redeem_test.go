package api_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fluxcode/fluxcode/internal/api"
	"github.com/fluxcode/fluxcode/internal/coord"
	"github.com/fluxcode/fluxcode/internal/coord/memory"
	"github.com/fluxcode/fluxcode/internal/httpx"
	"github.com/fluxcode/fluxcode/internal/store"
	"github.com/fluxcode/fluxcode/internal/store/sqlstore"
	"github.com/fluxcode/fluxcode/internal/testenv"
)

type redeemCodeBody struct {
	ID          int64   `json:"id"`
	Code        string  `json:"code"`
	Prefix      string  `json:"prefix"`
	Kind        string  `json:"kind"`
	Amount      *string `json:"amount"`
	Concurrency int     `json:"concurrency"`
	GroupID     int64   `json:"group_id"`
	Days        int     `json:"days"`
	Status      string  `json:"status"`
	UsedBy      int64   `json:"used_by"`
}

type redeemedBody struct {
	Redeemed     redeemCodeBody `json:"redeemed"`
	User         userBody       `json:"user"`
	Subscription *struct {
		GroupID   int64     `json:"group_id"`
		ExpiresAt time.Time `json:"expires_at"`
	} `json:"subscription"`
}

// issueCodes creates a batch through the admin API and returns the created codes.
func (e *env) issueCodes(body map[string]any) []redeemCodeBody {
	e.t.Helper()
	var out struct{ Items []redeemCodeBody }
	e.do("POST", "/api/v1/admin/redeem-codes", e.adminToken, body).ok(e.t, 201, &out)
	return out.Items
}

func (e *env) redeem(token, code string) *resp {
	e.t.Helper()
	return e.do("POST", "/api/v1/me/redeem", token, map[string]string{"code": code})
}

// Issue 13: the admin issues, lists, disables and exports codes; a user redeems each kind
// once; on SQLite and on PostgreSQL.
func TestRedeemCodes(t *testing.T) {
	t.Run("SQLite", func(t *testing.T) { checkRedeemCodes(t, newEnvOn(t, filepath.Join(t.TempDir(), "api.db"))) })
	t.Run("Postgres", func(t *testing.T) { checkRedeemCodes(t, newEnvOn(t, testenv.PostgresDSN(t))) })
}

func checkRedeemCodes(t *testing.T, e *env) {
	uid, token := e.newUser("u@example.com")

	codes := e.issueCodes(map[string]any{"kind": "balance", "amount": "1.5", "count": 3, "note": "promo"})
	if len(codes) != 3 {
		t.Fatalf("created %d codes, want 3", len(codes))
	}
	seen := map[string]bool{}
	for _, c := range codes {
		if !strings.HasPrefix(c.Code, "rc-") || len(c.Code) < 35 || seen[c.Code] || !strings.HasPrefix(c.Code, c.Prefix) ||
			c.Status != "active" || c.Amount == nil || *c.Amount != "1.500000000" {
			t.Fatalf("created code %+v", c)
		}
		seen[c.Code] = true
	}

	var page struct {
		Items []redeemCodeBody
		Total int
	}
	e.do("GET", "/api/v1/admin/redeem-codes?page_size=2", e.adminToken, nil).ok(t, 200, &page)
	if page.Total != 3 || len(page.Items) != 2 || page.Items[0].Code != "" {
		t.Fatalf("list = %+v; want 3 in total, 2 on the page, no code shown", page)
	}

	var got redeemedBody
	answer := e.redeem(token, "  "+codes[0].Code+" ")
	answer.ok(t, 200, &got)
	if got.User.ID != uid || got.User.Balance != "1.500000000" || got.Redeemed.ID != codes[0].ID || got.Redeemed.UsedBy != uid {
		t.Fatalf("redeem answered %+v", got)
	}
	// The admin's note (and who issued the code) is not the user's to see.
	if bytes.Contains(answer.body, []byte("promo")) || bytes.Contains(answer.body, []byte(`"note"`)) ||
		bytes.Contains(answer.body, []byte(`"created_by"`)) {
		t.Fatalf("the user's redeem answer shows admin fields: %s", answer.body)
	}
	e.wantMessage(fmt.Sprintf("user:%d", uid))
	e.redeem(token, codes[0].Code).wantError(t, 400, "invalid_argument", "code")
	e.redeem(token, "rc-not-a-code").wantError(t, 400, "invalid_argument", "code")

	var disabled redeemCodeBody
	e.do("POST", fmt.Sprintf("/api/v1/admin/redeem-codes/%d/disable", codes[1].ID), e.adminToken, nil).ok(t, 200, &disabled)
	if disabled.Status != "disabled" {
		t.Fatalf("disabled code = %+v", disabled)
	}
	e.redeem(token, codes[1].Code).wantError(t, 400, "invalid_argument", "code")
	e.do("POST", fmt.Sprintf("/api/v1/admin/redeem-codes/%d/disable", codes[0].ID), e.adminToken, nil).
		wantError(t, 409, "conflict", "")

	conc := e.issueCodes(map[string]any{"kind": "concurrency", "concurrency": 4, "count": 1})
	e.do("PATCH", fmt.Sprintf("/api/v1/admin/users/%d", uid), e.adminToken, map[string]any{"concurrency": 2}).ok(t, 200, nil)
	e.redeem(token, conc[0].Code).ok(t, 200, &got)
	if got.User.Concurrency != 6 {
		t.Errorf("concurrency after a raise of 4 from 2 = %d", got.User.Concurrency)
	}

	gid := e.newGroup("monthly", map[string]any{"billing_type": "subscription"})
	sub := e.issueCodes(map[string]any{"kind": "subscription", "group_id": gid, "days": 30, "count": 1})
	e.redeem(token, sub[0].Code).ok(t, 200, &got)
	if got.Subscription == nil || got.Subscription.GroupID != gid || got.Subscription.ExpiresAt.Before(time.Now().AddDate(0, 0, 29)) {
		t.Errorf("subscription after a 30-day code = %+v", got.Subscription)
	}

	// The list filters on the server: "used" is a status of its own, "active" means still to
	// be redeemed; search reads the prefix and the note.
	for q, want := range map[string]int{"status=used": 3, "status=active": 1, "status=disabled": 1,
		"search=PROMO": 3, "search=promo&status=active": 1, fmt.Sprintf("group_id=%d", gid): 1} {
		e.do("GET", "/api/v1/admin/redeem-codes?"+q, e.adminToken, nil).ok(t, 200, &page)
		if page.Total != want {
			t.Errorf("list ?%s: total %d, want %d", q, page.Total, want)
		}
	}
	e.do("GET", "/api/v1/admin/redeem-codes?status=error", e.adminToken, nil).wantError(t, 400, "invalid_argument", "status")

	r := e.do("GET", "/api/v1/admin/redeem-codes/export", e.adminToken, nil)
	if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/csv") {
		t.Fatalf("export: %d %s", r.status, r.body)
	}
	rows, err := csv.NewReader(bytes.NewReader(r.body)).ReadAll()
	if err != nil || len(rows) != 1+5 || rows[0][0] != "id" {
		t.Fatalf("export rows = %v, %v", rows, err)
	}
	for _, c := range append(codes, conc[0], sub[0]) {
		if bytes.Contains(r.body, []byte(c.Code)) {
			t.Fatal("the export holds a code itself")
		}
	}
}

func TestRedeemCodeRequestsAreChecked(t *testing.T) {
	e := newEnv(t)
	_, token := e.newUser("u@example.com")
	balanceGroup := e.newGroup("payg", nil)
	for _, c := range []struct {
		body  map[string]any
		field string
	}{
		{map[string]any{"kind": "gift", "count": 1}, "kind"},
		{map[string]any{"kind": "balance", "count": 1}, "amount"},
		{map[string]any{"kind": "balance", "amount": "-1", "count": 1}, "amount"},
		{map[string]any{"kind": "balance", "amount": "1", "count": 0}, "count"},
		{map[string]any{"kind": "balance", "amount": "1", "count": 1001}, "count"},
		{map[string]any{"kind": "balance", "amount": "1", "days": 3, "count": 1}, "days"},
		{map[string]any{"kind": "concurrency", "amount": "1", "concurrency": 1, "count": 1}, "amount"},
		{map[string]any{"kind": "concurrency", "count": 1}, "concurrency"},
		{map[string]any{"kind": "subscription", "group_id": balanceGroup, "days": 3, "count": 1}, "group_id"},
		{map[string]any{"kind": "subscription", "group_id": 987654, "days": 3, "count": 1}, "group_id"},
	} {
		e.do("POST", "/api/v1/admin/redeem-codes", e.adminToken, c.body).wantError(t, 400, "invalid_argument", c.field)
	}
	e.do("POST", "/api/v1/admin/redeem-codes", token, map[string]any{"kind": "balance", "amount": "1", "count": 1}).
		wantError(t, 403, "forbidden", "")
	e.redeem(token, "").wantError(t, 400, "invalid_argument", "code")
}

// Failed redemptions are counted per user in the shared counters: spread over two nodes they
// stop at the limit, after which even a valid code is refused until the window ends; another
// user is not affected.
func TestRedeemFailuresAreThrottledAcrossNodes(t *testing.T) {
	const limit = 3
	acrossNodes(t, func(t *testing.T, coordA, coordB coord.Coordinator) {
		opts := func(o *api.Options) { o.Coord = coordA; o.RedeemMaxFailures = limit; o.LoginWindow = time.Hour }
		a := newEnv(t, opts)
		ob := api.Options{Store: a.st, Keys: a.keys, Tokens: a.tokens}
		opts(&ob)
		ob.Coord = coordB
		b := &env{t: t, st: a.st, h: httpx.WithRequestIDs(api.New(ob))}
		_, guesser := a.newUser("guesser@example.com")
		_, other := a.newUser("other@example.com")
		codes := a.issueCodes(map[string]any{"kind": "balance", "amount": "1", "count": 2})
		for i := range limit {
			node := []*env{a, b}[i%2]
			node.redeem(guesser, fmt.Sprintf("rc-guess-%d", i)).wantError(t, 400, "invalid_argument", "code")
		}
		r := b.redeem(guesser, codes[0].Code)
		r.wantError(t, 429, "rate_limited", "")
		if r.header.Get("Retry-After") == "" {
			t.Error("429 without Retry-After")
		}
		a.redeem(guesser, codes[0].Code).wantError(t, 429, "rate_limited", "")
		b.redeem(other, codes[1].Code).ok(t, 200, nil)
	})
}

// Issue 13's race: two nodes (each its own store connections and coordinator client) on one
// database, one code, 50 redemptions at once by several users → exactly one succeeds and the
// balance is raised once. On PostgreSQL + Redis (a cluster), and on SQLite with the
// in-process coordinator (two handlers of one node).
func TestRedeemRaceAcrossTwoNodes(t *testing.T) {
	t.Run("PostgresRedis", func(t *testing.T) {
		dsn := testenv.PostgresDSN(t)
		nodeCoord := redisNodes(t)
		a := newEnvOn(t, dsn, func(o *api.Options) { o.Coord = nodeCoord(); o.RedeemMaxFailures = 100 })
		st, err := sqlstore.Open(context.Background(), sqlstore.Config{DSN: dsn, Keys: a.keys, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatalf("open the second node's store: %v", err)
		}
		t.Cleanup(func() { st.Close() })
		b := &env{t: t, st: st, h: httpx.WithRequestIDs(api.New(api.Options{Store: st, Keys: a.keys, Tokens: a.tokens,
			Coord: nodeCoord(), RedeemMaxFailures: 100}))}
		checkRedeemRace(t, a, b)
	})
	t.Run("SQLiteInProcess", func(t *testing.T) {
		shared := memory.New()
		t.Cleanup(func() { _ = shared.Close() })
		a := newEnv(t, func(o *api.Options) { o.Coord = shared; o.RedeemMaxFailures = 100 })
		b := &env{t: t, st: a.st, h: httpx.WithRequestIDs(api.New(api.Options{Store: a.st, Keys: a.keys, Tokens: a.tokens,
			Coord: shared, RedeemMaxFailures: 100}))}
		checkRedeemRace(t, a, b)
	})
}

func checkRedeemRace(t *testing.T, a, b *env) {
	const attempts, users = 50, 5
	ids := make([]int64, users)
	tokens := make([]string, users)
	for i := range users {
		ids[i], tokens[i] = a.newUser(fmt.Sprintf("racer%d@example.com", i))
	}
	code := a.issueCodes(map[string]any{"kind": "balance", "amount": "2.5", "count": 1})[0].Code
	answers := parallelLogins(attempts, func(i int) *resp {
		return []*env{a, b}[i%2].redeem(tokens[i%users], code)
	})
	if by := tally(t, answers); by[200] != 1 || by[400] != attempts-1 {
		t.Fatalf("answers by status = %v, want 1 × 200 and %d × 400", by, attempts-1)
	}
	ctx := context.Background()
	var total store.Nanos
	for _, id := range ids {
		u, err := b.st.GetUser(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		total += u.Balance
	}
	txs, n, err := b.st.ListBalanceTransactions(ctx, 0, store.Page{Limit: 200})
	if err != nil {
		t.Fatal(err)
	}
	if total != 2_500_000_000 || n != 1 || txs[0].Amount != 2_500_000_000 {
		t.Fatalf("balances sum to %d with %d transactions %+v; want 2.5 USD credited once", total, n, txs)
	}
}
