package gateway

import (
	"strings"
	"testing"
)

// holdEnd must pass on everything but the last non-space byte and what follows it, however
// the body is split into reads.
func TestHoldEnd(t *testing.T) {
	bodies := []string{`{"a":1}`, "{\"a\":1}\n", "{\"a\":1} \r\n\t ", "x", "  ", ""}
	for _, body := range bodies {
		for size := 1; size <= len(body)+1; size++ {
			var sent strings.Builder
			var held []byte
			for i := 0; i < len(body); i += size {
				chunk := []byte(body[i:min(i+size, len(body))])
				var out []byte
				out, held = holdEnd(held, chunk)
				sent.Write(out)
			}
			want := strings.TrimRight(body, " \r\n\t")
			if want != "" {
				want = want[:len(want)-1]
			}
			if sent.String() != want || sent.String()+string(held) != body {
				t.Fatalf("body %q in reads of %d: sent %q held %q; want sent %q", body, size, sent.String(), held, want)
			}
		}
	}
}
