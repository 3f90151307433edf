// Package secret protects what FluxCode must not store in the clear: upstream credentials
// (AES-256-GCM under a key derived from the operator's ENCRYPTION_KEY), API keys (looked up
// by an HMAC-SHA256 keyed hash) and passwords (argon2id).
package secret

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
)

// MasterKeySize is the size of ENCRYPTION_KEY once decoded.
const MasterKeySize = 32

// sealPrefix marks a sealed string, so a future key rotation can add "v2:".
const sealPrefix = "v1:"

// Keys holds the keys derived from one master key. Safe for concurrent use.
type Keys struct {
	aead    cipher.AEAD
	hashKey []byte
}

// ParseMasterKey decodes ENCRYPTION_KEY: 64 hex characters or standard/URL base64 of 32 bytes.
func ParseMasterKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if b, err := hex.DecodeString(s); err == nil && len(b) == MasterKeySize {
		return b, nil
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil && len(b) == MasterKeySize {
			return b, nil
		}
	}
	return nil, errors.New("must be 32 bytes as 64 hex characters or base64 (openssl rand -hex 32)")
}

// NewMasterKey returns a fresh random master key, hex encoded.
func NewMasterKey() string {
	b := make([]byte, MasterKeySize)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// NewKeys derives the encryption and hashing keys from master.
func NewKeys(master []byte) (*Keys, error) {
	if len(master) != MasterKeySize {
		return nil, fmt.Errorf("secret: master key is %d bytes, want %d", len(master), MasterKeySize)
	}
	encKey, err := hkdf.Key(sha256.New, master, nil, "fluxcode credentials v1", 32)
	if err != nil {
		return nil, fmt.Errorf("secret: derive encryption key: %w", err)
	}
	hashKey, err := hkdf.Key(sha256.New, master, nil, "fluxcode api key hash v1", 32)
	if err != nil {
		return nil, fmt.Errorf("secret: derive hash key: %w", err)
	}
	block, err := aes.NewCipher(encKey)
	if err != nil {
		return nil, fmt.Errorf("secret: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("secret: %w", err)
	}
	return &Keys{aead: aead, hashKey: hashKey}, nil
}

// Seal encrypts plaintext; the nonce is stored in front of the ciphertext.
func (k *Keys) Seal(plaintext []byte) []byte {
	nonce := make([]byte, k.aead.NonceSize(), k.aead.NonceSize()+len(plaintext)+k.aead.Overhead())
	rand.Read(nonce)
	return k.aead.Seal(nonce, nonce, plaintext, nil)
}

// Open decrypts what Seal produced. It fails when the data was altered or sealed under
// another key.
func (k *Keys) Open(sealed []byte) ([]byte, error) {
	n := k.aead.NonceSize()
	if len(sealed) < n+k.aead.Overhead() {
		return nil, errors.New("secret: sealed data too short")
	}
	out, err := k.aead.Open(nil, sealed[:n], sealed[n:], nil)
	if err != nil {
		return nil, errors.New("secret: cannot decrypt (wrong ENCRYPTION_KEY or altered data)")
	}
	return out, nil
}

// SealString seals s into printable text for a TEXT column. The empty string stays empty.
func (k *Keys) SealString(s string) string {
	if s == "" {
		return ""
	}
	return sealPrefix + base64.RawStdEncoding.EncodeToString(k.Seal([]byte(s)))
}

// OpenString reverses SealString.
func (k *Keys) OpenString(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	rest, ok := strings.CutPrefix(s, sealPrefix)
	if !ok {
		return "", errors.New("secret: value is not sealed")
	}
	b, err := base64.RawStdEncoding.DecodeString(rest)
	if err != nil {
		return "", fmt.Errorf("secret: decode sealed value: %w", err)
	}
	out, err := k.Open(b)
	if err != nil {
		return "", err
	}
	return string(out), nil
}

// HashAPIKey is the keyed hash an API key is stored and looked up by. Without the master
// key a stolen table cannot be used to test guesses.
func (k *Keys) HashAPIKey(key string) []byte {
	m := hmac.New(sha256.New, k.hashKey)
	m.Write([]byte(key))
	return m.Sum(nil)
}

// APIKeyPrefix starts every FluxCode API key.
const APIKeyPrefix = "fk-"

// NewAPIKey returns a new random API key: "fk-" and 43 URL-safe characters (256 bits).
func NewAPIKey() string {
	return APIKeyPrefix + RandomToken(32)
}

// RandomToken returns n random bytes, URL-safe base64 without padding.
func RandomToken(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// argon2id parameters: OWASP's second recommended set (19 MiB, 2 passes, 1 lane).
const (
	argonTime    = 2
	argonMemory  = 19 * 1024
	argonThreads = 1
	argonKeyLen  = 32
)

// HashPassword hashes pw with argon2id and a random salt, in the PHC string format.
func HashPassword(pw string) string {
	salt := make([]byte, 16)
	rand.Read(salt)
	sum := argon2.IDKey([]byte(pw), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(sum))
}

// CheckPassword reports whether pw matches the encoded hash. Malformed hashes never match.
func CheckPassword(encoded, pw string) bool {
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false
	}
	var version int
	var mem, tm uint32
	var threads uint8
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return false
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &mem, &tm, &threads); err != nil {
		return false
	}
	salt, err1 := base64.RawStdEncoding.DecodeString(parts[4])
	want, err2 := base64.RawStdEncoding.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(want) == 0 {
		return false
	}
	got := argon2.IDKey([]byte(pw), salt, tm, mem, threads, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1
}
