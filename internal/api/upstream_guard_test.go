package api_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/fluxcode/fluxcode/internal/api"
)

// TestUpstreamAddressesRefused: with the default guard (no allowed networks), an account
// base URL or a proxy host on loopback, a private or link-local network or a metadata
// address — in any notation — is refused with a 400 naming the field, on create and on
// update; public ones are accepted.
func TestUpstreamAddressesRefused(t *testing.T) {
	e := newEnv(t, func(o *api.Options) { o.Upstreams = nil })
	account := func(baseURL string) map[string]any {
		return map[string]any{"name": "acc-" + fmt.Sprint(len(baseURL)) + baseURL, "platform": "anthropic", "type": "apikey",
			"credentials": map[string]any{"api_key": "k"}, "base_url": baseURL}
	}
	bad := []string{
		"http://127.0.0.1:8080", "http://0x7f000001", "http://2130706433/", "http://127.1", "http://[::ffff:127.0.0.1]:80",
		"http://[::1]", "http://localhost:9000", "https://169.254.169.254/latest", "http://10.0.0.1", "http://192.168.0.10",
		"http://[fd00:ec2::254]",
	}
	for _, u := range bad {
		b := e.do("POST", "/api/v1/admin/accounts", e.adminToken, account(u)).wantError(t, 400, "invalid_argument", "base_url")
		if !strings.Contains(b.Error.Message, "UPSTREAM_ALLOWED_NETWORKS") {
			t.Errorf("%s: message %q does not say how to allow it", u, b.Error.Message)
		}
	}
	for _, h := range []string{"127.0.0.1", "0177.0.0.1", "localhost", "169.254.169.254", "10.1.2.3"} {
		e.do("POST", "/api/v1/admin/proxies", e.adminToken, map[string]any{"name": "p-" + h, "protocol": "http", "host": h, "port": 3128}).
			wantError(t, 400, "invalid_argument", "host")
	}

	var acc struct{ ID int64 }
	e.do("POST", "/api/v1/admin/accounts", e.adminToken, account("https://api.anthropic.com")).ok(t, 201, &acc)
	e.do("PATCH", fmt.Sprintf("/api/v1/admin/accounts/%d", acc.ID), e.adminToken, map[string]any{"base_url": "http://127.0.0.1:1"}).
		wantError(t, 400, "invalid_argument", "base_url")
	var p struct{ ID int64 }
	e.do("POST", "/api/v1/admin/proxies", e.adminToken, map[string]any{"name": "egress", "protocol": "socks5", "host": "proxy.example.com", "port": 1080}).ok(t, 201, &p)
	e.do("PATCH", fmt.Sprintf("/api/v1/admin/proxies/%d", p.ID), e.adminToken, map[string]any{"host": "10.0.0.1"}).
		wantError(t, 400, "invalid_argument", "host")
}
