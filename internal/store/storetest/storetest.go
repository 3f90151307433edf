// Package storetest is the contract suite of store.Store: every implementation runs it
// (sqlstore on SQLite and on PostgreSQL) so that both shapes of FluxCode behave alike.
package storetest

import (
	"context"
	"crypto/rand"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/fluxcode/fluxcode/internal/store"
)

// Open returns a new, empty, migrated store; the caller's cleanup closes it.
type Open func(t *testing.T) store.Store

// Run runs the whole contract suite. open is called once per area and for every race test,
// and must return an empty store each time.
func Run(t *testing.T, open Open) {
	t.Run("Users", func(t *testing.T) { testUsers(t, open) })
	t.Run("Balance", func(t *testing.T) { testBalance(t, open) })
	t.Run("FirstAdmin", func(t *testing.T) { testFirstAdmin(t, open) })
	t.Run("Groups", func(t *testing.T) { testGroups(t, open) })
	t.Run("APIKeys", func(t *testing.T) { testAPIKeys(t, open) })
	t.Run("KeyAuth", func(t *testing.T) { testKeyAuth(t, open) })
	t.Run("Proxies", func(t *testing.T) { testProxies(t, open) })
	t.Run("Accounts", func(t *testing.T) { testAccounts(t, open) })
	t.Run("Settings", func(t *testing.T) { testSettings(t, open) })
	t.Run("ErrorRules", func(t *testing.T) { testErrorRules(t, open) })
	t.Run("Subscriptions", func(t *testing.T) { testSubscriptions(t, open) })
	t.Run("RecordUsage", func(t *testing.T) { testRecordUsage(t, open) })
	t.Run("UsageQueries", func(t *testing.T) { testUsageQueries(t, open) })
	t.Run("TwoFactor", func(t *testing.T) { testTwoFactor(t, open) })
	t.Run("Audit", func(t *testing.T) { testAudit(t, open) })
	t.Run("AdminAPIKeys", func(t *testing.T) { testAdminAPIKeys(t, open) })
	t.Run("ListFilters", func(t *testing.T) { testListFilters(t, open) })
	t.Run("RequestOutcomes", func(t *testing.T) { testRequestOutcomes(t, open) })
	t.Run("Reseal", func(t *testing.T) { testReseal(t, open) })
	t.Run("Logins", func(t *testing.T) { testLogins(t, open) })
	t.Run("RedeemCodes", func(t *testing.T) { testRedeemCodes(t, open) })
	t.Run("GroupAccess", func(t *testing.T) { testGroupAccess(t, open) })
	t.Run("Maintenance", func(t *testing.T) { testMaintenance(t, open) })
	t.Run("Ping", func(t *testing.T) {
		if err := open(t).Ping(context.Background()); err != nil {
			t.Fatalf("Ping: %v", err)
		}
	})
}

// base is a fixed instant for rows that carry their own times (microsecond precision, as
// both databases keep).
var base = time.Date(2026, 3, 14, 9, 26, 53, 589793000, time.UTC)

func ctxT(t *testing.T) context.Context { return t.Context() }

// wantErr fails unless err matches want (errors.Is).
func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: got error %v, want %v", what, err, want)
	}
}

func must(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func equal(t *testing.T, what string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s:\n got  %+v\n want %+v", what, got, want)
	}
}

// unique returns a short random name part, so helpers never collide.
func unique() string { return rand.Text()[:10] }

func randomHash() []byte {
	b := make([]byte, 32)
	rand.Read(b)
	return b
}

func tp(t time.Time) *time.Time { return &t }

// MustUser creates a user with a unique email.
func MustUser(t *testing.T, s store.Store, mods ...func(*store.User)) *store.User {
	t.Helper()
	u := &store.User{Email: "user-" + unique() + "@example.test", PasswordHash: "x", Concurrency: 2}
	for _, m := range mods {
		m(u)
	}
	must(t, "CreateUser", s.CreateUser(ctxT(t), u))
	return u
}

// MustGroup creates a group with a unique name.
func MustGroup(t *testing.T, s store.Store, billing string) *store.Group {
	t.Helper()
	g := &store.Group{Name: "group-" + unique(), Platform: store.PlatformAnthropic,
		BillingType: billing, RateMultiplierPPM: 1_000_000}
	must(t, "CreateGroup", s.CreateGroup(ctxT(t), g))
	return g
}

// MustAPIKey creates a key for the user in the group.
func MustAPIKey(t *testing.T, s store.Store, userID, groupID int64) *store.APIKey {
	t.Helper()
	k := &store.APIKey{UserID: userID, GroupID: groupID, Name: "k", Hash: randomHash(), Prefix: "fk-test"}
	must(t, "CreateAPIKey", s.CreateAPIKey(ctxT(t), k))
	return k
}
