package api

import (
	"sort"
	"time"

	"github.com/fluxcode/fluxcode/internal/store"
)

// Views are what the API shows of each record. They never include password hashes, token
// versions, key hashes, upstream credentials or proxy passwords.

type userView struct {
	ID          int64     `json:"id"`
	Email       string    `json:"email"`
	Role        string    `json:"role"`
	Status      string    `json:"status"`
	Balance     money     `json:"balance"`
	Concurrency int       `json:"concurrency"`
	RPMLimit    int64     `json:"rpm_limit"`
	TPMLimit    int64     `json:"tpm_limit"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

func viewUser(u *store.User) userView {
	return userView{ID: u.ID, Email: u.Email, Role: u.Role, Status: u.Status, Balance: money(u.Balance),
		Concurrency: u.Concurrency, RPMLimit: u.RPMLimit, TPMLimit: u.TPMLimit, CreatedAt: u.CreatedAt, UpdatedAt: u.UpdatedAt}
}

type userAccessView struct {
	userView
	AllowedGroupIDs []int64 `json:"allowed_group_ids"` // the exclusive groups they may use
}

func viewUserAccess(u *userAccess) userAccessView {
	return userAccessView{userView: viewUser(&u.User), AllowedGroupIDs: u.groupIDs}
}

type groupView struct {
	ID             int64      `json:"id"`
	Name           string     `json:"name"`
	Description    string     `json:"description"`
	Platform       string     `json:"platform"`
	BillingType    string     `json:"billing_type"`
	RateMultiplier multiplier `json:"rate_multiplier"`
	DailyLimit     money      `json:"daily_limit"`
	WeeklyLimit    money      `json:"weekly_limit"`
	MonthlyLimit   money      `json:"monthly_limit"`
	Status         string     `json:"status"`
	Exclusive      bool       `json:"exclusive"` // only the users allowed on it may use it
	CreatedAt      time.Time  `json:"created_at"`
	UpdatedAt      time.Time  `json:"updated_at"`
}

func viewGroup(g *store.Group) groupView {
	return groupView{ID: g.ID, Name: g.Name, Description: g.Description, Platform: g.Platform,
		BillingType: g.BillingType, RateMultiplier: multiplier(g.RateMultiplierPPM),
		DailyLimit: money(g.DailyLimit), WeeklyLimit: money(g.WeeklyLimit), MonthlyLimit: money(g.MonthlyLimit),
		Status: g.Status, Exclusive: g.Exclusive, CreatedAt: g.CreatedAt, UpdatedAt: g.UpdatedAt}
}

type keyView struct {
	ID          int64      `json:"id"`
	UserID      int64      `json:"user_id"`
	GroupID     int64      `json:"group_id"`
	Name        string     `json:"name"`
	Prefix      string     `json:"prefix"`
	Status      string     `json:"status"`
	Concurrency int        `json:"concurrency"`
	ExpiresAt   *time.Time `json:"expires_at"`
	// The limits an admin imposed; the owner can only tighten within them.
	AdminDisabled    bool       `json:"admin_disabled"`
	AdminConcurrency int        `json:"admin_concurrency"`
	AdminExpiresAt   *time.Time `json:"admin_expires_at"`
	// The policy an admin set (gateway/policy.go).
	AllowedModels []string   `json:"allowed_models"`
	AllowedIPs    []string   `json:"allowed_ips"`
	RPMLimit      int64      `json:"rpm_limit"`
	TPMLimit      int64      `json:"tpm_limit"`
	LastUsedAt    *time.Time `json:"last_used_at"`
	CreatedAt     time.Time  `json:"created_at"`
	UpdatedAt     time.Time  `json:"updated_at"`
}

func viewKey(k *store.APIKey) keyView {
	return keyView{ID: k.ID, UserID: k.UserID, GroupID: k.GroupID, Name: k.Name, Prefix: k.Prefix,
		Status: k.Status, Concurrency: k.Concurrency, ExpiresAt: k.ExpiresAt, AdminDisabled: k.AdminDisabled,
		AdminConcurrency: k.AdminConcurrency, AdminExpiresAt: k.AdminExpiresAt, LastUsedAt: k.LastUsedAt,
		AllowedModels: orEmpty(k.AllowedModels), AllowedIPs: orEmpty(k.AllowedIPs), RPMLimit: k.RPMLimit, TPMLimit: k.TPMLimit,
		CreatedAt: k.CreatedAt, UpdatedAt: k.UpdatedAt}
}

// createdKeyView is the only answer that carries the full key: at creation, once.
type createdKeyView struct {
	keyView
	Key string `json:"key"`
}

// accountView shows which credential fields are set, never their values (write-only).
type accountView struct {
	ID                    int64             `json:"id"`
	Name                  string            `json:"name"`
	Platform              string            `json:"platform"`
	Type                  string            `json:"type"`
	HasCredentials        bool              `json:"has_credentials"`
	CredentialFields      []string          `json:"credential_fields"`
	CredentialsExpiresAt  *time.Time        `json:"credentials_expires_at"`
	BaseURL               string            `json:"base_url"`
	ProxyID               *int64            `json:"proxy_id"`
	Priority              int               `json:"priority"`
	Concurrency           int               `json:"concurrency"`
	ModelMapping          map[string]string `json:"model_mapping"`
	Status                string            `json:"status"`
	ErrorMessage          string            `json:"error_message"`
	Schedulable           bool              `json:"schedulable"`
	GroupIDs              []int64           `json:"group_ids"`
	RateLimitedUntil      *time.Time        `json:"rate_limited_until"`
	OverloadedUntil       *time.Time        `json:"overloaded_until"`
	TempUnschedulableTill *time.Time        `json:"temp_unschedulable_until"`
	TempUnschedReason     string            `json:"temp_unschedulable_reason"`
	LastUsedAt            *time.Time        `json:"last_used_at"`
	CreatedAt             time.Time         `json:"created_at"`
	UpdatedAt             time.Time         `json:"updated_at"`
	// Windows are a subscription login's usage windows as last reported; null until then.
	Windows *store.UsageWindows `json:"usage_windows"`
}

func viewAccount(acc *store.Account) accountView {
	c := &acc.Credentials
	var fields []string
	for name, set := range map[string]bool{"api_key": c.APIKey != "", "access_token": c.AccessToken != "",
		"refresh_token": c.RefreshToken != ""} {
		if set {
			fields = append(fields, name)
		}
	}
	for name := range c.Extra {
		fields = append(fields, "extra."+name)
	}
	sort.Strings(fields)
	v := accountView{ID: acc.ID, Name: acc.Name, Platform: acc.Platform, Type: acc.Type,
		HasCredentials: len(fields) > 0, CredentialFields: fields, BaseURL: acc.BaseURL, ProxyID: acc.ProxyID,
		Priority: acc.Priority, Concurrency: acc.Concurrency, ModelMapping: acc.ModelMapping,
		Status: acc.Status, ErrorMessage: acc.ErrorMessage, Schedulable: acc.Schedulable, GroupIDs: acc.GroupIDs,
		RateLimitedUntil: acc.RateLimitedUntil, OverloadedUntil: acc.OverloadedUntil,
		TempUnschedulableTill: acc.TempUnschedUntil, TempUnschedReason: acc.TempUnschedReason,
		LastUsedAt: acc.LastUsedAt, CreatedAt: acc.CreatedAt, UpdatedAt: acc.UpdatedAt, Windows: acc.Windows}
	if v.CredentialFields == nil {
		v.CredentialFields = []string{}
	}
	if v.GroupIDs == nil {
		v.GroupIDs = []int64{}
	}
	if v.ModelMapping == nil {
		v.ModelMapping = map[string]string{}
	}
	if !c.ExpiresAt.IsZero() {
		exp := c.ExpiresAt
		v.CredentialsExpiresAt = &exp
	}
	return v
}

// proxyView never shows the password (write-only).
type proxyView struct {
	ID          int64     `json:"id"`
	Name        string    `json:"name"`
	Protocol    string    `json:"protocol"`
	Host        string    `json:"host"`
	Port        int       `json:"port"`
	Username    string    `json:"username"`
	HasPassword bool      `json:"has_password"`
	Status      string    `json:"status"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

func viewProxy(p *store.Proxy) proxyView {
	return proxyView{ID: p.ID, Name: p.Name, Protocol: p.Protocol, Host: p.Host, Port: p.Port,
		Username: p.Username, HasPassword: p.Password != "", Status: p.Status,
		CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt}
}

type errorRuleView struct {
	ID         int64     `json:"id"`
	StatusCode int       `json:"status_code"`
	Keyword    string    `json:"keyword"`
	Minutes    int       `json:"minutes"`
	Enabled    bool      `json:"enabled"`
	CreatedAt  time.Time `json:"created_at"`
}

func viewErrorRule(r *store.ErrorRule) errorRuleView {
	return errorRuleView{ID: r.ID, StatusCode: r.StatusCode, Keyword: r.Keyword, Minutes: r.Minutes,
		Enabled: r.Enabled, CreatedAt: r.CreatedAt}
}

type subscriptionView struct {
	ID           int64     `json:"id"`
	UserID       int64     `json:"user_id"`
	GroupID      int64     `json:"group_id"`
	Status       string    `json:"status"`
	StartsAt     time.Time `json:"starts_at"`
	ExpiresAt    time.Time `json:"expires_at"`
	DailyUsed    money     `json:"daily_used"`
	DailyStart   time.Time `json:"daily_start"`
	WeeklyUsed   money     `json:"weekly_used"`
	WeeklyStart  time.Time `json:"weekly_start"`
	MonthlyUsed  money     `json:"monthly_used"`
	MonthlyStart time.Time `json:"monthly_start"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`
}

// viewSubscription shows an active subscription past its end as expired: admission refuses
// it from ExpiresAt on, while the expiry job marks it only on its next run (JOBS_INTERVAL).
func (a *api) viewSubscription(s *store.Subscription) subscriptionView {
	status := s.Status
	if status == store.StatusActive && !s.ExpiresAt.After(a.now()) {
		status = store.StatusExpired
	}
	return subscriptionView{ID: s.ID, UserID: s.UserID, GroupID: s.GroupID, Status: status,
		StartsAt: s.StartsAt, ExpiresAt: s.ExpiresAt, DailyUsed: money(s.DailyUsed), DailyStart: s.DailyStart,
		WeeklyUsed: money(s.WeeklyUsed), WeeklyStart: s.WeeklyStart, MonthlyUsed: money(s.MonthlyUsed),
		MonthlyStart: s.MonthlyStart, CreatedAt: s.CreatedAt, UpdatedAt: s.UpdatedAt}
}

type transactionView struct {
	ID        int64     `json:"id"`
	UserID    int64     `json:"user_id"`
	Amount    money     `json:"amount"`
	Note      string    `json:"note"`
	CreatedBy int64     `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
}

func viewTransaction(t *store.BalanceTransaction) transactionView {
	return transactionView{ID: t.ID, UserID: t.UserID, Amount: money(t.Amount), Note: t.Note,
		CreatedBy: t.CreatedBy, CreatedAt: t.CreatedAt}
}

// usageView is what a user sees of a ledger row; adminUsageView adds which upstream account
// and model served it, which users are not told.
type usageView struct {
	ID                    int64      `json:"id"`
	RequestID             string     `json:"request_id"`
	UserID                int64      `json:"user_id"`
	APIKeyID              int64      `json:"api_key_id"`
	GroupID               int64      `json:"group_id"`
	Platform              string     `json:"platform"`
	Model                 string     `json:"model"`
	InputTokens           int64      `json:"input_tokens"`
	OutputTokens          int64      `json:"output_tokens"`
	CacheCreation5mTokens int64      `json:"cache_creation_5m_tokens"`
	CacheCreation1hTokens int64      `json:"cache_creation_1h_tokens"`
	CacheReadTokens       int64      `json:"cache_read_tokens"`
	Cost                  money      `json:"cost"`
	RateMultiplier        multiplier `json:"rate_multiplier"`
	Charged               money      `json:"charged"`
	BillingType           string     `json:"billing_type"`
	Stream                bool       `json:"stream"`
	Partial               bool       `json:"partial"`
	StatusCode            int        `json:"status_code"`
	DurationMS            int64      `json:"duration_ms"`
	FirstByteMS           int64      `json:"first_byte_ms"`
	CreatedAt             time.Time  `json:"created_at"`
}

func viewUsage(u *store.Usage) usageView {
	return usageView{ID: u.ID, RequestID: u.RequestID, UserID: u.UserID, APIKeyID: u.APIKeyID,
		GroupID: u.GroupID, Platform: u.Platform, Model: u.Model, InputTokens: u.InputTokens,
		OutputTokens: u.OutputTokens, CacheCreation5mTokens: u.CacheCreation5mTokens,
		CacheCreation1hTokens: u.CacheCreation1hTokens, CacheReadTokens: u.CacheReadTokens,
		Cost: money(u.Cost), RateMultiplier: multiplier(u.RateMultiplierPPM), Charged: money(u.Charged),
		BillingType: u.BillingType, Stream: u.Stream, Partial: u.Partial, StatusCode: u.StatusCode,
		DurationMS: u.DurationMS, FirstByteMS: u.FirstByteMS, CreatedAt: u.CreatedAt}
}

type adminUsageView struct {
	usageView
	AccountID     int64  `json:"account_id"`
	UpstreamModel string `json:"upstream_model"`
}

func viewAdminUsage(u *store.Usage) adminUsageView {
	return adminUsageView{usageView: viewUsage(u), AccountID: u.AccountID, UpstreamModel: u.UpstreamModel}
}

type usageTotalsView struct {
	Day                 string `json:"day,omitempty"`
	Model               string `json:"model,omitempty"`
	Requests            int64  `json:"requests"`
	InputTokens         int64  `json:"input_tokens"`
	OutputTokens        int64  `json:"output_tokens"`
	CacheCreationTokens int64  `json:"cache_creation_tokens"`
	CacheReadTokens     int64  `json:"cache_read_tokens"`
	Cost                money  `json:"cost"`
	Charged             money  `json:"charged"`
}

func viewTotals(d *store.DailyModelUsage) usageTotalsView {
	return usageTotalsView{Day: d.Day, Model: d.Model, Requests: d.Requests, InputTokens: d.InputTokens,
		OutputTokens: d.OutputTokens, CacheCreationTokens: d.CacheCreationTokens,
		CacheReadTokens: d.CacheReadTokens, Cost: money(d.Cost), Charged: money(d.Charged)}
}

// orEmpty answers a nil list as [] rather than null.
func orEmpty(v []string) []string {
	if v == nil {
		return []string{}
	}
	return v
}
