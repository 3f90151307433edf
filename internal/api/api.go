// Package api serves FluxCode's JSON API for the console and scripts: public sign-up and
// login, a user's own profile, API keys and usage, and the admin's management of users,
// groups, upstream accounts, proxies, error rules, settings, subscriptions and usage.
//
// Every route is listed in routes below. Handlers read parse → validate → store → respond;
// every failure answers with one error shape (see errors.go). After every write that gateway
// nodes cache, the handler publishes an invalidation so all nodes drop the stale copy.
package api

import (
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/fluxcode/fluxcode/internal/auth"
	"github.com/fluxcode/fluxcode/internal/coord"
	"github.com/fluxcode/fluxcode/internal/httpx"
	"github.com/fluxcode/fluxcode/internal/netguard"
	"github.com/fluxcode/fluxcode/internal/secret"
	"github.com/fluxcode/fluxcode/internal/store"
)

// Options configures the API handler. Store, Keys, Tokens and Coord are required.
type Options struct {
	Store  store.Store
	Keys   *secret.Keys
	Tokens *auth.Tokens
	Coord  coord.Coordinator
	Logger *slog.Logger // nil: discard

	// Registration reports whether public sign-up is allowed by configuration
	// (REGISTRATION_ENABLED); nil means off. An admin's registration_enabled setting, once
	// saved, overrides it.
	Registration func() bool
	// AllowUnpricedModels is the configuration's ALLOW_UNPRICED_MODELS, shown as the
	// allow_unpriced_models setting until an admin saves one.
	AllowUnpricedModels bool
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	// LoginMaxFailures failed logins per email, and LoginMaxPerAddress per client address
	// (an IPv6 /64), within LoginWindow lock further attempts until the window ends. Zero
	// values mean 10, 50 and 15 minutes.
	LoginMaxFailures   int
	LoginMaxPerAddress int
	LoginWindow        time.Duration
	// RedeemMaxFailures failed redemptions of codes per user within LoginWindow refuse
	// further attempts until the window ends. Zero means 10.
	RedeemMaxFailures int

	// Passwords bounds this node's concurrent password hashing; nil means
	// secret.NewPasswordGate's defaults.
	Passwords *secret.PasswordGate

	// Logins onboards and renews subscription logins; nil: the login routes answer
	// 503 and an OAuth account with only a refresh token cannot be created.
	Logins *Logins

	// Upstreams checks account base URLs and proxy hosts on create and update (the SSRF
	// guard's early check; the gateway's dialer has the last word). nil refuses loopback,
	// private, link-local and metadata addresses.
	Upstreams *netguard.Guard

	// AccountTester sends an admin's test request through an account; nil: the test route
	// answers 503.
	AccountTester AccountTester
}

// api holds the handlers' dependencies.
type api struct {
	upstreams *netguard.Guard
	store     store.Store
	keys      *secret.Keys
	tokens    *auth.Tokens
	coord     coord.Coordinator
	log       *slog.Logger
	regOn     func() bool
	// allowUnpriced is the configured default of the allow_unpriced_models setting.
	allowUnpriced bool
	now           func() time.Time

	passwords *secret.PasswordGate
	logins    *Logins
	tester    AccountTester

	loginMax     int64 // per email
	loginMaxAddr int64 // per client address
	loginWindow  time.Duration
	redeemMax    int64 // failed redemptions per user
	// dummyHash is checked for unknown emails so a login takes as long whether or not the
	// email exists.
	dummyHash string
}

// New returns the handler of every /api/v1/ route.
func New(o Options) http.Handler {
	a := &api{
		store: o.Store, keys: o.Keys, tokens: o.Tokens, coord: o.Coord,
		log: o.Logger, regOn: o.Registration, now: o.Now, allowUnpriced: o.AllowUnpricedModels,
		loginMax: int64(o.LoginMaxFailures), loginMaxAddr: int64(o.LoginMaxPerAddress), loginWindow: o.LoginWindow,
		redeemMax: int64(o.RedeemMaxFailures),
		dummyHash: secret.HashPassword(secret.RandomToken(16)), passwords: o.Passwords,
		upstreams: o.Upstreams, logins: o.Logins, tester: o.AccountTester,
	}
	if a.upstreams == nil {
		a.upstreams = netguard.New(nil)
	}
	if a.passwords == nil {
		a.passwords = secret.NewPasswordGate(secret.GateOptions{})
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.regOn == nil {
		a.regOn = func() bool { return false }
	}
	if a.now == nil {
		a.now = time.Now
	}
	// Times are kept as the store keeps them (UTC, microseconds), so an answer built from a
	// record just written shows what a later read will.
	clock := a.now
	a.now = func() time.Time { return clock().UTC().Truncate(time.Microsecond) }
	if a.loginMax <= 0 {
		a.loginMax = 10
	}
	if a.loginMaxAddr <= 0 {
		a.loginMaxAddr = 50
	}
	if a.redeemMax <= 0 {
		a.redeemMax = defaultRedeemMax
	}
	if a.loginWindow <= 0 {
		a.loginWindow = 15 * time.Minute
	}
	return a.routes()
}

// routes is the whole route table. user() requires a valid token of an active user; admin()
// additionally requires the admin role, checked against the store on every request.
func (a *api) routes() http.Handler {
	mux := http.NewServeMux()
	handle := func(pattern string, h http.HandlerFunc) { mux.Handle(pattern, h) }
	user, admin := a.requireUser, a.requireAdmin

	// Public.
	handle("POST /api/v1/auth/register", a.register)
	handle("POST /api/v1/auth/login", a.login)
	handle("POST /api/v1/auth/logout", user(a.logout))
	handle("POST /api/v1/auth/login/2fa", a.loginSecondFactor)
	handle("GET /api/v1/settings/public", a.publicSettings)
	handle("GET /api/v1/openapi.json", a.serveOpenAPI(openAPIDocument()))

	// The signed-in user.
	handle("GET /api/v1/me", user(a.getMe))
	handle("PATCH /api/v1/me", user(a.updateMe))
	handle("POST /api/v1/me/password", user(a.changePassword))
	handle("GET /api/v1/me/2fa", allowScope(scopeEnrol, user(a.getTwoFactor)))
	handle("POST /api/v1/me/2fa/enrol", allowScope(scopeEnrol, user(a.enrolTwoFactor)))
	handle("POST /api/v1/me/2fa/confirm", allowScope(scopeEnrol, user(a.confirmTwoFactor)))
	handle("POST /api/v1/me/2fa/recovery-codes", user(a.regenerateRecoveryCodes))
	handle("POST /api/v1/me/2fa/disable", user(a.disableTwoFactor))
	handle("GET /api/v1/me/subscriptions", user(a.listMySubscriptions))
	handle("GET /api/v1/groups", user(a.listUsableGroups))
	handle("GET /api/v1/keys", user(a.listMyKeys))
	handle("POST /api/v1/keys", user(a.createKey))
	handle("GET /api/v1/keys/{id}", user(a.getMyKey))
	handle("PATCH /api/v1/keys/{id}", user(a.updateMyKey))
	handle("DELETE /api/v1/keys/{id}", user(a.deleteMyKey))
	handle("GET /api/v1/usage", user(a.listMyUsage))
	handle("GET /api/v1/usage/summary", user(a.myUsageSummary))
	handle("POST /api/v1/me/redeem", user(a.redeem))

	// Admin: users, their balance, keys and subscriptions.
	handle("GET /api/v1/admin/users", admin(listRoute(a, a.store.ListUsers, viewUser, "search", "status", "role")))
	handle("POST /api/v1/admin/users", admin(a.createUser))
	handle("GET /api/v1/admin/users/{id}", admin(getRoute(a, a.getUserAccess, viewUserAccess)))
	handle("PATCH /api/v1/admin/users/{id}", admin(a.updateUser))
	handle("DELETE /api/v1/admin/users/{id}", admin(a.deleteUser))
	handle("POST /api/v1/admin/users/{id}/balance", admin(a.adjustBalance))
	handle("GET /api/v1/admin/users/{id}/transactions", admin(a.listTransactions))
	handle("GET /api/v1/admin/users/{id}/keys", admin(a.listUserKeys))
	handle("POST /api/v1/admin/users/{id}/keys", admin(a.createUserKey))
	handle("GET /api/v1/admin/users/{id}/subscriptions", admin(a.listUserSubscriptions))
	handle("POST /api/v1/admin/users/{id}/subscriptions", admin(a.assignSubscription))
	handle("PATCH /api/v1/admin/users/{id}/subscriptions/{group_id}", admin(a.updateSubscription))
	handle("DELETE /api/v1/admin/users/{id}/subscriptions/{group_id}", admin(a.revokeSubscription))
	handle("GET /api/v1/admin/subscriptions", admin(a.listSubscriptions))

	// Admin: redeem codes.
	handle("GET /api/v1/admin/redeem-codes", admin(a.listRedeemCodes))
	handle("POST /api/v1/admin/redeem-codes", admin(a.createRedeemCodes))
	handle("GET /api/v1/admin/redeem-codes/export", admin(a.exportRedeemCodes))
	handle("GET /api/v1/admin/redeem-codes/{id}", admin(getRoute(a, a.store.GetRedeemCode, viewRedeemCode)))
	handle("POST /api/v1/admin/redeem-codes/{id}/disable", admin(a.disableRedeemCode))

	// Admin: keys of any user.
	handle("GET /api/v1/admin/keys", admin(a.listKeys))
	handle("GET /api/v1/admin/keys/{id}", admin(getRoute(a, a.store.GetAPIKey, viewKey)))
	handle("PATCH /api/v1/admin/keys/{id}", admin(a.updateKey))
	handle("DELETE /api/v1/admin/keys/{id}", admin(a.deleteKey))

	// Admin: groups, accounts, proxies, error rules, settings.
	handle("GET /api/v1/admin/groups", admin(listRoute(a, a.store.ListGroups, viewGroup, "search", "status", "platform")))
	handle("POST /api/v1/admin/groups", admin(a.createGroup))
	handle("GET /api/v1/admin/groups/{id}", admin(getRoute(a, a.store.GetGroup, viewGroup)))
	handle("PATCH /api/v1/admin/groups/{id}", admin(a.updateGroup))
	handle("DELETE /api/v1/admin/groups/{id}", admin(a.deleteGroup))
	handle("GET /api/v1/admin/accounts", admin(listRoute(a, a.store.ListAccounts, viewAccount, "search", "status", "platform", "group_id")))
	handle("POST /api/v1/admin/accounts", admin(a.createAccount))
	handle("GET /api/v1/admin/accounts/{id}", admin(getRoute(a, a.store.GetAccount, viewAccount)))
	handle("PATCH /api/v1/admin/accounts/{id}", admin(a.updateAccount))
	handle("DELETE /api/v1/admin/accounts/{id}", admin(a.deleteAccount))
	handle("POST /api/v1/admin/accounts/{id}/recover", admin(a.recoverAccount))
	handle("POST /api/v1/admin/accounts/{id}/refresh", admin(a.refreshLogin))
	handle("POST /api/v1/admin/accounts/{id}/test", admin(a.testAccount))
	handle("GET /api/v1/admin/accounts/{id}/stats", admin(a.getAccountStats))
	handle("GET /api/v1/admin/accounts/stats", admin(a.listAccountStats))
	handle("POST /api/v1/admin/accounts/bulk", admin(a.bulkAccounts))
	handle("POST /api/v1/admin/logins/{provider}/start", admin(a.startSubscriptionLogin))
	handle("POST /api/v1/admin/logins/{provider}/finish", admin(a.finishSubscriptionLogin))
	handle("GET /api/v1/admin/jobs", admin(a.listJobRuns))
	handle("GET /api/v1/admin/proxies", admin(listRoute(a, a.store.ListProxies, viewProxy)))
	handle("POST /api/v1/admin/proxies", admin(a.createProxy))
	handle("GET /api/v1/admin/proxies/{id}", admin(getRoute(a, a.store.GetProxy, viewProxy)))
	handle("PATCH /api/v1/admin/proxies/{id}", admin(a.updateProxy))
	handle("DELETE /api/v1/admin/proxies/{id}", admin(a.deleteProxy))
	handle("GET /api/v1/admin/error-rules", admin(a.listErrorRules))
	handle("POST /api/v1/admin/error-rules", admin(a.createErrorRule))
	handle("DELETE /api/v1/admin/error-rules/{id}", admin(a.deleteErrorRule))
	handle("DELETE /api/v1/admin/users/{id}/2fa", admin(a.resetUserTwoFactor))
	handle("GET /api/v1/admin/audit", admin(a.listAudit))
	handle("GET /api/v1/admin/admin-keys", admin(listRoute(a, a.store.ListAdminAPIKeys, viewAdminKey)))
	handle("POST /api/v1/admin/admin-keys", admin(a.createAdminKey))
	handle("DELETE /api/v1/admin/admin-keys/{id}", admin(a.revokeAdminKey))
	handle("GET /api/v1/admin/settings", admin(a.getSettings))
	handle("PUT /api/v1/admin/settings", admin(a.putSettings))

	// Admin: the ledger.
	handle("GET /api/v1/admin/usage", admin(a.listUsage))
	handle("GET /api/v1/admin/usage/summary", admin(a.usageSummary))
	handle("GET /api/v1/admin/usage/export", admin(a.exportUsage))
	handle("GET /api/v1/admin/usage/outcomes", admin(a.requestOutcomes))
	handle("GET /api/v1/admin/dashboard", admin(a.adminDashboard))

	return a.jsonFallbacks(mux)
}

// jsonFallbacks answers the mux's own 404 and 405 in the API's error shape instead of
// net/http's plain text.
func (a *api) jsonFallbacks(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, pattern := mux.Handler(r)
		if pattern != "" {
			// Through the mux itself: only its ServeHTTP sets the path values.
			mux.ServeHTTP(w, r)
			return
		}
		// Ask the mux's own handler what it would answer (404, 405 with Allow, or a
		// redirect to a clean path), then say it in JSON.
		probe := &statusProbe{header: http.Header{}}
		h.ServeHTTP(probe, r)
		switch probe.status {
		case http.StatusMethodNotAllowed:
			w.Header().Set("Allow", probe.header.Get("Allow"))
			a.writeError(w, r, newError(kindMethodNotAllowed, "method %s is not allowed on %s", r.Method, r.URL.Path))
		case http.StatusMovedPermanently, http.StatusPermanentRedirect:
			for k, v := range probe.header {
				w.Header()[k] = v
			}
			w.WriteHeader(probe.status)
		default:
			a.writeError(w, r, newError(kindNotFound, "no API route %s %s", r.Method, r.URL.Path))
		}
	})
}

// statusProbe records what a handler would answer, discarding the body.
type statusProbe struct {
	header http.Header
	status int
}

func (p *statusProbe) Header() http.Header         { return p.header }
func (p *statusProbe) Write(b []byte) (int, error) { return len(b), nil }
func (p *statusProbe) WriteHeader(status int) {
	if p.status == 0 {
		p.status = status
	}
}

// clientIP is the client address for login throttling: the one httpx decided from
// TRUSTED_PROXIES, or the TCP peer when the handler is mounted without that middleware.
func clientIP(r *http.Request) string {
	if ip := httpx.ClientIP(r.Context()); ip.IsValid() {
		return ip.String()
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
