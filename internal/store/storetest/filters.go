package storetest

import (
	"testing"

	"github.com/fluxcode/fluxcode/internal/store"
)

// ids returns the ids of a list's rows.
func ids[T any](rows []T, id func(*T) int64) []int64 {
	out := []int64{}
	for i := range rows {
		out = append(out, id(&rows[i]))
	}
	return out
}

// testListFilters: the admin lists filter in the store, so the total and the pages count only
// the rows that match; search is a case-insensitive substring in which % and _ are literal.
func testListFilters(t *testing.T, open Open) {
	s := open(t)
	ctx := ctxT(t)

	alice := MustUser(t, s, func(u *store.User) { u.Email = "Alice.Smith@example.test" })
	bob := MustUser(t, s, func(u *store.User) { u.Email = "bob_100%@example.test"; u.Role = store.RoleAdmin })
	carol := MustUser(t, s, func(u *store.User) { u.Email = "carol@example.test" })
	carol.Status = store.StatusDisabled
	must(t, "UpdateUser", s.UpdateUser(ctx, carol))
	users := func(f store.ListFilter, limit int) ([]int64, int) {
		t.Helper()
		rows, total, err := s.ListUsers(ctx, store.Page{Limit: limit, Filter: f})
		must(t, "ListUsers", err)
		return ids(rows, func(u *store.User) int64 { return u.ID }), total
	}
	all, total := users(store.ListFilter{}, 0)
	equal(t, "unfiltered users", []any{all, total}, []any{[]int64{alice.ID, bob.ID, carol.ID}, 3})
	got, total := users(store.ListFilter{Search: "SMITH"}, 0)
	equal(t, "users by a case-insensitive search", []any{got, total}, []any{[]int64{alice.ID}, 1})
	got, _ = users(store.ListFilter{Search: "_100%"}, 0)
	equal(t, "% and _ are literal", got, []int64{bob.ID})
	got, _ = users(store.ListFilter{Search: "b_1"}, 0)
	equal(t, "_ matches only an underscore", got, []int64{bob.ID})
	got, _ = users(store.ListFilter{Search: "o%"}, 0)
	equal(t, "% matches only a percent sign", got, []int64{})
	got, _ = users(store.ListFilter{Status: store.StatusDisabled}, 0)
	equal(t, "users by status", got, []int64{carol.ID})
	got, _ = users(store.ListFilter{Role: store.RoleAdmin}, 0)
	equal(t, "users by role", got, []int64{bob.ID})
	got, total = users(store.ListFilter{Search: "example", Status: store.StatusActive}, 1)
	equal(t, "a filtered page counts the filtered rows", []any{got, total}, []any{[]int64{alice.ID}, 2})

	g1 := MustGroup(t, s, store.BillingBalance)
	g2 := &store.Group{Name: "Codex team", Platform: store.PlatformOpenAI, BillingType: store.BillingBalance, RateMultiplierPPM: 1_000_000}
	must(t, "CreateGroup", s.CreateGroup(ctx, g2))
	groups, total, err := s.ListGroups(ctx, store.Page{Filter: store.ListFilter{Platform: store.PlatformOpenAI}})
	must(t, "ListGroups", err)
	equal(t, "groups by platform", []any{ids(groups, func(g *store.Group) int64 { return g.ID }), total}, []any{[]int64{g2.ID}, 1})
	groups, _, err = s.ListGroups(ctx, store.Page{Filter: store.ListFilter{Search: "codex", Platform: store.PlatformAnthropic}})
	must(t, "ListGroups", err)
	equal(t, "filters combine", len(groups), 0)

	a1 := newAccount([]int64{g1.ID})
	a2 := newAccount([]int64{g1.ID, g2.ID})
	a2.Name, a2.Platform = "OpenAI main", store.PlatformOpenAI
	a3 := newAccount(nil)
	a3.Status = store.StatusDisabled
	for _, a := range []*store.Account{a1, a2, a3} {
		must(t, "CreateAccount", s.CreateAccount(ctx, a))
	}
	accounts := func(f store.ListFilter) ([]int64, int) {
		t.Helper()
		rows, total, err := s.ListAccounts(ctx, store.Page{Filter: f})
		must(t, "ListAccounts", err)
		return ids(rows, func(a *store.Account) int64 { return a.ID }), total
	}
	got, total = accounts(store.ListFilter{GroupID: g1.ID})
	equal(t, "accounts in a group", []any{got, total}, []any{[]int64{a1.ID, a2.ID}, 2})
	got, _ = accounts(store.ListFilter{GroupID: g2.ID})
	equal(t, "accounts in the other group", got, []int64{a2.ID})
	got, _ = accounts(store.ListFilter{Search: "openai", Platform: store.PlatformOpenAI})
	equal(t, "accounts by name and platform", got, []int64{a2.ID})
	got, _ = accounts(store.ListFilter{Status: store.StatusDisabled})
	equal(t, "accounts by status", got, []int64{a3.ID})
	rows, _, err := s.ListAccounts(ctx, store.Page{Filter: store.ListFilter{GroupID: g2.ID}})
	must(t, "ListAccounts", err)
	equal(t, "a filtered account keeps all its groups", rows[0].GroupIDs, []int64{g1.ID, g2.ID})

	k1 := MustAPIKey(t, s, alice.ID, g1.ID)
	k2 := &store.APIKey{UserID: alice.ID, GroupID: g2.ID, Name: "CI runner", Hash: randomHash(), Prefix: "fk-ci"}
	must(t, "CreateAPIKey", s.CreateAPIKey(ctx, k2))
	k3 := MustAPIKey(t, s, bob.ID, g2.ID)
	k3.Status = store.StatusDisabled
	must(t, "UpdateAPIKey", s.UpdateAPIKey(ctx, k3))
	keys := func(userID int64, f store.ListFilter) []int64 {
		t.Helper()
		rows, total, err := s.ListAPIKeys(ctx, userID, store.Page{Filter: f})
		must(t, "ListAPIKeys", err)
		if total != len(rows) {
			t.Fatalf("ListAPIKeys total %d, %d rows", total, len(rows))
		}
		return ids(rows, func(k *store.APIKey) int64 { return k.ID })
	}
	equal(t, "keys by group", keys(0, store.ListFilter{GroupID: g2.ID}), []int64{k2.ID, k3.ID})
	equal(t, "one user's keys by group", keys(alice.ID, store.ListFilter{GroupID: g2.ID}), []int64{k2.ID})
	equal(t, "keys by name", keys(0, store.ListFilter{Search: "runner"}), []int64{k2.ID})
	equal(t, "keys by prefix", keys(0, store.ListFilter{Search: "FK-CI"}), []int64{k2.ID})
	equal(t, "keys by status", keys(0, store.ListFilter{Status: store.StatusDisabled}), []int64{k3.ID})
	equal(t, "one user's keys by status", keys(alice.ID, store.ListFilter{Status: store.StatusDisabled}), []int64{})
	_ = k1
}
