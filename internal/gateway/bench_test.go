package gateway_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/fluxcode/fluxcode/internal/gateway/gatewaytest"
)

// BenchmarkRelay measures one whole request through a node (auth, admission, slots,
// forwarding to the in-process mock, metering, batched billing on SQLite), JSON and stream.
func BenchmarkRelay(b *testing.B) {
	for _, c := range []struct{ name, body string }{{"JSON", jsonBody}, {"Stream", streamBody}} {
		b.Run(c.name, func(b *testing.B) {
			d := gatewaytest.NewDeps(b, gatewaytest.Deps{})
			node := gatewaytest.Start(b, d, testConfig(), "bench", nil)
			ten := gatewaytest.NewTenant(b, d, gatewaytest.TenantOptions{UserConcurrency: 64, KeyConcurrency: 64, Balance: 1 << 60})
			gatewaytest.NewAccount(b, d, "up-bench", []int64{ten.Group.ID}, nil)
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req, _ := http.NewRequest(http.MethodPost, node.URL+"/v1/messages", strings.NewReader(c.body))
					req.Header.Set("X-Api-Key", ten.Secret)
					resp, err := client.Do(req)
					if err != nil {
						b.Fatal(err)
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						b.Fatalf("status %d", resp.StatusCode)
					}
				}
			})
		})
	}
}
