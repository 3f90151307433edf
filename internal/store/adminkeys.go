package store

import (
	"context"
	"time"
)

// AdminAPIKey is a credential for automating the admin API: it acts with the rights of the
// admin who created it, while that user is still an active admin. Only its keyed hash is
// stored; the key itself is shown once, when it is made.
type AdminAPIKey struct {
	ID        int64
	CreatedBy int64 // the admin whose rights it carries
	Name      string
	Hash      []byte
	Prefix    string // the key's first characters, for recognising it in a list
	// LastUsedAt is coarse: a node records a use at most once a minute per key.
	LastUsedAt *time.Time
	// RevokedAt is set once, by RevokeAdminAPIKey; a revoked key is kept for the audit trail.
	RevokedAt *time.Time
	CreatedAt time.Time
}

// AdminAPIKeys stores admin API keys. Get* return ErrNotFound.
type AdminAPIKeys interface {
	// CreateAdminAPIKey inserts k and sets ID and CreatedAt. ErrConflict on a taken hash,
	// ErrInvalid for an unknown creator or an empty hash or name.
	CreateAdminAPIKey(ctx context.Context, k *AdminAPIKey) error
	GetAdminAPIKey(ctx context.Context, id int64) (*AdminAPIKey, error)
	// AdminAPIKeyByHash finds a key, revoked or not: the caller decides.
	AdminAPIKeyByHash(ctx context.Context, hash []byte) (*AdminAPIKey, error)
	// ListAdminAPIKeys lists every admin's keys in creation order.
	ListAdminAPIKeys(ctx context.Context, p Page) ([]AdminAPIKey, int, error)
	// RevokeAdminAPIKey marks the key revoked at at; revoking it again keeps the first time.
	RevokeAdminAPIKey(ctx context.Context, id int64, at time.Time) error
	// TouchAdminAPIKey records a use; a time never moves backwards.
	TouchAdminAPIKey(ctx context.Context, id int64, at time.Time) error
}
