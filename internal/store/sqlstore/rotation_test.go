package sqlstore_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/fluxcode/fluxcode/internal/secret"
	"github.com/fluxcode/fluxcode/internal/store"
	"github.com/fluxcode/fluxcode/internal/store/sqlstore"
	"github.com/fluxcode/fluxcode/internal/store/storetest"
)

func ringOf(t *testing.T, cur []byte, prev ...[]byte) *secret.Keys {
	t.Helper()
	k, err := secret.NewKeyRing(cur, prev...)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newMaster(t *testing.T) []byte {
	t.Helper()
	m, err := secret.ParseMasterKey(secret.NewMasterKey())
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func openWith(t *testing.T, dsn string, keys *secret.Keys) *sqlstore.DB {
	t.Helper()
	db, err := sqlstore.Open(context.Background(), sqlstore.Config{DSN: dsn, Keys: keys, MaxOpenConns: 4, Logger: quiet})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// sealedKeyIDs counts the stored sealed values per key id, read from the raw columns.
func sealedKeyIDs(t *testing.T, db *sqlstore.DB) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, q := range []string{"SELECT credentials FROM accounts", "SELECT password FROM proxies",
		"SELECT secret FROM user_totp", "SELECT pending_secret FROM user_totp", "SELECT value FROM settings WHERE key LIKE 'system.%'"} {
		rows, err := db.RawDB().QueryContext(t.Context(), q)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var v string
			if err := rows.Scan(&v); err != nil {
				t.Fatal(err)
			}
			if id := secret.SealedKeyID(v); id != "" {
				out[id]++
			}
		}
		rows.Close()
	}
	return out
}

// TestRotateEncryptionKey: data sealed under A; a node started with ENCRYPTION_KEY=B and
// ENCRYPTION_KEY_PREVIOUS=A reads everything; the rotation re-seals everything under B while
// another node keeps writing; then B alone reads everything.
func TestRotateEncryptionKey(t *testing.T) {
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			ctx := t.Context()
			dsn := d.dsn(t)
			a, b := newMaster(t), newMaster(t)
			keysA, keysBA, keysB := ringOf(t, a), ringOf(t, b, a), ringOf(t, b)

			old := openWith(t, dsn, keysA)
			const n = 7 // more than one batch of 3
			var accounts []*store.Account
			for i := range n {
				acct := &store.Account{Name: fmt.Sprintf("acct-%d", i), Platform: store.PlatformAnthropic, Type: store.AccountTypeOAuth,
					Credentials: store.Credentials{AccessToken: fmt.Sprintf("sk-ant-oat-%d", i), RefreshToken: fmt.Sprintf("rt-%d", i)}, Schedulable: true}
				if err := old.CreateAccount(ctx, acct); err != nil {
					t.Fatal(err)
				}
				accounts = append(accounts, acct)
			}
			proxy := &store.Proxy{Protocol: "socks5", Host: "127.0.0.1", Port: 1080, Username: "u", Password: "proxy-pw"}
			if err := old.CreateProxy(ctx, proxy); err != nil {
				t.Fatal(err)
			}
			u := storetest.MustUser(t, old)
			if err := old.SetPendingTOTP(ctx, u.ID, "JBSWY3DPEHPK3PXP"); err != nil {
				t.Fatal(err)
			}
			if err := old.EnableTOTP(ctx, u.ID, "JBSWY3DPEHPK3PXP", 1, nil); err != nil {
				t.Fatal(err)
			}
			if err := old.SetSetting(ctx, "system.jwt_secret", keysA.SealString("jwt-secret-value")); err != nil {
				t.Fatal(err)
			}
			if got := sealedKeyIDs(t, old); got[keysA.KeyID()] != n+3 || len(got) != 1 {
				t.Fatalf("before: sealed values per key %v, want %d under A", got, n+3)
			}

			// Two nodes with the new ring: one rotates, the other serves and writes.
			rotator, server := openWith(t, dsn, keysBA), openWith(t, dsn, keysBA)
			checkAll := func(st store.Store, when string) {
				t.Helper()
				for _, want := range accounts {
					got, err := st.GetAccount(ctx, want.ID)
					if err != nil {
						t.Fatalf("%s: GetAccount: %v", when, err)
					}
					if got.Credentials.AccessToken != want.Credentials.AccessToken || got.Credentials.RefreshToken != want.Credentials.RefreshToken {
						t.Fatalf("%s: account %d credentials %+v, want %+v", when, want.ID, got.Credentials, want.Credentials)
					}
				}
				p, err := st.GetProxy(ctx, proxy.ID)
				if err != nil || p.Password != "proxy-pw" {
					t.Fatalf("%s: proxy password %v", when, err)
				}
				tt, err := st.GetTOTP(ctx, u.ID)
				if err != nil || tt.Secret != "JBSWY3DPEHPK3PXP" {
					t.Fatalf("%s: totp secret %v", when, err)
				}
			}
			checkAll(server, "ring B+A before the rotation")

			var wg sync.WaitGroup
			wg.Go(func() {
				// An admin rotates a token on a serving node while the rotation runs.
				accounts[3].Credentials.AccessToken = "sk-ant-oat-new"
				if err := server.UpdateAccount(ctx, accounts[3]); err != nil {
					t.Errorf("UpdateAccount during rotation: %v", err)
				}
			})
			rep, err := rotator.ResealSecrets(ctx, 3)
			wg.Wait()
			if err != nil {
				t.Fatalf("ResealSecrets: %v", err)
			}
			if rep.Resealed < n+2 { // the concurrent update may have re-sealed account 3 itself
				t.Fatalf("ResealSecrets = %+v, want at least %d re-sealed", rep, n+2)
			}
			if got := sealedKeyIDs(t, rotator); got[keysB.KeyID()] != n+3 || len(got) != 1 {
				t.Fatalf("after: sealed values per key %v, want all %d under B", got, n+3)
			}
			again, err := rotator.ResealSecrets(ctx, 3)
			if err != nil || again.Resealed != 0 {
				t.Fatalf("second ResealSecrets = %+v, %v; want nothing to do", again, err)
			}

			onlyB := openWith(t, dsn, keysB)
			checkAll(onlyB, "B alone after the rotation")
			jwt, err := onlyB.GetSetting(ctx, "system.jwt_secret")
			if err != nil {
				t.Fatal(err)
			}
			if v, err := keysB.OpenString(jwt); err != nil || v != "jwt-secret-value" {
				t.Fatalf("sealed setting under B: %q, %v", v, err)
			}
			// And A alone no longer can: the old key is retired.
			if _, err := openWith(t, dsn, keysA).GetAccount(ctx, accounts[0].ID); err == nil {
				t.Fatal("the retired key still opens the credentials")
			}
		})
	}
}
