package api

import (
	"context"
	"encoding/csv"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/fluxcode/fluxcode/internal/store"
)

// The web console signs in with a cookie instead of a bearer token, so that script running in
// the page (an XSS slipping past the console's CSP and text-only rendering) cannot read the
// token and carry it off: the cookie is HttpOnly. It is SameSite=Strict and only honoured on
// requests that also carry ConsoleHeader, which a cross-site form or image cannot send and a
// cross-origin fetch cannot send without a CORS preflight this API never grants; that is the
// CSRF defence. Scripts keep using Authorization: Bearer, which takes precedence.
const (
	// SessionCookie holds the console's login token.
	SessionCookie = "fluxcode_session"
	// ConsoleHeader marks a request made by the console; on login it asks for the cookie.
	ConsoleHeader = "X-Fluxcode-Console"
)

// mustChangeSetting names the setting that marks a user whose password was generated at the
// first start and must be replaced at the first sign-in.
func mustChangeSetting(userID int64) string {
	return "system.password_change_required." + strconv.FormatInt(userID, 10)
}

// RequirePasswordChange marks the user's password as one to replace at the next sign-in
// (the generated first admin password).
func RequirePasswordChange(ctx context.Context, st store.Settings, userID int64) error {
	return st.SetSetting(ctx, mustChangeSetting(userID), "1")
}

func (a *api) mustChangePassword(ctx context.Context, userID int64) (bool, error) {
	v, err := a.store.GetSetting(ctx, mustChangeSetting(userID))
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	return v == "1", err
}

// fromConsole reports whether the request carries the console's marker header.
func fromConsole(r *http.Request) bool { return r.Header.Get(ConsoleHeader) != "" }

// setSessionCookie hands the console its token as an HttpOnly cookie scoped to the API.
func setSessionCookie(w http.ResponseWriter, r *http.Request, token string, expires time.Time) {
	http.SetCookie(w, &http.Cookie{
		Name: SessionCookie, Value: token, Path: "/api/", Expires: expires,
		MaxAge: max(1, int(time.Until(expires).Seconds())), HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: requestIsTLS(r),
	})
}

// requestIsTLS: served over TLS here, or by the proxy in front (Caddy sets the header).
func requestIsTLS(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

// sessionToken returns the console's cookie token, or "" when the request has none or lacks
// the console header (a cross-site request carrying the cookie is treated as anonymous).
func sessionToken(r *http.Request) string {
	if !fromConsole(r) {
		return ""
	}
	c, err := r.Cookie(SessionCookie)
	if err != nil {
		return ""
	}
	return c.Value
}

// clearSessionCookie ends the console's cookie (on logout, which also revokes the token).
func clearSessionCookie(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: "", Path: "/api/", MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: requestIsTLS(r)})
}

// publicSettingsView is what a signed-out page may know.
type publicSettingsView struct {
	SiteName            string `json:"site_name"`
	RegistrationEnabled bool   `json:"registration_enabled"`
}

func (a *api) publicSettings(w http.ResponseWriter, r *http.Request) {
	s, err := a.loadSettings(r.Context())
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, publicSettingsView{SiteName: s.SiteName, RegistrationEnabled: s.RegistrationEnabled})
}

// meView is the signed-in user plus what the console must ask of them.
type meView struct {
	userView
	MustChangePassword bool `json:"must_change_password"`
	// MustEnrolTwoFactor: an admin whose session predates require_2fa_for_admins and who
	// has no second factor yet; the admin routes refuse them until they enrol.
	MustEnrolTwoFactor bool `json:"must_enrol_2fa"`
}

func (a *api) writeMe(w http.ResponseWriter, r *http.Request, u *store.User) {
	ctx := r.Context()
	must, err := a.mustChangePassword(ctx, u.ID)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	enrol, err := a.mustEnrol(ctx, u)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, meView{userView: viewUser(u), MustChangePassword: must, MustEnrolTwoFactor: enrol})
}

// accountLoadView is one upstream account's live state on the admin dashboard.
type accountLoadView struct {
	ID                     int64      `json:"id"`
	Name                   string     `json:"name"`
	Platform               string     `json:"platform"`
	Status                 string     `json:"status"`
	Schedulable            bool       `json:"schedulable"`
	InFlight               int        `json:"in_flight"`
	Concurrency            int        `json:"concurrency"`
	ErrorMessage           string     `json:"error_message"`
	RateLimitedUntil       *time.Time `json:"rate_limited_until"`
	OverloadedUntil        *time.Time `json:"overloaded_until"`
	TempUnschedulableUntil *time.Time `json:"temp_unschedulable_until"`
	TempUnschedulableWhy   string     `json:"temp_unschedulable_reason"`
}

type dashboardView struct {
	Accounts []accountLoadView `json:"accounts"`
	Users    int               `json:"users"`
	Groups   int               `json:"groups"`
}

// adminDashboard reports every account's in-flight requests against its limit (from the
// shared slot sets, so the figure covers every node) and its health marks, with counts of
// users and groups. Usage over time comes from /admin/usage/summary.
func (a *api) adminDashboard(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	body := dashboardView{Accounts: []accountLoadView{}}
	for off := 0; ; off += maxPageSize {
		accs, total, err := a.store.ListAccounts(ctx, store.Page{Offset: off, Limit: maxPageSize})
		if err != nil {
			a.writeError(w, r, err)
			return
		}
		for i := range accs {
			v := viewAccount(&accs[i])
			n, err := a.coord.SlotCount(ctx, accountSlotKey(v.ID))
			if err != nil {
				a.writeError(w, r, err)
				return
			}
			body.Accounts = append(body.Accounts, accountLoadView{ID: v.ID, Name: v.Name, Platform: v.Platform,
				Status: v.Status, Schedulable: v.Schedulable, InFlight: n, Concurrency: v.Concurrency,
				ErrorMessage: v.ErrorMessage, RateLimitedUntil: v.RateLimitedUntil, OverloadedUntil: v.OverloadedUntil,
				TempUnschedulableUntil: v.TempUnschedulableTill, TempUnschedulableWhy: v.TempUnschedReason})
		}
		if len(accs) < maxPageSize || off+len(accs) >= total {
			break
		}
	}
	var err error
	if _, body.Users, err = a.store.ListUsers(ctx, store.Page{Limit: 1}); err != nil {
		a.writeError(w, r, err)
		return
	}
	if _, body.Groups, err = a.store.ListGroups(ctx, store.Page{Limit: 1}); err != nil {
		a.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, body)
}

// accountSlotKey names an account's concurrency slot set, as the gateway takes it.
func accountSlotKey(id int64) string { return "slot:account:" + strconv.FormatInt(id, 10) }

// csvExportMax bounds one export; a longer range is exported in parts by narrowing from/to.
const csvExportMax = 100_000

// exportUsage writes the filtered ledger as CSV, newest first, page by page from the store.
func (a *api) exportUsage(w http.ResponseWriter, r *http.Request) {
	f, err := usageFilter(r, true)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	ctx := r.Context()
	first, total, err := a.store.ListUsage(ctx, f, store.Page{Limit: maxPageSize})
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	if total > csvExportMax {
		a.writeError(w, r, invalid("from", "the range holds %d rows, more than %d; narrow from/to", total, csvExportMax))
		return
	}
	cw := startCSV(w, "fluxcode-usage.csv")
	_ = cw.Write([]string{"created_at", "request_id", "user_id", "api_key_id", "account_id", "group_id", "platform",
		"model", "upstream_model", "input_tokens", "output_tokens", "cache_creation_tokens", "cache_read_tokens",
		"cost", "charged", "billing_type", "stream", "partial", "status_code", "duration_ms"})
	page := first
	for off := 0; ; {
		for i := range page {
			u := &page[i]
			_ = cw.Write([]string{u.CreatedAt.UTC().Format(time.RFC3339Nano), csvText(u.RequestID), itoa(u.UserID),
				itoa(u.APIKeyID), itoa(u.AccountID), itoa(u.GroupID), csvText(u.Platform), csvText(u.Model),
				csvText(u.UpstreamModel), itoa(u.InputTokens), itoa(u.OutputTokens),
				itoa(u.CacheCreation5mTokens + u.CacheCreation1hTokens), itoa(u.CacheReadTokens),
				formatDecimal(int64(u.Cost), moneyScale), formatDecimal(int64(u.Charged), moneyScale), u.BillingType, strconv.FormatBool(u.Stream),
				strconv.FormatBool(u.Partial), strconv.Itoa(u.StatusCode), itoa(u.DurationMS)})
		}
		off += len(page)
		if len(page) < maxPageSize || off >= total {
			break
		}
		if page, _, err = a.store.ListUsage(ctx, f, store.Page{Offset: off, Limit: maxPageSize}); err != nil {
			// The header is sent: end the file short, and say so in the log.
			a.log.WarnContext(ctx, "usage export cut short", "err", err)
			break
		}
	}
	cw.Flush()
}

// startCSV answers with a CSV attachment named filename and returns its writer.
func startCSV(w http.ResponseWriter, filename string) *csv.Writer {
	h := w.Header()
	h.Set("Content-Type", "text/csv; charset=utf-8")
	h.Set("Content-Disposition", `attachment; filename="`+filename+`"`)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	return csv.NewWriter(w)
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// csvText keeps a client-chosen string (a model name) from being read as a formula by a
// spreadsheet that opens the export.
func csvText(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

// outcomeDays bounds one request-outcome query.
const outcomeDays = 366

// dayOutcomesView is one day of the gateway's requests: how many, how many failed, and the
// count of every outcome.
type dayOutcomesView struct {
	Day      string           `json:"day"`
	Requests int64            `json:"requests"`
	Errors   int64            `json:"errors"`
	Outcomes map[string]int64 `json:"outcomes"`
}

// isErrorOutcome: a request that got no complete answer, for whatever reason but the
// client's leaving first. Refusals (a bad key, no balance) and partial answers count.
func isErrorOutcome(o string) bool { return o != "ok" && o != "client_gone" }

// requestOutcomes answers the gateway's requests per day and outcome over ?from= to ?to=
// (dates, inclusive; by default the 14 days up to today, UTC), every request counted, billed
// or not: the ledger alone cannot give an error rate.
func (a *api) requestOutcomes(w http.ResponseWriter, r *http.Request) {
	to, err := queryDay(r, "to", a.now())
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	from, err := queryDay(r, "from", to.AddDate(0, 0, -13))
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	if from.After(to) || to.Sub(from) >= outcomeDays*24*time.Hour {
		a.writeError(w, r, invalid("from", "from must be at most %d days before to", outcomeDays-1))
		return
	}
	rows, err := a.store.DailyRequestOutcomes(r.Context(), from.Format(time.DateOnly), to.Format(time.DateOnly))
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	days := []dayOutcomesView{}
	for _, o := range rows {
		if len(days) == 0 || days[len(days)-1].Day != o.Day {
			days = append(days, dayOutcomesView{Day: o.Day, Outcomes: map[string]int64{}})
		}
		d := &days[len(days)-1]
		d.Requests += o.Requests
		d.Outcomes[o.Outcome] = o.Requests
		if isErrorOutcome(o.Outcome) {
			d.Errors += o.Requests
		}
	}
	writeJSON(w, http.StatusOK, struct {
		Daily []dayOutcomesView `json:"daily"`
	}{days})
}

// queryDay reads an optional date YYYY-MM-DD (UTC) from the query; def when absent.
func queryDay(r *http.Request, name string, def time.Time) (time.Time, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return def.UTC().Truncate(24 * time.Hour), nil
	}
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return time.Time{}, invalid(name, "%s must be a date YYYY-MM-DD", name)
	}
	return t, nil
}
