package cluster

import (
	"fmt"
	"net/http"
	"strconv"
	"testing"

	"github.com/fluxcode/fluxcode/internal/secret"
	"github.com/fluxcode/fluxcode/internal/store"
	"github.com/fluxcode/fluxcode/internal/testenv"
)

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
	testenv.MustCallJSON(t, "POST", api+"/admin/groups", c.admin, map[string]any{
		"name": "group-" + name, "platform": store.PlatformAnthropic,
	}, http.StatusCreated, &g)
	tn.groupID = g.ID
	for i, s := range specs {
		upstreamKey := fmt.Sprintf("sk-ant-%s-%d-%s", name, i, secret.NewMasterKey()[:8])
		var a struct {
			ID int64 `json:"id"`
		}
		testenv.MustCallJSON(t, "POST", api+"/admin/accounts", c.admin, map[string]any{
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
	testenv.MustCallJSON(t, "POST", api+"/admin/users", c.admin, map[string]any{
		"email": email, "password": password, "concurrency": 0,
	}, http.StatusCreated, &u)
	tn.userID = u.ID
	testenv.MustCallJSON(t, "POST", api+"/admin/users/"+strconv.FormatInt(u.ID, 10)+"/balance", c.admin,
		map[string]string{"amount": "100", "note": "cluster harness"}, http.StatusOK, nil)

	token := testenv.Login(t, c.entry, email, password)
	var k struct {
		ID  int64  `json:"id"`
		Key string `json:"key"`
	}
	testenv.MustCallJSON(t, "POST", api+"/keys", token, map[string]any{"name": name, "group_id": g.ID}, http.StatusCreated, &k)
	tn.keyID, tn.key = k.ID, k.Key
	return tn
}
