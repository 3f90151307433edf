package secret

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"
	"time"
)

func master(t *testing.T) []byte {
	t.Helper()
	m, err := ParseMasterKey(NewMasterKey())
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func ring(t *testing.T, cur []byte, prev ...[]byte) *Keys {
	t.Helper()
	k, err := NewKeyRing(cur, prev...)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestKeyRingRotation(t *testing.T) {
	a, b := master(t), master(t)
	onlyA, both, onlyB := ring(t, a), ring(t, b, a), ring(t, b)

	sealedA := onlyA.SealString("sk-ant-old")
	if got := SealedKeyID(sealedA); got != onlyA.KeyID() {
		t.Fatalf("sealed under A carries key id %q, want %q", got, onlyA.KeyID())
	}
	if _, err := onlyB.OpenString(sealedA); err == nil || !strings.Contains(err.Error(), onlyA.KeyID()) {
		t.Fatalf("B alone opened A's value or did not name the missing key: %v", err)
	}
	got, err := both.OpenString(sealedA)
	if err != nil || got != "sk-ant-old" {
		t.Fatalf("ring B+A opens A's value: %q, %v", got, err)
	}
	resealed, changed, err := both.Reseal(sealedA)
	if err != nil || !changed || SealedKeyID(resealed) != onlyB.KeyID() {
		t.Fatalf("Reseal = %q, %v, %v; want sealed under B", resealed, changed, err)
	}
	if again, changed, err := both.Reseal(resealed); err != nil || changed || again != resealed {
		t.Fatalf("second Reseal changed the value: %v %v", changed, err)
	}
	if got, err := onlyB.OpenString(resealed); err != nil || got != "sk-ant-old" {
		t.Fatalf("B alone opens the re-sealed value: %q, %v", got, err)
	}
	if _, err := onlyA.OpenString(both.SealString("x")); err == nil {
		t.Fatal("A alone opened a value sealed by the ring B+A")
	}
}

func TestKeyRingOpensLegacyV1Values(t *testing.T) {
	a, b := master(t), master(t)
	onlyA := ring(t, a)
	// A v1 value, as versions before key ids wrote it.
	v1 := "v1:" + b64(onlyA.Seal([]byte("legacy")))
	if SealedKeyID(v1) != "v1" {
		t.Fatalf("SealedKeyID(v1 value) = %q", SealedKeyID(v1))
	}
	both := ring(t, b, a)
	if got, err := both.OpenString(v1); err != nil || got != "legacy" {
		t.Fatalf("ring B+A opens a v1 value of A: %q, %v", got, err)
	}
	out, changed, err := both.Reseal(v1)
	if err != nil || !changed || SealedKeyID(out) != both.KeyID() {
		t.Fatalf("Reseal(v1) = %q, %v, %v", out, changed, err)
	}
}

// The API key hash must not change with the master key: keys issued before a rotation are
// looked up by the hash stored then.
func TestHashKeySurvivesRotation(t *testing.T) {
	a, b := master(t), master(t)
	onlyA := ring(t, a)
	before := onlyA.HashAPIKey("fk-issued-before")
	stored := onlyA.InitialHashKey()
	if !bytes.Equal(onlyA.WithHashKey(stored).HashAPIKey("fk-issued-before"), before) {
		t.Fatal("InitialHashKey of a one-key ring differs from the hash key derived so far")
	}
	both := ring(t, b, a)
	if !bytes.Equal(both.InitialHashKey(), stored) {
		t.Fatal("during a rotation the initial hash key is not the previous key's")
	}
	if !bytes.Equal(ring(t, b).WithHashKey(stored).HashAPIKey("fk-issued-before"), before) {
		t.Fatal("after the rotation the stored hash key gives another hash")
	}
}

// RFC 6238 appendix B, SHA-1 column, truncated to 6 digits.
func TestTOTPVectors(t *testing.T) {
	secret := b32.EncodeToString([]byte("12345678901234567890"))
	for _, c := range []struct {
		unix int64
		want string
	}{{59, "287082"}, {1111111109, "081804"}, {1111111111, "050471"}, {1234567890, "005924"}, {2000000000, "279037"}, {20000000000, "353130"}} {
		got, err := TOTPCode(secret, TOTPStep(time.Unix(c.unix, 0)))
		if err != nil || got != c.want {
			t.Errorf("TOTP at %d = %s, %v; want %s", c.unix, got, err, c.want)
		}
	}
}

func TestCheckTOTPWindowAndReplay(t *testing.T) {
	secret := NewTOTPSecret()
	now := time.Unix(1_700_000_015, 0)
	step := TOTPStep(now)
	for _, d := range []int64{-1, 0, 1} {
		code, _ := TOTPCode(secret, step+d)
		if got, ok := CheckTOTP(secret, code, now, 0); !ok || got != step+d {
			t.Errorf("code of step %+d refused", d)
		}
	}
	for _, d := range []int64{-2, 2} {
		code, _ := TOTPCode(secret, step+d)
		if _, ok := CheckTOTP(secret, code, now, 0); ok {
			t.Errorf("code of step %+d accepted", d)
		}
	}
	code, _ := TOTPCode(secret, step)
	if _, ok := CheckTOTP(secret, code, now, step); ok {
		t.Error("a code of the last used step was accepted again")
	}
	if _, ok := CheckTOTP(secret, "12345", now, 0); ok {
		t.Error("a 5-digit code was accepted")
	}
}

func TestRecoveryCodeHashIgnoresFormatting(t *testing.T) {
	c := NewRecoveryCode()
	if len(c) != 19 {
		t.Fatalf("recovery code %q", c)
	}
	if !bytes.Equal(HashRecoveryCode(c), HashRecoveryCode(strings.ToUpper(strings.ReplaceAll(c, "-", " ")))) {
		t.Fatal("formatting changes the hash")
	}
	if bytes.Equal(HashRecoveryCode(c), HashRecoveryCode(NewRecoveryCode())) {
		t.Fatal("two codes share a hash")
	}
}

func b64(b []byte) string { return base64.RawStdEncoding.EncodeToString(b) }
