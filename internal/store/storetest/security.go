package storetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/fluxcode/fluxcode/internal/store"
)

func testTwoFactor(t *testing.T, open Open) {
	s := open(t)
	ctx := ctxT(t)

	t.Run("EnrolConfirmAndUseOnce", func(t *testing.T) {
		u := MustUser(t, s)
		_, err := s.GetTOTP(ctx, u.ID)
		wantErr(t, "GetTOTP before enrolment", err, store.ErrNotFound)
		must(t, "SetPendingTOTP", s.SetPendingTOTP(ctx, u.ID, "JBSWY3DPEHPK3PXP"))
		got, err := s.GetTOTP(ctx, u.ID)
		must(t, "GetTOTP", err)
		equal(t, "pending", []any{got.Enabled, got.Secret, got.PendingSecret}, []any{false, "", "JBSWY3DPEHPK3PXP"})
		ok, err := s.UseTOTPStep(ctx, u.ID, 100)
		must(t, "UseTOTPStep before enable", err)
		if ok {
			t.Fatal("a step was accepted before the enrolment was confirmed")
		}
		wantErr(t, "EnableTOTP with another pending secret", s.EnableTOTP(ctx, u.ID, "OTHER", 100, nil), store.ErrConflict)
		codes := [][]byte{randomHash(), randomHash()}
		must(t, "EnableTOTP", s.EnableTOTP(ctx, u.ID, "JBSWY3DPEHPK3PXP", 100, codes))
		got, err = s.GetTOTP(ctx, u.ID)
		must(t, "GetTOTP", err)
		equal(t, "enabled", []any{got.Enabled, got.Secret, got.PendingSecret, got.LastStep, got.RecoveryCodesLeft},
			[]any{true, "JBSWY3DPEHPK3PXP", "", int64(100), 2})
		wantErr(t, "EnableTOTP with nothing pending", s.EnableTOTP(ctx, u.ID, "JBSWY3DPEHPK3PXP", 101, nil), store.ErrNotFound)

		for _, c := range []struct {
			step int64
			want bool
		}{{100, false}, {99, false}, {101, true}, {101, false}, {103, true}} {
			ok, err := s.UseTOTPStep(ctx, u.ID, c.step)
			must(t, "UseTOTPStep", err)
			if ok != c.want {
				t.Fatalf("UseTOTPStep(%d) = %v, want %v", c.step, ok, c.want)
			}
		}
		ok, err = s.UseRecoveryCode(ctx, u.ID, codes[0])
		must(t, "UseRecoveryCode", err)
		again, err := s.UseRecoveryCode(ctx, u.ID, codes[0])
		must(t, "UseRecoveryCode again", err)
		other := MustUser(t, s)
		foreign, err := s.UseRecoveryCode(ctx, other.ID, codes[1])
		must(t, "UseRecoveryCode of another user", err)
		equal(t, "recovery code used once, by its owner only", []any{ok, again, foreign}, []any{true, false, false})

		// A new enrolment leaves the confirmed secret in force until it is confirmed.
		must(t, "SetPendingTOTP", s.SetPendingTOTP(ctx, u.ID, "NEWSECRET"))
		got, err = s.GetTOTP(ctx, u.ID)
		must(t, "GetTOTP", err)
		equal(t, "re-enrolment", []any{got.Enabled, got.Secret, got.PendingSecret}, []any{true, "JBSWY3DPEHPK3PXP", "NEWSECRET"})

		must(t, "ReplaceRecoveryCodes", s.ReplaceRecoveryCodes(ctx, u.ID, [][]byte{randomHash()}))
		got, _ = s.GetTOTP(ctx, u.ID)
		equal(t, "codes left", got.RecoveryCodesLeft, 1)

		must(t, "DeleteTOTP", s.DeleteTOTP(ctx, u.ID))
		_, err = s.GetTOTP(ctx, u.ID)
		wantErr(t, "GetTOTP after delete", err, store.ErrNotFound)
		wantErr(t, "DeleteTOTP again", s.DeleteTOTP(ctx, u.ID), store.ErrNotFound)
	})

	// Two nodes given the same code at once: exactly one accepts it.
	t.Run("ConcurrentUseOfOneStepSucceedsOnce", func(t *testing.T) {
		u := MustUser(t, s)
		must(t, "SetPendingTOTP", s.SetPendingTOTP(ctx, u.ID, "JBSWY3DPEHPK3PXP"))
		code := randomHash()
		must(t, "EnableTOTP", s.EnableTOTP(ctx, u.ID, "JBSWY3DPEHPK3PXP", 1, [][]byte{code}))
		var mu sync.Mutex
		steps, codes := 0, 0
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				ok1, err1 := s.UseTOTPStep(ctx, u.ID, 50)
				ok2, err2 := s.UseRecoveryCode(ctx, u.ID, code)
				mu.Lock()
				defer mu.Unlock()
				if err1 != nil || err2 != nil {
					t.Errorf("use: %v %v", err1, err2)
				}
				if ok1 {
					steps++
				}
				if ok2 {
					codes++
				}
			})
		}
		wg.Wait()
		equal(t, "accepted step, accepted code", []int{steps, codes}, []int{1, 1})
	})

	t.Run("DeletingTheUserDeletesTheEnrolment", func(t *testing.T) {
		u := MustUser(t, s)
		must(t, "SetPendingTOTP", s.SetPendingTOTP(ctx, u.ID, "JBSWY3DPEHPK3PXP"))
		must(t, "EnableTOTP", s.EnableTOTP(ctx, u.ID, "JBSWY3DPEHPK3PXP", 1, [][]byte{randomHash()}))
		must(t, "DeleteUser", s.DeleteUser(ctx, u.ID))
		_, err := s.GetTOTP(ctx, u.ID)
		wantErr(t, "GetTOTP", err, store.ErrNotFound)
	})
}

func testAudit(t *testing.T, open Open) {
	s := open(t)
	ctx := ctxT(t)
	entry := func(actor int64, action, typ, id string) *store.AuditEntry {
		e := &store.AuditEntry{ActorUserID: actor, ActorEmail: fmt.Sprintf("admin%d@example.test", actor), Action: action,
			TargetType: typ, TargetID: id, Before: `{"name":"a"}`, After: `{"name":"b"}`, ClientIP: "127.0.0.1"}
		must(t, "AppendAudit", s.AppendAudit(ctx, e))
		return e
	}
	first := entry(1, "user.update", "user", "7")
	if first.ID == 0 || first.CreatedAt.IsZero() {
		t.Fatalf("AppendAudit did not set ID and CreatedAt: %+v", first)
	}
	entry(1, "group.create", "group", "3")
	entry(2, "user.update", "user", "8")
	last := entry(2, "user.delete", "user", "7")

	ids := func(es []store.AuditEntry) []int64 {
		out := []int64{}
		for _, e := range es {
			out = append(out, e.ID)
		}
		return out
	}
	all, total, err := s.ListAudit(ctx, store.AuditFilter{}, store.Page{})
	must(t, "ListAudit", err)
	equal(t, "total", total, 4)
	equal(t, "newest first", all[0], *last)
	equal(t, "oldest last", all[3], *first)

	for _, c := range []struct {
		name string
		f    store.AuditFilter
		want int
	}{
		{"actor", store.AuditFilter{ActorUserID: 2}, 2},
		{"actor email", store.AuditFilter{ActorEmail: "admin1@example.test"}, 2},
		{"action", store.AuditFilter{Action: "user.update"}, 2},
		{"target type", store.AuditFilter{TargetType: "group"}, 1},
		{"target", store.AuditFilter{TargetType: "user", TargetID: "7"}, 2},
		{"actor and action", store.AuditFilter{ActorUserID: 1, Action: "user.update"}, 1},
		{"from now on", store.AuditFilter{From: last.CreatedAt.Add(time.Microsecond)}, 0},
		{"until the first", store.AuditFilter{To: first.CreatedAt.Add(time.Microsecond)}, 1},
		{"everything", store.AuditFilter{From: first.CreatedAt, To: last.CreatedAt.Add(time.Second)}, 4},
	} {
		got, total, err := s.ListAudit(ctx, c.f, store.Page{})
		must(t, "ListAudit "+c.name, err)
		if total != c.want || len(got) != c.want {
			t.Errorf("%s: %d rows, total %d, want %d", c.name, len(got), total, c.want)
		}
	}
	page, total, err := s.ListAudit(ctx, store.AuditFilter{}, store.Page{Offset: 1, Limit: 2})
	must(t, "ListAudit page", err)
	equal(t, "second page", []any{ids(page), total}, []any{ids(all[1:3]), 4})
}

func testReseal(t *testing.T, open Open) {
	s := open(t)
	ctx := ctxT(t)
	a := newAccount(nil)
	must(t, "CreateAccount", s.CreateAccount(ctx, a))
	p := &store.Proxy{Protocol: "http", Host: "127.0.0.1", Port: 3128, Password: "pw"}
	must(t, "CreateProxy", s.CreateProxy(ctx, p))
	u := MustUser(t, s)
	must(t, "SetPendingTOTP", s.SetPendingTOTP(ctx, u.ID, "JBSWY3DPEHPK3PXP"))
	must(t, "SetSetting", s.SetSetting(ctx, "site_name", "v1:not-a-sealed-value"))

	// Everything was sealed under the store's current key: nothing to do, however often.
	for range 2 {
		rep, err := s.ResealSecrets(ctx, 1)
		must(t, "ResealSecrets", err)
		if rep.Resealed != 0 || rep.Checked < 3 {
			t.Fatalf("ResealSecrets = %+v, want >= 3 checked and none resealed", rep)
		}
	}
	got, err := s.GetAccount(ctx, a.ID)
	must(t, "GetAccount", err)
	equal(t, "credentials", got.Credentials, a.Credentials)
	site, err := s.GetSetting(ctx, "site_name")
	must(t, "GetSetting", err)
	equal(t, "plain setting untouched", site, "v1:not-a-sealed-value")
}
