package mockupstream

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tidwall/gjson"
)

// The Codex backend (chatgpt.com/backend-api/codex) serves ChatGPT logins' Codex traffic:
//
//	POST /backend-api/codex/responses  the Responses API, streamed only
//	GET  /backend-api/codex/models     the model catalogue ({"models":[{"slug",…}]})
//
// It takes only access tokens the login server issued to a ChatGPT login, with the login's
// account in ChatGPT-Account-ID; an expired token is 401 token_expired. It holds requests to
// the constraints the real backend has: stream must be true, store must be false,
// instructions must be present (a string), input must be a list, and the sampling and
// output-limit parameters are refused; those answers are 400 {"detail":…}. Every answer
// carries the subscription's windows as x-codex-primary-* (the 5-hour window) and
// x-codex-secondary-* (the weekly one), from the key's Script.Unified; a window at 100 %
// answers 429 usage_limit_reached naming when it resets.

const (
	codexPrefix         = "/backend-api/codex"
	codexPrimaryMinutes = 300
	codexWeeklyMinutes  = 7 * 24 * 60
)

// DefaultCodexModels are the Codex backend's catalogue.
var DefaultCodexModels = []string{"gpt-6.1-sol", "gpt-6-sol", "gpt-6-luna"}

// codexUnsupported are parameters the Codex backend refuses.
var codexUnsupported = []string{"max_output_tokens", "max_tokens", "max_completion_tokens", "temperature", "top_p"}

// serveCodex answers the Codex backend's paths; false when path is not one of them.
func (s *Server) serveCodex(w http.ResponseWriter, r *http.Request, n uint64, reqID string) bool {
	switch r.URL.Path {
	case codexPrefix + "/responses":
		if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			writeOpenAIError(w, http.StatusUpgradeRequired, "invalid_request_error", "WebSocket is not supported; use HTTP", reqID)
			return true
		}
		s.serveAPI(w, r, n, reqID, openaiAPI, endpointResponses, http.MethodPost, s.codexResponses)
	case codexPrefix + "/models":
		s.serveAPI(w, r, n, reqID, openaiAPI, endpointModels, http.MethodGet, s.codexModels)
	default:
		return false
	}
	return true
}

// codexAuth checks the token and account header and sends the windows; false when it
// answered a refusal.
func (s *Server) codexAuth(e *exchange) bool {
	now := s.opts.Now()
	account, ok := s.oauth.chatgptAccount(e.entry.Key)
	switch {
	case !ok:
		e.detail(http.StatusUnauthorized, "Could not parse your authentication token. Please try signing in again.")
		return false
	case s.oauth.expired(e.entry.Key, now):
		e.entry.Status = http.StatusUnauthorized
		e.st.errors.Add(1)
		writeJSONValue(e.w, http.StatusUnauthorized, map[string]any{"error": map[string]any{
			"message": "Provided authentication token is expired. Please try signing in again.",
			"type":    nil, "code": "token_expired", "param": nil}, "status": http.StatusUnauthorized})
		return false
	case e.r.Header.Get("ChatGPT-Account-ID") != account:
		e.detail(http.StatusForbidden, "ChatGPT-Account-ID does not name the signed-in account")
		return false
	}
	e.st.mu.Lock()
	u := e.st.script.Unified
	e.st.mu.Unlock()
	if u == nil {
		return true
	}
	h := e.w.Header()
	windows := []struct {
		name    string
		used    float64
		reset   jsonDuration
		def     time.Duration
		minutes int
	}{{"primary", u.FiveHour, u.Reset5h, 5 * time.Hour, codexPrimaryMinutes},
		{"secondary", u.SevenDay, u.Reset7d, 7 * 24 * time.Hour, codexWeeklyMinutes}}
	var exhausted time.Time
	for _, x := range windows {
		in := time.Duration(x.reset)
		if in == 0 {
			in = x.def
		}
		at := now.Add(in)
		p := "x-codex-" + x.name
		h.Set(p+"-used-percent", strconv.FormatFloat(x.used*100, 'f', -1, 64))
		h.Set(p+"-window-minutes", strconv.Itoa(x.minutes))
		h.Set(p+"-reset-at", strconv.FormatInt(at.Unix(), 10))
		h.Set(p+"-reset-after-seconds", strconv.FormatInt(int64(in/time.Second), 10))
		if x.used >= 1 && at.After(exhausted) {
			exhausted = at
		}
	}
	if exhausted.IsZero() {
		return true
	}
	e.entry.Status = http.StatusTooManyRequests
	e.st.errors.Add(1)
	writeJSONValue(e.w, http.StatusTooManyRequests, map[string]any{"error": map[string]any{
		"type": "usage_limit_reached", "message": "The usage limit has been reached", "plan_type": ChatGPTPlan,
		"resets_at": exhausted.Unix(), "resets_in_seconds": int64(exhausted.Sub(now) / time.Second)}})
	return false
}

func (s *Server) codexResponses(e *exchange, body []byte) {
	if !s.codexAuth(e) {
		return
	}
	if msg := codexRefusal(body); msg != "" {
		e.detail(http.StatusBadRequest, msg)
		return
	}
	req, err := parseOpenAIRequest(body, endpointResponses)
	if err != nil {
		e.badRequest(err.Error())
		return
	}
	n := e.n
	e.generate(body, req.genRequest, func(pc *pacer, p plan) {
		o := &openaiAnswer{id: s.newID("", n), model: req.model, created: s.opts.Now().Unix(), n: p.events, u: p.usage}
		bp := getBuf()
		o.buf = (*bp)[:0]
		e.stream(pc, p, &responsesStream{o}, "text/event-stream; charset=utf-8")
		*bp = o.buf[:0]
		putBuf(bp)
	})
}

// codexRefusal is the backend's refusal of a body that breaks its constraints, or "".
func codexRefusal(body []byte) string {
	if !gjson.ValidBytes(body) || !gjson.ParseBytes(body).IsObject() {
		return "Invalid JSON body"
	}
	root := gjson.ParseBytes(body)
	switch {
	case root.Get("stream").Type != gjson.True:
		return "Stream must be set to true"
	case root.Get("store").Type != gjson.False:
		return "Store must be set to false"
	case root.Get("instructions").Type != gjson.String:
		return "Instructions are required"
	case !root.Get("input").IsArray():
		return "Input must be a list"
	}
	for _, p := range codexUnsupported {
		if root.Get(p).Exists() {
			return "Unsupported parameter: " + p
		}
	}
	return ""
}

func (s *Server) codexModels(e *exchange, _ []byte) {
	if !s.codexAuth(e) {
		return
	}
	type model struct {
		Slug        string `json:"slug"`
		DisplayName string `json:"display_name"`
	}
	out := struct {
		Models []model `json:"models"`
	}{}
	for _, m := range DefaultCodexModels {
		out.Models = append(out.Models, model{Slug: m, DisplayName: m})
	}
	e.writeJSON(out)
}

// detail answers status with the backend's {"detail":msg} body.
func (e *exchange) detail(status int, msg string) {
	e.entry.Status = status
	e.st.errors.Add(1)
	writeJSONValue(e.w, status, map[string]string{"detail": msg})
}

func writeJSONValue(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	_ = writeJSONBytes(w, status, b)
}
