package api_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/fluxcode/fluxcode/internal/store"
)

type usageRow struct {
	RequestID   string  `json:"request_id"`
	UserID      int64   `json:"user_id"`
	APIKeyID    int64   `json:"api_key_id"`
	AccountID   *int64  `json:"account_id"`
	Model       string  `json:"model"`
	InputTokens int64   `json:"input_tokens"`
	Cost        string  `json:"cost"`
	Charged     string  `json:"charged"`
	Upstream    *string `json:"upstream_model"`
}

type totals struct {
	Day         string `json:"day"`
	Model       string `json:"model"`
	Requests    int64  `json:"requests"`
	InputTokens int64  `json:"input_tokens"`
	Cost        string `json:"cost"`
	Charged     string `json:"charged"`
}

type summary struct {
	Totals totals   `json:"totals"`
	Daily  []totals `json:"daily"`
}

func TestUsage(t *testing.T) {
	e := newEnv(t)
	gid := e.newGroup("g", nil)
	uid, token := e.newUser("u@example.com")
	otherID, _ := e.newUser("o@example.com")
	var k1, k2 keyBody
	e.do("POST", "/api/v1/keys", token, map[string]any{"group_id": gid}).ok(t, 201, &k1)
	e.do("POST", "/api/v1/keys", token, map[string]any{"group_id": gid}).ok(t, 201, &k2)

	day1 := time.Date(2030, 3, 1, 10, 0, 0, 0, time.UTC)
	day2 := day1.AddDate(0, 0, 1)
	row := func(id string, user, key, account int64, model string, at time.Time, input int64, cost store.Nanos) store.Usage {
		return store.Usage{RequestID: id, UserID: user, APIKeyID: key, AccountID: account, GroupID: gid, Platform: "anthropic",
			Model: model, UpstreamModel: model + "-up", InputTokens: input, Cost: cost, RateMultiplierPPM: 1_000_000,
			Charged: cost, BillingType: store.BillingBalance, StatusCode: 200, CreatedAt: at}
	}
	rows := []store.Usage{
		row("r1", uid, k1.ID, 7, "sonnet", day1, 100, 1_000),
		row("r2", uid, k1.ID, 7, "opus", day1.Add(time.Hour), 200, 2_000),
		row("r3", uid, k2.ID, 8, "sonnet", day2, 300, 3_000),
		row("r4", otherID, 0, 8, "sonnet", day2, 400, 4_000),
	}
	if _, err := e.st.RecordUsage(context.Background(), rows); err != nil {
		t.Fatal(err)
	}

	var own page[usageRow]
	e.do("GET", "/api/v1/usage?page_size=10", token, nil).ok(t, 200, &own)
	if own.Total != 3 || len(own.Items) != 3 {
		t.Fatalf("own usage: total %d, items %d; want 3", own.Total, len(own.Items))
	}
	for _, r := range own.Items {
		if r.UserID != uid || r.AccountID != nil || r.Upstream != nil {
			t.Errorf("user sees %+v: another user's row or the upstream account", r)
		}
	}
	e.do("GET", fmt.Sprintf("/api/v1/usage?key_id=%d", k2.ID), token, nil).ok(t, 200, &own)
	if own.Total != 1 || own.Items[0].RequestID != "r3" {
		t.Errorf("key filter = %+v", own)
	}
	e.do("GET", "/api/v1/usage?from=2030-03-01&to=2030-03-01", token, nil).ok(t, 200, &own)
	if own.Total != 2 {
		t.Errorf("one day's usage: %d rows, want 2", own.Total)
	}
	e.do("GET", "/api/v1/usage?page=2&page_size=2", token, nil).ok(t, 200, &own)
	if len(own.Items) != 1 || own.Total != 3 {
		t.Errorf("page 2 of 2: %d items of %d", len(own.Items), own.Total)
	}
	// user_id is an admin filter: a user cannot read someone else's ledger with it.
	e.do("GET", fmt.Sprintf("/api/v1/usage?user_id=%d", otherID), token, nil).ok(t, 200, &own)
	if own.Total != 3 {
		t.Errorf("?user_id moved a user's view: %d rows", own.Total)
	}

	var s summary
	e.do("GET", "/api/v1/usage/summary", token, nil).ok(t, 200, &s)
	if s.Totals.Requests != 3 || s.Totals.InputTokens != 600 || s.Totals.Cost != "0.000006000" {
		t.Errorf("own totals = %+v", s.Totals)
	}
	got := []string{}
	for _, d := range s.Daily {
		got = append(got, fmt.Sprintf("%s/%s/%d", d.Day, d.Model, d.Requests))
	}
	if strings.Join(got, " ") != "2030-03-01/opus/1 2030-03-01/sonnet/1 2030-03-02/sonnet/1" {
		t.Errorf("daily = %v", got)
	}

	var all page[usageRow]
	e.do("GET", "/api/v1/admin/usage", e.adminToken, nil).ok(t, 200, &all)
	if all.Total != 4 {
		t.Errorf("admin sees %d rows, want 4", all.Total)
	}
	e.do("GET", "/api/v1/admin/usage?account_id=8&model=sonnet", e.adminToken, nil).ok(t, 200, &all)
	if all.Total != 2 || all.Items[0].AccountID == nil || *all.Items[0].AccountID != 8 || all.Items[0].Upstream == nil {
		t.Errorf("admin account filter = %+v", all)
	}
	e.do("GET", fmt.Sprintf("/api/v1/admin/usage?user_id=%d&group_id=%d", otherID, gid), e.adminToken, nil).ok(t, 200, &all)
	if all.Total != 1 || all.Items[0].RequestID != "r4" {
		t.Errorf("admin user filter = %+v", all)
	}
	e.do("GET", "/api/v1/admin/usage/summary?from=2030-03-02T00:00:00Z", e.adminToken, nil).ok(t, 200, &s)
	if s.Totals.Requests != 2 || s.Totals.Charged != "0.000007000" || len(s.Daily) != 1 || s.Daily[0].Requests != 2 {
		t.Errorf("admin summary = %+v", s)
	}

	for _, q := range []struct{ query, field string }{
		{"from=yesterday", "from"}, {"to=2030-13-01", "to"}, {"key_id=x", "key_id"}, {"key_id=-1", "key_id"},
		{"from=2030-03-02&to=2030-03-01", "to"}, {"page=0", "page"}, {"page_size=201", "page_size"}, {"page_size=abc", "page_size"},
	} {
		e.do("GET", "/api/v1/usage?"+q.query, token, nil).wantError(t, 400, "invalid_argument", q.field)
	}
	e.do("GET", "/api/v1/admin/usage?account_id=zero", e.adminToken, nil).wantError(t, 400, "invalid_argument", "account_id")
}
