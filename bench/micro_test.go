package bench

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/fluxcode/fluxcode/internal/gateway"
	"github.com/fluxcode/fluxcode/internal/gateway/gatewaytest"
	"github.com/fluxcode/fluxcode/internal/secret"
	"github.com/fluxcode/fluxcode/internal/store"
)

// The hot pieces measured elsewhere, with allocation counts:
//   SSE usage extraction, body rewrite  internal/provider/anthropic  BenchmarkStreamUsage, BenchmarkBodyRewrite
//   key lookup in the database          internal/store/sqlstore      BenchmarkKeyAuthByHash
//   slot acquire/release                internal/coord/memory, internal/coord/redis  BenchmarkAcquireRelease
//   scheduling in one call, one release internal/coord/memory, internal/coord/redis  BenchmarkAcquireAccountRelease
// Here: the keyed hash every key lookup starts with, and one whole relayed request in
// process, beside the same request sent to the mock directly (the difference is the
// gateway's own cost).

func BenchmarkAPIKeyHash(b *testing.B) {
	keys, err := secret.NewKeys(mustMaster(b))
	if err != nil {
		b.Fatal(err)
	}
	key := secret.NewAPIKey()
	b.ReportAllocs()
	for b.Loop() {
		if len(keys.HashAPIKey(key)) == 0 {
			b.Fatal("empty hash")
		}
	}
}

func mustMaster(b *testing.B) []byte {
	m, err := secret.ParseMasterKey(secret.NewMasterKey())
	if err != nil {
		b.Fatal(err)
	}
	return m
}

const relayModel = "claude-sonnet-5-5"

func relayBody(stream bool) []byte {
	s := "false"
	if stream {
		s = "true"
	}
	return []byte(`{"model":"` + relayModel + `","max_tokens":256,"stream":` + s +
		`,"messages":[{"role":"user","content":"Say hello to the benchmark in one short sentence."}]}`)
}

// BenchmarkRelay sends Messages requests over loopback HTTP, to the in-process mock directly
// and through an in-process gateway on SQLite and the in-process coordinator, with user, key
// and account concurrency limits set so that every request takes and releases its slots.
func BenchmarkRelay(b *testing.B) {
	d := gatewaytest.NewDeps(b, gatewaytest.Deps{})
	node := gatewaytest.Start(b, d, gateway.Config{}, "bench", nil)
	tenant := gatewaytest.NewTenant(b, d, gatewaytest.TenantOptions{UserConcurrency: 1000, KeyConcurrency: 1000,
		Balance: 1_000_000 * 1_000_000_000}) // $1,000,000: b.Loop may send hundreds of thousands of requests
	gatewaytest.NewAccount(b, d, "sk-micro", []int64{tenant.Group.ID}, func(a *store.Account) { a.Concurrency = 1000 })
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	defer client.CloseIdleConnections()

	for _, tc := range []struct {
		name, url, key string
		stream         bool
	}{
		{"mock-direct/json", d.Mock.URL(), "sk-direct", false},
		{"gateway/json", node.URL, tenant.Secret, false},
		{"mock-direct/stream", d.Mock.URL(), "sk-direct", true},
		{"gateway/stream", node.URL, tenant.Secret, true},
	} {
		body := relayBody(tc.stream)
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			var buf bytes.Buffer
			for b.Loop() {
				req, err := http.NewRequest(http.MethodPost, tc.url+"/v1/messages", bytes.NewReader(body))
				if err != nil {
					b.Fatal(err)
				}
				req.Header.Set("content-type", "application/json")
				req.Header.Set("anthropic-version", "2023-06-01")
				req.Header.Set("x-api-key", tc.key)
				resp, err := client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				buf.Reset()
				_, err = io.Copy(&buf, resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != http.StatusOK {
					b.Fatalf("status %d, %v: %.200s", resp.StatusCode, err, buf.String())
				}
				if tc.stream && !strings.Contains(buf.String(), "message_stop") {
					b.Fatalf("stream without message_stop: %.200s", buf.String())
				}
			}
		})
	}
}
