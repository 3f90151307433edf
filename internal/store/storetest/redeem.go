package storetest

import (
	"errors"
	"sync"
	"testing"

	"github.com/fluxcode/fluxcode/internal/store"
)

func testRedeemCodes(t *testing.T, open Open) {
	s := open(t)
	ctx := ctxT(t)
	admin := MustUser(t, s, func(u *store.User) { u.Role = store.RoleAdmin })

	issue := func(t *testing.T, c store.RedeemCode) store.RedeemCode {
		t.Helper()
		c.Hash, c.Prefix, c.CreatedBy = randomHash(), "rc-test", admin.ID
		codes := []store.RedeemCode{c}
		must(t, "CreateRedeemCodes", s.CreateRedeemCodes(ctx, codes))
		return codes[0]
	}

	t.Run("CreateThenGetAndList", func(t *testing.T) {
		codes := []store.RedeemCode{
			{Hash: randomHash(), Prefix: "rc-a", Kind: store.RedeemBalance, Amount: 5, Note: "n", CreatedBy: admin.ID},
			{Hash: randomHash(), Prefix: "rc-b", Kind: store.RedeemConcurrency, Concurrency: 3},
		}
		must(t, "CreateRedeemCodes", s.CreateRedeemCodes(ctx, codes))
		if codes[0].ID == 0 || codes[1].ID <= codes[0].ID || codes[0].Status != store.StatusActive || codes[0].CreatedAt.IsZero() {
			t.Fatalf("CreateRedeemCodes set %+v", codes)
		}
		got, err := s.GetRedeemCode(ctx, codes[0].ID)
		must(t, "GetRedeemCode", err)
		equal(t, "GetRedeemCode", *got, codes[0])
		page, total, err := s.ListRedeemCodes(ctx, store.Page{Limit: 1})
		must(t, "ListRedeemCodes", err)
		if total < 2 || len(page) != 1 || page[0].ID != codes[1].ID {
			t.Fatalf("ListRedeemCodes: total %d, page %+v; want newest first", total, page)
		}
	})

	t.Run("ListFiltersByStatusSearchAndGroup", func(t *testing.T) {
		g := MustGroup(t, s, store.BillingSubscription)
		fresh := issue(t, store.RedeemCode{Kind: store.RedeemBalance, Amount: 1, Note: "Filter-Batch"})
		used := issue(t, store.RedeemCode{Kind: store.RedeemSubscription, GroupID: g.ID, Days: 1, Note: "filter-batch"})
		off := issue(t, store.RedeemCode{Kind: store.RedeemBalance, Amount: 1, Note: "filter-batch"})
		_, err := s.RedeemCode(ctx, used.Hash, MustUser(t, s).ID)
		must(t, "RedeemCode", err)
		must(t, "DisableRedeemCode", s.DisableRedeemCode(ctx, off.ID))
		for _, c := range []struct {
			f    store.ListFilter
			want []int64
		}{
			{store.ListFilter{Search: "FILTER-batch"}, []int64{off.ID, used.ID, fresh.ID}},
			{store.ListFilter{Search: "filter-batch", Status: store.StatusActive}, []int64{fresh.ID}},
			{store.ListFilter{Search: "filter-batch", Status: store.RedeemUsed}, []int64{used.ID}},
			{store.ListFilter{Search: "filter-batch", Status: store.StatusDisabled}, []int64{off.ID}},
			{store.ListFilter{GroupID: g.ID}, []int64{used.ID}},
		} {
			page, total, err := s.ListRedeemCodes(ctx, store.Page{Filter: c.f})
			must(t, "ListRedeemCodes", err)
			var ids []int64
			for _, p := range page {
				ids = append(ids, p.ID)
			}
			if total != len(c.want) {
				t.Errorf("ListRedeemCodes(%+v): total %d, want %d", c.f, total, len(c.want))
			}
			equal(t, "ListRedeemCodes ids", ids, c.want)
		}
	})

	t.Run("ABatchWithAWorthlessOrTakenCodeStoresNone", func(t *testing.T) {
		_, before, err := s.ListRedeemCodes(ctx, store.Page{})
		must(t, "ListRedeemCodes", err)
		taken := issue(t, store.RedeemCode{Kind: store.RedeemBalance, Amount: 1})
		wantErr(t, "worthless", s.CreateRedeemCodes(ctx, []store.RedeemCode{
			{Hash: randomHash(), Kind: store.RedeemBalance, Amount: 1},
			{Hash: randomHash(), Kind: store.RedeemBalance, Amount: 0}}), store.ErrInvalid)
		wantErr(t, "taken hash", s.CreateRedeemCodes(ctx, []store.RedeemCode{
			{Hash: randomHash(), Kind: store.RedeemBalance, Amount: 1},
			{Hash: taken.Hash, Kind: store.RedeemBalance, Amount: 1}}), store.ErrConflict)
		_, after, err := s.ListRedeemCodes(ctx, store.Page{})
		must(t, "ListRedeemCodes", err)
		equal(t, "codes stored", after, before+1)
	})

	t.Run("BalanceCodeCreditsThroughATransactionOnce", func(t *testing.T) {
		u := MustUser(t, s)
		c := issue(t, store.RedeemCode{Kind: store.RedeemBalance, Amount: 7_000})
		got, err := s.RedeemCode(ctx, c.Hash, u.ID)
		must(t, "RedeemCode", err)
		if got.ID != c.ID || got.UsedBy != u.ID || got.UsedAt == nil {
			t.Fatalf("RedeemCode = %+v", got)
		}
		_, err = s.RedeemCode(ctx, c.Hash, u.ID)
		wantErr(t, "second RedeemCode", err, store.ErrNotFound)
		fresh, err := s.GetUser(ctx, u.ID)
		must(t, "GetUser", err)
		equal(t, "balance", fresh.Balance, store.Nanos(7_000))
		txs, _, err := s.ListBalanceTransactions(ctx, u.ID, store.Page{})
		must(t, "ListBalanceTransactions", err)
		if len(txs) != 1 || txs[0].Amount != 7_000 || txs[0].CreatedBy != admin.ID {
			t.Fatalf("transactions = %+v", txs)
		}
	})

	t.Run("ConcurrencyCodeRaisesALimitAndLeavesUnlimitedAlone", func(t *testing.T) {
		limited := MustUser(t, s) // Concurrency 2
		unlimited := MustUser(t, s, func(u *store.User) { u.Concurrency = 0 })
		for _, u := range []*store.User{limited, unlimited} {
			c := issue(t, store.RedeemCode{Kind: store.RedeemConcurrency, Concurrency: 3})
			_, err := s.RedeemCode(ctx, c.Hash, u.ID)
			must(t, "RedeemCode", err)
		}
		for u, want := range map[*store.User]int{limited: 5, unlimited: 0} {
			fresh, err := s.GetUser(ctx, u.ID)
			must(t, "GetUser", err)
			equal(t, "concurrency", fresh.Concurrency, want)
		}
	})

	t.Run("SubscriptionCodeCreatesThenExtends", func(t *testing.T) {
		u := MustUser(t, s)
		g := MustGroup(t, s, store.BillingSubscription)
		first, err := s.RedeemCode(ctx, issue(t, store.RedeemCode{Kind: store.RedeemSubscription, GroupID: g.ID, Days: 10}).Hash, u.ID)
		must(t, "RedeemCode", err)
		sub, err := s.GetSubscription(ctx, u.ID, g.ID)
		must(t, "GetSubscription", err)
		if sub.Status != store.StatusActive || !sub.StartsAt.Equal(*first.UsedAt) || !sub.ExpiresAt.Equal(first.UsedAt.AddDate(0, 0, 10)) {
			t.Fatalf("subscription after one code = %+v, redeemed at %v", sub, first.UsedAt)
		}
		_, err = s.RedeemCode(ctx, issue(t, store.RedeemCode{Kind: store.RedeemSubscription, GroupID: g.ID, Days: 5}).Hash, u.ID)
		must(t, "RedeemCode", err)
		again, err := s.GetSubscription(ctx, u.ID, g.ID)
		must(t, "GetSubscription", err)
		equal(t, "extended end", again.ExpiresAt, sub.ExpiresAt.AddDate(0, 0, 5))
	})

	t.Run("AFailedGrantLeavesTheCodeUnused", func(t *testing.T) {
		u := MustUser(t, s)
		c := issue(t, store.RedeemCode{Kind: store.RedeemSubscription, GroupID: 987654321, Days: 1})
		_, err := s.RedeemCode(ctx, c.Hash, u.ID)
		wantErr(t, "RedeemCode for a missing group", err, store.ErrInvalid)
		got, err := s.GetRedeemCode(ctx, c.ID)
		must(t, "GetRedeemCode", err)
		if got.UsedAt != nil || got.UsedBy != 0 {
			t.Fatalf("code after a failed grant = %+v", got)
		}
	})

	t.Run("DisabledOrUnknownCodesAreNotFoundAndUsedCannotBeDisabled", func(t *testing.T) {
		u := MustUser(t, s)
		c := issue(t, store.RedeemCode{Kind: store.RedeemBalance, Amount: 1})
		must(t, "DisableRedeemCode", s.DisableRedeemCode(ctx, c.ID))
		_, err := s.RedeemCode(ctx, c.Hash, u.ID)
		wantErr(t, "RedeemCode of a disabled code", err, store.ErrNotFound)
		_, err = s.RedeemCode(ctx, randomHash(), u.ID)
		wantErr(t, "RedeemCode of an unknown code", err, store.ErrNotFound)
		used := issue(t, store.RedeemCode{Kind: store.RedeemBalance, Amount: 1})
		_, err = s.RedeemCode(ctx, used.Hash, u.ID)
		must(t, "RedeemCode", err)
		wantErr(t, "DisableRedeemCode of a used code", s.DisableRedeemCode(ctx, used.ID), store.ErrConflict)
		wantErr(t, "DisableRedeemCode of a missing code", s.DisableRedeemCode(ctx, 987654321), store.ErrNotFound)
	})

	t.Run("ConcurrentRedemptionsOfOneCodeSucceedOnce", func(t *testing.T) {
		users := []*store.User{MustUser(t, s), MustUser(t, s)}
		c := issue(t, store.RedeemCode{Kind: store.RedeemBalance, Amount: 1_000})
		var mu sync.Mutex
		wins := 0
		var wg sync.WaitGroup
		for i := range 16 {
			wg.Go(func() {
				_, err := s.RedeemCode(ctx, c.Hash, users[i%2].ID)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					wins++
				case !errors.Is(err, store.ErrNotFound):
					t.Errorf("RedeemCode: %v", err)
				}
			})
		}
		wg.Wait()
		equal(t, "successful redemptions", wins, 1)
		var total store.Nanos
		for _, u := range users {
			fresh, err := s.GetUser(ctx, u.ID)
			must(t, "GetUser", err)
			total += fresh.Balance
		}
		equal(t, "balance credited", total, store.Nanos(1_000))
	})
}
