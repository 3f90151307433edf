package storetest

import (
	"testing"
	"time"

	"github.com/fluxcode/fluxcode/internal/store"
)

// testAdminAPIKeys: keys are created, found by hash, listed, touched forwards only, revoked
// once (a second revocation keeps the first time), go with their creator, and an audit
// entry keeps the key it was made through.
func testAdminAPIKeys(t *testing.T, open Open) {
	s := open(t)
	ctx := ctxT(t)
	admin := MustUser(t, s, func(u *store.User) { u.Role = store.RoleAdmin })
	other := MustUser(t, s, func(u *store.User) { u.Role = store.RoleAdmin })

	k := &store.AdminAPIKey{CreatedBy: admin.ID, Name: "ci", Hash: randomHash(), Prefix: "fkadmin-abcde"}
	must(t, "CreateAdminAPIKey", s.CreateAdminAPIKey(ctx, k))
	if k.ID == 0 || k.CreatedAt.IsZero() {
		t.Fatalf("CreateAdminAPIKey did not set ID and CreatedAt: %+v", k)
	}
	got, err := s.GetAdminAPIKey(ctx, k.ID)
	must(t, "GetAdminAPIKey", err)
	equal(t, "stored key", *got, *k)
	byHash, err := s.AdminAPIKeyByHash(ctx, k.Hash)
	must(t, "AdminAPIKeyByHash", err)
	equal(t, "found by hash", *byHash, *k)
	_, err = s.AdminAPIKeyByHash(ctx, randomHash())
	wantErr(t, "unknown hash", err, store.ErrNotFound)
	_, err = s.GetAdminAPIKey(ctx, k.ID+1000)
	wantErr(t, "unknown id", err, store.ErrNotFound)

	wantErr(t, "taken hash", s.CreateAdminAPIKey(ctx, &store.AdminAPIKey{CreatedBy: other.ID, Name: "x", Hash: k.Hash}), store.ErrConflict)
	wantErr(t, "unknown creator", s.CreateAdminAPIKey(ctx, &store.AdminAPIKey{CreatedBy: other.ID + 1000, Name: "x", Hash: randomHash()}), store.ErrInvalid)
	wantErr(t, "no name", s.CreateAdminAPIKey(ctx, &store.AdminAPIKey{CreatedBy: other.ID, Hash: randomHash()}), store.ErrInvalid)
	wantErr(t, "no hash", s.CreateAdminAPIKey(ctx, &store.AdminAPIKey{CreatedBy: other.ID, Name: "x"}), store.ErrInvalid)

	second := &store.AdminAPIKey{CreatedBy: other.ID, Name: "backup", Hash: randomHash(), Prefix: "fkadmin-fghij"}
	must(t, "CreateAdminAPIKey second", s.CreateAdminAPIKey(ctx, second))
	list, total, err := s.ListAdminAPIKeys(ctx, store.Page{})
	must(t, "ListAdminAPIKeys", err)
	equal(t, "list", []any{total, len(list), list[0].ID, list[1].ID}, []any{2, 2, k.ID, second.ID})

	must(t, "TouchAdminAPIKey", s.TouchAdminAPIKey(ctx, k.ID, base))
	must(t, "TouchAdminAPIKey earlier", s.TouchAdminAPIKey(ctx, k.ID, base.Add(-time.Hour)))
	got, err = s.GetAdminAPIKey(ctx, k.ID)
	must(t, "GetAdminAPIKey touched", err)
	equal(t, "last used never moves back", got.LastUsedAt, tp(base))

	must(t, "RevokeAdminAPIKey", s.RevokeAdminAPIKey(ctx, k.ID, base.Add(time.Minute)))
	must(t, "RevokeAdminAPIKey again", s.RevokeAdminAPIKey(ctx, k.ID, base.Add(time.Hour)))
	byHash, err = s.AdminAPIKeyByHash(ctx, k.Hash)
	must(t, "AdminAPIKeyByHash revoked", err)
	equal(t, "first revocation kept", byHash.RevokedAt, tp(base.Add(time.Minute)))
	wantErr(t, "revoke unknown", s.RevokeAdminAPIKey(ctx, k.ID+1000, base), store.ErrNotFound)

	e := &store.AuditEntry{ActorUserID: admin.ID, ActorEmail: admin.Email, AdminKeyID: k.ID, Action: "group.create",
		TargetType: "group", TargetID: "1"}
	must(t, "AppendAudit", s.AppendAudit(ctx, e))
	entries, _, err := s.ListAudit(ctx, store.AuditFilter{ActorUserID: admin.ID}, store.Page{})
	must(t, "ListAudit", err)
	equal(t, "audit entry", entries, []store.AuditEntry{*e})

	must(t, "DeleteUser", s.DeleteUser(ctx, other.ID))
	_, err = s.GetAdminAPIKey(ctx, second.ID)
	wantErr(t, "key of a deleted creator", err, store.ErrNotFound)
}
