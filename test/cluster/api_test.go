package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/fluxcode/fluxcode/internal/secret"
	"github.com/fluxcode/fluxcode/internal/store"
)

// call sends a JSON API request and returns the status and body.
func call(t testing.TB, method, url, token string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// mustCall is call that requires the status want and decodes the answer into out (if not nil).
func mustCall(t testing.TB, method, url, token string, body any, want int, out any) {
	t.Helper()
	code, b := call(t, method, url, token, body)
	if code != want {
		t.Fatalf("%s %s: %d %s, want %d", method, url, code, b, want)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: decode %s: %v", method, url, b, err)
		}
	}
}

// login signs in through base and returns the token.
func (c *cluster) login(base, email, password string) string {
	c.t.Helper()
	var tok struct {
		Token string `json:"token"`
	}
	mustCall(c.t, "POST", base+"/api/v1/auth/login", "", map[string]string{"email": email, "password": password}, http.StatusOK, &tok)
	if tok.Token == "" {
		c.t.Fatalf("login at %s gave no token", base)
	}
	return tok.Token
}

// tenant is what one scenario bills against: its own group, accounts (each with its own
// upstream key at the mock), user and API key, so its ledger rows and mock counters are its
// own.
type tenant struct {
	name     string
	groupID  int64
	accounts []account
	userID   int64
	keyID    int64
	key      string // the FluxCode API key
}

type account struct {
	id          int64
	upstreamKey string // the credential the mock sees
	concurrency int
}

// accountSpec describes one upstream account of a tenant.
type accountSpec struct {
	concurrency int // 0: unlimited
	priority    int
}

// newTenant creates, through Caddy as an operator would, a balance group with the given
// accounts, a user with $100, and the user's API key.
func (c *cluster) newTenant(t testing.TB, name string, specs ...accountSpec) *tenant {
	t.Helper()
	api := c.entry + "/api/v1"
	tn := &tenant{name: name}
	var g struct {
		ID int64 `json:"id"`
	}
	mustCall(t, "POST", api+"/admin/groups", c.admin, map[string]any{
		"name": "group-" + name, "platform": store.PlatformAnthropic,
	}, http.StatusCreated, &g)
	tn.groupID = g.ID
	for i, s := range specs {
		upstreamKey := fmt.Sprintf("sk-ant-%s-%d-%s", name, i, secret.NewMasterKey()[:8])
		var a struct {
			ID int64 `json:"id"`
		}
		mustCall(t, "POST", api+"/admin/accounts", c.admin, map[string]any{
			"name": fmt.Sprintf("%s-%d", name, i), "platform": store.PlatformAnthropic,
			"type": store.AccountTypeAPIKey, "credentials": map[string]string{"api_key": upstreamKey},
			"base_url": c.mock.URL(), "concurrency": s.concurrency, "priority": s.priority,
			"group_ids": []int64{g.ID},
		}, http.StatusCreated, &a)
		tn.accounts = append(tn.accounts, account{id: a.ID, upstreamKey: upstreamKey, concurrency: s.concurrency})
	}

	email := name + "@cluster.test"
	password := secret.NewMasterKey()[:16]
	var u struct {
		ID int64 `json:"id"`
	}
	mustCall(t, "POST", api+"/admin/users", c.admin, map[string]any{
		"email": email, "password": password, "concurrency": 0,
	}, http.StatusCreated, &u)
	tn.userID = u.ID
	mustCall(t, "POST", api+"/admin/users/"+strconv.FormatInt(u.ID, 10)+"/balance", c.admin,
		map[string]string{"amount": "100", "note": "cluster harness"}, http.StatusOK, nil)

	token := c.login(c.entry, email, password)
	var k struct {
		ID  int64  `json:"id"`
		Key string `json:"key"`
	}
	mustCall(t, "POST", api+"/keys", token, map[string]any{"name": name, "group_id": g.ID}, http.StatusCreated, &k)
	tn.keyID, tn.key = k.ID, k.Key
	return tn
}
