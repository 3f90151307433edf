package mockupstream

import (
	"net/http"
	"strings"

	"github.com/tidwall/gjson"
)

// Code Assist (cloudcode-pa.googleapis.com) is the upstream of Gemini CLI's "Login with
// Google": POST /v1internal:{method} with Authorization: Bearer <Google access token>.
//
//	loadCodeAssist         {"cloudaicompanionProject"?,"metadata"} → the user's
//	                       currentTier and cloudaicompanionProject once onboarded, else only
//	                       allowedTiers (the default one marked isDefault)
//	onboardUser            {"tierId","cloudaicompanionProject"?,"metadata"} → a long-running
//	                       operation {"name","done"}; calling again (or GET
//	                       /v1internal/operations/{name}) polls it, and once done its
//	                       response names the project: {"cloudaicompanionProject":{"id","name"}}
//	generateContent        {"model","project","user_prompt_id","request":{…}} →
//	streamGenerateContent  {"response":{…},"traceId"}, per chunk for a stream (?alt=sse:
//	                       SSE; without it one JSON array); error objects are not wrapped
//	countTokens            {"request":{"model":"models/…","contents"}} → {"totalTokens"}
//
// Tokens the Google login server issued are checked: an expired one is 401 UNAUTHENTICATED,
// and a generate request must name the user's project (403 PERMISSION_DENIED otherwise).
// Any other bearer token is served like a Gemini API key (scripts, stats and recorded
// requests are per token).

// codeAssistAPI is Code Assist's dialect: Bearer tokens, Google RPC error bodies.
var codeAssistAPI = &dialect{
	key: bearer,
	noKey: func() (int, string, string) {
		return http.StatusUnauthorized, "UNAUTHENTICATED", googleUnauthenticated
	},
	errorType: geminiStatusWord,
	writeError: func(w http.ResponseWriter, status int, word, msg, _ string) {
		writeGeminiError(w, status, word, msg, nil)
	},
	revoked:       func() (int, string) { return http.StatusUnauthorized, "UNAUTHENTICATED" },
	writeScripted: writeGeminiScripted,
	invalidKey:    googleUnauthenticated,
}

const (
	endpointLoadCodeAssist = "load_code_assist"
	endpointOnboardUser    = "onboard_user"
)

// serveCodeAssist answers rest = ":{method}" or "/operations/{name}" under /v1internal.
func (s *Server) serveCodeAssist(w http.ResponseWriter, r *http.Request, n uint64, reqID, rest string) {
	if op, ok := strings.CutPrefix(rest, "/operations/"); ok {
		s.serveAPI(w, r, n, reqID, codeAssistAPI, endpointOnboardUser, http.MethodGet, func(e *exchange, _ []byte) {
			e.onboardUser("", "", "operations/"+op)
		})
		return
	}
	method, ok := strings.CutPrefix(rest, ":")
	var endpoint string
	switch {
	case !ok:
	case method == "loadCodeAssist":
		s.serveAPI(w, r, n, reqID, codeAssistAPI, endpointLoadCodeAssist, http.MethodPost, func(e *exchange, _ []byte) { e.loadCodeAssist() })
		return
	case method == "onboardUser":
		s.serveAPI(w, r, n, reqID, codeAssistAPI, endpointOnboardUser, http.MethodPost, func(e *exchange, body []byte) {
			req := gjson.ParseBytes(body)
			e.onboardUser(req.Get("tierId").Str, req.Get("cloudaicompanionProject").Str, "")
		})
		return
	case method == "generateContent":
		endpoint = endpointGenerate
	case method == "streamGenerateContent":
		endpoint = endpointStreamGenerate
	case method == "countTokens":
		endpoint = endpointCountTokens
	}
	if endpoint == "" {
		writeGeminiError(w, http.StatusNotFound, "NOT_FOUND", "Method not found.", nil)
		return
	}
	s.serveAPI(w, r, n, reqID, codeAssistAPI, endpoint, http.MethodPost, func(e *exchange, body []byte) {
		email, known, expired := s.google.who(e.entry.Key, s.opts.Now())
		if expired {
			e.fail(http.StatusUnauthorized, "UNAUTHENTICATED", googleUnauthenticated)
			return
		}
		env := gjson.ParseBytes(body)
		inner := env.Get("request")
		if !env.IsObject() || !inner.IsObject() {
			e.badRequest("Invalid JSON payload received. Unknown name or missing \"request\".")
			return
		}
		model := env.Get("model").Str
		if endpoint == endpointCountTokens {
			model = strings.TrimPrefix(inner.Get("model").Str, "models/")
		} else {
			project := env.Get("project").Str
			if project == "" {
				e.badRequest("Invalid project: the request names no cloudaicompanionProject.")
				return
			}
			if known && s.CodeAssistUser(email).Project != project {
				e.fail(http.StatusForbidden, "PERMISSION_DENIED", "Permission denied on resource project "+project+".")
				return
			}
		}
		if model == "" {
			e.badRequest("Invalid model: the request names none.")
			return
		}
		trace := ""
		if endpoint != endpointCountTokens {
			trace = s.newID("", n)
		}
		e.answerGemini([]byte(inner.Raw), endpoint, model, trace)
	})
}

// tierJSON is a GeminiUserTier of loadCodeAssist's answer.
func tierJSON(id string, isDefault bool) map[string]any {
	t := map[string]any{"id": id, "isDefault": isDefault}
	switch id {
	case TierFree:
		t["name"], t["userDefinedCloudaicompanionProject"] = "Gemini Code Assist for individuals", false
	case TierStandard:
		t["name"], t["userDefinedCloudaicompanionProject"] = "Gemini Code Assist Standard", true
	default:
		t["name"], t["userDefinedCloudaicompanionProject"] = "Gemini Code Assist", true
	}
	return t
}

// lockUser returns the Code Assist user of the exchange's token with the Google server
// locked (the caller unlocks), having counted the call; false (answered 401) when the Google
// login server does not know the token as a live one.
func (e *exchange) lockUser(count func(*GoogleStats)) (*googleServer, *CodeAssistUser, bool) {
	email, known, expired := e.s.google.who(e.entry.Key, e.s.opts.Now())
	if !known || expired {
		e.fail(http.StatusUnauthorized, "UNAUTHENTICATED", googleUnauthenticated)
		return nil, nil, false
	}
	g := e.s.google
	g.mu.Lock()
	count(&g.stats)
	return g, g.user(email), true
}

func (e *exchange) loadCodeAssist() {
	g, user, ok := e.lockUser(func(st *GoogleStats) { st.LoadCalls++ })
	if !ok {
		return
	}
	u := *user
	g.mu.Unlock()
	out := map[string]any{"allowedTiers": []any{tierJSON(TierFree, u.Tier != TierStandard), tierJSON(TierStandard, u.Tier == TierStandard)}}
	if u.Onboarded {
		out["currentTier"] = tierJSON(u.Tier, true)
		out["cloudaicompanionProject"] = u.Project
	}
	e.writeJSON(out)
}

// onboardUser starts the user's onboarding, or polls it (by a repeated onboardUser call or
// by the operation's name).
func (e *exchange) onboardUser(tier, project, opName string) {
	g, u, ok := e.lockUser(func(st *GoogleStats) { st.OnboardCalls++ })
	if !ok {
		return
	}
	switch {
	case opName != "" && opName != u.opName:
		g.mu.Unlock()
		e.fail(http.StatusNotFound, "NOT_FOUND", "Operation "+opName+" not found.")
		return
	case opName == "" && tier != TierFree && tier != TierStandard && tier != TierLegacy:
		g.mu.Unlock()
		e.badRequest("Invalid tierId: " + tier)
		return
	case opName == "" && tier != TierFree && project == "" && u.Project == "":
		g.mu.Unlock()
		e.fail(http.StatusPreconditionFailed, "FAILED_PRECONDITION", "This tier requires a cloudaicompanionProject.")
		return
	}
	if u.opName == "" {
		u.opName, u.polls = "operations/onboard-"+strings.ToLower(randomToken("")[:12]), 0
		if opName == "" {
			u.Tier = tier
		}
	} else {
		u.polls++
	}
	done := u.Onboarded || u.polls >= u.OnboardPolls
	if done && !u.Onboarded {
		u.Onboarded = true
		switch {
		case project != "":
			u.Project = project
		case u.Project == "":
			u.Project = newProjectID()
		}
	}
	name, proj := u.opName, u.Project
	g.mu.Unlock()
	out := map[string]any{"name": name, "done": done}
	if done {
		out["response"] = map[string]any{
			"@type":                   "type.googleapis.com/google.internal.cloud.code.v1internal.OnboardUserResponse",
			"cloudaicompanionProject": map[string]string{"id": proj, "name": proj},
		}
	}
	e.writeJSON(out)
}
