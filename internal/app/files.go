package app

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"

	"github.com/fluxcode/fluxcode/internal/config"
)

// privateMode is the mode of the files holding sealed credentials, key hashes and the
// ledger: the database and its journal files.
const privateMode fs.FileMode = 0o600

// secureDataDir makes a single node's database files readable by its own user only, before
// SQLite opens them: SQLite creates its -wal and -shm files with the database file's mode, so
// a database created 0600 stays private, and an older one is narrowed to 0600. It warns
// (without changing them) when DATA_DIR or the key file can be read by others: the key
// opens every stored credential.
func secureDataDir(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	if cfg.Cluster() {
		return nil
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("create the data directory (DATA_DIR): %w", err)
	}
	db := cfg.SQLitePath()
	f, err := os.OpenFile(db, os.O_RDWR|os.O_CREATE, privateMode)
	if err != nil {
		return fmt.Errorf("create the database file: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("create the database file: %w", err)
	}
	for _, path := range []string{db, db + "-wal", db + "-shm", db + "-journal"} {
		st, err := os.Stat(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("check the database file: %w", err)
		}
		if st.Mode().Perm()&^privateMode != 0 {
			if err := os.Chmod(path, privateMode); err != nil {
				return fmt.Errorf("make %s private (chmod 600): %w", path, err)
			}
			log.WarnContext(ctx, "database file was readable by others; made it private (0600)", "path", path, "was", st.Mode().Perm().String())
		}
	}
	warnReadable(ctx, log, cfg.DataDir, "DATA_DIR is accessible to other users; chmod 700 it: it holds the database and the encryption key")
	if cfg.EncryptionKey == "" {
		warnReadable(ctx, log, cfg.EncryptionKeyPath(), "the encryption key file is readable by other users; chmod 600 it: it opens every stored credential")
	}
	return nil
}

// warnReadable logs msg when path's group or other permission bits are set.
func warnReadable(ctx context.Context, log *slog.Logger, path, msg string) {
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm()&0o077 == 0 {
		return
	}
	log.WarnContext(ctx, msg, "path", path, "mode", st.Mode().Perm().String())
}
