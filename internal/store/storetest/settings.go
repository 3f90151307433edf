package storetest

import (
	"sync"
	"testing"
	"time"

	"github.com/fluxcode/fluxcode/internal/store"
)

func testSettings(t *testing.T, open Open) {
	s := open(t)
	ctx := ctxT(t)

	t.Run("MissingKeyIsNotFound", func(t *testing.T) {
		_, err := s.GetSetting(ctx, "nope")
		wantErr(t, "GetSetting", err, store.ErrNotFound)
	})

	t.Run("SetOverwritesAndListShowsAll", func(t *testing.T) {
		must(t, "SetSetting", s.SetSetting(ctx, "site_name", "Flux"))
		must(t, "SetSetting", s.SetSetting(ctx, "site_name", "FluxCode"))
		must(t, "SetSetting", s.SetSetting(ctx, "registration_enabled", "false"))
		v, err := s.GetSetting(ctx, "site_name")
		must(t, "GetSetting", err)
		equal(t, "value", v, "FluxCode")
		all, err := s.ListSettings(ctx)
		must(t, "ListSettings", err)
		equal(t, "settings", all, map[string]string{"site_name": "FluxCode", "registration_enabled": "false"})
	})

	t.Run("IfAbsentKeepsTheFirstValue", func(t *testing.T) {
		v, err := s.SetSettingIfAbsent(ctx, "jwt_secret", "first")
		must(t, "SetSettingIfAbsent", err)
		equal(t, "stored", v, "first")
		v, err = s.SetSettingIfAbsent(ctx, "jwt_secret", "second")
		must(t, "SetSettingIfAbsent", err)
		equal(t, "stored after second call", v, "first")
	})

	t.Run("IfAbsentRaceHasOneWinnerEveryoneSees", func(t *testing.T) {
		s := open(t)
		const callers = 10
		got := make([]string, callers)
		errs := make([]error, callers)
		var wg sync.WaitGroup
		for i := range callers {
			wg.Go(func() { got[i], errs[i] = s.SetSettingIfAbsent(ctx, "shared_secret", "candidate-"+unique()) })
		}
		wg.Wait()
		for i := range callers {
			must(t, "SetSettingIfAbsent", errs[i])
		}
		for _, v := range got {
			if v != got[0] {
				t.Fatalf("callers saw different winners: %q", got)
			}
		}
		stored, err := s.GetSetting(ctx, "shared_secret")
		must(t, "GetSetting", err)
		equal(t, "stored winner", stored, got[0])
	})
}

func testErrorRules(t *testing.T, open Open) {
	s := open(t)
	ctx := ctxT(t)

	t.Run("CreateListDelete", func(t *testing.T) {
		r1 := &store.ErrorRule{StatusCode: 400, Keyword: "credit balance is too low", Minutes: 60, Enabled: true}
		r2 := &store.ErrorRule{StatusCode: 403, Minutes: 5}
		must(t, "CreateErrorRule", s.CreateErrorRule(ctx, r1))
		must(t, "CreateErrorRule", s.CreateErrorRule(ctx, r2))
		if r1.ID == 0 || r1.CreatedAt.IsZero() {
			t.Fatalf("CreateErrorRule: %+v", r1)
		}
		list, err := s.ListErrorRules(ctx)
		must(t, "ListErrorRules", err)
		equal(t, "rules", list, []store.ErrorRule{*r1, *r2})
		must(t, "DeleteErrorRule", s.DeleteErrorRule(ctx, r1.ID))
		list, _ = s.ListErrorRules(ctx)
		equal(t, "rules after delete", list, []store.ErrorRule{*r2})
	})

	t.Run("BadStatusOrMinutesIsInvalid", func(t *testing.T) {
		wantErr(t, "status", s.CreateErrorRule(ctx, &store.ErrorRule{StatusCode: 42, Minutes: 1}), store.ErrInvalid)
		wantErr(t, "minutes", s.CreateErrorRule(ctx, &store.ErrorRule{StatusCode: 500}), store.ErrInvalid)
	})

	t.Run("DeleteMissingIsNotFound", func(t *testing.T) {
		wantErr(t, "DeleteErrorRule", s.DeleteErrorRule(ctx, 987654321), store.ErrNotFound)
	})
}

func testSubscriptions(t *testing.T, open Open) {
	s := open(t)
	ctx := ctxT(t)
	u := MustUser(t, s)

	t.Run("CreateThenGetReturnsTheSameSubscription", func(t *testing.T) {
		g := MustGroup(t, s, store.BillingSubscription)
		sub := &store.Subscription{UserID: u.ID, GroupID: g.ID, StartsAt: base, ExpiresAt: base.Add(30 * 24 * time.Hour)}
		must(t, "CreateSubscription", s.CreateSubscription(ctx, sub))
		if sub.ID == 0 || sub.Status != store.StatusActive || !sub.DailyStart.Equal(base) || !sub.MonthlyStart.Equal(base) {
			t.Fatalf("CreateSubscription: %+v", sub)
		}
		got, err := s.GetSubscription(ctx, u.ID, g.ID)
		must(t, "GetSubscription", err)
		equal(t, "GetSubscription", got, sub)
	})

	t.Run("SecondForTheSameGroupIsConflict", func(t *testing.T) {
		g := MustGroup(t, s, store.BillingSubscription)
		sub := store.Subscription{UserID: u.ID, GroupID: g.ID, StartsAt: base, ExpiresAt: base.Add(time.Hour)}
		must(t, "CreateSubscription", s.CreateSubscription(ctx, new(sub)))
		wantErr(t, "CreateSubscription", s.CreateSubscription(ctx, new(sub)), store.ErrConflict)
	})

	t.Run("BadPeriodUserOrGroupIsInvalid", func(t *testing.T) {
		g := MustGroup(t, s, store.BillingSubscription)
		wantErr(t, "period", s.CreateSubscription(ctx, &store.Subscription{UserID: u.ID, GroupID: g.ID, StartsAt: base, ExpiresAt: base}), store.ErrInvalid)
		wantErr(t, "user", s.CreateSubscription(ctx, &store.Subscription{UserID: 987654321, GroupID: g.ID, ExpiresAt: time.Now().Add(time.Hour)}), store.ErrInvalid)
		wantErr(t, "group", s.CreateSubscription(ctx, &store.Subscription{UserID: u.ID, GroupID: 987654321, ExpiresAt: time.Now().Add(time.Hour)}), store.ErrInvalid)
	})

	t.Run("UpdateWritesStatusAndExpiryOnly", func(t *testing.T) {
		g := MustGroup(t, s, store.BillingSubscription)
		sub := &store.Subscription{UserID: u.ID, GroupID: g.ID, StartsAt: base, ExpiresAt: base.Add(time.Hour)}
		must(t, "CreateSubscription", s.CreateSubscription(ctx, sub))
		upd := *sub
		upd.Status, upd.ExpiresAt, upd.DailyUsed = store.StatusDisabled, base.Add(48*time.Hour), 999
		must(t, "UpdateSubscription", s.UpdateSubscription(ctx, &upd))
		got, _ := s.GetSubscription(ctx, u.ID, g.ID)
		equal(t, "updated", []any{got.Status, got.ExpiresAt, got.DailyUsed}, []any{store.StatusDisabled, upd.ExpiresAt, store.Nanos(0)})
	})

	t.Run("MissingSubscriptionIsNotFound", func(t *testing.T) {
		_, err := s.GetSubscription(ctx, u.ID, 987654321)
		wantErr(t, "GetSubscription", err, store.ErrNotFound)
		wantErr(t, "UpdateSubscription", s.UpdateSubscription(ctx, &store.Subscription{ID: 987654321, Status: store.StatusActive, ExpiresAt: base}), store.ErrNotFound)
		wantErr(t, "DeleteSubscription", s.DeleteSubscription(ctx, 987654321), store.ErrNotFound)
	})

	t.Run("DeleteRemovesIt", func(t *testing.T) {
		g := MustGroup(t, s, store.BillingSubscription)
		sub := &store.Subscription{UserID: u.ID, GroupID: g.ID, StartsAt: base, ExpiresAt: base.Add(time.Hour)}
		must(t, "CreateSubscription", s.CreateSubscription(ctx, sub))
		must(t, "DeleteSubscription", s.DeleteSubscription(ctx, sub.ID))
		_, err := s.GetSubscription(ctx, u.ID, g.ID)
		wantErr(t, "GetSubscription", err, store.ErrNotFound)
	})

	t.Run("ListByUserOrAll", func(t *testing.T) {
		s := open(t)
		a, b := MustUser(t, s), MustUser(t, s)
		g1, g2 := MustGroup(t, s, store.BillingSubscription), MustGroup(t, s, store.BillingSubscription)
		for _, p := range [][2]int64{{a.ID, g1.ID}, {a.ID, g2.ID}, {b.ID, g1.ID}} {
			must(t, "CreateSubscription", s.CreateSubscription(ctx, &store.Subscription{UserID: p[0], GroupID: p[1], StartsAt: base, ExpiresAt: base.Add(time.Hour)}))
		}
		page, total, err := s.ListSubscriptions(ctx, a.ID, store.Page{})
		must(t, "ListSubscriptions", err)
		equal(t, "user's", []any{total, len(page), page[1].GroupID}, []any{2, 2, g2.ID})
		_, total, err = s.ListSubscriptions(ctx, 0, store.Page{})
		must(t, "ListSubscriptions all", err)
		equal(t, "all", total, 3)
	})
}
