package app_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fluxcode/fluxcode/internal/app"
	"github.com/fluxcode/fluxcode/internal/config"
	"github.com/fluxcode/fluxcode/internal/mockupstream"
	"github.com/fluxcode/fluxcode/internal/secret"
	"github.com/fluxcode/fluxcode/internal/store"
)

// provision sets up, through the node's own JSON API, what a relay request needs: a group,
// an account on the mock upstream holding upstreamKey and an API key of the admin's in that
// group; and, through the store, a balance for the admin. It returns the API key.
func provision(t *testing.T, st store.Store, base, token, mockURL, upstreamKey string) string {
	t.Helper()
	post := func(path string, body any) map[string]any {
		t.Helper()
		resp, b := do(t, "POST", base+path, token, body)
		if resp.StatusCode/100 != 2 {
			t.Fatalf("POST %s: %d %s", path, resp.StatusCode, b)
		}
		var out map[string]any
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatalf("POST %s: %s: %v", path, b, err)
		}
		return out
	}
	group := post("/api/v1/admin/groups", map[string]any{"name": "default", "platform": "anthropic", "billing_type": "balance"})
	gid := int64(group["id"].(float64))
	post("/api/v1/admin/accounts", map[string]any{
		"name": "mock", "platform": "anthropic", "type": "apikey", "base_url": mockURL,
		"credentials": map[string]any{"api_key": upstreamKey}, "group_ids": []int64{gid},
	})
	resp, b := do(t, "GET", base+"/api/v1/me", token, nil)
	var me struct{ ID int64 }
	if resp.StatusCode != 200 || json.Unmarshal(b, &me) != nil {
		t.Fatalf("/api/v1/me: %d %s", resp.StatusCode, b)
	}
	if _, err := st.AdjustBalance(context.Background(), &store.BalanceTransaction{UserID: me.ID, Amount: 10e9, Note: "test credit"}); err != nil {
		t.Fatal(err)
	}
	key := post("/api/v1/keys", map[string]any{"name": "test", "group_id": gid})
	k, _ := key["key"].(string)
	if !strings.HasPrefix(k, secret.APIKeyPrefix) {
		t.Fatalf("created key body has no key: %v", key)
	}
	return k
}

// TestCloseLetsStreamsFinishAndBillsThem starts a slow stream through a single node's
// gateway, closes the node while the stream is in flight, and shows the client still gets
// the whole stream and the request is in the ledger once the node has closed.
func TestCloseLetsStreamsFinishAndBillsThem(t *testing.T) {
	mock := mockupstream.New(mockupstream.Options{})
	if err := mock.Start(); err != nil {
		t.Fatal(err)
	}
	defer mock.Close()
	const upstreamKey = "sk-ant-mock-close"
	if err := mock.SetScript(upstreamKey, mockupstream.Script{Events: 20, Interval: 20 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	env := singleEnv(t, dir)
	env["ADMIN_PASSWORD"] = "close-test-password"
	m, _ := startNode(t, env)
	base := "http://" + m.Addr()
	token := login(t, base, "admin@fluxcode.local", "close-test-password")
	key := provision(t, m.Store(), base, token, mock.URL(), upstreamKey)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	body := `{"model":"claude-sonnet-5-5","max_tokens":200,"stream":true,"messages":[{"role":"user","content":"hello"}]}`
	req, _ := http.NewRequestWithContext(ctx, "POST", base+"/v1/messages", strings.NewReader(body))
	req.Header.Set("x-api-key", key)
	req.Header.Set("anthropic-version", "2023-06-01")
	req.Header.Set("content-type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("relay answered %d %s", resp.StatusCode, b)
	}
	br := bufio.NewReader(resp.Body)
	first, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(first, "event: message_start") {
		t.Fatalf("first line %q %v", first, err)
	}

	// The stream is in flight: close the node now.
	closed := make(chan error, 1)
	go func() { closed <- m.Close(context.Background()) }()

	rest, err := io.ReadAll(br)
	if err != nil {
		t.Fatalf("stream cut during a graceful close: %v", err)
	}
	if !strings.Contains(string(rest), "event: message_stop") {
		t.Fatalf("stream ended without message_stop:\n%s", rest)
	}
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}

	// Reopen the data directory: the request is billed.
	cfg, err := config.Load(config.MapEnv(env))
	if err != nil {
		t.Fatal(err)
	}
	keys, _, err := app.LoadKeys(cfg)
	if err != nil {
		t.Fatal(err)
	}
	db, err := app.OpenStore(context.Background(), cfg, keys, app.NewLogger(cfg, io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, total, err := db.ListUsage(context.Background(), store.UsageFilter{}, store.Page{})
	if err != nil {
		t.Fatal(err)
	}
	if total != 1 || len(rows) != 1 || !rows[0].Stream || rows[0].Partial || rows[0].OutputTokens == 0 {
		t.Fatalf("ledger after close: total %d, rows %+v", total, rows)
	}
	// The mock books usage just after its last byte is flushed: wait until it has.
	if err := mock.WaitIdle(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := mock.Stats(upstreamKey); st.Usage.Output != rows[0].OutputTokens || st.Usage.Input != rows[0].InputTokens {
		t.Errorf("billed %d in / %d out, the mock reported %+v", rows[0].InputTokens, rows[0].OutputTokens, st.Usage)
	}
}
