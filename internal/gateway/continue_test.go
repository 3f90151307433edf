package gateway_test

import (
	"bufio"
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/fluxcode/fluxcode/internal/coord"
	"github.com/fluxcode/fluxcode/internal/coord/redis"
	"github.com/fluxcode/fluxcode/internal/gateway/gatewaytest"
	"github.com/fluxcode/fluxcode/internal/invalidate"
	"github.com/fluxcode/fluxcode/internal/store"
	"github.com/fluxcode/fluxcode/internal/testenv"
)

// TestResponseChainStaysOnItsAccount: the upstream keeps a stored response with the account
// that produced it, so a request continuing it (previous_response_id) goes to that account,
// on any node, streamed or not, even when the ranking now prefers another; when that account
// is unavailable the request fails over as a sticky session does. Run with the in-process
// coordinator and with Redis, two nodes sharing each.
func TestResponseChainStaysOnItsAccount(t *testing.T) {
	coords := []struct {
		name string
		open func(t *testing.T) coord.Coordinator
	}{
		{"memory", func(*testing.T) coord.Coordinator { return nil }}, // NewDeps's in-process one
		{"redis", func(t *testing.T) coord.Coordinator {
			co, err := redis.New(context.Background(), redis.Options{URL: testenv.StartRedis(t).URL()})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { co.Close() })
			return co
		}},
	}
	for _, cc := range coords {
		t.Run(cc.name, func(t *testing.T) { testResponseChain(t, cc.open(t)) })
	}
}

func testResponseChain(t *testing.T, co coord.Coordinator) {
	e := newOAIEnvOn(t, co)
	n1, n2 := e.node, gatewaytest.Start(t, e.Deps, testConfig(), "n2", nil)
	p := e.account(t, "oa-p", 10)
	e.account(t, "oa-q", 20)

	// send posts body to node and returns the account that served it and the id of the
	// response it got (from the JSON answer, or the stream's response.completed).
	send := func(node *gatewaytest.Node, body string) (account, id string) {
		t.Helper()
		e.node = node
		resp := e.do(t, http.MethodPost, "/v1/responses", body, bearer(e.oai.Secret))
		b := readBody(t, resp)
		if resp.StatusCode != 200 {
			t.Fatalf("status %d: %s", resp.StatusCode, b)
		}
		ex := e.tap.Exchanges()
		account = strings.TrimPrefix(ex[len(ex)-1].UpstreamK, "Bearer ")
		if !strings.Contains(body, `"stream":true`) {
			return account, gjson.GetBytes(b, "id").Str
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok && gjson.Get(data, "type").Str == "response.completed" {
				id = gjson.Get(data, "response.id").Str
			}
		}
		return account, id
	}
	continuing := func(id, extra string) string {
		return `{"model":"gpt-6-sol","input":"next","previous_response_id":"` + id + `"` + extra + `}`
	}
	update := func(a *store.Account) {
		t.Helper()
		if err := e.Store.UpdateAccount(context.Background(), a); err != nil {
			t.Fatal(err)
		}
		if err := invalidate.Publish(context.Background(), e.Coord, invalidate.Account, a.ID); err != nil {
			t.Fatal(err)
		}
	}

	acct, first := send(n1, oaiResponses)
	if acct != "oa-p" || first == "" {
		t.Fatalf("the opening went to %s (response %q), want oa-p", acct, first)
	}
	p.Priority = 90 // the ranking now prefers oa-q, on both nodes
	update(p)
	for _, n := range []*gatewaytest.Node{n1, n2} {
		waitFor(t, func() bool {
			a, _ := send(n, `{"model":"gpt-6-sol","input":"`+time.Now().String()+`"}`)
			return a == "oa-q"
		})
	}

	acct, second := send(n2, continuing(first, `,"stream":true`))
	if acct != "oa-p" || second == "" {
		t.Fatalf("a stream continuing %s on the other node went to %s (response %q), want oa-p", first, acct, second)
	}
	acct, third := send(n1, continuing(second, ""))
	if acct != "oa-p" || third == "" {
		t.Fatalf("a request continuing the streamed %s went to %s, want oa-p", second, acct)
	}
	if acct, _ := send(n2, continuing(first, "")); acct != "oa-p" {
		t.Fatalf("a second branch from %s went to %s, want oa-p", first, acct)
	}

	// The holder is rate-limited: the request fails over like any sticky one.
	until := time.Now().Add(time.Hour)
	if err := e.Store.MarkAccount(context.Background(), p.ID, store.AccountMark{RateLimitedUntil: &until}); err != nil {
		t.Fatal(err)
	}
	if err := invalidate.Publish(context.Background(), e.Coord, invalidate.Account, p.ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { a, _ := send(n2, continuing(third, "")); return a == "oa-q" })
}
