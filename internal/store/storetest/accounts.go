package storetest

import (
	"testing"
	"time"

	"github.com/fluxcode/fluxcode/internal/store"
)

func testProxies(t *testing.T, open Open) {
	s := open(t)
	ctx := ctxT(t)

	t.Run("CreateThenGetReturnsThePassword", func(t *testing.T) {
		p := &store.Proxy{Name: "egress", Protocol: "socks5", Host: "127.0.0.1", Port: 1080, Username: "u", Password: "hunter2"}
		must(t, "CreateProxy", s.CreateProxy(ctx, p))
		if p.ID == 0 || p.Status != store.StatusActive {
			t.Fatalf("CreateProxy: %+v", p)
		}
		got, err := s.GetProxy(ctx, p.ID)
		must(t, "GetProxy", err)
		equal(t, "GetProxy", got, p)
	})

	t.Run("BadProtocolHostOrPortIsInvalid", func(t *testing.T) {
		wantErr(t, "protocol", s.CreateProxy(ctx, &store.Proxy{Protocol: "ftp", Host: "h", Port: 1}), store.ErrInvalid)
		wantErr(t, "host", s.CreateProxy(ctx, &store.Proxy{Protocol: "http", Port: 1}), store.ErrInvalid)
		wantErr(t, "port", s.CreateProxy(ctx, &store.Proxy{Protocol: "http", Host: "h", Port: 70000}), store.ErrInvalid)
	})

	t.Run("UpdateWritesEveryField", func(t *testing.T) {
		p := &store.Proxy{Protocol: "http", Host: "127.0.0.1", Port: 3128}
		must(t, "CreateProxy", s.CreateProxy(ctx, p))
		p.Name, p.Protocol, p.Host, p.Port, p.Username, p.Password, p.Status = "n", "https", "::1", 443, "me", "pw", store.StatusDisabled
		must(t, "UpdateProxy", s.UpdateProxy(ctx, p))
		got, err := s.GetProxy(ctx, p.ID)
		must(t, "GetProxy", err)
		equal(t, "GetProxy", got, p)
	})

	t.Run("MissingProxyIsNotFound", func(t *testing.T) {
		_, err := s.GetProxy(ctx, 987654321)
		wantErr(t, "GetProxy", err, store.ErrNotFound)
		wantErr(t, "UpdateProxy", s.UpdateProxy(ctx, &store.Proxy{ID: 987654321, Protocol: "http", Host: "h", Port: 1, Status: "active"}), store.ErrNotFound)
		wantErr(t, "DeleteProxy", s.DeleteProxy(ctx, 987654321), store.ErrNotFound)
	})

	// A proxy in use is not deleted: its accounts would otherwise go direct unnoticed.
	t.Run("DeleteInUseIsConflict", func(t *testing.T) {
		p := &store.Proxy{Protocol: "http", Host: "127.0.0.1", Port: 3128}
		must(t, "CreateProxy", s.CreateProxy(ctx, p))
		a := newAccount(nil)
		a.ProxyID = &p.ID
		must(t, "CreateAccount", s.CreateAccount(ctx, a))
		wantErr(t, "DeleteProxy in use", s.DeleteProxy(ctx, p.ID), store.ErrConflict)
		got, err := s.GetAccount(ctx, a.ID)
		must(t, "GetAccount", err)
		if got.ProxyID == nil || *got.ProxyID != p.ID {
			t.Fatalf("ProxyID = %v after a refused delete, want %d", got.ProxyID, p.ID)
		}
		a.ProxyID = nil
		must(t, "UpdateAccount", s.UpdateAccount(ctx, a))
		must(t, "DeleteProxy once unused", s.DeleteProxy(ctx, p.ID))
		_, err = s.GetProxy(ctx, p.ID)
		wantErr(t, "GetProxy after delete", err, store.ErrNotFound)
	})

	t.Run("ListPagesWithTotal", func(t *testing.T) {
		s := open(t)
		for range 3 {
			must(t, "CreateProxy", s.CreateProxy(ctx, &store.Proxy{Protocol: "http", Host: "127.0.0.1", Port: 1, Password: "p"}))
		}
		page, total, err := s.ListProxies(ctx, store.Page{Limit: 2})
		must(t, "ListProxies", err)
		equal(t, "page and total", []any{len(page), total, page[0].Password}, []any{2, 3, "p"})
	})
}

func newAccount(groups []int64) *store.Account {
	return &store.Account{Name: "acct-" + unique(), Platform: store.PlatformAnthropic, Type: store.AccountTypeAPIKey,
		Credentials: store.Credentials{APIKey: "sk-ant-" + unique()}, Schedulable: true, GroupIDs: groups}
}

func testAccounts(t *testing.T, open Open) {
	s := open(t)
	ctx := ctxT(t)
	g1, g2 := MustGroup(t, s, store.BillingBalance), MustGroup(t, s, store.BillingBalance)

	t.Run("CreateThenGetReturnsEverythingDecrypted", func(t *testing.T) {
		p := &store.Proxy{Protocol: "http", Host: "127.0.0.1", Port: 8080}
		must(t, "CreateProxy", s.CreateProxy(ctx, p))
		a := &store.Account{Name: "claude-max", Platform: store.PlatformAnthropic, Type: store.AccountTypeOAuth,
			Credentials: store.Credentials{AccessToken: "sk-ant-oat01-secret", RefreshToken: "sk-ant-ort01-secret",
				ExpiresAt: base, Extra: map[string]string{"org": "o-1"}},
			BaseURL: "http://127.0.0.1:9/", ProxyID: &p.ID, Priority: 3, Concurrency: 5,
			ModelMapping: map[string]string{"claude-sonnet-4-5": "claude-sonnet-4-5-20250929"},
			Schedulable:  true, GroupIDs: []int64{g2.ID, g1.ID}}
		must(t, "CreateAccount", s.CreateAccount(ctx, a))
		if a.ID == 0 || a.Status != store.StatusActive || a.CreatedAt.IsZero() {
			t.Fatalf("CreateAccount: %+v", a)
		}
		got, err := s.GetAccount(ctx, a.ID)
		must(t, "GetAccount", err)
		a.GroupIDs = []int64{g1.ID, g2.ID} // returned in ascending order
		equal(t, "GetAccount", got, a)
	})

	t.Run("UnknownPlatformTypeGroupOrProxyIsInvalid", func(t *testing.T) {
		a := newAccount(nil)
		a.Platform = "bard"
		wantErr(t, "platform", s.CreateAccount(ctx, a), store.ErrInvalid)
		a = newAccount(nil)
		a.Type = "cookie"
		wantErr(t, "type", s.CreateAccount(ctx, a), store.ErrInvalid)
		wantErr(t, "group", s.CreateAccount(ctx, newAccount([]int64{987654321})), store.ErrInvalid)
		a = newAccount(nil)
		a.ProxyID = new(int64(987654321))
		wantErr(t, "proxy", s.CreateAccount(ctx, a), store.ErrInvalid)
	})

	t.Run("AccountsByGroupReturnsTheGroupsAccountsByPriority", func(t *testing.T) {
		s := open(t)
		g1, g2 := MustGroup(t, s, store.BillingBalance), MustGroup(t, s, store.BillingBalance)
		low, high, other := newAccount([]int64{g1.ID}), newAccount([]int64{g1.ID, g2.ID}), newAccount([]int64{g2.ID})
		low.Priority, high.Priority = 10, 1
		low.Status = store.StatusDisabled // every status is returned: the scheduler filters
		for _, a := range []*store.Account{low, high, other} {
			must(t, "CreateAccount", s.CreateAccount(ctx, a))
		}
		got, err := s.AccountsByGroup(ctx, g1.ID)
		must(t, "AccountsByGroup", err)
		equal(t, "ids", []int64{got[0].ID, got[1].ID}, []int64{high.ID, low.ID})
		equal(t, "len", len(got), 2)
		equal(t, "credentials decrypted", got[1].Credentials, low.Credentials)
		equal(t, "groups of a shared account", got[0].GroupIDs, []int64{g1.ID, g2.ID})
		none, err := s.AccountsByGroup(ctx, 987654321)
		must(t, "AccountsByGroup", err)
		equal(t, "unknown group", len(none), 0)
	})

	t.Run("UpdateReplacesGroupsAndKeepsMarks", func(t *testing.T) {
		a := newAccount([]int64{g1.ID})
		must(t, "CreateAccount", s.CreateAccount(ctx, a))
		until := base.Add(time.Hour)
		must(t, "MarkAccount", s.MarkAccount(ctx, a.ID, store.AccountMark{RateLimitedUntil: &until}))
		a.Name, a.Credentials = "renamed", store.Credentials{APIKey: "sk-new"}
		a.GroupIDs, a.ModelMapping, a.Schedulable, a.Priority = []int64{g2.ID}, map[string]string{"a": "b"}, false, 7
		a.RateLimitedUntil = nil // not written by UpdateAccount
		must(t, "UpdateAccount", s.UpdateAccount(ctx, a))
		got, err := s.GetAccount(ctx, a.ID)
		must(t, "GetAccount", err)
		equal(t, "updated", []any{got.Name, got.Credentials.APIKey, got.GroupIDs, got.ModelMapping, got.Schedulable, got.Priority},
			[]any{"renamed", "sk-new", []int64{g2.ID}, map[string]string{"a": "b"}, false, 7})
		if got.RateLimitedUntil == nil || !got.RateLimitedUntil.Equal(until) {
			t.Fatalf("RateLimitedUntil = %v after UpdateAccount, want %v kept", got.RateLimitedUntil, until)
		}
	})

	t.Run("MarkWritesOnlyTheGivenFields", func(t *testing.T) {
		a := newAccount(nil)
		must(t, "CreateAccount", s.CreateAccount(ctx, a))
		t1, t2, t3 := base.Add(time.Minute), base.Add(2*time.Minute), base.Add(3*time.Minute)
		reason := "keyword matched"
		must(t, "MarkAccount", s.MarkAccount(ctx, a.ID, store.AccountMark{RateLimitedUntil: &t1, OverloadedUntil: &t2}))
		must(t, "MarkAccount", s.MarkAccount(ctx, a.ID, store.AccountMark{TempUnschedUntil: &t3, TempUnschedReason: &reason}))
		status, msg := store.StatusError, "401 invalid x-api-key"
		must(t, "MarkAccount", s.MarkAccount(ctx, a.ID, store.AccountMark{Status: &status, ErrorMessage: &msg}))
		got, err := s.GetAccount(ctx, a.ID)
		must(t, "GetAccount", err)
		equal(t, "marks", []any{*got.RateLimitedUntil, *got.OverloadedUntil, *got.TempUnschedUntil, got.TempUnschedReason, got.Status, got.ErrorMessage},
			[]any{t1, t2, t3, reason, store.StatusError, msg})

		must(t, "ClearAccountMarks", s.ClearAccountMarks(ctx, a.ID))
		got, err = s.GetAccount(ctx, a.ID)
		must(t, "GetAccount", err)
		if got.RateLimitedUntil != nil || got.OverloadedUntil != nil || got.TempUnschedUntil != nil ||
			got.TempUnschedReason != "" || got.Status != store.StatusActive || got.ErrorMessage != "" {
			t.Fatalf("after ClearAccountMarks: %+v", got)
		}
	})

	t.Run("ClearKeepsADisabledAccountDisabled", func(t *testing.T) {
		a := newAccount(nil)
		a.Status = store.StatusDisabled
		must(t, "CreateAccount", s.CreateAccount(ctx, a))
		must(t, "ClearAccountMarks", s.ClearAccountMarks(ctx, a.ID))
		got, _ := s.GetAccount(ctx, a.ID)
		equal(t, "status", got.Status, store.StatusDisabled)
	})

	t.Run("BadMarkStatusIsInvalid", func(t *testing.T) {
		a := newAccount(nil)
		must(t, "CreateAccount", s.CreateAccount(ctx, a))
		bad := "sleepy"
		wantErr(t, "MarkAccount", s.MarkAccount(ctx, a.ID, store.AccountMark{Status: &bad}), store.ErrInvalid)
	})

	t.Run("MissingAccountIsNotFound", func(t *testing.T) {
		_, err := s.GetAccount(ctx, 987654321)
		wantErr(t, "GetAccount", err, store.ErrNotFound)
		missing := newAccount(nil)
		missing.ID, missing.Status = 987654321, store.StatusActive
		wantErr(t, "UpdateAccount", s.UpdateAccount(ctx, missing), store.ErrNotFound)
		wantErr(t, "MarkAccount", s.MarkAccount(ctx, 987654321, store.AccountMark{}), store.ErrNotFound)
		wantErr(t, "ClearAccountMarks", s.ClearAccountMarks(ctx, 987654321), store.ErrNotFound)
		wantErr(t, "DeleteAccount", s.DeleteAccount(ctx, 987654321), store.ErrNotFound)
	})

	t.Run("TouchNeverMovesLastUsedBack", func(t *testing.T) {
		a := newAccount(nil)
		must(t, "CreateAccount", s.CreateAccount(ctx, a))
		must(t, "TouchAccounts", s.TouchAccounts(ctx, map[int64]time.Time{a.ID: base.Add(time.Minute)}))
		must(t, "TouchAccounts", s.TouchAccounts(ctx, map[int64]time.Time{a.ID: base}))
		got, _ := s.GetAccount(ctx, a.ID)
		equal(t, "last used", *got.LastUsedAt, base.Add(time.Minute))
	})

	t.Run("DeleteRemovesAccountAndMemberships", func(t *testing.T) {
		g := MustGroup(t, s, store.BillingBalance)
		a := newAccount([]int64{g.ID})
		must(t, "CreateAccount", s.CreateAccount(ctx, a))
		must(t, "DeleteAccount", s.DeleteAccount(ctx, a.ID))
		_, err := s.GetAccount(ctx, a.ID)
		wantErr(t, "GetAccount", err, store.ErrNotFound)
		left, _ := s.AccountsByGroup(ctx, g.ID)
		equal(t, "group's accounts", len(left), 0)
	})

	t.Run("ListPagesWithTotalAndGroups", func(t *testing.T) {
		s := open(t)
		g := MustGroup(t, s, store.BillingBalance)
		for range 3 {
			must(t, "CreateAccount", s.CreateAccount(ctx, newAccount([]int64{g.ID})))
		}
		page, total, err := s.ListAccounts(ctx, store.Page{Offset: 2})
		must(t, "ListAccounts", err)
		equal(t, "page and total", []any{len(page), total, page[0].GroupIDs}, []any{1, 3, []int64{g.ID}})
	})
}
