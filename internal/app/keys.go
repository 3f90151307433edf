package app

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/fluxcode/fluxcode/internal/config"
	"github.com/fluxcode/fluxcode/internal/secret"
	"github.com/fluxcode/fluxcode/internal/store"
)

// LoadKeys derives the secret keys from ENCRYPTION_KEY (sealing) and ENCRYPTION_KEY_PREVIOUS
// (opening only, during a rotation). A single node without one uses
// DATA_DIR/encryption.key, generating it (mode 0600) on first start; losing that file makes
// stored credentials unreadable, so it is created once and never replaced. A cluster node
// without ENCRYPTION_KEY is refused by config.Validate: nodes must share the key.
func LoadKeys(cfg config.Config) (keys *secret.Keys, generated bool, err error) {
	text := cfg.EncryptionKey
	if text == "" {
		if cfg.Cluster() {
			return nil, false, errors.New("ENCRYPTION_KEY is required in cluster mode, the same on every node (openssl rand -hex 32)")
		}
		if text, generated, err = keyFile(cfg.EncryptionKeyPath()); err != nil {
			return nil, false, err
		}
	}
	master, err := secret.ParseMasterKey(text)
	if err != nil {
		if cfg.EncryptionKey == "" {
			return nil, false, fmt.Errorf("%s: %w", cfg.EncryptionKeyPath(), err)
		}
		return nil, false, fmt.Errorf("ENCRYPTION_KEY: %w", err)
	}
	var previous [][]byte
	for i, text := range config.SplitKeys(cfg.EncryptionKeyPrevious) {
		p, err := secret.ParseMasterKey(text)
		if err != nil {
			return nil, false, fmt.Errorf("ENCRYPTION_KEY_PREVIOUS key %d: %w", i+1, err)
		}
		previous = append(previous, p)
	}
	keys, err = secret.NewKeyRing(master, previous...)
	if err != nil {
		return nil, false, err
	}
	return keys, generated, nil
}

// apiKeyHashSetting names the setting holding the sealed API key hash key.
const apiKeyHashSetting = "system.api_key_hash_key"

// WithAPIKeyHashKey returns keys hashing API keys under the hash key stored (sealed) in the
// settings, storing it first when the database has none. The stored hash key is the one
// derived from the master key the deployment started with, so API keys hashed before this
// setting existed keep working; it is re-sealed, never changed, when ENCRYPTION_KEY rotates,
// so no API key has to be re-hashed or re-issued.
//
// Before storing it the first time, the ring must open what the database already holds: a
// node started with a wrong key alone would otherwise store a hash key no API key matches.
func WithAPIKeyHashKey(ctx context.Context, st store.Store, keys *secret.Keys) (*secret.Keys, error) {
	if _, err := st.GetSetting(ctx, apiKeyHashSetting); errors.Is(err, store.ErrNotFound) {
		if err := ringOpensStored(ctx, st, keys); err != nil {
			return nil, fmt.Errorf("ENCRYPTION_KEY does not open the stored secrets (set ENCRYPTION_KEY_PREVIOUS to the old key during a rotation): %w", err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("read the API key hash key: %w", err)
	}
	candidate := keys.SealString(hex.EncodeToString(keys.InitialHashKey()))
	stored, err := st.SetSettingIfAbsent(ctx, apiKeyHashSetting, candidate)
	if err != nil {
		return nil, fmt.Errorf("share the API key hash key: %w", err)
	}
	text, err := keys.OpenString(stored)
	if err != nil {
		return nil, fmt.Errorf("read the API key hash key (is ENCRYPTION_KEY_PREVIOUS missing the old key?): %w", err)
	}
	hk, err := hex.DecodeString(text)
	if err != nil || len(hk) == 0 {
		return nil, errors.New("read the API key hash key: it is malformed")
	}
	return keys.WithHashKey(hk), nil
}

// keyFile reads the key file, or creates it with a new key when it does not exist. The key is
// written to a temporary file and linked into place, so a process racing on the same data
// directory never reads a half-written file, and both end up with the first writer's key.
func keyFile(path string) (key string, created bool, err error) {
	if b, err := os.ReadFile(path); err == nil {
		return strings.TrimSpace(string(b)), false, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", false, fmt.Errorf("read encryption key: %w", err)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", false, fmt.Errorf("create data directory: %w", err)
	}
	f, err := os.CreateTemp(dir, ".encryption.key-*")
	if err != nil {
		return "", false, fmt.Errorf("create encryption key: %w", err)
	}
	defer os.Remove(f.Name())
	key = secret.NewMasterKey()
	_, err = f.WriteString(key + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", false, fmt.Errorf("write encryption key: %w", err)
	}
	// CreateTemp made the file 0600 already.
	if err := os.Link(f.Name(), path); errors.Is(err, fs.ErrExist) {
		return keyFile(path) // another process won the race
	} else if err != nil {
		return "", false, fmt.Errorf("install encryption key: %w", err)
	}
	return key, true, nil
}

// ringOpensStored opens a sample of what is sealed in the database: the sealed settings, the
// first account and the first proxy.
func ringOpensStored(ctx context.Context, st store.Store, keys *secret.Keys) error {
	all, err := st.ListSettings(ctx)
	if err != nil {
		return err
	}
	for k, v := range all {
		if strings.HasPrefix(k, "system.") && secret.IsSealed(v) {
			if _, err := keys.OpenString(v); err != nil {
				return fmt.Errorf("setting %s: %w", k, err)
			}
		}
	}
	if _, _, err := st.ListAccounts(ctx, store.Page{Limit: 1}); err != nil {
		return err
	}
	_, _, err = st.ListProxies(ctx, store.Page{Limit: 1})
	return err
}
