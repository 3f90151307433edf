package provider_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fluxcode/fluxcode/internal/provider"
)

func TestErrorMessage(t *testing.T) {
	if got := provider.ErrorMessage([]byte(`{"error":{"message":"no credit","type":"x"}}`)); got != "no credit" {
		t.Errorf("got %q", got)
	}
	page := "  <html>" + strings.Repeat("x", 300)
	if got := provider.ErrorMessage([]byte(page)); got != strings.TrimSpace(page)[:200] {
		t.Errorf("got %q", got)
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Time{
		"":                              {},
		"2":                             now.Add(2 * time.Second),
		"0.5":                           now.Add(500 * time.Millisecond),
		"0":                             {},
		"-3":                            {},
		"Fri, 04 Dec 2026 12:01:00 GMT": now.Add(time.Minute),
		"Fri, 04 Dec 2026 11:00:00 GMT": {},
		"soon":                          {},
	} {
		if got := provider.RetryAfter(http.Header{"Retry-After": {v}}, now); !got.Equal(want) {
			t.Errorf("%q: %v, want %v", v, got, want)
		}
	}
}

func TestKindOfStatus(t *testing.T) {
	for status, want := range map[int]provider.ErrorKind{
		400: provider.KindInvalidRequest, 401: provider.KindAuthentication, 403: provider.KindPermission,
		404: provider.KindNotFound, 408: provider.KindTimeout, 413: provider.KindTooLarge, 422: provider.KindInvalidRequest,
		429: provider.KindRateLimit, 500: provider.KindAPI, 502: provider.KindAPI, 503: provider.KindOverloaded, 504: provider.KindTimeout,
	} {
		if got := provider.KindOfStatus(status); got != want {
			t.Errorf("%d: %s, want %s", status, got, want)
		}
	}
}
