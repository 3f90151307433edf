package storetest

import (
	"testing"
	"time"

	"github.com/fluxcode/fluxcode/internal/store"
)

// testLogins: the writes a token refresh makes (credentials guarded by their version), the
// usage windows, and the fenced record of background job runs.
func testLogins(t *testing.T, open Open) {
	s := open(t)
	ctx := ctxT(t)

	oauth := func(t *testing.T) *store.Account {
		a := newAccount(nil)
		a.Type = store.AccountTypeOAuth
		a.Credentials = store.Credentials{AccessToken: "at-0", RefreshToken: "rt-0", ExpiresAt: base}
		must(t, "CreateAccount", s.CreateAccount(ctx, a))
		return a
	}

	t.Run("OnlyTheWriterOfTheReadVersionWins", func(t *testing.T) {
		a := oauth(t)
		equal(t, "version of a new account", a.CredentialsVersion, int64(0))
		newer := store.Credentials{AccessToken: "at-1", RefreshToken: "rt-1", ExpiresAt: base.Add(time.Hour)}
		v, err := s.UpdateCredentials(ctx, a.ID, newer, 0)
		must(t, "UpdateCredentials", err)
		equal(t, "new version", v, int64(1))
		// A second writer that read version 0 (an older token) loses.
		_, err = s.UpdateCredentials(ctx, a.ID, store.Credentials{AccessToken: "stale"}, 0)
		wantErr(t, "UpdateCredentials from an old read", err, store.ErrConflict)
		got, err := s.GetAccount(ctx, a.ID)
		must(t, "GetAccount", err)
		equal(t, "stored", []any{got.Credentials, got.CredentialsVersion}, []any{newer, int64(1)})
		_, err = s.UpdateCredentials(ctx, 987654321, newer, 0)
		wantErr(t, "UpdateCredentials of a missing account", err, store.ErrNotFound)
	})

	t.Run("AnEditFromAnOlderReadKeepsTheRefreshedToken", func(t *testing.T) {
		a := oauth(t)
		snapshot, err := s.GetAccount(ctx, a.ID) // an admin's form, read at version 0
		must(t, "GetAccount", err)
		_, err = s.UpdateCredentials(ctx, a.ID, store.Credentials{AccessToken: "at-1", RefreshToken: "rt-1"}, 0)
		must(t, "UpdateCredentials", err)
		snapshot.Name = "renamed"
		must(t, "UpdateAccount", s.UpdateAccount(ctx, snapshot))
		got, err := s.GetAccount(ctx, a.ID)
		must(t, "GetAccount", err)
		equal(t, "after the edit", []any{got.Name, got.Credentials.RefreshToken, got.CredentialsVersion},
			[]any{"renamed", "rt-1", int64(1)})
		// An edit that replaces the credentials, from the current version, bumps it.
		got.Credentials = store.Credentials{AccessToken: "admin", RefreshToken: "admin-rt"}
		must(t, "UpdateAccount", s.UpdateAccount(ctx, got))
		equal(t, "version after a credential edit", got.CredentialsVersion, int64(2))
		again, err := s.GetAccount(ctx, a.ID)
		must(t, "GetAccount", err)
		equal(t, "stored", []any{again.Credentials.RefreshToken, again.CredentialsVersion}, []any{"admin-rt", int64(2)})
	})

	t.Run("WindowsRoundTrip", func(t *testing.T) {
		a := oauth(t)
		w := store.UsageWindows{Status: "allowed_warning", UpdatedAt: base, Windows: []store.UsageWindow{
			{Name: "5h", Utilization: 0.96, ResetsAt: base.Add(time.Hour), Status: "allowed_warning"},
			{Name: "7d", Utilization: 0.4, ResetsAt: base.Add(72 * time.Hour)}}}
		must(t, "SetAccountWindows", s.SetAccountWindows(ctx, a.ID, w))
		got, err := s.GetAccount(ctx, a.ID)
		must(t, "GetAccount", err)
		equal(t, "windows", got.Windows, &w)
		wantErr(t, "SetAccountWindows of a missing account", s.SetAccountWindows(ctx, 987654321, w), store.ErrNotFound)
	})

	t.Run("AJobRunUnderAnOlderLeaseIsRefused", func(t *testing.T) {
		run := store.JobRun{Name: "refresh", Fence: 5, Node: "n1", StartedAt: base, FinishedAt: base.Add(time.Second), Result: "2 refreshed"}
		must(t, "RecordJobRun", s.RecordJobRun(ctx, run))
		stale := run
		stale.Fence, stale.Node, stale.Result = 4, "n0", "stale"
		wantErr(t, "RecordJobRun with an older fence", s.RecordJobRun(ctx, stale), store.ErrConflict)
		next := run
		next.StartedAt, next.Result, next.Error = base.Add(time.Minute), "", "token endpoint down"
		must(t, "RecordJobRun with the same fence", s.RecordJobRun(ctx, next))
		must(t, "RecordJobRun of another job", s.RecordJobRun(ctx, store.JobRun{Name: "cleanup", Fence: 1, StartedAt: base, FinishedAt: base}))
		runs, err := s.ListJobRuns(ctx)
		must(t, "ListJobRuns", err)
		equal(t, "runs", runs, []store.JobRun{{Name: "cleanup", Fence: 1, StartedAt: base, FinishedAt: base}, next})
	})
}
