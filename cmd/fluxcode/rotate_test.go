package main

import (
	"bytes"
	"context"
	"io"
	"regexp"
	"strings"
	"testing"

	"github.com/fluxcode/fluxcode/internal/app"
	"github.com/fluxcode/fluxcode/internal/config"
	"github.com/fluxcode/fluxcode/internal/secret"
	"github.com/fluxcode/fluxcode/internal/store"
	"github.com/fluxcode/fluxcode/internal/store/sqlstore"
	"github.com/fluxcode/fluxcode/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// TestRotateKeyCommand rotates ENCRYPTION_KEY from A to B on a database written by a
// deployment that knew only A (and, like versions before the key ring, had no stored API key
// hash key): with B and A every secret reads, after `admin rotate-key` everything is sealed
// under B, and B alone still reads every secret and finds the API key issued under A.
func TestRotateKeyCommand(t *testing.T) {
	shapes := []struct {
		name string
		env  func(t *testing.T) map[string]string
	}{
		{"SingleNode", func(t *testing.T) map[string]string { return map[string]string{"DATA_DIR": t.TempDir()} }},
		// The cluster shape: PostgreSQL (Redis must be configured to pass validation; the
		// command does not connect to it).
		{"Cluster", func(t *testing.T) map[string]string {
			return map[string]string{"DATABASE_URL": testenv.PostgresDSN(t), "REDIS_URL": "redis://127.0.0.1:1"}
		}},
	}
	for _, shape := range shapes {
		t.Run(shape.name, func(t *testing.T) {
			ctx := t.Context()
			keyA, keyB := secret.NewMasterKey(), secret.NewMasterKey()
			base := shape.env(t)
			base["LOG_LEVEL"] = "warn"
			with := func(kv ...string) map[string]string {
				env := map[string]string{}
				for k, v := range base {
					env[k] = v
				}
				for i := 0; i < len(kv); i += 2 {
					env[kv[i]] = kv[i+1]
				}
				return env
			}
			envA := with("ENCRYPTION_KEY", keyA)
			envBA := with("ENCRYPTION_KEY", keyB, "ENCRYPTION_KEY_PREVIOUS", keyA)
			envB := with("ENCRYPTION_KEY", keyB)

			// What a deployment under A stored: credentials, a proxy password, an API key
			// hashed under A's derived hash key.
			db, keysA := openEnv(t, envA)
			acct := &store.Account{Name: "a", Platform: store.PlatformAnthropic, Type: store.AccountTypeAPIKey,
				Credentials: store.Credentials{APIKey: "sk-ant-api03-SECRET"}, Schedulable: true}
			must(t, db.CreateAccount(ctx, acct))
			must(t, db.CreateProxy(ctx, &store.Proxy{Protocol: "http", Host: "127.0.0.1", Port: 3128, Password: "proxy-SECRET"}))
			u := &store.User{Email: "u@example.test", PasswordHash: "x", Role: store.RoleUser, Status: store.StatusActive}
			must(t, db.CreateUser(ctx, u))
			g := &store.Group{Name: "g", Platform: store.PlatformAnthropic, BillingType: store.BillingBalance, RateMultiplierPPM: 1_000_000}
			must(t, db.CreateGroup(ctx, g))
			const apiKey = "fk-issued-under-key-A"
			must(t, db.CreateAPIKey(ctx, &store.APIKey{UserID: u.ID, GroupID: g.ID, Name: "k", Hash: keysA.HashAPIKey(apiKey), Prefix: "fk-iss"}))
			db.Close()

			if code, _, errOut := runCmd(t, envB, "admin", "rotate-key"); code != exitFailure || !strings.Contains(errOut, "ENCRYPTION_KEY_PREVIOUS") {
				t.Fatalf("rotate-key without the old key: exit %d, stderr %q; want a failure naming ENCRYPTION_KEY_PREVIOUS", code, errOut)
			}
			code, out, errOut := runCmd(t, envBA, "admin", "rotate-key", "--batch", "1")
			if code != exitOK {
				t.Fatalf("rotate-key: exit %d\n%s%s", code, out, errOut)
			}
			if m := regexp.MustCompile(`re-sealed (\d+)`).FindStringSubmatch(out); m == nil || m[1] != "2" || !strings.Contains(out, "checked 3") {
				t.Fatalf("rotate-key output %q; want 3 values checked (credentials, proxy password, the API key hash key stored now under B) and 2 re-sealed", out)
			}
			if code, out, _ := runCmd(t, envBA, "admin", "rotate-key"); code != exitOK || !strings.Contains(out, "re-sealed 0") {
				t.Fatalf("second rotate-key: exit %d, %q; want nothing re-sealed", code, out)
			}

			db, keysB := openEnv(t, envB)
			defer db.Close()
			got, err := db.GetAccount(ctx, acct.ID)
			if err != nil || got.Credentials.APIKey != "sk-ant-api03-SECRET" {
				t.Fatalf("B alone reads the credentials: %v", err)
			}
			hashing, err := app.WithAPIKeyHashKey(ctx, db, keysB)
			must(t, err)
			if ka, err := db.KeyAuthByHash(ctx, hashing.HashAPIKey(apiKey)); err != nil || ka.User.ID != u.ID {
				t.Fatalf("the API key issued under A is not found under B after the rotation: %v", err)
			}
			var raw bytes.Buffer
			rows, err := db.RawDB().QueryContext(ctx, "SELECT credentials FROM accounts UNION ALL SELECT password FROM proxies")
			must(t, err)
			for rows.Next() {
				var v string
				must(t, rows.Scan(&v))
				if secret.SealedKeyID(v) != keysB.KeyID() {
					t.Errorf("a value is sealed under %q, want B (%s)", secret.SealedKeyID(v), keysB.KeyID())
				}
				raw.WriteString(v)
			}
			rows.Close()
			if strings.Contains(raw.String(), "SECRET") {
				t.Fatal("a secret is stored in the clear")
			}
		})
	}
}

func openEnv(t *testing.T, env map[string]string) (*sqlstore.DB, *secret.Keys) {
	t.Helper()
	cfg, err := config.Load(config.MapEnv(env))
	must(t, err)
	keys, _, err := app.LoadKeys(cfg)
	must(t, err)
	db, err := app.OpenStore(context.Background(), cfg, keys, app.NewLogger(cfg, io.Discard))
	must(t, err)
	return db, keys
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
