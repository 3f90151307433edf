// Package store holds FluxCode's domain records and the interfaces of its durable storage.
//
// One SQL implementation (package sqlstore) serves both shapes: SQLite in single-node mode and
// PostgreSQL in a cluster. The contract suite in package storetest runs against both.
//
// Money is always an exact integer number of nano-dollars (1e-9 USD); see Nanos.
package store

import (
	"context"
	"errors"
	"time"
)

// Errors returned by every Store implementation. Callers test them with errors.Is.
var (
	ErrNotFound = errors.New("not found")
	// ErrConflict: a unique value (email, key hash, name) is taken.
	ErrConflict = errors.New("conflict")
	// ErrInvalid: the record breaks a rule the store enforces (bad foreign key, bad enum).
	ErrInvalid = errors.New("invalid")
)

// Nanos is an amount of money in nano-dollars (1e-9 USD). Never a float.
type Nanos int64

// Roles and statuses.
const (
	RoleAdmin = "admin"
	RoleUser  = "user"

	StatusActive   = "active"
	StatusDisabled = "disabled"
	StatusError    = "error" // accounts only: an upstream said 401/403; ErrorMessage says why
	// StatusExpired: subscriptions only, past ExpiresAt. The expiry job marks them; admission
	// refuses a subscription from ExpiresAt on whatever its status says.
	StatusExpired = "expired"

	PlatformAnthropic = "anthropic"
	PlatformOpenAI    = "openai"
	PlatformGemini    = "gemini"

	AccountTypeAPIKey = "apikey" // a platform API key (x-api-key / Bearer key)
	AccountTypeOAuth  = "oauth"  // a subscription login (Bearer access token + refresh token)

	BillingBalance      = "balance"
	BillingSubscription = "subscription"
)

// User is a person who owns API keys. Balance changes only through BalanceTransaction and
// usage billing, never by an absolute overwrite.
type User struct {
	ID           int64
	Email        string
	PasswordHash string // argon2id, encoded; never leaves the server
	Role         string // RoleAdmin | RoleUser
	Status       string // StatusActive | StatusDisabled
	Balance      Nanos
	Concurrency  int // max requests in flight across all the user's keys; 0 = unlimited
	// Requests and tokens per minute across all the user's keys; 0 = unlimited.
	RPMLimit int64
	TPMLimit int64
	// TokenVersion is bumped by a password change, a logout and disabling the user: JWTs
	// carrying an older version are refused.
	TokenVersion int64
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

// Group is the unit a key is bound to: which platform, which accounts, how it bills.
type Group struct {
	ID          int64
	Name        string
	Description string
	Platform    string // PlatformAnthropic | PlatformOpenAI | PlatformGemini
	BillingType string // BillingBalance | BillingSubscription
	// RateMultiplierPPM multiplies list cost, in millionths (1_000_000 = 1.0×).
	RateMultiplierPPM int64
	// Subscription limits per window (BillingSubscription only); 0 = no limit for that window.
	DailyLimit   Nanos
	WeeklyLimit  Nanos
	MonthlyLimit Nanos
	Status       string
	// Exclusive groups may be used only by the users allowed on them (GroupAccess); the
	// others are open to every user.
	Exclusive bool
	CreatedAt time.Time
	UpdatedAt time.Time
}

// APIKey is a user's key for the gateway. Only a keyed hash of the secret is stored.
type APIKey struct {
	ID          int64
	UserID      int64
	GroupID     int64
	Name        string
	Hash        []byte // HMAC-SHA256 of the full key under the server's key-hash secret
	Prefix      string // the first characters of the key, for display ("fk-AbC1…")
	Status      string
	Concurrency int        // 0 = unlimited
	ExpiresAt   *time.Time // nil = never
	// Limits an admin imposed, kept apart so the owner's own changes stay within them: the
	// owner cannot enable a key an admin disabled, set a later expiry (or none) than an
	// admin's, or a higher concurrency (or unlimited) than an admin's cap. Status,
	// Concurrency and ExpiresAt above are always the effective values.
	AdminDisabled    bool
	AdminConcurrency int        // 0 = no cap
	AdminExpiresAt   *time.Time // nil = none
	// Policy (gateway/policy.go): the models the key may ask for (exact names, or prefixes
	// ending in "*"), the client addresses it may come from (IPs or CIDRs), and its requests
	// and tokens per minute. Empty lists and 0 limits mean none.
	AllowedModels []string
	AllowedIPs    []string
	RPMLimit      int64
	TPMLimit      int64
	LastUsedAt    *time.Time
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// KeyAuth is everything the gateway needs to authenticate and admit a request, read in one
// query by the key's hash.
type KeyAuth struct {
	Key          APIKey
	User         User
	Group        Group
	Subscription *Subscription // the user's active subscription to the group, if it bills so
	// Allowed: the user may use the group (it is not exclusive, or they are allowed on it).
	Allowed bool
}

// Credentials of an upstream account. Stored encrypted at rest; never logged.
type Credentials struct {
	APIKey       string    `json:"api_key,omitempty"`
	AccessToken  string    `json:"access_token,omitempty"`
	RefreshToken string    `json:"refresh_token,omitempty"`
	ExpiresAt    time.Time `json:"expires_at,omitzero"`
	// Extra holds platform-specific values (org id, ChatGPT account id, project id).
	Extra map[string]string `json:"extra,omitempty"`
}

// Account is an upstream AI account.
type Account struct {
	ID          int64
	Name        string
	Platform    string
	Type        string // AccountTypeAPIKey | AccountTypeOAuth
	Credentials Credentials
	BaseURL     string // empty = the platform default
	ProxyID     *int64
	Priority    int // lower is preferred
	Concurrency int // max requests in flight; 0 = unlimited
	// ModelMapping maps a requested model to the upstream model. When non-empty, only the
	// models it names are allowed on this account.
	ModelMapping map[string]string
	// CredentialsVersion grows with every change of Credentials (an admin's, a token
	// refresh's): a write based on an older read never replaces newer credentials.
	CredentialsVersion int64
	// Windows are the subscription usage windows the upstream last reported (nil: none yet).
	Windows      *UsageWindows
	Status       string // StatusActive | StatusDisabled | StatusError
	ErrorMessage string
	Schedulable  bool // an admin switch: false keeps the account out of scheduling
	GroupIDs     []int64

	// Health marks, set by the gateway from upstream answers and shared by all nodes.
	RateLimitedUntil  *time.Time
	OverloadedUntil   *time.Time
	TempUnschedUntil  *time.Time
	TempUnschedReason string

	LastUsedAt *time.Time
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// Available reports whether the scheduler may pick the account at now.
func (a *Account) Available(now time.Time) bool {
	if a.Status != StatusActive || !a.Schedulable {
		return false
	}
	for _, until := range []*time.Time{a.RateLimitedUntil, a.OverloadedUntil, a.TempUnschedUntil} {
		if until != nil && now.Before(*until) {
			return false
		}
	}
	return true
}

// UsageWindows are a subscription login's usage windows as the upstream last reported them
// (Anthropic's unified rate-limit headers): shown to admins; the gateway pauses the account
// through its marks, not through these.
type UsageWindows struct {
	Status    string        `json:"status,omitempty"` // allowed | allowed_warning | rejected
	Windows   []UsageWindow `json:"windows"`
	UpdatedAt time.Time     `json:"updated_at"`
}

// UsageWindow is one window ("5h", "7d", ...).
type UsageWindow struct {
	Name        string    `json:"name"`
	Utilization float64   `json:"utilization"` // 0–1
	ResetsAt    time.Time `json:"resets_at,omitzero"`
	Status      string    `json:"status,omitempty"`
}

// AccountMark is a health change the gateway records on an account. Nil fields are unchanged.
type AccountMark struct {
	RateLimitedUntil  *time.Time
	OverloadedUntil   *time.Time
	TempUnschedUntil  *time.Time
	TempUnschedReason *string
	Status            *string // StatusError on 401/403
	ErrorMessage      *string
}

// Proxy is an outbound HTTP or SOCKS5 proxy an account may use.
type Proxy struct {
	ID        int64
	Name      string
	Protocol  string // http | https | socks5
	Host      string
	Port      int
	Username  string
	Password  string // encrypted at rest
	Status    string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// ErrorRule is an admin-defined reaction to an upstream answer: when the status matches and
// the body contains Keyword (empty = any), the account is unschedulable for Minutes.
type ErrorRule struct {
	ID         int64
	StatusCode int
	Keyword    string
	Minutes    int
	Enabled    bool
	CreatedAt  time.Time
}

// Subscription is a user's subscription to a subscription-billed group, with its usage
// windows. A window restarts when its start is older than its length.
type Subscription struct {
	ID           int64
	UserID       int64
	GroupID      int64
	Status       string
	StartsAt     time.Time
	ExpiresAt    time.Time
	DailyUsed    Nanos
	DailyStart   time.Time
	WeeklyUsed   Nanos
	WeeklyStart  time.Time
	MonthlyUsed  Nanos
	MonthlyStart time.Time
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

// BalanceTransaction is one recorded change of a user's balance by an admin (top-up, refund,
// correction). Usage charges are recorded in the ledger instead.
type BalanceTransaction struct {
	ID        int64
	UserID    int64
	Amount    Nanos // positive credits, negative debits
	Note      string
	CreatedBy int64 // admin user id
	CreatedAt time.Time
}

// Usage is one ledger row: a served gateway request and what it cost. RequestID is unique;
// recording the same RequestID twice changes nothing the second time.
type Usage struct {
	ID            int64
	RequestID     string
	UserID        int64
	APIKeyID      int64
	AccountID     int64
	GroupID       int64
	Platform      string
	Model         string // as the client asked
	UpstreamModel string // after the account's model mapping

	InputTokens           int64
	OutputTokens          int64
	CacheCreation5mTokens int64
	CacheCreation1hTokens int64
	CacheReadTokens       int64

	Cost              Nanos // list price
	RateMultiplierPPM int64
	Charged           Nanos // Cost × multiplier, what the balance or subscription paid
	BillingType       string

	Stream      bool
	Partial     bool // the client or upstream broke off; billed for what was consumed
	StatusCode  int
	DurationMS  int64
	FirstByteMS int64
	CreatedAt   time.Time
}

// UsageFilter selects ledger rows. Zero fields do not filter.
type UsageFilter struct {
	UserID    int64
	APIKeyID  int64
	AccountID int64
	GroupID   int64
	Model     string
	From, To  time.Time // [From, To)
}

// Page asks for one page of a list. Limit 0 means the default (20); at most 200.
type Page struct {
	Offset int
	Limit  int
	// Filter narrows ListUsers, ListGroups, ListAccounts, ListAPIKeys and ListRedeemCodes
	// (the total counts the filtered rows); other lists ignore it.
	Filter ListFilter
}

// ListFilter narrows a list; zero fields do not filter, and a list applies only the fields
// it has: Search is a case-insensitive substring of the name (a user's email; a key's name
// or prefix); Status everywhere; Platform for groups and accounts; Role for users; GroupID
// for accounts (a member of the group) and keys (bound to it).
type ListFilter struct {
	Search   string
	Status   string
	Platform string
	Role     string
	GroupID  int64
}

// DailyModelUsage aggregates the ledger per day (UTC) and model.
type DailyModelUsage struct {
	Day                 string // YYYY-MM-DD
	Model               string
	Requests            int64
	InputTokens         int64
	OutputTokens        int64
	CacheCreationTokens int64
	CacheReadTokens     int64
	Cost                Nanos
	Charged             Nanos
}

// Store is the durable state of FluxCode. All methods are safe for concurrent use.
type Store interface {
	Users
	Groups
	APIKeys
	AdminAPIKeys
	Accounts
	Proxies
	Settings
	ErrorRules
	Subscriptions
	Billing
	TwoFactor
	Audit
	SecretsRotation
	Jobs
	RequestOutcomes
	RedeemCodes
	GroupAccess

	// Ping answers nil when the database is reachable.
	Ping(ctx context.Context) error
	Close() error
}

// Users. Create returns ErrConflict when the email is taken. Get* return ErrNotFound.
type Users interface {
	CreateUser(ctx context.Context, u *User) error // sets ID, CreatedAt, UpdatedAt
	GetUser(ctx context.Context, id int64) (*User, error)
	GetUserByEmail(ctx context.Context, email string) (*User, error)
	ListUsers(ctx context.Context, p Page) ([]User, int, error)
	// UpdateUser writes Email, Role, Status, Concurrency. Never Balance or PasswordHash.
	// Disabling an active user bumps TokenVersion in the same write (and sets u's), so
	// enabling them again later does not revive the tokens issued before.
	UpdateUser(ctx context.Context, u *User) error
	// SetPassword stores a new hash and bumps TokenVersion, revoking older tokens.
	SetPassword(ctx context.Context, userID int64, hash string) error
	// RevokeTokens bumps TokenVersion, revoking every token issued before (logout).
	RevokeTokens(ctx context.Context, userID int64) error
	DeleteUser(ctx context.Context, id int64) error
	// CountAdmins counts users with RoleAdmin.
	CountAdmins(ctx context.Context) (int, error)
	// CreateFirstAdmin creates u as admin only when no admin exists, atomically across nodes.
	// It returns created=false (and no error) when an admin already exists.
	CreateFirstAdmin(ctx context.Context, u *User) (created bool, err error)
	// AdjustBalance records t and changes the balance by t.Amount in one transaction.
	AdjustBalance(ctx context.Context, t *BalanceTransaction) (newBalance Nanos, err error)
	ListBalanceTransactions(ctx context.Context, userID int64, p Page) ([]BalanceTransaction, int, error)
}

type Groups interface {
	CreateGroup(ctx context.Context, g *Group) error // ErrConflict on a taken name
	GetGroup(ctx context.Context, id int64) (*Group, error)
	ListGroups(ctx context.Context, p Page) ([]Group, int, error)
	UpdateGroup(ctx context.Context, g *Group) error
	DeleteGroup(ctx context.Context, id int64) error
}

// GroupAccess lists the users allowed on exclusive groups. A group that is not exclusive is
// open to every user whatever the list says.
type GroupAccess interface {
	// UserGroupIDs returns the groups the user is allowed on, in id order.
	UserGroupIDs(ctx context.Context, userID int64) ([]int64, error)
	// SetUserGroups replaces the user's allowed groups. ErrInvalid for an unknown group.
	SetUserGroups(ctx context.Context, userID int64, groupIDs []int64) error
	// MayUseGroup reports whether the user may use the group: it is not exclusive or the
	// user is allowed on it. ErrNotFound for an unknown group.
	MayUseGroup(ctx context.Context, userID, groupID int64) (bool, error)
}

type APIKeys interface {
	CreateAPIKey(ctx context.Context, k *APIKey) error // ErrConflict on a taken hash
	GetAPIKey(ctx context.Context, id int64) (*APIKey, error)
	ListAPIKeys(ctx context.Context, userID int64, p Page) ([]APIKey, int, error) // userID 0 = all
	// UpdateAPIKey writes Name, GroupID, Status, Concurrency, ExpiresAt and the Admin* limits.
	UpdateAPIKey(ctx context.Context, k *APIKey) error
	DeleteAPIKey(ctx context.Context, id int64) error
	// KeyAuthByHash reads key, user, group (and subscription) in one query. ErrNotFound when
	// no key has that hash. Status and expiry are not checked here: the caller decides.
	KeyAuthByHash(ctx context.Context, hash []byte) (*KeyAuth, error)
	TouchAPIKeys(ctx context.Context, used map[int64]time.Time) error // batched LastUsedAt
}

type Accounts interface {
	CreateAccount(ctx context.Context, a *Account) error
	GetAccount(ctx context.Context, id int64) (*Account, error)
	ListAccounts(ctx context.Context, p Page) ([]Account, int, error)
	// AccountsByGroup returns every account of the group, whatever its status, with
	// credentials decrypted: the scheduler filters.
	AccountsByGroup(ctx context.Context, groupID int64) ([]Account, error)
	// UpdateAccount writes everything but the health marks, the windows and LastUsedAt. The
	// credentials are written only when a.CredentialsVersion is still the stored version
	// (otherwise newer credentials, a refreshed token, were stored meanwhile and stay); when
	// they change, the version grows and a.CredentialsVersion is set to it.
	UpdateAccount(ctx context.Context, a *Account) error
	// UpdateCredentials replaces the credentials alone when the stored version is still
	// version, and returns the new version: ErrConflict when another write came first.
	UpdateCredentials(ctx context.Context, id int64, c Credentials, version int64) (int64, error)
	// SetAccountWindows records the usage windows last reported for the account.
	SetAccountWindows(ctx context.Context, id int64, w UsageWindows) error
	MarkAccount(ctx context.Context, id int64, m AccountMark) error
	// ClearAccountMarks resets error status and every *Until mark (admin "recover").
	ClearAccountMarks(ctx context.Context, id int64) error
	TouchAccounts(ctx context.Context, used map[int64]time.Time) error
	DeleteAccount(ctx context.Context, id int64) error
	// BulkUpdateAccounts applies one change to every account of ids in one transaction:
	// ErrNotFound, and nothing changed, when one of them does not exist.
	BulkUpdateAccounts(ctx context.Context, ids []int64, c AccountBulkChange) error
	// AccountFigures totals per account the ledger rows it served from since on (zero:
	// ever) and its failed attempts from since's UTC day on; accountID 0 means every
	// account with any, in id order.
	AccountFigures(ctx context.Context, accountID int64, since time.Time) ([]AccountFigures, error)
	// AddAccountErrors adds failed upstream attempts per day and account, all rows in one
	// transaction (nodes add their counts in batches).
	AddAccountErrors(ctx context.Context, rows []AccountErrors) error
}

// AccountBulkChange is what BulkUpdateAccounts changes; nil fields are left alone.
type AccountBulkChange struct {
	Status   *string  // StatusActive or StatusDisabled
	GroupIDs *[]int64 // replaces each account's groups
}

// AccountFigures is what one upstream account served: its ledger rows summed, and its
// failed attempts.
type AccountFigures struct {
	AccountID           int64
	Requests            int64
	InputTokens         int64
	OutputTokens        int64
	CacheCreationTokens int64
	CacheReadTokens     int64
	Cost                Nanos
	Errors              int64
}

// AccountErrors is how many upstream attempts through one account failed on one UTC day.
type AccountErrors struct {
	Day       string // YYYY-MM-DD
	AccountID int64
	Errors    int64
}

type Proxies interface {
	CreateProxy(ctx context.Context, p *Proxy) error
	GetProxy(ctx context.Context, id int64) (*Proxy, error)
	ListProxies(ctx context.Context, p Page) ([]Proxy, int, error)
	UpdateProxy(ctx context.Context, p *Proxy) error
	// DeleteProxy: ErrConflict while an account uses the proxy (checked atomically).
	DeleteProxy(ctx context.Context, id int64) error
}

// Settings are string key/values.
type Settings interface {
	GetSetting(ctx context.Context, key string) (string, error) // ErrNotFound
	SetSetting(ctx context.Context, key, value string) error
	// SetSettingIfAbsent stores value only when key has none, atomically across nodes, and
	// returns the value that is stored afterwards (the winner's).
	SetSettingIfAbsent(ctx context.Context, key, value string) (stored string, err error)
	ListSettings(ctx context.Context) (map[string]string, error)
}

type ErrorRules interface {
	CreateErrorRule(ctx context.Context, r *ErrorRule) error
	ListErrorRules(ctx context.Context) ([]ErrorRule, error)
	DeleteErrorRule(ctx context.Context, id int64) error
}

type Subscriptions interface {
	// CreateSubscription: ErrConflict when the user already has one for the group.
	CreateSubscription(ctx context.Context, s *Subscription) error
	GetSubscription(ctx context.Context, userID, groupID int64) (*Subscription, error)
	ListSubscriptions(ctx context.Context, userID int64, p Page) ([]Subscription, int, error)
	UpdateSubscription(ctx context.Context, s *Subscription) error // Status, ExpiresAt
	DeleteSubscription(ctx context.Context, id int64) error
	// ExpireSubscriptions marks StatusExpired every active subscription whose ExpiresAt is
	// not after now, and returns them as they are afterwards.
	ExpireSubscriptions(ctx context.Context, now time.Time) ([]Subscription, error)
}

// JobRun is the last run of a background job (package jobs).
type JobRun struct {
	Name       string
	Fence      int64 // the lease's fencing token the run was made under
	Node       string
	StartedAt  time.Time
	FinishedAt time.Time
	Result     string // what the job reported
	Error      string // "" when it succeeded
}

// Jobs record background job runs. RecordJobRun writes r only when no run under a newer
// lease (a higher Fence) is recorded for the job: ErrConflict for a stale owner.
type Jobs interface {
	RecordJobRun(ctx context.Context, r JobRun) error
	ListJobRuns(ctx context.Context) ([]JobRun, error)
}

// RecordResult says what RecordUsage did with one row.
type RecordResult struct {
	RequestID string
	Inserted  bool // false: the request id was already in the ledger; nothing changed
}

type Billing interface {
	// RecordUsage writes each row and, for rows whose RequestID is new, deducts Charged from
	// the user's balance (BillingBalance) or adds it to the subscription's windows, restarting
	// windows that have expired at the row's CreatedAt (BillingSubscription) — all in one
	// transaction. A RequestID already present is skipped (Inserted=false). Rows are applied in
	// order; the whole batch commits or none of it does.
	RecordUsage(ctx context.Context, rows []Usage) ([]RecordResult, error)
	ListUsage(ctx context.Context, f UsageFilter, p Page) ([]Usage, int, error)
	UsageTotals(ctx context.Context, f UsageFilter) (DailyModelUsage, error) // Day and Model empty
	DailyUsageByModel(ctx context.Context, f UsageFilter) ([]DailyModelUsage, error)
	// DeleteUsageBefore deletes at most limit ledger rows created before before, oldest
	// first, in one short transaction, and returns how many it deleted (fewer than limit:
	// none older is left). Balances and subscription windows are kept apart from the
	// ledger, so they do not change; the usage figures lose the deleted rows.
	DeleteUsageBefore(ctx context.Context, before time.Time, limit int) (int64, error)
}

// DailyOutcome is how many of the gateway's requests of one UTC day ended with one outcome.
type DailyOutcome struct {
	Day      string // YYYY-MM-DD
	Outcome  string
	Requests int64
}

// RequestOutcomes counts every gateway request by day and outcome, billed or not (the error
// rate over time); nodes add their counts in batches.
type RequestOutcomes interface {
	// AddRequestOutcomes adds each row's Requests to the count of its day and outcome, all
	// rows in one transaction.
	AddRequestOutcomes(ctx context.Context, rows []DailyOutcome) error
	// DailyRequestOutcomes returns the counts of the days from to to (inclusive,
	// YYYY-MM-DD), by day then outcome.
	DailyRequestOutcomes(ctx context.Context, from, to string) ([]DailyOutcome, error)
}

// What a redeem code is worth.
const (
	RedeemBalance      = "balance"      // Amount credited to the balance
	RedeemConcurrency  = "concurrency"  // Concurrency added to the user's limit
	RedeemSubscription = "subscription" // Days of a subscription to GroupID
)

// RedeemUsed filters ListRedeemCodes to used codes (ListFilter.Status): a used code keeps
// the status it had, and the filter "active" lists only codes still to be redeemed.
const RedeemUsed = "used"

// RedeemCode is a single-use code an admin issued. Only a keyed hash of the code is stored,
// like an API key's, so a stolen table holds no redeemable code.
type RedeemCode struct {
	ID          int64
	Hash        []byte // HMAC-SHA256 of the code under the server's key-hash secret
	Prefix      string // the first characters of the code, for display
	Kind        string // RedeemBalance | RedeemConcurrency | RedeemSubscription
	Amount      Nanos
	Concurrency int
	GroupID     int64
	Days        int
	Note        string
	Status      string // StatusActive | StatusDisabled
	CreatedBy   int64  // the admin who issued it
	UsedBy      int64  // the user who redeemed it; 0 while unused
	UsedAt      *time.Time
	CreatedAt   time.Time
}

// RedeemCodes are issued in batches and redeemed once.
type RedeemCodes interface {
	// CreateRedeemCodes inserts every code in one transaction, setting ID, Status (active)
	// and CreatedAt. ErrConflict on a taken hash, ErrInvalid for a code worth nothing.
	CreateRedeemCodes(ctx context.Context, codes []RedeemCode) error
	GetRedeemCode(ctx context.Context, id int64) (*RedeemCode, error)
	// ListRedeemCodes lists newest first; p.Filter narrows by Search (the prefix or the
	// note), GroupID and Status (active: unused and active; disabled; RedeemUsed).
	ListRedeemCodes(ctx context.Context, p Page) ([]RedeemCode, int, error)
	// DisableRedeemCode: ErrNotFound for no such code, ErrConflict when it is used.
	DisableRedeemCode(ctx context.Context, id int64) error
	// RedeemCode marks the active, unused code with that hash as used by userID and applies
	// what it is worth in the same transaction: a balance transaction (never an overwrite), a
	// raise of a limited concurrency (an unlimited user stays unlimited), or Days added to
	// the user's subscription to the group (created when missing, extended from its end or
	// from now when it has ended; an expired one becomes active again, a disabled one stays
	// disabled). ErrNotFound when no active, unused code has the hash: of concurrent callers
	// on any number of nodes, one wins.
	RedeemCode(ctx context.Context, hash []byte, userID int64) (*RedeemCode, error)
}
