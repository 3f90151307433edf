// Package secret protects what FluxCode must not store in the clear: upstream credentials
// (AES-256-GCM under a key derived from the operator's ENCRYPTION_KEY, with older keys kept
// for opening during a rotation), API keys (looked up by an HMAC-SHA256 keyed hash) and
// passwords (argon2id).
package secret

import (
	"bytes"
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
	"slices"
	"strings"

	"golang.org/x/crypto/argon2"
)

// MasterKeySize is the size of ENCRYPTION_KEY once decoded.
const MasterKeySize = 32

// Sealed strings start with a version. "v1:" values (before key rotation existed) carry no key
// id and are opened by trying every key of the ring; "v2:<id>:" values name the key that
// sealed them.
const (
	sealPrefixV1 = "v1:"
	sealPrefixV2 = "v2:"
)

// Keys is a key ring: the current master key seals, the previous ones (ENCRYPTION_KEY_PREVIOUS)
// still open what they sealed, so a rotation can re-seal stored values while nodes serve.
// It also holds the API key hash key. Safe for concurrent use.
type Keys struct {
	cur     sealKey
	prev    []sealKey
	hashKey []byte
	// firstHashKey is the hash key derived from the master key the deployment began with
	// (see InitialHashKey).
	firstHashKey []byte
}

// sealKey is one master key's AEAD and its public id.
type sealKey struct {
	id   string
	aead cipher.AEAD
	hash []byte // the API key hash key this master key derives
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

// NewKeys derives the keys of a ring holding master alone.
func NewKeys(master []byte) (*Keys, error) { return NewKeyRing(master) }

// NewKeyRing derives the keys of a ring sealing under current and opening under current and
// each of previous. A previous key equal to current is ignored.
func NewKeyRing(current []byte, previous ...[]byte) (*Keys, error) {
	cur, err := deriveSealKey(current)
	if err != nil {
		return nil, err
	}
	k := &Keys{cur: cur, hashKey: cur.hash, firstHashKey: cur.hash}
	for i, m := range previous {
		p, err := deriveSealKey(m)
		if err != nil {
			return nil, fmt.Errorf("secret: previous key %d: %w", i+1, err)
		}
		if p.id == cur.id || slices.ContainsFunc(k.prev, func(q sealKey) bool { return q.id == p.id }) {
			continue
		}
		if len(k.prev) == 0 {
			k.firstHashKey = p.hash
		}
		k.prev = append(k.prev, p)
	}
	return k, nil
}

func deriveSealKey(master []byte) (sealKey, error) {
	if len(master) != MasterKeySize {
		return sealKey{}, fmt.Errorf("secret: master key is %d bytes, want %d", len(master), MasterKeySize)
	}
	encKey, err := hkdf.Key(sha256.New, master, nil, "fluxcode credentials v1", 32)
	if err != nil {
		return sealKey{}, fmt.Errorf("secret: derive encryption key: %w", err)
	}
	hashKey, err := hkdf.Key(sha256.New, master, nil, "fluxcode api key hash v1", 32)
	if err != nil {
		return sealKey{}, fmt.Errorf("secret: derive hash key: %w", err)
	}
	// The id is public (it is stored next to every sealed value): a separate derivation, so
	// it tells nothing about the other keys.
	id, err := hkdf.Key(sha256.New, master, nil, "fluxcode key id v1", 4)
	if err != nil {
		return sealKey{}, fmt.Errorf("secret: derive key id: %w", err)
	}
	block, err := aes.NewCipher(encKey)
	if err != nil {
		return sealKey{}, fmt.Errorf("secret: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return sealKey{}, fmt.Errorf("secret: %w", err)
	}
	return sealKey{id: hex.EncodeToString(id), aead: aead, hash: hashKey}, nil
}

// KeyID is the public id of the current master key, written into every value it seals.
func (k *Keys) KeyID() string { return k.cur.id }

// KeyIDs lists the ids of the ring, current first.
func (k *Keys) KeyIDs() []string {
	ids := []string{k.cur.id}
	for _, p := range k.prev {
		ids = append(ids, p.id)
	}
	return ids
}

// WithHashKey returns a copy of the ring that hashes API keys under hashKey. The hash key
// does not follow the master key: it is stored sealed in the database, so rotating
// ENCRYPTION_KEY re-seals it and every issued API key keeps its hash.
func (k *Keys) WithHashKey(hashKey []byte) *Keys {
	c := *k
	c.hashKey = bytes.Clone(hashKey)
	return &c
}

// InitialHashKey is the API key hash key a deployment that has not stored one yet must keep:
// the one derived from the master key its API keys were hashed under. With previous keys
// configured that is the first of them (the key being rotated away from), else the current one.
func (k *Keys) InitialHashKey() []byte { return bytes.Clone(k.firstHashKey) }

// Seal encrypts plaintext under the current key; the nonce is stored in front of the
// ciphertext.
func (k *Keys) Seal(plaintext []byte) []byte { return k.cur.seal(plaintext) }

func (s sealKey) seal(plaintext []byte) []byte {
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(plaintext)+s.aead.Overhead())
	rand.Read(nonce)
	return s.aead.Seal(nonce, nonce, plaintext, nil)
}

func (s sealKey) open(sealed []byte) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(sealed) < n+s.aead.Overhead() {
		return nil, errors.New("secret: sealed data too short")
	}
	return s.aead.Open(nil, sealed[:n], sealed[n:], nil)
}

// Open decrypts what Seal produced under any key of the ring. It fails when the data was
// altered or sealed under a key the ring does not hold.
func (k *Keys) Open(sealed []byte) ([]byte, error) {
	for _, s := range k.ring() {
		if out, err := s.open(sealed); err == nil {
			return out, nil
		}
	}
	return nil, errors.New("secret: cannot decrypt (wrong ENCRYPTION_KEY or altered data)")
}

func (k *Keys) ring() []sealKey { return append([]sealKey{k.cur}, k.prev...) }

// SealString seals s under the current key into printable text for a TEXT column:
// "v2:<key id>:<base64>". The empty string stays empty.
func (k *Keys) SealString(s string) string {
	if s == "" {
		return ""
	}
	return sealPrefixV2 + k.cur.id + ":" + base64.RawStdEncoding.EncodeToString(k.cur.seal([]byte(s)))
}

// OpenString reverses SealString, under whichever key of the ring sealed the value.
func (k *Keys) OpenString(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	id, body, err := splitSealed(s)
	if err != nil {
		return "", err
	}
	b, err := base64.RawStdEncoding.DecodeString(body)
	if err != nil {
		return "", fmt.Errorf("secret: decode sealed value: %w", err)
	}
	if id == "" { // v1: no key id
		out, err := k.Open(b)
		return string(out), err
	}
	for _, sk := range k.ring() {
		if sk.id == id {
			out, err := sk.open(b)
			if err != nil {
				return "", errors.New("secret: cannot decrypt (altered data)")
			}
			return string(out), nil
		}
	}
	return "", fmt.Errorf("secret: value sealed under key id %s, which is neither ENCRYPTION_KEY nor in ENCRYPTION_KEY_PREVIOUS", id)
}

// splitSealed returns the key id ("" for v1) and the base64 body of a sealed string.
func splitSealed(s string) (id, body string, err error) {
	if rest, ok := strings.CutPrefix(s, sealPrefixV1); ok {
		return "", rest, nil
	}
	if rest, ok := strings.CutPrefix(s, sealPrefixV2); ok {
		if id, body, ok := strings.Cut(rest, ":"); ok && id != "" {
			return id, body, nil
		}
	}
	return "", "", errors.New("secret: value is not sealed")
}

// IsSealed reports whether s has the form of a sealed string.
func IsSealed(s string) bool {
	_, _, err := splitSealed(s)
	return err == nil
}

// SealedKeyID names the key a sealed string was sealed under: its id, "v1" for a value from
// before key ids, "" for the empty string or a value that is not sealed.
func SealedKeyID(s string) string {
	id, _, err := splitSealed(s)
	switch {
	case err != nil:
		return ""
	case id == "":
		return "v1"
	}
	return id
}

// Reseal returns s sealed under the current key. Values already sealed under it come back
// unchanged with changed=false, so running a rotation twice does nothing the second time.
func (k *Keys) Reseal(s string) (out string, changed bool, err error) {
	if s == "" || SealedKeyID(s) == k.cur.id {
		return s, false, nil
	}
	plain, err := k.OpenString(s)
	if err != nil {
		return "", false, err
	}
	return k.SealString(plain), true, nil
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

// AdminAPIKeyPrefix starts every admin API key: distinct from APIKeyPrefix, so neither kind
// is ever taken for the other (the gateway and the admin API look in different tables too).
const AdminAPIKeyPrefix = "fkadmin-"

// NewAdminAPIKey returns a new random admin API key: "fkadmin-" and 43 URL-safe characters.
func NewAdminAPIKey() string {
	return AdminAPIKeyPrefix + RandomToken(32)
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
