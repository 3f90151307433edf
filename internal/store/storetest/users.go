package storetest

import (
	"strings"
	"sync"
	"testing"

	"github.com/fluxcode/fluxcode/internal/store"
)

func testUsers(t *testing.T, open Open) {
	s := open(t)
	ctx := ctxT(t)

	t.Run("CreateThenGetReturnsTheSameUser", func(t *testing.T) {
		u := &store.User{Email: "alice-" + unique() + "@example.test", PasswordHash: "$argon2id$x", Balance: 1500, Concurrency: 3}
		must(t, "CreateUser", s.CreateUser(ctx, u))
		if u.ID == 0 || u.CreatedAt.IsZero() || !u.UpdatedAt.Equal(u.CreatedAt) {
			t.Fatalf("CreateUser did not set ID and timestamps: %+v", u)
		}
		equal(t, "defaults", []string{u.Role, u.Status}, []string{store.RoleUser, store.StatusActive})
		got, err := s.GetUser(ctx, u.ID)
		must(t, "GetUser", err)
		equal(t, "GetUser", got, u)
		got, err = s.GetUserByEmail(ctx, strings.ToUpper(u.Email))
		must(t, "GetUserByEmail (other case)", err)
		equal(t, "GetUserByEmail", got, u)
	})

	t.Run("TakenEmailIsConflictWhateverTheCase", func(t *testing.T) {
		u := MustUser(t, s)
		err := s.CreateUser(ctx, &store.User{Email: strings.ToUpper(u.Email)})
		wantErr(t, "CreateUser with a taken email", err, store.ErrConflict)
	})

	t.Run("UnknownRoleOrStatusIsInvalid", func(t *testing.T) {
		wantErr(t, "role", s.CreateUser(ctx, &store.User{Email: unique() + "@x.test", Role: "root"}), store.ErrInvalid)
		wantErr(t, "status", s.CreateUser(ctx, &store.User{Email: unique() + "@x.test", Status: "sleeping"}), store.ErrInvalid)
		wantErr(t, "empty email", s.CreateUser(ctx, &store.User{}), store.ErrInvalid)
	})

	t.Run("MissingUserIsNotFound", func(t *testing.T) {
		_, err := s.GetUser(ctx, 987654321)
		wantErr(t, "GetUser", err, store.ErrNotFound)
		_, err = s.GetUserByEmail(ctx, "nobody-"+unique()+"@example.test")
		wantErr(t, "GetUserByEmail", err, store.ErrNotFound)
		wantErr(t, "UpdateUser", s.UpdateUser(ctx, &store.User{ID: 987654321, Email: "a@b.c", Role: "user", Status: "active"}), store.ErrNotFound)
		wantErr(t, "SetPassword", s.SetPassword(ctx, 987654321, "h"), store.ErrNotFound)
		wantErr(t, "RevokeTokens", s.RevokeTokens(ctx, 987654321), store.ErrNotFound)
		wantErr(t, "DeleteUser", s.DeleteUser(ctx, 987654321), store.ErrNotFound)
	})

	t.Run("UpdateWritesProfileButNeverBalanceOrPassword", func(t *testing.T) {
		u := MustUser(t, s, func(u *store.User) { u.Balance = 700 })
		upd := *u
		upd.Email = "renamed-" + unique() + "@example.test"
		upd.Role = store.RoleAdmin
		upd.Status = store.StatusDisabled
		upd.Concurrency = 9
		upd.Balance = 1
		upd.PasswordHash = "changed"
		must(t, "UpdateUser", s.UpdateUser(ctx, &upd))
		got, err := s.GetUser(ctx, u.ID)
		must(t, "GetUser", err)
		equal(t, "profile", []any{got.Email, got.Role, got.Status, got.Concurrency},
			[]any{upd.Email, store.RoleAdmin, store.StatusDisabled, 9})
		equal(t, "balance and hash", []any{got.Balance, got.PasswordHash}, []any{store.Nanos(700), u.PasswordHash})
	})

	t.Run("UpdateToTakenEmailIsConflict", func(t *testing.T) {
		a, b := MustUser(t, s), MustUser(t, s)
		b.Email = a.Email
		wantErr(t, "UpdateUser", s.UpdateUser(ctx, b), store.ErrConflict)
	})

	t.Run("SetPasswordStoresHashAndBumpsTokenVersion", func(t *testing.T) {
		u := MustUser(t, s)
		must(t, "SetPassword", s.SetPassword(ctx, u.ID, "new-hash"))
		must(t, "SetPassword", s.SetPassword(ctx, u.ID, "newer-hash"))
		got, err := s.GetUser(ctx, u.ID)
		must(t, "GetUser", err)
		equal(t, "hash and version", []any{got.PasswordHash, got.TokenVersion}, []any{"newer-hash", u.TokenVersion + 2})
	})

	t.Run("RevokeTokensBumpsTokenVersion", func(t *testing.T) {
		u := MustUser(t, s)
		must(t, "RevokeTokens", s.RevokeTokens(ctx, u.ID))
		got, err := s.GetUser(ctx, u.ID)
		must(t, "GetUser", err)
		equal(t, "hash and version", []any{got.PasswordHash, got.TokenVersion}, []any{u.PasswordHash, u.TokenVersion + 1})
	})

	// Re-enabling a user must not revive the tokens they held when disabled.
	t.Run("DisablingBumpsTokenVersionOnce", func(t *testing.T) {
		u := MustUser(t, s)
		upd := *u
		upd.Concurrency = 3
		must(t, "UpdateUser (still active)", s.UpdateUser(ctx, &upd))
		equal(t, "version after a profile change", upd.TokenVersion, u.TokenVersion)
		upd.Status = store.StatusDisabled
		must(t, "UpdateUser (disable)", s.UpdateUser(ctx, &upd))
		must(t, "UpdateUser (disabled again)", s.UpdateUser(ctx, &upd))
		upd.Status = store.StatusActive
		must(t, "UpdateUser (enable)", s.UpdateUser(ctx, &upd))
		got, err := s.GetUser(ctx, u.ID)
		must(t, "GetUser", err)
		equal(t, "version after disable and enable", []any{got.TokenVersion, upd.TokenVersion},
			[]any{u.TokenVersion + 1, u.TokenVersion + 1})
	})

	t.Run("DeleteRemovesTheUserAndTheirKeys", func(t *testing.T) {
		u := MustUser(t, s)
		k := MustAPIKey(t, s, u.ID, MustGroup(t, s, store.BillingBalance).ID)
		must(t, "DeleteUser", s.DeleteUser(ctx, u.ID))
		_, err := s.GetUser(ctx, u.ID)
		wantErr(t, "GetUser after delete", err, store.ErrNotFound)
		_, err = s.GetAPIKey(ctx, k.ID)
		wantErr(t, "GetAPIKey after its user was deleted", err, store.ErrNotFound)
	})

	t.Run("ListPagesInIDOrderWithTotal", func(t *testing.T) {
		s := open(t)
		var ids []int64
		for range 25 {
			ids = append(ids, MustUser(t, s).ID)
		}
		page, total, err := s.ListUsers(ctx, store.Page{})
		must(t, "ListUsers", err)
		equal(t, "default page", []int{len(page), total}, []int{20, 25})
		page, total, err = s.ListUsers(ctx, store.Page{Offset: 22, Limit: 5})
		must(t, "ListUsers", err)
		equal(t, "total", total, 25)
		equal(t, "last page ids", []int64{page[0].ID, page[1].ID, page[2].ID}, ids[22:])
		page, _, err = s.ListUsers(ctx, store.Page{Offset: 40})
		must(t, "ListUsers beyond the end", err)
		equal(t, "page beyond the end", len(page), 0)
		page, _, err = s.ListUsers(ctx, store.Page{Limit: 1000})
		must(t, "ListUsers", err)
		equal(t, "oversized limit returns all 25 (capped at 200)", len(page), 25)
	})

	t.Run("CountAdminsCountsOnlyAdmins", func(t *testing.T) {
		s := open(t)
		MustUser(t, s)
		MustUser(t, s, func(u *store.User) { u.Role = store.RoleAdmin })
		MustUser(t, s, func(u *store.User) { u.Role = store.RoleAdmin })
		n, err := s.CountAdmins(ctx)
		must(t, "CountAdmins", err)
		equal(t, "admins", n, 2)
	})
}

func testFirstAdmin(t *testing.T, open Open) {
	ctx := ctxT(t)
	t.Run("SecondCallCreatesNothing", func(t *testing.T) {
		s := open(t)
		MustUser(t, s) // an ordinary user does not count
		first := &store.User{Email: "root-" + unique() + "@example.test", PasswordHash: "h"}
		created, err := s.CreateFirstAdmin(ctx, first)
		must(t, "CreateFirstAdmin", err)
		if !created || first.ID == 0 || first.Role != store.RoleAdmin {
			t.Fatalf("first call: created=%v user=%+v, want a new admin", created, first)
		}
		created, err = s.CreateFirstAdmin(ctx, &store.User{Email: "other-" + unique() + "@example.test"})
		must(t, "CreateFirstAdmin again", err)
		if created {
			t.Fatal("second CreateFirstAdmin created another admin")
		}
		n, _ := s.CountAdmins(ctx)
		equal(t, "admins", n, 1)
	})

	t.Run("TenConcurrentCallersCreateExactlyOne", func(t *testing.T) {
		s := open(t)
		const callers = 10
		var wg sync.WaitGroup
		createdBy := make([]bool, callers)
		errs := make([]error, callers)
		for i := range callers {
			wg.Go(func() {
				u := &store.User{Email: "admin-" + unique() + "@example.test", PasswordHash: "h"}
				createdBy[i], errs[i] = s.CreateFirstAdmin(ctx, u)
			})
		}
		wg.Wait()
		n := 0
		for i := range callers {
			must(t, "CreateFirstAdmin", errs[i])
			if createdBy[i] {
				n++
			}
		}
		equal(t, "callers told they created the admin", n, 1)
		admins, err := s.CountAdmins(ctx)
		must(t, "CountAdmins", err)
		equal(t, "admins in the store", admins, 1)
	})
}

func testBalance(t *testing.T, open Open) {
	s := open(t)
	ctx := ctxT(t)

	t.Run("AdjustRecordsTransactionAndMovesBalance", func(t *testing.T) {
		u := MustUser(t, s, func(u *store.User) { u.Balance = 100 })
		credit := &store.BalanceTransaction{UserID: u.ID, Amount: 5_000, Note: "top-up", CreatedBy: 1}
		bal, err := s.AdjustBalance(ctx, credit)
		must(t, "AdjustBalance credit", err)
		equal(t, "balance after credit", bal, store.Nanos(5_100))
		bal, err = s.AdjustBalance(ctx, &store.BalanceTransaction{UserID: u.ID, Amount: -7_000, Note: "refund reversal"})
		must(t, "AdjustBalance debit", err)
		equal(t, "balance after debit (may go negative)", bal, store.Nanos(-1_900))
		got, _ := s.GetUser(ctx, u.ID)
		equal(t, "stored balance", got.Balance, store.Nanos(-1_900))
		if credit.ID == 0 || credit.CreatedAt.IsZero() {
			t.Fatalf("AdjustBalance did not set ID and CreatedAt: %+v", credit)
		}
		list, total, err := s.ListBalanceTransactions(ctx, u.ID, store.Page{})
		must(t, "ListBalanceTransactions", err)
		equal(t, "total", total, 2)
		equal(t, "newest first", []store.Nanos{list[0].Amount, list[1].Amount}, []store.Nanos{-7_000, 5_000})
		equal(t, "oldest", list[1], *credit)
	})

	t.Run("ZeroAmountIsInvalid", func(t *testing.T) {
		u := MustUser(t, s)
		_, err := s.AdjustBalance(ctx, &store.BalanceTransaction{UserID: u.ID})
		wantErr(t, "AdjustBalance", err, store.ErrInvalid)
	})

	t.Run("MissingUserIsNotFoundAndRecordsNothing", func(t *testing.T) {
		_, err := s.AdjustBalance(ctx, &store.BalanceTransaction{UserID: 987654321, Amount: 10})
		wantErr(t, "AdjustBalance", err, store.ErrNotFound)
		_, total, err := s.ListBalanceTransactions(ctx, 987654321, store.Page{})
		must(t, "ListBalanceTransactions", err)
		equal(t, "transactions", total, 0)
	})

	t.Run("ConcurrentAdjustmentsAreAllKept", func(t *testing.T) {
		u := MustUser(t, s)
		var wg sync.WaitGroup
		for range 20 {
			wg.Go(func() {
				if _, err := s.AdjustBalance(ctx, &store.BalanceTransaction{UserID: u.ID, Amount: 1_000}); err != nil {
					t.Errorf("AdjustBalance: %v", err)
				}
			})
		}
		wg.Wait()
		got, _ := s.GetUser(ctx, u.ID)
		equal(t, "balance", got.Balance, store.Nanos(20_000))
	})

	t.Run("ListWithoutUserListsEveryone", func(t *testing.T) {
		s := open(t)
		a, b := MustUser(t, s), MustUser(t, s)
		for _, id := range []int64{a.ID, b.ID, a.ID} {
			_, err := s.AdjustBalance(ctx, &store.BalanceTransaction{UserID: id, Amount: 1})
			must(t, "AdjustBalance", err)
		}
		_, total, err := s.ListBalanceTransactions(ctx, 0, store.Page{})
		must(t, "ListBalanceTransactions", err)
		equal(t, "all transactions", total, 3)
		page, total, err := s.ListBalanceTransactions(ctx, a.ID, store.Page{Limit: 1})
		must(t, "ListBalanceTransactions", err)
		equal(t, "user's total and page", []int{total, len(page)}, []int{2, 1})
	})
}
