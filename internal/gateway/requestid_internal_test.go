package gateway

import (
	"regexp"
	"testing"
	"time"
)

var uuidV7 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// Request ids are UUIDv7: well-formed, unique, carrying their millisecond, and ordered by it,
// so that ledger rows are appended to the end of the request id index.
func TestRequestIDsAreTimeOrderedUUIDs(t *testing.T) {
	at := time.UnixMilli(1_795_000_000_123)
	id := formatUUIDv7(at)
	if !uuidV7.MatchString(id) {
		t.Fatalf("id %q is not a UUIDv7", id)
	}
	// The first 48 bits are the Unix milliseconds: 1795000000123 = 0x01a1ee565e7b.
	if got, want := id[:8]+id[9:13], "01a1ee565e7b"; got != want {
		t.Fatalf("id %q starts with %s, want the time %s", id, got, want)
	}
	seen := map[string]bool{}
	prev := ""
	for i := range 10_000 {
		next := formatUUIDv7(at.Add(time.Duration(i) * time.Millisecond))
		if seen[next] {
			t.Fatalf("id %q repeated", next)
		}
		seen[next] = true
		if next <= prev {
			t.Fatalf("id %q of a later millisecond sorts before %q", next, prev)
		}
		prev = next
	}
	for range 1000 { // many in one millisecond: still unique
		next := formatUUIDv7(at)
		if seen[next] {
			t.Fatalf("id %q repeated within one millisecond", next)
		}
		seen[next] = true
	}
	if id := newRequestID(); !uuidV7.MatchString(id) {
		t.Fatalf("newRequestID() = %q, not a UUIDv7", id)
	}
}
