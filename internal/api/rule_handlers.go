package api

import (
	"net/http"

	"github.com/fluxcode/fluxcode/internal/invalidate"
	"github.com/fluxcode/fluxcode/internal/store"
)

// maxRuleMinutes bounds how long a rule may bench an account: one week.
const maxRuleMinutes = 7 * 24 * 60

func (a *api) listErrorRules(w http.ResponseWriter, r *http.Request) {
	rules, err := a.store.ListErrorRules(r.Context())
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	writeList(w, rules, viewErrorRule)
}

type errorRuleReq struct {
	StatusCode int    `json:"status_code"`
	Keyword    string `json:"keyword"`
	Minutes    int    `json:"minutes"`
	Enabled    *bool  `json:"enabled"`
}

func (a *api) createErrorRule(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	var req errorRuleReq
	if err := decodeJSON(w, r, &req); err != nil {
		a.writeError(w, r, err)
		return
	}
	if req.StatusCode < 400 || req.StatusCode > 599 {
		a.writeError(w, r, invalid("status_code", "status_code must be an HTTP error status from 400 to 599"))
		return
	}
	keyword, err := checkText("keyword", req.Keyword, false, maxTextLen)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	if req.Minutes < 1 || req.Minutes > maxRuleMinutes {
		a.writeError(w, r, invalid("minutes", "minutes must be from 1 to %d", maxRuleMinutes))
		return
	}
	rule := &store.ErrorRule{StatusCode: req.StatusCode, Keyword: keyword, Minutes: req.Minutes,
		Enabled: req.Enabled == nil || *req.Enabled}
	if err := a.store.CreateErrorRule(ctx, rule); err != nil {
		a.writeError(w, r, err)
		return
	}
	a.publish(ctx, invalidate.ErrorRules, 0)
	writeJSON(w, http.StatusCreated, viewErrorRule(rule))
}

func (a *api) deleteErrorRule(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id, err := pathID(r, "id")
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	if err := a.store.DeleteErrorRule(ctx, id); err != nil {
		a.writeError(w, r, err)
		return
	}
	a.publish(ctx, invalidate.ErrorRules, 0)
	w.WriteHeader(http.StatusNoContent)
}
