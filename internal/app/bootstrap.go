package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/fluxcode/fluxcode/internal/api"
	"github.com/fluxcode/fluxcode/internal/config"
	"github.com/fluxcode/fluxcode/internal/secret"
	"github.com/fluxcode/fluxcode/internal/store"
)

// AdminPasswordLine starts the one stdout line that shows a generated admin password. Only
// the node whose CreateFirstAdmin created the admin prints it, so N nodes starting together
// print it at most once between them.
const AdminPasswordLine = "FLUXCODE ADMIN PASSWORD (generated, shown once):"

// jwtSecretSetting names the setting holding the sealed, generated JWT secret.
const jwtSecretSetting = "system.jwt_secret"

// EnsureAdmin creates the first admin from ADMIN_EMAIL and ADMIN_PASSWORD when no admin
// exists, atomically across nodes. When ADMIN_PASSWORD is unset a password is generated;
// only the creating node writes it, as one line starting with AdminPasswordLine, to out
// (never to the structured log). Once an admin exists the variables change nothing:
// `fluxcode admin reset-password` does.
func EnsureAdmin(ctx context.Context, cfg config.Config, st store.Store, out io.Writer, logger *slog.Logger) (created bool, err error) {
	password, generated := cfg.AdminPassword, false
	if password == "" {
		password, generated = GeneratePassword(), true
	}
	// The API looks e-mails up in lower case; store the admin's the same way.
	email := strings.ToLower(strings.TrimSpace(cfg.AdminEmail))
	u := &store.User{
		Email:        email,
		PasswordHash: secret.HashPassword(password),
		Role:         store.RoleAdmin,
		Status:       store.StatusActive,
	}
	created, err = st.CreateFirstAdmin(ctx, u)
	if errors.Is(err, store.ErrConflict) {
		return false, fmt.Errorf("create the first admin: a non-admin user already has the email %s (ADMIN_EMAIL); choose another or promote that user", email)
	}
	if err != nil {
		return false, fmt.Errorf("create the first admin: %w", err)
	}
	if !created {
		logger.DebugContext(ctx, "an admin exists; ADMIN_EMAIL and ADMIN_PASSWORD apply only on first start")
		return false, nil
	}
	logger.InfoContext(ctx, "created the first admin", "email", email, "password_generated", generated)
	if generated {
		// The console asks for a new password at the first sign-in.
		if err := api.RequirePasswordChange(ctx, st, u.ID); err != nil {
			return true, fmt.Errorf("mark the generated admin password for change: %w", err)
		}
		if _, err := fmt.Fprintf(out, "%s email=%s password=%s\n", AdminPasswordLine, email, password); err != nil {
			return true, fmt.Errorf("print the generated admin password: %w", err)
		}
	}
	return true, nil
}

// GeneratePassword returns a random password of 24 URL-safe characters (144 bits).
func GeneratePassword() string { return secret.RandomToken(18) }

// JWTSecret returns the secret login tokens are signed with: JWT_SECRET when set; otherwise a
// generated one that the first node to start stores (sealed under ENCRYPTION_KEY) in the
// settings, so every node signs with the same value. The second case logs a warning: a fixed
// JWT_SECRET survives a database rebuild, a generated one does not.
func JWTSecret(ctx context.Context, cfg config.Config, st store.Settings, keys *secret.Keys, logger *slog.Logger) ([]byte, error) {
	if cfg.JWTSecret != "" {
		return []byte(cfg.JWTSecret), nil
	}
	candidate := secret.RandomToken(48)
	stored, err := st.SetSettingIfAbsent(ctx, jwtSecretSetting, keys.SealString(candidate))
	if err != nil {
		return nil, fmt.Errorf("share the generated JWT secret: %w", err)
	}
	value, err := keys.OpenString(stored)
	if err != nil {
		return nil, fmt.Errorf("read the shared JWT secret (was ENCRYPTION_KEY changed?): %w", err)
	}
	if value == "" {
		return nil, errors.New("read the shared JWT secret: it is empty")
	}
	logger.WarnContext(ctx, "JWT_SECRET is not set: login tokens are signed with a generated secret shared through the database; set a fixed JWT_SECRET (openssl rand -hex 32) on every node")
	return []byte(value), nil
}
