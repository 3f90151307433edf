package api

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/fluxcode/fluxcode/internal/auth"
	"github.com/fluxcode/fluxcode/internal/secret"
	"github.com/fluxcode/fluxcode/internal/store"
)

// Admin API keys let scripts use the admin routes without a password login. A key acts for
// the admin who created it and is checked against the store on every request, so it carries
// admin rights only while its creator is an active admin, and a revocation refuses it at
// once on every node (no node caches it).
//
// Two-factor sign-in: a key is created only by a signed-in session, and requireAdmin refuses
// an admin without two-factor sign-in while require_2fa_for_admins is on, so every key of
// that time was made by a session that passed the second factor. The key itself is no
// session: like a session token it is a bearer secret, but 256 random bits shown once and
// never typed, so the password guessing and reuse that the second factor defends against do
// not apply to it. The setting still holds it: a key whose creator has no second factor
// while the setting is on is refused like that creator's sessions. A key cannot create keys,
// so a leaked key cannot outlive its revocation through another.

// scopeAdminKey is the scope of a request made with an admin API key: admin routes only.
const scopeAdminKey = "admin-key"

// adminKeyTouchEvery bounds how often a key's use is written: LastUsedAt is coarse, and a
// script polling the API does not turn every read into a write.
const adminKeyTouchEvery = time.Minute

// adminKeyPrefixLen keeps "fkadmin-" and five characters for display.
const adminKeyPrefixLen = len(secret.AdminAPIKeyPrefix) + 5

// authenticateAdminKey admits an admin API key that exists, is not revoked and whose creator
// is still an active admin, as that admin.
func (a *api) authenticateAdminKey(r *http.Request, key string) (*store.User, credential, error) {
	ctx := r.Context()
	refuse := func(msg string) (*store.User, credential, error) {
		return nil, credential{}, newError(kindUnauthenticated, "%s", msg)
	}
	if !strings.HasPrefix(key, secret.AdminAPIKeyPrefix) {
		return refuse("x-api-key on /api/v1 takes an admin API key (" + secret.AdminAPIKeyPrefix + "…); gateway keys serve only the gateway")
	}
	k, err := a.store.AdminAPIKeyByHash(ctx, a.keys.HashAPIKey(key))
	if errors.Is(err, store.ErrNotFound) {
		return refuse("the admin API key is invalid")
	}
	if err != nil {
		return nil, credential{}, err
	}
	if k.RevokedAt != nil {
		return refuse("the admin API key was revoked")
	}
	u, err := a.store.GetUser(ctx, k.CreatedBy)
	if errors.Is(err, store.ErrNotFound) {
		return refuse("the admin API key's creator no longer exists")
	}
	if err != nil {
		return nil, credential{}, err
	}
	if u.Status != store.StatusActive || u.Role != store.RoleAdmin {
		return refuse("the admin API key's creator is no longer an active administrator")
	}
	if now := a.now(); k.LastUsedAt == nil || now.Sub(*k.LastUsedAt) >= adminKeyTouchEvery {
		if err := a.store.TouchAdminAPIKey(ctx, k.ID, now); err != nil {
			// The request is authenticated; a missed last-used time is not worth refusing it.
			a.log.ErrorContext(ctx, "record admin api key use failed", "admin_key_id", k.ID, "err", err)
		}
	}
	return u, credential{adminKeyID: k.ID, Claims: auth.Claims{UserID: u.ID, Role: u.Role, Scope: scopeAdminKey}}, nil
}

type createAdminKeyReq struct {
	Name string `json:"name"`
}

// createAdminKey makes an admin API key for the signed-in admin. The answer is the only time
// the full key is shown: only its keyed hash is stored.
func (a *api) createAdminKey(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if tokenScope(ctx) == scopeAdminKey {
		a.writeError(w, r, newError(kindForbidden, "an admin API key cannot create admin API keys: sign in to create one"))
		return
	}
	var req createAdminKeyReq
	if err := decodeJSON(w, r, &req); err != nil {
		a.writeError(w, r, err)
		return
	}
	name, err := checkText("name", req.Name, true, maxNameLen)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	full := secret.NewAdminAPIKey()
	k := &store.AdminAPIKey{CreatedBy: currentUser(ctx).ID, Name: name, Hash: a.keys.HashAPIKey(full),
		Prefix: full[:adminKeyPrefixLen]}
	if err := a.store.CreateAdminAPIKey(ctx, k); err != nil {
		a.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, createdAdminKeyView{adminKeyView: viewAdminKey(k), Key: full})
}

// revokeAdminKey revokes any admin's key (an admin can stop a colleague's leaked key). The
// key stays listed, revoked, so the audit log's admin_key_id still names it.
func (a *api) revokeAdminKey(w http.ResponseWriter, r *http.Request) {
	k, err := byPathID(r, a.store.GetAdminAPIKey)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	if err := a.store.RevokeAdminAPIKey(r.Context(), k.ID, a.now()); err != nil {
		a.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// adminKeyView is an admin API key in the API; never the key or its hash.
type adminKeyView struct {
	ID         int64      `json:"id"`
	Name       string     `json:"name"`
	Prefix     string     `json:"prefix"`
	CreatedBy  int64      `json:"created_by"`
	Status     string     `json:"status"` // active or revoked
	LastUsedAt *time.Time `json:"last_used_at"`
	RevokedAt  *time.Time `json:"revoked_at"`
	CreatedAt  time.Time  `json:"created_at"`
}

type createdAdminKeyView struct {
	adminKeyView
	Key string `json:"key"`
}

func viewAdminKey(k *store.AdminAPIKey) adminKeyView {
	status := store.StatusActive
	if k.RevokedAt != nil {
		status = "revoked"
	}
	return adminKeyView{ID: k.ID, Name: k.Name, Prefix: k.Prefix, CreatedBy: k.CreatedBy, Status: status,
		LastUsedAt: k.LastUsedAt, RevokedAt: k.RevokedAt, CreatedAt: k.CreatedAt}
}
