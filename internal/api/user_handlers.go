package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/fluxcode/fluxcode/internal/invalidate"
	"github.com/fluxcode/fluxcode/internal/store"
)

type createUserReq struct {
	Email       string `json:"email"`
	Password    string `json:"password"`
	Role        string `json:"role"`
	Status      string `json:"status"`
	Concurrency *int   `json:"concurrency"`
}

// createUser adds a user. The balance starts at zero: credit it through /balance so every
// change is a recorded transaction.
func (a *api) createUser(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	var req createUserReq
	if err := decodeJSON(w, r, &req); err != nil {
		a.writeError(w, r, err)
		return
	}
	u, err := a.newUser(ctx, req.Email, req.Password)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	u.Role, u.Status = orDefault(req.Role, u.Role), orDefault(req.Status, u.Status)
	if err := checkEnum("role", u.Role, store.RoleUser, store.RoleAdmin); err != nil {
		a.writeError(w, r, err)
		return
	}
	if err := checkEnum("status", u.Status, store.StatusActive, store.StatusDisabled); err != nil {
		a.writeError(w, r, err)
		return
	}
	if req.Concurrency != nil {
		u.Concurrency = *req.Concurrency
	} else {
		s, err := a.loadSettings(ctx)
		if err != nil {
			a.writeError(w, r, err)
			return
		}
		u.Concurrency = s.DefaultConcurrency
	}
	if err := checkConcurrency("concurrency", u.Concurrency); err != nil {
		a.writeError(w, r, err)
		return
	}
	if err := a.store.CreateUser(ctx, u); err != nil {
		a.writeError(w, r, emailConflict(err))
		return
	}
	writeJSON(w, http.StatusCreated, viewUser(u))
}

func emailConflict(err error) error {
	if errors.Is(err, store.ErrConflict) {
		return &apiError{kind: kindConflict, field: "email", message: "this email is already registered", err: err}
	}
	return err
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

type updateUserReq struct {
	Email       *string `json:"email"`
	Role        *string `json:"role"`
	Status      *string `json:"status"`
	Concurrency *int    `json:"concurrency"`
	RPMLimit    *int64  `json:"rpm_limit"` // requests per minute across the user's keys; 0 = none
	TPMLimit    *int64  `json:"tpm_limit"` // tokens per minute across the user's keys; 0 = none
	// Password resets the password, which revokes the user's tokens; RevokeAPIKeys (with
	// it) deletes the user's API keys as well.
	Password      *string `json:"password"`
	RevokeAPIKeys bool    `json:"revoke_api_keys"`
	// AllowedGroupIDs replaces the exclusive groups the user may use.
	AllowedGroupIDs *[]int64 `json:"allowed_group_ids"`
}

func (a *api) updateUser(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	u, err := byPathID(r, a.store.GetUser)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	var req updateUserReq
	if err := decodeJSON(w, r, &req); err != nil {
		a.writeError(w, r, err)
		return
	}
	if req.Email != nil {
		if u.Email, err = normalizeEmail("email", *req.Email); err != nil {
			a.writeError(w, r, err)
			return
		}
	}
	if req.Role != nil {
		if err := checkEnum("role", *req.Role, store.RoleUser, store.RoleAdmin); err != nil {
			a.writeError(w, r, err)
			return
		}
		u.Role = *req.Role
	}
	if req.Status != nil {
		if err := checkEnum("status", *req.Status, store.StatusActive, store.StatusDisabled); err != nil {
			a.writeError(w, r, err)
			return
		}
		u.Status = *req.Status
	}
	if req.Concurrency != nil {
		if err := checkConcurrency("concurrency", *req.Concurrency); err != nil {
			a.writeError(w, r, err)
			return
		}
		u.Concurrency = *req.Concurrency
	}
	if err := applyRates(&u.RPMLimit, &u.TPMLimit, req.RPMLimit, req.TPMLimit); err != nil {
		a.writeError(w, r, err)
		return
	}
	if req.Password != nil {
		if err := checkPassword("password", *req.Password); err != nil {
			a.writeError(w, r, err)
			return
		}
	} else if req.RevokeAPIKeys {
		a.writeError(w, r, invalid("revoke_api_keys", "revoke_api_keys goes with a new password"))
		return
	}
	if req.AllowedGroupIDs != nil {
		for _, id := range *req.AllowedGroupIDs {
			if _, err := a.groupField(ctx, "allowed_group_ids", id); err != nil {
				a.writeError(w, r, err)
				return
			}
		}
	}
	// An admin cannot lock themselves out; another admin can still change them.
	if u.ID == currentUser(ctx).ID && (u.Role != store.RoleAdmin || u.Status != store.StatusActive) {
		a.writeError(w, r, newError(kindConflict, "you cannot demote or disable yourself"))
		return
	}
	if err := a.store.UpdateUser(ctx, u); err != nil {
		a.writeError(w, r, emailConflict(err))
		return
	}
	if req.Password != nil {
		if err := a.setPassword(ctx, u.ID, *req.Password, req.RevokeAPIKeys); err != nil {
			a.writeError(w, r, err)
			return
		}
	}
	if req.AllowedGroupIDs != nil {
		if err := a.store.SetUserGroups(ctx, u.ID, *req.AllowedGroupIDs); err != nil {
			a.writeError(w, r, err)
			return
		}
	}
	// Gateway nodes read the user's keys afresh, with what they may now use.
	a.publish(ctx, invalidate.User, u.ID)
	writeStored(a, w, r, a.getUserAccess, u.ID, viewUserAccess)
}

// userAccess is a user with the exclusive groups they are allowed on, as admins see them.
type userAccess struct {
	store.User
	groupIDs []int64
}

func (a *api) getUserAccess(ctx context.Context, id int64) (*userAccess, error) {
	u, err := a.store.GetUser(ctx, id)
	if err != nil {
		return nil, err
	}
	ids, err := a.store.UserGroupIDs(ctx, id)
	if err != nil {
		return nil, err
	}
	return &userAccess{User: *u, groupIDs: ids}, nil
}

// deleteUser removes a user. Gateway nodes forget the user and each of their keys.
func (a *api) deleteUser(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	u, err := byPathID(r, a.store.GetUser)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	if u.ID == currentUser(ctx).ID {
		a.writeError(w, r, newError(kindConflict, "you cannot delete yourself"))
		return
	}
	keyIDs, err := a.userKeyIDs(ctx, u.ID)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	if err := a.store.DeleteUser(ctx, u.ID); err != nil {
		a.writeError(w, r, err)
		return
	}
	a.publish(ctx, invalidate.User, u.ID)
	for _, id := range keyIDs {
		a.publish(ctx, invalidate.Key, id)
	}
	w.WriteHeader(http.StatusNoContent)
}

// userKeyIDs lists the ids of every key of a user.
func (a *api) userKeyIDs(ctx context.Context, userID int64) ([]int64, error) {
	var ids []int64
	for off := 0; ; off += maxPageSize {
		keys, _, err := a.store.ListAPIKeys(ctx, userID, store.Page{Offset: off, Limit: maxPageSize})
		if err != nil {
			return nil, err
		}
		for _, k := range keys {
			ids = append(ids, k.ID)
		}
		if len(keys) < maxPageSize {
			return ids, nil
		}
	}
}

// deleteUserKeys deletes every key of a user and tells every node.
func (a *api) deleteUserKeys(ctx context.Context, userID int64) error {
	ids, err := a.userKeyIDs(ctx, userID)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if err := a.store.DeleteAPIKey(ctx, id); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		a.publish(ctx, invalidate.Key, id)
	}
	return nil
}

type balanceReq struct {
	Amount *money `json:"amount"`
	Note   string `json:"note"`
}

type balanceBody struct {
	Balance     money           `json:"balance"`
	Transaction transactionView `json:"transaction"`
}

// adjustBalance credits (positive amount) or debits (negative) a user's balance as one
// recorded transaction. There is deliberately no way to overwrite a balance: an absolute
// write would erase charges billed concurrently.
func (a *api) adjustBalance(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	u, err := byPathID(r, a.store.GetUser)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	var req balanceReq
	if err := decodeJSON(w, r, &req); err != nil {
		a.writeError(w, r, err)
		return
	}
	if req.Amount == nil || *req.Amount == 0 {
		a.writeError(w, r, invalid("amount", "amount is required and must not be zero"))
		return
	}
	note, err := checkText("note", req.Note, false, maxTextLen)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	t := &store.BalanceTransaction{UserID: u.ID, Amount: store.Nanos(*req.Amount), Note: note,
		CreatedBy: currentUser(ctx).ID}
	bal, err := a.store.AdjustBalance(ctx, t)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	a.publish(ctx, invalidate.User, u.ID)
	writeJSON(w, http.StatusOK, balanceBody{Balance: money(bal), Transaction: viewTransaction(t)})
}

func (a *api) listTransactions(w http.ResponseWriter, r *http.Request) {
	u, err := byPathID(r, a.store.GetUser)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	listRoute(a, ofUser(a.store.ListBalanceTransactions, u.ID), viewTransaction)(w, r)
}
