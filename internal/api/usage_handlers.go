package api

import (
	"context"
	"net/http"
	"strings"

	"github.com/fluxcode/fluxcode/internal/store"
)

// usageFilter reads the ledger filters from the query: key_id, model, from, to (RFC 3339 or
// YYYY-MM-DD; to is exclusive, a date includes its day) and, for admins, user_id, account_id
// and group_id.
func usageFilter(r *http.Request, admin bool) (store.UsageFilter, error) {
	var f store.UsageFilter
	var err error
	ids := map[string]*int64{"key_id": &f.APIKeyID}
	if admin {
		ids["user_id"], ids["account_id"], ids["group_id"] = &f.UserID, &f.AccountID, &f.GroupID
	}
	for name, dst := range ids {
		if *dst, err = queryID(r, name); err != nil {
			return f, err
		}
	}
	f.Model = strings.TrimSpace(r.URL.Query().Get("model"))
	if len(f.Model) > maxModelNameLen {
		return f, invalid("model", "model is too long")
	}
	if f.From, err = queryTime(r, "from", false); err != nil {
		return f, err
	}
	if f.To, err = queryTime(r, "to", true); err != nil {
		return f, err
	}
	if !f.From.IsZero() && !f.To.IsZero() && !f.To.After(f.From) {
		return f, invalid("to", "to must be after from")
	}
	return f, nil
}

// listMyUsage lists the signed-in user's ledger rows, newest first.
func (a *api) listMyUsage(w http.ResponseWriter, r *http.Request) {
	f, err := usageFilter(r, false)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	f.UserID = currentUser(r.Context()).ID
	writeUsage(a, w, r, f, viewUsage)
}

func (a *api) listUsage(w http.ResponseWriter, r *http.Request) {
	f, err := usageFilter(r, true)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	writeUsage(a, w, r, f, viewAdminUsage)
}

func writeUsage[V any](a *api, w http.ResponseWriter, r *http.Request, f store.UsageFilter, view func(*store.Usage) V) {
	list := func(ctx context.Context, p store.Page) ([]store.Usage, int, error) {
		return a.store.ListUsage(ctx, f, p)
	}
	listRoute(a, list, view)(w, r)
}

// summaryBody totals the filtered ledger and breaks it down per day (UTC) and model.
type summaryBody struct {
	Totals usageTotalsView   `json:"totals"`
	Daily  []usageTotalsView `json:"daily"`
}

func (a *api) myUsageSummary(w http.ResponseWriter, r *http.Request) {
	f, err := usageFilter(r, false)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	f.UserID = currentUser(r.Context()).ID
	a.writeSummary(w, r, f)
}

func (a *api) usageSummary(w http.ResponseWriter, r *http.Request) {
	f, err := usageFilter(r, true)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	a.writeSummary(w, r, f)
}

func (a *api) writeSummary(w http.ResponseWriter, r *http.Request, f store.UsageFilter) {
	ctx := r.Context()
	totals, err := a.store.UsageTotals(ctx, f)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	daily, err := a.store.DailyUsageByModel(ctx, f)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	body := summaryBody{Totals: viewTotals(&totals), Daily: make([]usageTotalsView, len(daily))}
	for i := range daily {
		body.Daily[i] = viewTotals(&daily[i])
	}
	writeJSON(w, http.StatusOK, body)
}
