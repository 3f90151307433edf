package api

import (
	"context"
	"log/slog"
	"net/mail"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/fluxcode/fluxcode/internal/invalidate"
	"github.com/fluxcode/fluxcode/internal/store"
)

// Bounds of user input.
const (
	minPasswordLen = 8
	maxPasswordLen = 256
	maxNameLen     = 100
	maxTextLen     = 500
	maxConcurrency = 100_000
)

// normalizeEmail trims and lowercases an email and checks it is one plain address.
func normalizeEmail(field, s string) (string, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if s == "" {
		return "", invalid(field, "%s is required", field)
	}
	addr, err := mail.ParseAddress(s)
	if err != nil || addr.Address != s || addr.Name != "" || len(s) > 254 {
		return "", invalid(field, "%s must be a plain email address", field)
	}
	return s, nil
}

func checkPassword(field, pw string) error {
	n := utf8.RuneCountInString(pw)
	if n < minPasswordLen || len(pw) > maxPasswordLen {
		return invalid(field, "%s must have %d to %d characters", field, minPasswordLen, maxPasswordLen)
	}
	return nil
}

// newUser validates an email and password and returns an active user with them, the
// password hashed through the node's gate.
func (a *api) newUser(ctx context.Context, email, password string) (*store.User, error) {
	email, err := normalizeEmail("email", email)
	if err != nil {
		return nil, err
	}
	if err := checkPassword("password", password); err != nil {
		return nil, err
	}
	hash, err := a.hashPassword(ctx, password)
	if err != nil {
		return nil, err
	}
	return &store.User{Email: email, PasswordHash: hash, Role: store.RoleUser, Status: store.StatusActive}, nil
}

// checkText bounds a free-text field; required refuses the empty (or blank) string.
func checkText(field, s string, required bool, max int) (string, error) {
	s = strings.TrimSpace(s)
	if required && s == "" {
		return "", invalid(field, "%s is required", field)
	}
	if utf8.RuneCountInString(s) > max {
		return "", invalid(field, "%s must have at most %d characters", field, max)
	}
	if !utf8.ValidString(s) {
		return "", invalid(field, "%s must be valid UTF-8", field)
	}
	return s, nil
}

// checkEnum requires s to be one of allowed.
func checkEnum(field, s string, allowed ...string) error {
	if !slices.Contains(allowed, s) {
		return invalid(field, "%s must be one of %s", field, strings.Join(allowed, ", "))
	}
	return nil
}

func checkConcurrency(field string, n int) error {
	if n < 0 || n > maxConcurrency {
		return invalid(field, "%s must be from 0 (unlimited) to %d", field, maxConcurrency)
	}
	return nil
}

// publish tells every node to drop its cached copy of a record that was just written. The
// write itself is durable, so a failure to publish is logged, not answered: caches expire on
// their own, and a node that missed messages drops everything on reconnect.
func (a *api) publish(ctx context.Context, kind invalidate.Kind, id int64) {
	if err := invalidate.Publish(ctx, a.coord, kind, id); err != nil {
		a.log.LogAttrs(ctx, slog.LevelError, "publish invalidation failed",
			slog.String("kind", string(kind)), slog.Int64("id", id), slog.Any("err", err))
	}
}
