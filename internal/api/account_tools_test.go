package api_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fluxcode/fluxcode/internal/api"
	"github.com/fluxcode/fluxcode/internal/gateway"
	"github.com/fluxcode/fluxcode/internal/gateway/gatewaytest"
	"github.com/fluxcode/fluxcode/internal/mockupstream"
	"github.com/fluxcode/fluxcode/internal/provider"
	"github.com/fluxcode/fluxcode/internal/provider/anthropic"
	"github.com/fluxcode/fluxcode/internal/provider/gemini"
	"github.com/fluxcode/fluxcode/internal/provider/openai"
	"github.com/fluxcode/fluxcode/internal/store"
	"github.com/fluxcode/fluxcode/internal/testenv"
)

// lateTester hands the API's account tests to a gateway built after the API, as the app does.
type lateTester struct{ gw *gateway.Gateway }

func (l *lateTester) TestAccount(ctx context.Context, acct *store.Account, model string) gateway.AccountTest {
	return l.gw.TestAccount(ctx, acct, model)
}

// toolsEnv is an API and a gateway node on one store, with the mock upstream.
type toolsEnv struct {
	*env
	node *gatewaytest.Node
	mock *mockupstream.Server
}

func newToolsEnv(t *testing.T, dsn string) *toolsEnv {
	tester := &lateTester{}
	e := newEnvOn(t, dsn, func(o *api.Options) { o.AccountTester = tester })
	deps := gatewaytest.NewDeps(t, gatewaytest.Deps{Store: e.st, Coord: e.co, Keys: e.keys,
		Providers: []provider.Provider{anthropic.New(), openai.New(), gemini.New()}})
	node := gatewaytest.Start(t, deps, gateway.Config{MaxAccountSwitches: 3}, "tools", nil)
	tester.gw = node.Gateway
	return &toolsEnv{env: e, node: node, mock: deps.Mock}
}

// newAccount creates an account on the mock upstream through the API.
func (e *toolsEnv) newAccount(name, platform, key string, groups []int64) int64 {
	e.t.Helper()
	var rec struct{ ID int64 }
	e.do("POST", "/api/v1/admin/accounts", e.adminToken, map[string]any{"name": name, "platform": platform,
		"type": "apikey", "credentials": map[string]any{"api_key": key}, "base_url": e.mock.URL(),
		"group_ids": groups}).ok(e.t, 201, &rec)
	return rec.ID
}

// Account tools on both storage shapes: the test request, per-account figures and bulk
// changes.
func TestAccountTools(t *testing.T) {
	t.Run("SQLite", func(t *testing.T) { checkAccountTools(t, newToolsEnv(t, filepath.Join(t.TempDir(), "api.db"))) })
	t.Run("Postgres", func(t *testing.T) { checkAccountTools(t, newToolsEnv(t, testenv.PostgresDSN(t))) })
}

type testView struct {
	AccountID  int64  `json:"account_id"`
	OK         bool   `json:"ok"`
	StatusCode int    `json:"status_code"`
	LatencyMS  int64  `json:"latency_ms"`
	Model      string `json:"model"`
	Reply      string `json:"reply"`
	Error      string `json:"error"`
}

type figures struct {
	Requests     int64  `json:"requests"`
	InputTokens  int64  `json:"input_tokens"`
	OutputTokens int64  `json:"output_tokens"`
	Cost         string `json:"cost"`
	Errors       int64  `json:"errors"`
}

type statsView struct {
	AccountID int64   `json:"account_id"`
	Today     figures `json:"today"`
	Total     figures `json:"total"`
}

func checkAccountTools(t *testing.T, e *toolsEnv) {
	ctx := context.Background()
	g1 := e.newGroup("tools-a", nil)
	g2 := e.newGroup("tools-b", nil)
	gOpenAI := e.newGroup("tools-openai", map[string]any{"platform": "openai"})
	good := e.newAccount("good", "anthropic", "sk-ant-good", []int64{g1})
	bad := e.newAccount("bad", "anthropic", "sk-ant-bad", []int64{g1})
	oai := e.newAccount("oai", "openai", "sk-oai-good", []int64{gOpenAI})
	if err := e.mock.SetScript("sk-ant-bad", mockupstream.Script{Fail: &mockupstream.Failure{Status: 500}}); err != nil {
		t.Fatal(err)
	}
	path := func(id int64, rest string) string { return fmt.Sprintf("/api/v1/admin/accounts/%d/%s", id, rest) }

	t.Run("Test", func(t *testing.T) {
		before := e.snapshot()
		var v testView
		e.do("POST", path(good, "test"), e.adminToken, nil).ok(t, 200, &v)
		if !v.OK || v.StatusCode != 200 || v.Reply == "" || v.Model != "claude-haiku-4-5" || v.AccountID != good || v.Error != "" {
			t.Errorf("test of a good account: %+v", v)
		}
		if got := e.mock.Stats("sk-ant-good").Requests; got != 1 {
			t.Errorf("the mock upstream saw %d requests of the account's key, want 1", got)
		}
		e.do("POST", path(oai, "test"), e.adminToken, map[string]any{"model": "gpt-5"}).ok(t, 200, &v)
		if !v.OK || v.Model != "gpt-5" || v.Reply == "" {
			t.Errorf("test of an OpenAI account with a model: %+v", v)
		}
		e.do("POST", path(bad, "test"), e.adminToken, nil).ok(t, 200, &v)
		if v.OK || v.StatusCode != 500 || v.Error == "" || strings.Contains(v.Error, "sk-ant-bad") {
			t.Errorf("test of a failing account: %+v", v)
		}
		// Nothing billed, no ledger row, no mark on the failing account.
		if after := e.snapshot(); after != before {
			t.Errorf("a test changed the stored state:\nbefore %s\nafter  %s", before, after)
		}

		// A ChatGPT login serves only the Responses API: the test asks in that shape, and reads
		// the streamed answer as the gateway does.
		l := e.mock.NewChatGPTLogin("tester@example.com")
		var chatgpt struct{ ID int64 }
		e.do("POST", "/api/v1/admin/accounts", e.adminToken, map[string]any{"name": "chatgpt", "platform": "openai",
			"type": "oauth", "base_url": e.mock.URL(), "credentials": map[string]any{"access_token": l.AccessToken,
				"extra": map[string]any{"chatgpt_account_id": l.AccountID}}}).ok(t, 201, &chatgpt)
		e.do("POST", path(chatgpt.ID, "test"), e.adminToken, map[string]any{"model": "gpt-5"}).ok(t, 200, &v)
		if !v.OK || v.StatusCode != 200 || v.Reply == "" {
			t.Errorf("test of a ChatGPT login: %+v", v)
		}
		e.do("DELETE", fmt.Sprintf("/api/v1/admin/accounts/%d", chatgpt.ID), e.adminToken, nil).ok(t, 204, nil)
		e.do("POST", path(good, "test"), e.adminToken, map[string]any{"model": strings.Repeat("m", 201)}).
			wantError(t, 400, "invalid_argument", "model")
		e.do("POST", path(good, "test"), e.adminToken, map[string]any{"modle": "x"}).
			wantError(t, 400, "unknown_field", "modle")
		e.do("POST", path(999999, "test"), e.adminToken, nil).wantError(t, 404, "not_found", "")
	})

	t.Run("Figures", func(t *testing.T) {
		// One request through the gateway: the failing account is tried, fails, and the
		// good one serves it (which of the two goes first is the scheduler's choice, so the
		// failing one is made the only preferred one).
		e.do("PATCH", fmt.Sprintf("/api/v1/admin/accounts/%d", good), e.adminToken, map[string]any{"priority": 5}).ok(t, 200, nil)
		userID, userToken := e.newUser("figures@example.com")
		e.do("POST", fmt.Sprintf("/api/v1/admin/users/%d/balance", userID), e.adminToken, map[string]any{"amount": "10"}).ok(t, 200, nil)
		var key struct{ Key string }
		e.do("POST", "/api/v1/keys", userToken, map[string]any{"group_id": g1}).ok(t, 201, &key)
		send := func(stream bool) {
			req, _ := http.NewRequest("POST", e.node.URL+"/v1/messages", strings.NewReader(fmt.Sprintf(
				`{"model":"claude-haiku-4-5","max_tokens":20,"stream":%v,"messages":[{"role":"user","content":"hi"}]}`, stream)))
			req.Header.Set("x-api-key", key.Key)
			req.Header.Set("content-type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			answer, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("relayed request: %d %s", resp.StatusCode, answer)
			}
		}
		send(false)
		// An error event in the middle of a stream is the serving account's failure too.
		e.do("PATCH", fmt.Sprintf("/api/v1/admin/accounts/%d", bad), e.adminToken, map[string]any{"status": "disabled"}).ok(t, 200, nil)
		if err := e.mock.SetScript("sk-ant-good", mockupstream.Script{FailTimes: 1,
			Fail: &mockupstream.Failure{Kind: mockupstream.FailError, After: 2}}); err != nil {
			t.Fatal(err)
		}
		send(true)
		e.node.Close(t) // flushes the ledger and the error counts

		// An older row of the good account counts in the total, not today.
		old := store.Usage{RequestID: "old-1", UserID: userID, APIKeyID: 0, GroupID: g1, AccountID: good, Platform: "anthropic",
			Model: "claude-haiku-4-5", InputTokens: 100, OutputTokens: 10, Cost: 1_000_000, Charged: 1_000_000,
			BillingType: "balance", StatusCode: 200, CreatedAt: time.Now().UTC().AddDate(0, 0, -3)}
		var list struct{ Items []struct{ ID int64 } }
		e.do("GET", "/api/v1/keys", userToken, nil).ok(t, 200, &list)
		old.APIKeyID = list.Items[0].ID
		if _, err := e.st.RecordUsage(ctx, []store.Usage{old}); err != nil {
			t.Fatal(err)
		}
		if err := e.st.AddAccountErrors(ctx, []store.AccountErrors{{Day: old.CreatedAt.Format(time.DateOnly), AccountID: bad, Errors: 4}}); err != nil {
			t.Fatal(err)
		}

		var one statsView
		e.do("GET", path(good, "stats"), e.adminToken, nil).ok(t, 200, &one)
		if one.AccountID != good || one.Today.Requests < 1 || one.Total.Requests != one.Today.Requests+1 || one.Today.Errors != 1 ||
			one.Total.InputTokens != one.Today.InputTokens+100 || one.Today.OutputTokens == 0 || one.Today.Cost == "0.000000000" {
			t.Errorf("figures of the serving account: %+v", one)
		}
		e.do("GET", path(bad, "stats"), e.adminToken, nil).ok(t, 200, &one)
		if one.Today.Requests != 0 || one.Today.Errors != 1 || one.Total.Errors != 5 {
			t.Errorf("figures of the failing account: %+v", one)
		}
		var all struct{ Items []statsView }
		e.do("GET", "/api/v1/admin/accounts/stats", e.adminToken, nil).ok(t, 200, &all)
		if len(all.Items) != 3 || all.Items[0].AccountID != good || all.Items[1].AccountID != bad ||
			all.Items[2].AccountID != oai || all.Items[2].Total.Requests != 0 || all.Items[0].Total.Requests < 2 {
			t.Errorf("figures of every account: %+v", all.Items)
		}
		e.do("GET", path(999999, "stats"), e.adminToken, nil).wantError(t, 404, "not_found", "")
	})

	t.Run("Bulk", func(t *testing.T) {
		bulk := func(body map[string]any) *resp {
			return e.do("POST", "/api/v1/admin/accounts/bulk", e.adminToken, body)
		}
		var out struct{ Items []accountBody }
		bulk(map[string]any{"account_ids": []int64{bad, good, good}, "action": "disable"}).ok(t, 200, &out)
		if len(out.Items) != 2 || out.Items[0].ID != good || out.Items[0].Status != "disabled" || out.Items[1].Status != "disabled" {
			t.Errorf("disable: %+v", out.Items)
		}
		bulk(map[string]any{"account_ids": []int64{good}, "action": "enable"}).ok(t, 200, &out)
		if out.Items[0].Status != "active" {
			t.Errorf("enable: %+v", out.Items)
		}
		bulk(map[string]any{"account_ids": []int64{good, bad}, "action": "move", "group_ids": []int64{g2}}).ok(t, 200, &out)
		for _, a := range out.Items {
			if len(a.GroupIDs) != 1 || a.GroupIDs[0] != g2 {
				t.Errorf("move: %+v", a)
			}
		}

		// Refusals change nothing, not even the accounts listed before the bad one.
		before := e.snapshot()
		bulk(map[string]any{"account_ids": []int64{good, 999999}, "action": "disable"}).wantError(t, 400, "invalid_argument", "account_ids")
		bulk(map[string]any{"account_ids": []int64{}, "action": "disable"}).wantError(t, 400, "invalid_argument", "account_ids")
		bulk(map[string]any{"account_ids": []int64{good}, "action": "delete"}).wantError(t, 400, "invalid_argument", "action")
		bulk(map[string]any{"account_ids": []int64{good}, "action": "enable", "group_ids": []int64{g1}}).
			wantError(t, 400, "invalid_argument", "group_ids")
		bulk(map[string]any{"account_ids": []int64{good, oai}, "action": "move", "group_ids": []int64{g1}}).
			wantError(t, 400, "invalid_argument", "group_ids")
		bulk(map[string]any{"account_ids": []int64{good}, "action": "move", "group_ids": []int64{999999}}).
			wantError(t, 400, "invalid_argument", "group_ids")
		if after := e.snapshot(); after != before {
			t.Errorf("a refused bulk change changed the stored state")
		}

		// Audited as one change with the accounts as they became.
		var audit struct {
			Items []struct {
				Action string `json:"action"`
				After  any    `json:"after"`
			}
		}
		e.do("GET", "/api/v1/admin/audit?action=account.bulk", e.adminToken, nil).ok(t, 200, &audit)
		if len(audit.Items) != 3 || audit.Items[0].After == nil {
			t.Errorf("audit of bulk changes: %+v", audit.Items)
		}
	})
}
