package provider_test

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/fluxcode/fluxcode/internal/provider"
)

func TestKeyOf(t *testing.T) {
	places := []provider.KeyPlace{{Header: "X-Api-Key"}, {Header: "Authorization", Scheme: "Bearer"}, {Query: "key"}}
	for _, tc := range []struct {
		h     http.Header
		query string
		want  string
	}{
		{http.Header{"X-Api-Key": {" k1 "}}, "", "k1"},
		{http.Header{"Authorization": {"bearer  k2"}}, "", "k2"},
		{http.Header{"Authorization": {"Basic k2"}}, "", ""},
		{http.Header{"Authorization": {"Bearer k2"}, "X-Api-Key": {"k1"}}, "", "k1"}, // the order of places
		{http.Header{}, "alt=sse&key=k3", "k3"},
		{http.Header{}, "alt=sse", ""},
	} {
		q, _ := url.ParseQuery(tc.query)
		if got := provider.KeyOf(places, tc.h, q.Get); got != tc.want {
			t.Errorf("KeyOf(%v, %q) = %q, want %q", tc.h, tc.query, got, tc.want)
		}
	}
}

func TestWithoutKeys(t *testing.T) {
	places := []provider.KeyPlace{{Header: "X-Goog-Api-Key"}, {Query: "key"}}
	for in, want := range map[string]string{
		"":                        "",
		"alt=sse":                 "alt=sse",
		"key=s":                   "",
		"alt=sse&key=s&b=%20x":    "alt=sse&b=%20x",
		"k%65y=s&key=t&keys=kept": "keys=kept", // an escaped name is still the key
		"key&beta=true":           "beta=true",
	} {
		if got := provider.WithoutKeys(places, in); got != want {
			t.Errorf("WithoutKeys(%q) = %q, want %q", in, got, want)
		}
	}
	if got := provider.WithoutKeys([]provider.KeyPlace{{Header: "X-Api-Key"}}, "key=s"); got != "key=s" {
		t.Errorf("a provider without a query key place keeps ?key=: got %q", got)
	}
}
