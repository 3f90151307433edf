package store

import (
	"context"
	"time"
)

// TOTP is a user's two-factor sign-in state. Secrets are sealed at rest and come back
// decrypted.
type TOTP struct {
	UserID int64
	// Secret is the confirmed TOTP secret (base32); it signs the user in once Enabled.
	Secret string
	// PendingSecret is an enrolment not yet confirmed with a code.
	PendingSecret string
	Enabled       bool
	// LastStep is the last TOTP time step accepted: a code of that step or earlier is refused.
	LastStep          int64
	RecoveryCodesLeft int
	UpdatedAt         time.Time
}

// TwoFactor stores TOTP enrolments and one-time recovery codes. Every "use" method is one
// atomic statement, so two nodes given the same code at once accept it at most once.
type TwoFactor interface {
	// GetTOTP returns ErrNotFound when the user never started an enrolment.
	GetTOTP(ctx context.Context, userID int64) (*TOTP, error)
	// SetPendingTOTP stores secret as the user's pending enrolment, replacing an earlier
	// pending one; a confirmed secret stays in force until EnableTOTP replaces it.
	SetPendingTOTP(ctx context.Context, userID int64, secret string) error
	// EnableTOTP makes the pending secret the user's secret when it is still pending (ErrConflict
	// when another enrolment replaced it, ErrNotFound when none is pending), records step as
	// used and replaces the recovery codes by the given hashes, in one transaction.
	EnableTOTP(ctx context.Context, userID int64, pending string, step int64, recoveryHashes [][]byte) error
	// UseTOTPStep records step as used when it is later than the last one used: ok=false
	// when it is not (a replayed code) or the user has no enabled TOTP.
	UseTOTPStep(ctx context.Context, userID, step int64) (ok bool, err error)
	// UseRecoveryCode deletes the code with that hash: ok=false when the user has none such.
	UseRecoveryCode(ctx context.Context, userID int64, hash []byte) (ok bool, err error)
	// ReplaceRecoveryCodes replaces every recovery code of the user.
	ReplaceRecoveryCodes(ctx context.Context, userID int64, hashes [][]byte) error
	// DeleteTOTP removes the enrolment and the recovery codes. ErrNotFound when there is none.
	DeleteTOTP(ctx context.Context, userID int64) error
}

// AuditEntry is one admin change. Before and After are JSON views of the target with every
// secret removed ("" when there is none: nothing before a create, nothing after a delete).
type AuditEntry struct {
	ID          int64
	ActorUserID int64
	ActorEmail  string
	// AdminKeyID is the admin API key the actor acted through; 0 for a signed-in session.
	AdminKeyID int64
	Action     string // e.g. "user.update", "account.create"
	TargetType string // e.g. "user", "account"
	TargetID   string
	Before     string
	After      string
	ClientIP   string
	CreatedAt  time.Time
}

// AuditFilter selects audit entries. Zero fields do not filter.
type AuditFilter struct {
	ActorUserID int64
	ActorEmail  string // exact, as recorded (lower case)
	Action      string
	TargetType  string
	TargetID    string
	From, To    time.Time // [From, To)
}

// Audit is the append-only log of admin changes.
type Audit interface {
	// AppendAudit records e and sets its ID and CreatedAt.
	AppendAudit(ctx context.Context, e *AuditEntry) error
	// ListAudit returns a page of the matching entries, newest first, and their total count.
	ListAudit(ctx context.Context, f AuditFilter, p Page) ([]AuditEntry, int, error)
}

// ResealReport says what a ResealSecrets round did.
type ResealReport struct {
	Checked  int // sealed values read
	Resealed int // values that were sealed under another key and now are under the current one
}

// SecretsRotation re-seals stored secrets under the current ENCRYPTION_KEY.
type SecretsRotation interface {
	// ResealSecrets reads every sealed column (account credentials, proxy passwords, sealed
	// settings, TOTP secrets) in batches of at most batch rows and re-seals each value not
	// sealed under the current key. A value is replaced only if it is still the one read, so
	// a node writing the same row meanwhile wins and nothing it wrote is lost. Idempotent.
	ResealSecrets(ctx context.Context, batch int) (ResealReport, error)
}
