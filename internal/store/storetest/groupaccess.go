package storetest

import (
	"testing"

	"github.com/fluxcode/fluxcode/internal/store"
)

func testGroupAccess(t *testing.T, open Open) {
	s := open(t)
	ctx := ctxT(t)

	t.Run("ExclusiveGroupIsUsableOnlyByAllowedUsers", func(t *testing.T) {
		g := MustGroup(t, s, store.BillingBalance)
		allowed, other := MustUser(t, s), MustUser(t, s)
		ka, kb := MustAPIKey(t, s, allowed.ID, g.ID), MustAPIKey(t, s, other.ID, g.ID)
		must(t, "SetUserGroups", s.SetUserGroups(ctx, allowed.ID, []int64{g.ID, g.ID}))

		check := func(when string, wantAllowed, wantOther bool) {
			t.Helper()
			for _, c := range []struct {
				u    *store.User
				k    *store.APIKey
				want bool
			}{{allowed, ka, wantAllowed}, {other, kb, wantOther}} {
				ok, err := s.MayUseGroup(ctx, c.u.ID, g.ID)
				must(t, "MayUseGroup", err)
				auth, err := s.KeyAuthByHash(ctx, c.k.Hash)
				must(t, "KeyAuthByHash", err)
				if ok != c.want || auth.Allowed != c.want {
					t.Fatalf("%s: user %d MayUseGroup=%v KeyAuth.Allowed=%v, want %v", when, c.u.ID, ok, auth.Allowed, c.want)
				}
			}
		}
		check("open group", true, true)

		g.Exclusive = true
		must(t, "UpdateGroup", s.UpdateGroup(ctx, g))
		got, err := s.GetGroup(ctx, g.ID)
		must(t, "GetGroup", err)
		equal(t, "GetGroup", got, g)
		check("exclusive group", true, false)

		must(t, "SetUserGroups", s.SetUserGroups(ctx, allowed.ID, nil))
		check("list emptied", false, false)
	})

	t.Run("SetReplacesTheListAndUnknownGroupChangesNothing", func(t *testing.T) {
		u := MustUser(t, s)
		g1, g2 := MustGroup(t, s, store.BillingBalance), MustGroup(t, s, store.BillingBalance)
		must(t, "SetUserGroups", s.SetUserGroups(ctx, u.ID, []int64{g2.ID, g1.ID}))
		ids, err := s.UserGroupIDs(ctx, u.ID)
		must(t, "UserGroupIDs", err)
		equal(t, "UserGroupIDs", ids, []int64{g1.ID, g2.ID})

		wantErr(t, "SetUserGroups unknown", s.SetUserGroups(ctx, u.ID, []int64{g1.ID, 987654321}), store.ErrInvalid)
		ids, err = s.UserGroupIDs(ctx, u.ID)
		must(t, "UserGroupIDs", err)
		equal(t, "UserGroupIDs after refused set", ids, []int64{g1.ID, g2.ID})

		must(t, "DeleteGroup", s.DeleteGroup(ctx, g2.ID))
		ids, err = s.UserGroupIDs(ctx, u.ID)
		must(t, "UserGroupIDs", err)
		equal(t, "UserGroupIDs after group deleted", ids, []int64{g1.ID})

		none, err := s.UserGroupIDs(ctx, MustUser(t, s).ID)
		must(t, "UserGroupIDs", err)
		equal(t, "UserGroupIDs of a user without any", none, []int64{})
	})

	t.Run("MissingGroupIsNotFound", func(t *testing.T) {
		_, err := s.MayUseGroup(ctx, MustUser(t, s).ID, 987654321)
		wantErr(t, "MayUseGroup", err, store.ErrNotFound)
	})
}
