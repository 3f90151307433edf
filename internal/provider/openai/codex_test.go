package openai

import (
	"net/http"
	"testing"
	"time"

	"github.com/fluxcode/fluxcode/internal/provider"
	"github.com/fluxcode/fluxcode/internal/store"
)

// codexBody keeps every member the client wrote, in its order, and changes only what the
// Codex backend demands.
func TestCodexBodyMeetsTheBackendKeepingTheRest(t *testing.T) {
	in := `{"model":"gpt-6-sol","input":"hi","tools":[{"type":"function","name":"f"}],"stream":false,"max_output_tokens":9,"store":true,"top_p":1,"x":{"y":[1,2]}}`
	out, err := codexBody([]byte(in), provider.Target{Model: "gpt-6.1-sol", Rewrite: true})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"model":"gpt-6.1-sol","input":[{"content":[{"text":"hi","type":"input_text"}],"role":"user","type":"message"}],` +
		`"tools":[{"type":"function","name":"f"}],"stream":true,"store":false,"x":{"y":[1,2]},"instructions":""}`
	if string(out) != want {
		t.Fatalf("got  %s\nwant %s", out, want)
	}
	keep := `{"model":"m","instructions":"be terse","input":[],"stream":true,"store":false}`
	if out, _ := codexBody([]byte(keep), provider.Target{Model: "m"}); string(out) != keep {
		t.Fatalf("a body that meets the backend changed: %s", out)
	}
}

// The x-codex windows become usage windows named by their length; a reset given only as
// seconds from now is read too.
func TestCodexWindows(t *testing.T) {
	now := time.Unix(1_800_000_000, 0).UTC()
	h := http.Header{}
	h.Set("X-Codex-Primary-Used-Percent", "91.5")
	h.Set("X-Codex-Primary-Window-Minutes", "300")
	h.Set("X-Codex-Primary-Reset-After-Seconds", "600")
	h.Set("X-Codex-Secondary-Used-Percent", "12")
	h.Set("X-Codex-Secondary-Window-Minutes", "10080")
	h.Set("X-Codex-Secondary-Reset-At", "1800500000")
	w, ok := New().Windows(h, now)
	if !ok || w.Status != "allowed_warning" || len(w.Windows) != 2 {
		t.Fatalf("windows %+v", w)
	}
	p, s := w.Windows[0], w.Windows[1]
	if p.Name != "5h" || p.Utilization != 0.915 || !p.ResetsAt.Equal(now.Add(10*time.Minute)) ||
		s.Name != "7d" || s.Utilization != 0.12 || s.ResetsAt.Unix() != 1_800_500_000 {
		t.Fatalf("windows %+v", w.Windows)
	}
	if _, ok := New().Windows(http.Header{}, now); ok {
		t.Fatal("windows read from an answer without x-codex headers")
	}
}

// A usage-limit 429 marks the login until the reset its body names; chat is not its to serve.
func TestCodexUsageLimitAndChat(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	f := New().Classify(429, http.Header{}, []byte(`{"error":{"type":"usage_limit_reached","message":"The usage limit has been reached","resets_at":1800003600}}`), now)
	if f.Verdict != provider.Failover || f.Mark.Kind != provider.MarkRateLimited || f.Mark.Until.Unix() != 1_800_003_600 {
		t.Fatalf("usage limit: %+v", f)
	}
	login := &store.Account{Type: store.AccountTypeOAuth}
	if New().Unserved(login, provider.OpMessages, provider.Request{Variant: variantChat}) == "" ||
		New().Unserved(login, provider.OpMessages, provider.Request{Variant: variantResponses}) != "" ||
		New().Unserved(&store.Account{Type: store.AccountTypeAPIKey}, provider.OpMessages, provider.Request{Variant: variantChat}) != "" {
		t.Fatal("Unserved")
	}
}
