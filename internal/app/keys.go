package app

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/fluxcode/fluxcode/internal/config"
	"github.com/fluxcode/fluxcode/internal/secret"
)

// LoadKeys derives the secret keys from ENCRYPTION_KEY. A single node without one uses
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
	keys, err = secret.NewKeys(master)
	if err != nil {
		return nil, false, err
	}
	return keys, generated, nil
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
