package storetest

import (
	"testing"
	"time"

	"github.com/fluxcode/fluxcode/internal/store"
)

func testGroups(t *testing.T, open Open) {
	s := open(t)
	ctx := ctxT(t)

	t.Run("CreateThenGetReturnsTheSameGroup", func(t *testing.T) {
		g := &store.Group{Name: "team-" + unique(), Description: "d", Platform: store.PlatformOpenAI,
			BillingType: store.BillingSubscription, RateMultiplierPPM: 1_500_000,
			DailyLimit: 1, WeeklyLimit: 2, MonthlyLimit: 3}
		must(t, "CreateGroup", s.CreateGroup(ctx, g))
		if g.ID == 0 || g.Status != store.StatusActive {
			t.Fatalf("CreateGroup: %+v, want an id and status active", g)
		}
		got, err := s.GetGroup(ctx, g.ID)
		must(t, "GetGroup", err)
		equal(t, "GetGroup", got, g)
	})

	t.Run("TakenNameIsConflict", func(t *testing.T) {
		g := MustGroup(t, s, store.BillingBalance)
		wantErr(t, "CreateGroup", s.CreateGroup(ctx, &store.Group{Name: g.Name, Platform: store.PlatformAnthropic}), store.ErrConflict)
	})

	t.Run("UnknownPlatformOrBillingIsInvalid", func(t *testing.T) {
		wantErr(t, "platform", s.CreateGroup(ctx, &store.Group{Name: unique(), Platform: "bard"}), store.ErrInvalid)
		wantErr(t, "billing", s.CreateGroup(ctx, &store.Group{Name: unique(), Platform: store.PlatformGemini, BillingType: "barter"}), store.ErrInvalid)
	})

	t.Run("UpdateWritesEveryField", func(t *testing.T) {
		g := MustGroup(t, s, store.BillingBalance)
		g.Name, g.Description, g.RateMultiplierPPM, g.Status = "renamed-"+unique(), "new", 2_000_000, store.StatusDisabled
		g.BillingType, g.DailyLimit = store.BillingSubscription, 42
		must(t, "UpdateGroup", s.UpdateGroup(ctx, g))
		got, err := s.GetGroup(ctx, g.ID)
		must(t, "GetGroup", err)
		equal(t, "GetGroup", got, g)
	})

	t.Run("MissingGroupIsNotFound", func(t *testing.T) {
		_, err := s.GetGroup(ctx, 987654321)
		wantErr(t, "GetGroup", err, store.ErrNotFound)
		wantErr(t, "UpdateGroup", s.UpdateGroup(ctx, &store.Group{ID: 987654321, Name: unique(),
			Platform: store.PlatformAnthropic, BillingType: store.BillingBalance, Status: store.StatusActive}), store.ErrNotFound)
		wantErr(t, "DeleteGroup", s.DeleteGroup(ctx, 987654321), store.ErrNotFound)
	})

	t.Run("DeleteOfAGroupWithKeysIsInvalid", func(t *testing.T) {
		g := MustGroup(t, s, store.BillingBalance)
		MustAPIKey(t, s, MustUser(t, s).ID, g.ID)
		wantErr(t, "DeleteGroup", s.DeleteGroup(ctx, g.ID), store.ErrInvalid)
		_, err := s.GetGroup(ctx, g.ID)
		must(t, "GetGroup after refused delete", err)
	})

	t.Run("DeleteRemovesTheGroupButNotItsAccounts", func(t *testing.T) {
		g := MustGroup(t, s, store.BillingBalance)
		a := &store.Account{Name: "a", Platform: store.PlatformAnthropic, Type: store.AccountTypeAPIKey,
			Credentials: store.Credentials{APIKey: "k"}, Schedulable: true, GroupIDs: []int64{g.ID}}
		must(t, "CreateAccount", s.CreateAccount(ctx, a))
		must(t, "DeleteGroup", s.DeleteGroup(ctx, g.ID))
		_, err := s.GetGroup(ctx, g.ID)
		wantErr(t, "GetGroup", err, store.ErrNotFound)
		got, err := s.GetAccount(ctx, a.ID)
		must(t, "GetAccount", err)
		equal(t, "account groups", len(got.GroupIDs), 0)
	})

	t.Run("ListPagesWithTotal", func(t *testing.T) {
		s := open(t)
		for range 3 {
			MustGroup(t, s, store.BillingBalance)
		}
		page, total, err := s.ListGroups(ctx, store.Page{Offset: 1, Limit: 1})
		must(t, "ListGroups", err)
		equal(t, "page and total", []int{len(page), total}, []int{1, 3})
	})
}

func testAPIKeys(t *testing.T, open Open) {
	s := open(t)
	ctx := ctxT(t)
	u := MustUser(t, s)
	g := MustGroup(t, s, store.BillingBalance)

	t.Run("CreateThenGetReturnsTheSameKey", func(t *testing.T) {
		k := &store.APIKey{UserID: u.ID, GroupID: g.ID, Name: "laptop", Hash: randomHash(), Prefix: "fk-AbC1",
			Concurrency: 4, ExpiresAt: tp(base.Add(24 * time.Hour)), AdminDisabled: true, AdminConcurrency: 5,
			AdminExpiresAt: tp(base.Add(48 * time.Hour))}
		must(t, "CreateAPIKey", s.CreateAPIKey(ctx, k))
		if k.ID == 0 || k.Status != store.StatusActive || k.CreatedAt.IsZero() {
			t.Fatalf("CreateAPIKey: %+v", k)
		}
		got, err := s.GetAPIKey(ctx, k.ID)
		must(t, "GetAPIKey", err)
		equal(t, "GetAPIKey", got, k)
	})

	t.Run("TakenHashIsConflict", func(t *testing.T) {
		k := MustAPIKey(t, s, u.ID, g.ID)
		wantErr(t, "CreateAPIKey", s.CreateAPIKey(ctx, &store.APIKey{UserID: u.ID, GroupID: g.ID, Hash: k.Hash}), store.ErrConflict)
	})

	t.Run("UnknownUserGroupOrEmptyHashIsInvalid", func(t *testing.T) {
		wantErr(t, "user", s.CreateAPIKey(ctx, &store.APIKey{UserID: 987654321, GroupID: g.ID, Hash: randomHash()}), store.ErrInvalid)
		wantErr(t, "group", s.CreateAPIKey(ctx, &store.APIKey{UserID: u.ID, GroupID: 987654321, Hash: randomHash()}), store.ErrInvalid)
		wantErr(t, "hash", s.CreateAPIKey(ctx, &store.APIKey{UserID: u.ID, GroupID: g.ID}), store.ErrInvalid)
	})

	t.Run("UpdateWritesItsFieldsOnly", func(t *testing.T) {
		k := MustAPIKey(t, s, u.ID, g.ID)
		g2 := MustGroup(t, s, store.BillingBalance)
		upd := *k
		upd.Name, upd.GroupID, upd.Status, upd.Concurrency, upd.ExpiresAt = "renamed", g2.ID, store.StatusDisabled, 7, tp(base)
		upd.Hash, upd.Prefix = randomHash(), "fk-other"
		must(t, "UpdateAPIKey", s.UpdateAPIKey(ctx, &upd))
		got, err := s.GetAPIKey(ctx, k.ID)
		must(t, "GetAPIKey", err)
		equal(t, "updated fields", []any{got.Name, got.GroupID, got.Status, got.Concurrency, *got.ExpiresAt},
			[]any{"renamed", g2.ID, store.StatusDisabled, 7, base})
		equal(t, "hash and prefix kept", []any{got.Hash, got.Prefix}, []any{k.Hash, k.Prefix})
		upd.AdminDisabled, upd.AdminConcurrency, upd.AdminExpiresAt = true, 3, tp(base.Add(time.Hour))
		must(t, "UpdateAPIKey setting admin limits", s.UpdateAPIKey(ctx, &upd))
		got, _ = s.GetAPIKey(ctx, k.ID)
		equal(t, "admin limits", []any{got.AdminDisabled, got.AdminConcurrency, *got.AdminExpiresAt},
			[]any{true, 3, base.Add(time.Hour)})
		upd.ExpiresAt, upd.AdminDisabled, upd.AdminConcurrency, upd.AdminExpiresAt = nil, false, 0, nil
		must(t, "UpdateAPIKey clearing expiry and limits", s.UpdateAPIKey(ctx, &upd))
		got, _ = s.GetAPIKey(ctx, k.ID)
		if got.ExpiresAt != nil || got.AdminDisabled || got.AdminConcurrency != 0 || got.AdminExpiresAt != nil {
			t.Fatalf("key = %+v, want no expiry and no admin limits", got)
		}
	})

	t.Run("MissingKeyIsNotFound", func(t *testing.T) {
		_, err := s.GetAPIKey(ctx, 987654321)
		wantErr(t, "GetAPIKey", err, store.ErrNotFound)
		wantErr(t, "UpdateAPIKey", s.UpdateAPIKey(ctx, &store.APIKey{ID: 987654321, GroupID: g.ID, Status: store.StatusActive}), store.ErrNotFound)
		wantErr(t, "DeleteAPIKey", s.DeleteAPIKey(ctx, 987654321), store.ErrNotFound)
	})

	t.Run("DeleteRemovesTheKey", func(t *testing.T) {
		k := MustAPIKey(t, s, u.ID, g.ID)
		must(t, "DeleteAPIKey", s.DeleteAPIKey(ctx, k.ID))
		_, err := s.KeyAuthByHash(ctx, k.Hash)
		wantErr(t, "KeyAuthByHash after delete", err, store.ErrNotFound)
	})

	t.Run("ListByUserOrAll", func(t *testing.T) {
		s := open(t)
		a, b := MustUser(t, s), MustUser(t, s)
		g := MustGroup(t, s, store.BillingBalance)
		k1, k2, k3 := MustAPIKey(t, s, a.ID, g.ID), MustAPIKey(t, s, b.ID, g.ID), MustAPIKey(t, s, a.ID, g.ID)
		page, total, err := s.ListAPIKeys(ctx, a.ID, store.Page{})
		must(t, "ListAPIKeys", err)
		equal(t, "user's keys", []any{total, page[0].ID, page[1].ID}, []any{2, k1.ID, k3.ID})
		page, total, err = s.ListAPIKeys(ctx, 0, store.Page{})
		must(t, "ListAPIKeys all", err)
		equal(t, "all keys", []any{total, len(page), page[1].ID}, []any{3, 3, k2.ID})
	})

	t.Run("TouchSetsLastUsedAndNeverMovesItBack", func(t *testing.T) {
		k1, k2 := MustAPIKey(t, s, u.ID, g.ID), MustAPIKey(t, s, u.ID, g.ID)
		later := base.Add(time.Hour)
		must(t, "TouchAPIKeys", s.TouchAPIKeys(ctx, map[int64]time.Time{k1.ID: later, k2.ID: base, 987654321: base}))
		must(t, "TouchAPIKeys older", s.TouchAPIKeys(ctx, map[int64]time.Time{k1.ID: base}))
		got1, _ := s.GetAPIKey(ctx, k1.ID)
		got2, _ := s.GetAPIKey(ctx, k2.ID)
		equal(t, "last used", []time.Time{*got1.LastUsedAt, *got2.LastUsedAt}, []time.Time{later, base})
		must(t, "TouchAPIKeys empty", s.TouchAPIKeys(ctx, nil))
	})
}

func testKeyAuth(t *testing.T, open Open) {
	s := open(t)
	ctx := ctxT(t)
	u := MustUser(t, s, func(u *store.User) { u.Balance = 123 })

	t.Run("ReturnsKeyUserAndGroup", func(t *testing.T) {
		g := MustGroup(t, s, store.BillingBalance)
		k := MustAPIKey(t, s, u.ID, g.ID)
		ka, err := s.KeyAuthByHash(ctx, k.Hash)
		must(t, "KeyAuthByHash", err)
		equal(t, "key", ka.Key, *k)
		equal(t, "user", ka.User, *u)
		equal(t, "group", ka.Group, *g)
		if ka.Subscription != nil {
			t.Fatalf("balance group returned a subscription: %+v", ka.Subscription)
		}
	})

	t.Run("UnknownHashIsNotFound", func(t *testing.T) {
		_, err := s.KeyAuthByHash(ctx, randomHash())
		wantErr(t, "KeyAuthByHash", err, store.ErrNotFound)
	})

	t.Run("DisabledOrExpiredKeysAreStillReturned", func(t *testing.T) {
		g := MustGroup(t, s, store.BillingBalance)
		k := MustAPIKey(t, s, u.ID, g.ID)
		k.Status, k.ExpiresAt = store.StatusDisabled, tp(base.Add(-time.Hour))
		must(t, "UpdateAPIKey", s.UpdateAPIKey(ctx, k))
		ka, err := s.KeyAuthByHash(ctx, k.Hash)
		must(t, "KeyAuthByHash", err)
		equal(t, "status and expiry", []any{ka.Key.Status, *ka.Key.ExpiresAt}, []any{store.StatusDisabled, *k.ExpiresAt})
	})

	t.Run("SubscriptionGroupCarriesTheActiveSubscription", func(t *testing.T) {
		g := MustGroup(t, s, store.BillingSubscription)
		k := MustAPIKey(t, s, u.ID, g.ID)
		ka, err := s.KeyAuthByHash(ctx, k.Hash)
		must(t, "KeyAuthByHash", err)
		if ka.Subscription != nil {
			t.Fatalf("no subscription yet, got %+v", ka.Subscription)
		}
		sub := &store.Subscription{UserID: u.ID, GroupID: g.ID, StartsAt: time.Now().Add(-time.Hour).UTC().Truncate(time.Microsecond),
			ExpiresAt: time.Now().Add(24 * time.Hour).UTC().Truncate(time.Microsecond), DailyUsed: 5}
		must(t, "CreateSubscription", s.CreateSubscription(ctx, sub))
		ka, err = s.KeyAuthByHash(ctx, k.Hash)
		must(t, "KeyAuthByHash", err)
		if ka.Subscription == nil {
			t.Fatal("active subscription missing")
		}
		equal(t, "subscription", *ka.Subscription, *sub)

		sub.ExpiresAt = time.Now().Add(-time.Minute).UTC()
		must(t, "UpdateSubscription", s.UpdateSubscription(ctx, sub))
		ka, err = s.KeyAuthByHash(ctx, k.Hash)
		must(t, "KeyAuthByHash", err)
		if ka.Subscription != nil {
			t.Fatalf("expired subscription returned: %+v", ka.Subscription)
		}
		sub.ExpiresAt, sub.Status = time.Now().Add(time.Hour).UTC(), store.StatusDisabled
		must(t, "UpdateSubscription", s.UpdateSubscription(ctx, sub))
		ka, err = s.KeyAuthByHash(ctx, k.Hash)
		must(t, "KeyAuthByHash", err)
		if ka.Subscription != nil {
			t.Fatalf("disabled subscription returned: %+v", ka.Subscription)
		}
	})
}
