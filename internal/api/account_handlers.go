package api

import (
	"cmp"
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/fluxcode/fluxcode/internal/gateway"
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
	a.identifyLogin(acc)
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

// AccountTester sends one test request through an account (the gateway's TestAccount).
type AccountTester interface {
	TestAccount(ctx context.Context, acct *store.Account, model string) gateway.AccountTest
}

// testAccountReq optionally names the model a test asks for.
type testAccountReq struct {
	Model string `json:"model"` // default: the account's first mapped model, or a small one of its platform
}

type accountTestView struct {
	AccountID  int64     `json:"account_id"`
	OK         bool      `json:"ok"`
	StatusCode int       `json:"status_code"` // the upstream's; 0 when no answer came
	LatencyMS  int64     `json:"latency_ms"`
	Model      string    `json:"model"`
	Reply      string    `json:"reply"`
	Error      string    `json:"error"`
	TestedAt   time.Time `json:"tested_at"`
}

// testAccount sends one small request through the account and shows what came back and how
// long it took. A failed test answers 200 with ok false: the test ran; the account failed it.
// Nothing is billed and the account's health marks are left as they are.
func (a *api) testAccount(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	acc, err := byPathID(r, a.store.GetAccount)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	var req testAccountReq
	if err := decodeOptionalJSON(w, r, &req); err != nil {
		a.writeError(w, r, err)
		return
	}
	if len(req.Model) > maxModelNameLen || strings.ContainsFunc(req.Model, unicode.IsControl) {
		a.writeError(w, r, invalid("model", "model must be a model name of at most %d characters", maxModelNameLen))
		return
	}
	if a.tester == nil {
		a.writeError(w, r, newError(kindUnavailable, "account tests are not available on this node"))
		return
	}
	at := a.now()
	res := a.tester.TestAccount(ctx, acc, strings.TrimSpace(req.Model))
	writeJSON(w, http.StatusOK, accountTestView{AccountID: acc.ID, OK: res.OK, StatusCode: res.Status,
		LatencyMS: res.Latency.Milliseconds(), Model: res.Model, Reply: res.Reply, Error: res.Error, TestedAt: at})
}

// accountFiguresView is what an account served over a period: its ledger rows summed and
// its failed upstream attempts.
type accountFiguresView struct {
	Requests            int64 `json:"requests"`
	InputTokens         int64 `json:"input_tokens"`
	OutputTokens        int64 `json:"output_tokens"`
	CacheCreationTokens int64 `json:"cache_creation_tokens"`
	CacheReadTokens     int64 `json:"cache_read_tokens"`
	Cost                money `json:"cost"`
	Errors              int64 `json:"errors"`
}

func viewFigures(f store.AccountFigures) accountFiguresView {
	return accountFiguresView{Requests: f.Requests, InputTokens: f.InputTokens, OutputTokens: f.OutputTokens,
		CacheCreationTokens: f.CacheCreationTokens, CacheReadTokens: f.CacheReadTokens, Cost: money(f.Cost), Errors: f.Errors}
}

// accountStatsView is one account's figures today (UTC) and in total.
type accountStatsView struct {
	AccountID int64              `json:"account_id"`
	Today     accountFiguresView `json:"today"`
	Total     accountFiguresView `json:"total"`
}

// accountStats reads the figures of one account (id) or of all (0), keyed by account.
func (a *api) accountStats(ctx context.Context, id int64) (map[int64]accountStatsView, error) {
	midnight := a.now().Truncate(24 * time.Hour)
	out := map[int64]accountStatsView{}
	for _, since := range []time.Time{{}, midnight} {
		figs, err := a.store.AccountFigures(ctx, id, since)
		if err != nil {
			return nil, err
		}
		for _, f := range figs {
			v := out[f.AccountID]
			v.AccountID = f.AccountID
			if since.IsZero() {
				v.Total = viewFigures(f)
			} else {
				v.Today = viewFigures(f)
			}
			out[f.AccountID] = v
		}
	}
	return out, nil
}

// getAccountStats answers one account's figures today and in total.
func (a *api) getAccountStats(w http.ResponseWriter, r *http.Request) {
	acc, err := byPathID(r, a.store.GetAccount)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	stats, err := a.accountStats(r.Context(), acc.ID)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, accountStatsView{AccountID: acc.ID, Today: stats[acc.ID].Today, Total: stats[acc.ID].Total})
}

// listAccountStats answers the figures of every account, in id order, zeros included.
func (a *api) listAccountStats(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	stats, err := a.accountStats(ctx, 0)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	items := []accountStatsView{}
	for off := 0; ; off += maxPageSize {
		accs, total, err := a.store.ListAccounts(ctx, store.Page{Offset: off, Limit: maxPageSize})
		if err != nil {
			a.writeError(w, r, err)
			return
		}
		for _, acc := range accs {
			s := stats[acc.ID]
			s.AccountID = acc.ID
			items = append(items, s)
		}
		if len(accs) < maxPageSize || off+len(accs) >= total {
			break
		}
	}
	slices.SortFunc(items, func(x, y accountStatsView) int { return cmp.Compare(x.AccountID, y.AccountID) })
	writeJSON(w, http.StatusOK, listBody[accountStatsView]{Items: items})
}

// maxBulkAccounts bounds one bulk change.
const maxBulkAccounts = 1000

// Bulk actions.
const (
	bulkEnable  = "enable"
	bulkDisable = "disable"
	bulkMove    = "move" // replace each account's groups with group_ids
)

type bulkAccountsReq struct {
	AccountIDs []int64 `json:"account_ids"`
	Action     string  `json:"action"`
	GroupIDs   []int64 `json:"group_ids"` // move only
}

// bulkAccounts enables, disables or moves several accounts at once, all or none: every
// account and group is checked first, then one transaction changes them all.
func (a *api) bulkAccounts(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	var req bulkAccountsReq
	if err := decodeJSON(w, r, &req); err != nil {
		a.writeError(w, r, err)
		return
	}
	ids := uniqueIDs(req.AccountIDs)
	accs, change, err := a.checkBulk(ctx, ids, &req)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	if err := a.store.BulkUpdateAccounts(ctx, ids, change); err != nil {
		a.writeError(w, r, err)
		return
	}
	items := make([]accountView, 0, len(ids))
	for _, acc := range accs {
		a.publishAccount(ctx, acc.ID, append(acc.GroupIDs, req.GroupIDs...))
		fresh, err := a.store.GetAccount(ctx, acc.ID)
		if err != nil {
			a.writeError(w, r, err)
			return
		}
		items = append(items, viewAccount(fresh))
	}
	writeJSON(w, http.StatusOK, listBody[accountView]{Items: items})
}

// checkBulk validates a bulk change and reads the accounts it changes.
func (a *api) checkBulk(ctx context.Context, ids []int64, req *bulkAccountsReq) ([]*store.Account, store.AccountBulkChange, error) {
	var change store.AccountBulkChange
	switch req.Action {
	case bulkEnable, bulkDisable:
		if req.GroupIDs != nil {
			return nil, change, invalid("group_ids", "group_ids goes only with the action %q", bulkMove)
		}
		status := store.StatusActive
		if req.Action == bulkDisable {
			status = store.StatusDisabled
		}
		change.Status = &status
	case bulkMove:
		if len(req.GroupIDs) > maxAccountGroupIDs {
			return nil, change, invalid("group_ids", "group_ids has more than %d entries", maxAccountGroupIDs)
		}
		groups := uniqueIDs(req.GroupIDs)
		change.GroupIDs = &groups
	default:
		return nil, change, invalid("action", "action must be one of %s, %s, %s", bulkEnable, bulkDisable, bulkMove)
	}
	if len(ids) == 0 || len(ids) > maxBulkAccounts {
		return nil, change, invalid("account_ids", "account_ids must list from 1 to %d accounts", maxBulkAccounts)
	}
	accs := make([]*store.Account, 0, len(ids))
	for _, id := range ids {
		acc, err := a.store.GetAccount(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			return nil, change, invalid("account_ids", "no account has id %d", id)
		}
		if err != nil {
			return nil, change, err
		}
		if change.GroupIDs != nil {
			moved := *acc
			moved.GroupIDs = *change.GroupIDs
			if err := a.checkAccountGroups(ctx, &moved); err != nil {
				return nil, change, err
			}
		}
		accs = append(accs, acc)
	}
	return accs, change, nil
}
