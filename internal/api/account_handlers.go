package api

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/fluxcode/fluxcode/internal/invalidate"
	"github.com/fluxcode/fluxcode/internal/store"
)

// Bounds of account fields.
const (
	maxCredentialLen   = 16 << 10
	maxPriority        = 1_000_000
	maxMappingEntries  = 1000
	maxModelNameLen    = 200
	maxAccountGroupIDs = 1000
)

// credentialsReq is write-only: given, it replaces the account's credentials entirely.
type credentialsIn struct {
	APIKey       string            `json:"api_key"`
	AccessToken  string            `json:"access_token"`
	RefreshToken string            `json:"refresh_token"`
	ExpiresAt    *timestamp        `json:"expires_at"`
	Extra        map[string]string `json:"extra"`
}

// accountReq is the body of both create (absent fields take defaults) and update (absent
// fields keep their values).
type accountReq struct {
	Name         *string                     `json:"name"`
	Platform     *string                     `json:"platform"`
	Type         *string                     `json:"type"`
	Credentials  *credentialsIn              `json:"credentials"`
	BaseURL      *string                     `json:"base_url"`
	ProxyID      optional[int64]             `json:"proxy_id"` // null: no proxy
	Priority     *int                        `json:"priority"`
	Concurrency  *int                        `json:"concurrency"`
	ModelMapping optional[map[string]string] `json:"model_mapping"` // null or {}: every model
	Status       *string                     `json:"status"`
	Schedulable  *bool                       `json:"schedulable"`
	GroupIDs     *[]int64                    `json:"group_ids"`
}

// apply validates req and writes its fields into acc, reading referenced proxies and groups.
func (a *api) applyAccount(ctx context.Context, acc *store.Account, req *accountReq) error {
	if req.Name != nil {
		name, err := checkText("name", *req.Name, true, maxNameLen)
		if err != nil {
			return err
		}
		acc.Name = name
	}
	if req.Platform != nil {
		acc.Platform = *req.Platform
	}
	if err := checkEnum("platform", acc.Platform, store.PlatformAnthropic, store.PlatformOpenAI, store.PlatformGemini); err != nil {
		return err
	}
	typeChanged := req.Type != nil && *req.Type != acc.Type
	if req.Type != nil {
		acc.Type = *req.Type
	}
	if err := checkEnum("type", acc.Type, store.AccountTypeAPIKey, store.AccountTypeOAuth); err != nil {
		return err
	}
	if req.Credentials != nil {
		c, err := checkCredentials(acc.Type, req.Credentials)
		if err != nil {
			return err
		}
		acc.Credentials = c
	} else if typeChanged {
		return invalid("credentials", "credentials are required when the type changes")
	}
	// Where the credentials are sent: a change of either needs the credentials given again,
	// or whoever may edit accounts could send the stored key to a host of their choosing.
	oldURL, oldProxy := acc.BaseURL, acc.ProxyID
	if req.BaseURL != nil {
		if err := checkBaseURL(*req.BaseURL); err != nil {
			return err
		}
		if err := a.checkUpstreamURL("base_url", *req.BaseURL); err != nil {
			return err
		}
		acc.BaseURL = *req.BaseURL
	}
	if req.ProxyID.Set {
		acc.ProxyID = nil
		if !req.ProxyID.Null {
			if err := a.checkProxyExists(ctx, req.ProxyID.V); err != nil {
				return err
			}
			id := req.ProxyID.V
			acc.ProxyID = &id
		}
	}
	if acc.ID != 0 && req.Credentials == nil && (acc.BaseURL != oldURL || !equalID(acc.ProxyID, oldProxy)) {
		return invalid("credentials", "credentials are required when base_url or proxy_id changes")
	}
	if req.Priority != nil {
		if *req.Priority < 0 || *req.Priority > maxPriority {
			return invalid("priority", "priority must be from 0 (preferred) to %d", maxPriority)
		}
		acc.Priority = *req.Priority
	}
	if req.Concurrency != nil {
		if err := checkConcurrency("concurrency", *req.Concurrency); err != nil {
			return err
		}
		acc.Concurrency = *req.Concurrency
	}
	if req.ModelMapping.Set {
		if err := checkModelMapping(req.ModelMapping.V); err != nil {
			return err
		}
		acc.ModelMapping = req.ModelMapping.V
	}
	if req.Status != nil {
		// StatusError is the gateway's mark; an admin clears it with /recover.
		if err := checkEnum("status", *req.Status, store.StatusActive, store.StatusDisabled); err != nil {
			return err
		}
		acc.Status = *req.Status
	}
	if req.Schedulable != nil {
		acc.Schedulable = *req.Schedulable
	}
	if req.GroupIDs != nil {
		acc.GroupIDs = uniqueIDs(*req.GroupIDs)
	}
	return a.checkAccountGroups(ctx, acc)
}

func equalID(a, b *int64) bool {
	return (a == nil) == (b == nil) && (a == nil || *a == *b)
}

func checkCredentials(accType string, in *credentialsIn) (store.Credentials, error) {
	c := store.Credentials{APIKey: in.APIKey, AccessToken: in.AccessToken, RefreshToken: in.RefreshToken, Extra: in.Extra}
	if in.ExpiresAt != nil {
		c.ExpiresAt = time.Time(*in.ExpiresAt)
	}
	for field, v := range map[string]string{"credentials.api_key": c.APIKey,
		"credentials.access_token": c.AccessToken, "credentials.refresh_token": c.RefreshToken} {
		if len(v) > maxCredentialLen {
			return c, invalid(field, "%s is too long", field)
		}
	}
	if len(c.Extra) > 50 {
		return c, invalid("credentials.extra", "credentials.extra has too many entries")
	}
	for k, v := range c.Extra {
		if k == "" || len(k) > maxNameLen || len(v) > maxCredentialLen {
			return c, invalid("credentials.extra", "credentials.extra has an empty or oversized entry")
		}
		// OpenAI accounts send these as the OpenAI-Organization and OpenAI-Project headers.
		if (k == "organization" || k == "project") && strings.ContainsFunc(v, unicode.IsControl) {
			return c, invalid("credentials.extra", "credentials.extra.%s must not contain control characters", k)
		}
	}
	switch {
	case accType == store.AccountTypeAPIKey && c.APIKey == "":
		return c, invalid("credentials.api_key", "an apikey account needs credentials.api_key")
	case accType == store.AccountTypeOAuth && c.AccessToken == "" && c.RefreshToken == "":
		return c, invalid("credentials.access_token", "an oauth account needs credentials.access_token or refresh_token")
	}
	return c, nil
}

// checkBaseURL accepts "" (the platform default) or an absolute http(s) URL without
// credentials, query or fragment.
func checkBaseURL(s string) error {
	if s == "" {
		return nil
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
		u.RawQuery != "" || u.Fragment != "" || len(s) > 2048 {
		return invalid("base_url", "base_url must be an http(s) URL without credentials, query or fragment")
	}
	return nil
}

func checkModelMapping(m map[string]string) error {
	if len(m) > maxMappingEntries {
		return invalid("model_mapping", "model_mapping has more than %d entries", maxMappingEntries)
	}
	for from, to := range m {
		if from == "" || to == "" || len(from) > maxModelNameLen || len(to) > maxModelNameLen {
			return invalid("model_mapping", "model_mapping entries must map a model name to a model name")
		}
	}
	return nil
}

func (a *api) checkProxyExists(ctx context.Context, id int64) error {
	if id <= 0 {
		return invalid("proxy_id", "proxy_id must be a positive proxy id or null")
	}
	_, err := a.store.GetProxy(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return invalid("proxy_id", "no proxy has id %d", id)
	}
	return err
}

// checkAccountGroups requires every group of the account to exist and serve its platform.
func (a *api) checkAccountGroups(ctx context.Context, acc *store.Account) error {
	if len(acc.GroupIDs) > maxAccountGroupIDs {
		return invalid("group_ids", "group_ids has more than %d entries", maxAccountGroupIDs)
	}
	for _, id := range acc.GroupIDs {
		g, err := a.groupField(ctx, "group_ids", id)
		if err != nil {
			return err
		}
		if g.Platform != acc.Platform {
			return invalid("group_ids", "group %d serves %s, the account is %s", id, g.Platform, acc.Platform)
		}
	}
	return nil
}

func uniqueIDs(ids []int64) []int64 {
	out := slices.Clone(ids)
	slices.Sort(out)
	return slices.Compact(out)
}

func (a *api) createAccount(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	var req accountReq
	if err := decodeJSON(w, r, &req); err != nil {
		a.writeError(w, r, err)
		return
	}
	if req.Name == nil {
		a.writeError(w, r, invalid("name", "name is required"))
		return
	}
	if req.Credentials == nil {
		a.writeError(w, r, invalid("credentials", "credentials are required"))
		return
	}
	acc := &store.Account{Status: store.StatusActive, Schedulable: true}
	if err := a.applyAccount(ctx, acc, &req); err != nil {
		a.writeError(w, r, err)
		return
	}
	if err := a.renewAtCreation(ctx, acc); err != nil {
		a.writeError(w, r, err)
		return
	}
	if err := a.store.CreateAccount(ctx, acc); err != nil {
		a.writeError(w, r, nameConflict(err))
		return
	}
	a.publishAccount(ctx, acc.ID, acc.GroupIDs)
	writeJSON(w, http.StatusCreated, viewAccount(acc))
}

func (a *api) updateAccount(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	acc, err := byPathID(r, a.store.GetAccount)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	var req accountReq
	if err := decodeJSON(w, r, &req); err != nil {
		a.writeError(w, r, err)
		return
	}
	oldGroups := slices.Clone(acc.GroupIDs)
	if err := a.applyAccount(ctx, acc, &req); err != nil {
		a.writeError(w, r, err)
		return
	}
	if err := a.store.UpdateAccount(ctx, acc); err != nil {
		a.writeError(w, r, nameConflict(err))
		return
	}
	a.publishAccount(ctx, acc.ID, append(oldGroups, acc.GroupIDs...))
	writeStored(a, w, r, a.store.GetAccount, acc.ID, viewAccount)
}

// recoverAccount clears the error status and every health mark, so the scheduler may pick
// the account again at once.
func (a *api) recoverAccount(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	acc, err := byPathID(r, a.store.GetAccount)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	if err := a.store.ClearAccountMarks(ctx, acc.ID); err != nil {
		a.writeError(w, r, err)
		return
	}
	a.publishAccount(ctx, acc.ID, acc.GroupIDs)
	writeStored(a, w, r, a.store.GetAccount, acc.ID, viewAccount)
}

func (a *api) deleteAccount(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	acc, err := byPathID(r, a.store.GetAccount)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	if err := a.store.DeleteAccount(ctx, acc.ID); err != nil {
		a.writeError(w, r, err)
		return
	}
	a.publishAccount(ctx, acc.ID, acc.GroupIDs)
	w.WriteHeader(http.StatusNoContent)
}

// publishAccount invalidates an account and the account lists of its groups (old and new),
// which is how a node learns of an account it never saw.
func (a *api) publishAccount(ctx context.Context, id int64, groupIDs []int64) {
	a.publish(ctx, invalidate.Account, id)
	for _, g := range uniqueIDs(groupIDs) {
		a.publish(ctx, invalidate.Group, g)
	}
}
