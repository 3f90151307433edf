package secret

import (
	"bytes"
	"strings"
	"testing"
)

func mustKeys(t *testing.T) *Keys {
	t.Helper()
	master, err := ParseMasterKey(NewMasterKey())
	if err != nil {
		t.Fatal(err)
	}
	k, err := NewKeys(master)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSealRoundTripAndTamper(t *testing.T) {
	k := mustKeys(t)
	sealed := k.SealString("sk-ant-api03-secret")
	if strings.Contains(sealed, "sk-ant") {
		t.Fatalf("sealed value shows the plaintext: %q", sealed)
	}
	if sealed == k.SealString("sk-ant-api03-secret") {
		t.Fatal("two seals of the same value are equal: nonce reuse")
	}
	got, err := k.OpenString(sealed)
	if err != nil || got != "sk-ant-api03-secret" {
		t.Fatalf("OpenString = %q, %v", got, err)
	}
	other := mustKeys(t)
	if _, err := other.OpenString(sealed); err == nil {
		t.Fatal("a different key opened the value")
	}
	b := k.Seal([]byte("x"))
	b[len(b)-1] ^= 1
	if _, err := k.Open(b); err == nil {
		t.Fatal("altered data opened")
	}
	if _, err := k.OpenString("plain"); err == nil {
		t.Fatal("an unsealed value opened")
	}
}

func TestHashAPIKeyIsKeyed(t *testing.T) {
	k1, k2 := mustKeys(t), mustKeys(t)
	key := NewAPIKey()
	if !strings.HasPrefix(key, APIKeyPrefix) || len(key) != len(APIKeyPrefix)+43 {
		t.Fatalf("NewAPIKey = %q", key)
	}
	if !bytes.Equal(k1.HashAPIKey(key), k1.HashAPIKey(key)) {
		t.Fatal("hash is not deterministic")
	}
	if bytes.Equal(k1.HashAPIKey(key), k2.HashAPIKey(key)) {
		t.Fatal("hash does not depend on the master key")
	}
}

func TestPassword(t *testing.T) {
	h := HashPassword("correct horse")
	if !CheckPassword(h, "correct horse") {
		t.Fatal("right password refused")
	}
	if CheckPassword(h, "correct horsE") {
		t.Fatal("wrong password accepted")
	}
	for _, bad := range []string{"", "$argon2id$", "plain", strings.Replace(h, "argon2id", "argon2i", 1)} {
		if CheckPassword(bad, "correct horse") {
			t.Fatalf("malformed hash %q accepted", bad)
		}
	}
}

func TestParseMasterKey(t *testing.T) {
	if _, err := ParseMasterKey("short"); err == nil {
		t.Fatal("short key accepted")
	}
	if _, err := ParseMasterKey(strings.Repeat("ab", 32)); err != nil {
		t.Fatalf("hex key refused: %v", err)
	}
}
