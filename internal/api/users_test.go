package api_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/fluxcode/fluxcode/internal/store"
)

type page[T any] struct {
	Items    []T `json:"items"`
	Total    int `json:"total"`
	Page     int `json:"page"`
	PageSize int `json:"page_size"`
}

func TestAdminUsers(t *testing.T) {
	e := newEnv(t)
	var created userBody
	e.do("POST", "/api/v1/admin/users", e.adminToken, map[string]any{"email": "a@example.com", "password": "user-password-1",
		"concurrency": 4}).ok(t, 201, &created)
	if created.Email != "a@example.com" || created.Role != "user" || created.Status != "active" || created.Concurrency != 4 {
		t.Errorf("created = %+v", created)
	}
	e.do("POST", "/api/v1/admin/users", e.adminToken, map[string]any{"email": "A@example.com", "password": "user-password-1"}).
		wantError(t, 409, "conflict", "email")

	var got userBody
	e.do("GET", fmt.Sprintf("/api/v1/admin/users/%d", created.ID), e.adminToken, nil).ok(t, 200, &got)
	if got != created {
		t.Errorf("get = %+v, want %+v", got, created)
	}
	e.do("GET", "/api/v1/admin/users/999999", e.adminToken, nil).wantError(t, 404, "not_found", "")

	var upd userBody
	e.do("PATCH", fmt.Sprintf("/api/v1/admin/users/%d", created.ID), e.adminToken,
		map[string]any{"role": "admin", "concurrency": 9, "email": "b@example.com"}).ok(t, 200, &upd)
	if upd.Role != "admin" || upd.Concurrency != 9 || upd.Email != "b@example.com" {
		t.Errorf("updated = %+v", upd)
	}
	e.wantMessage(fmt.Sprintf("user:%d", created.ID))

	for i := range 3 {
		e.do("POST", "/api/v1/admin/users", e.adminToken, map[string]any{"email": fmt.Sprintf("p%d@example.com", i),
			"password": "user-password-1"}).ok(t, 201, nil)
	}
	var pg page[userBody]
	e.do("GET", "/api/v1/admin/users?page=2&page_size=2", e.adminToken, nil).ok(t, 200, &pg)
	if pg.Total != 5 || pg.Page != 2 || pg.PageSize != 2 || len(pg.Items) != 2 {
		t.Errorf("page 2 = total %d page %d size %d items %d, want 5/2/2/2", pg.Total, pg.Page, pg.PageSize, len(pg.Items))
	}
	e.do("GET", "/api/v1/admin/users?page=3&page_size=2", e.adminToken, nil).ok(t, 200, &pg)
	if len(pg.Items) != 1 {
		t.Errorf("last page has %d items, want 1", len(pg.Items))
	}

	t.Run("AdminCannotLockThemselvesOut", func(t *testing.T) {
		before := e.snapshot()
		self := fmt.Sprintf("/api/v1/admin/users/%d", e.admin.ID)
		e.do("PATCH", self, e.adminToken, map[string]any{"role": "user"}).wantError(t, 409, "conflict", "")
		e.do("PATCH", self, e.adminToken, map[string]any{"status": "disabled"}).wantError(t, 409, "conflict", "")
		e.do("DELETE", self, e.adminToken, nil).wantError(t, 409, "conflict", "")
		if e.snapshot() != before {
			t.Error("refused self-changes changed the store")
		}
	})

	t.Run("DemotedAdminLosesAccessAtOnce", func(t *testing.T) {
		token := e.login("b@example.com", "user-password-1")
		e.do("GET", "/api/v1/admin/users", token, nil).ok(t, 200, nil)
		e.do("PATCH", fmt.Sprintf("/api/v1/admin/users/%d", created.ID), e.adminToken, map[string]any{"role": "user"}).ok(t, 200, nil)
		// The token still says admin; the role is read from the store on every request.
		e.do("GET", "/api/v1/admin/users", token, nil).wantError(t, 403, "forbidden", "")
	})

	t.Run("Delete", func(t *testing.T) {
		e.do("DELETE", fmt.Sprintf("/api/v1/admin/users/%d", created.ID), e.adminToken, nil).ok(t, 204, nil)
		e.wantMessage(fmt.Sprintf("user:%d", created.ID))
		e.do("GET", fmt.Sprintf("/api/v1/admin/users/%d", created.ID), e.adminToken, nil).wantError(t, 404, "not_found", "")
	})
}

type balanceBody struct {
	Balance     string `json:"balance"`
	Transaction struct {
		ID        int64  `json:"id"`
		UserID    int64  `json:"user_id"`
		Amount    string `json:"amount"`
		Note      string `json:"note"`
		CreatedBy int64  `json:"created_by"`
	} `json:"transaction"`
}

func TestBalanceAdjustments(t *testing.T) {
	e := newEnv(t)
	id, token := e.newUser("u@example.com")
	path := fmt.Sprintf("/api/v1/admin/users/%d/balance", id)

	var b balanceBody
	e.do("POST", path, e.adminToken, map[string]any{"amount": "12.5", "note": "top-up"}).ok(t, 200, &b)
	if b.Balance != "12.500000000" || b.Transaction.Amount != "12.500000000" || b.Transaction.Note != "top-up" ||
		b.Transaction.CreatedBy != e.admin.ID || b.Transaction.UserID != id || b.Transaction.ID == 0 {
		t.Errorf("answer = %+v", b)
	}
	e.wantMessage(fmt.Sprintf("user:%d", id))
	e.do("POST", path, e.adminToken, map[string]any{"amount": "-2.000000001", "note": "refund correction"}).ok(t, 200, &b)
	if b.Balance != "10.499999999" {
		t.Errorf("balance = %s, want 10.499999999", b.Balance)
	}
	e.do("POST", path, e.adminToken, map[string]any{"amount": "0.000000003"}).ok(t, 200, &b)

	// Usage charges move the balance too, concurrently with adjustments, and are not
	// overwritten by them.
	if _, err := e.st.RecordUsage(context.Background(), []store.Usage{{RequestID: "req-1", UserID: id, Model: "m",
		Cost: 1_000_000_000, Charged: 1_000_000_000, BillingType: store.BillingBalance, StatusCode: 200}}); err != nil {
		t.Fatal(err)
	}
	e.do("POST", path, e.adminToken, map[string]any{"amount": "1"}).ok(t, 200, &b)
	if b.Balance != "10.500000002" {
		t.Errorf("balance after a charge and a credit = %s, want 10.500000002", b.Balance)
	}

	var txs page[struct {
		Amount string `json:"amount"`
	}]
	e.do("GET", fmt.Sprintf("/api/v1/admin/users/%d/transactions?page_size=200", id), e.adminToken, nil).ok(t, 200, &txs)
	if txs.Total != 4 || len(txs.Items) != 4 {
		t.Fatalf("transactions: total %d, items %d; want 4", txs.Total, len(txs.Items))
	}
	u, err := e.st.GetUser(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	rows, _, err := e.st.ListBalanceTransactions(context.Background(), id, store.Page{Limit: 200})
	if err != nil {
		t.Fatal(err)
	}
	var sum store.Nanos
	for _, r := range rows {
		sum += r.Amount
	}
	// Transactions plus the ledger's charges are the whole balance.
	if sum-1_000_000_000 != u.Balance {
		t.Errorf("transactions sum %d minus charges 1e9 != balance %d", sum, u.Balance)
	}
	var me userBody
	e.do("GET", "/api/v1/me", token, nil).ok(t, 200, &me)
	if me.Balance != "10.500000002" {
		t.Errorf("/me balance = %s", me.Balance)
	}

	t.Run("Refused", func(t *testing.T) {
		before := e.snapshot()
		for _, c := range []struct {
			body        any
			code, field string
		}{
			{map[string]any{"amount": "0"}, "invalid_argument", "amount"},
			{map[string]any{"note": "no amount"}, "invalid_argument", "amount"},
			{map[string]any{"amount": 12.5}, "invalid_argument", "amount"},
			{map[string]any{"amount": "12.5000000001"}, "invalid_argument", "amount"},
			{map[string]any{"amount": "1e3"}, "invalid_argument", "amount"},
			{map[string]any{"amount": "5", "balance": "100"}, "unknown_field", "balance"},
			{map[string]any{"amount": "5", "note": 7}, "invalid_argument", "note"},
		} {
			e.do("POST", path, e.adminToken, c.body).wantError(t, 400, c.code, c.field)
		}
		e.do("POST", "/api/v1/admin/users/999999/balance", e.adminToken, map[string]any{"amount": "1"}).wantError(t, 404, "not_found", "")
		if e.snapshot() != before {
			t.Error("refused adjustments changed the store")
		}
	})
}
