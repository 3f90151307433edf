package provider_test

import (
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/fluxcode/fluxcode/internal/provider"
)

func TestCleanText(t *testing.T) {
	for _, c := range []struct {
		in, want string
		n        int
		secrets  []string
	}{
		{"plain words", "plain words", 100, nil},
		{"a\x00b\r\n\tc\x1b[1m", "a b c [1m", 100, nil},
		{"bad \xff utf8", "bad utf8", 100, nil},
		{"key sk-ant-api03-abcdefghijklmnop0123 end", "key [redacted] end", 100, nil},
		{"tok ya29.a0AfH6SMBx-abcdefghijklmn end", "tok [redacted] end", 100, nil},
		{"id req_011CV9ZmrWy7H6kd5a3bcDeF stays", "id req_011CV9ZmrWy7H6kd5a3bcDeF stays", 100, nil},
		{"long " + strings.Repeat("a1", 25), "long [redacted]", 100, nil},
		{"mine is hunter22-secret!", "mine is [redacted]!", 100, []string{"hunter22-secret"}},
		{"ééééé", "éé", 5, nil},
		{"model: claude-sonnet-5-5", "model: claude-sonnet-5-5", 100, nil},
	} {
		if got := provider.CleanText(c.in, c.n, c.secrets...); got != c.want {
			t.Errorf("CleanText(%q, %d) = %q, want %q", c.in, c.n, got, c.want)
		}
	}
}

func FuzzCleanText(f *testing.F) {
	f.Add("upstream said \x00 sk-ant-api03-0123456789abcdefgh", 40)
	f.Add("ééé\xff", 3)
	f.Fuzz(func(t *testing.T, s string, n int) {
		if n < 0 || n > 1000 {
			return
		}
		got := provider.CleanText(s, n)
		if len(got) > n || !utf8.ValidString(got) || strings.ContainsFunc(got, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			t.Fatalf("CleanText(%q, %d) = %q", s, n, got)
		}
	})
}

func TestReadObjectManyKeys(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"model":"m"`)
	for i := range 40 {
		b.WriteString(`,"k` + strconv.Itoa(i) + `":1`)
	}
	visit := func(provider.Member) error { return nil }
	if err := provider.ReadObject([]byte(b.String()+`}`), visit); err != nil {
		t.Fatal(err)
	}
	if err := provider.ReadObject([]byte(b.String()+`,"k3\u0030":2}`), visit); err == nil || !strings.Contains(err.Error(), `"k30"`) {
		t.Fatalf("a duplicate past the small set was not found: %v", err)
	}
}
