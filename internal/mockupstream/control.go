package mockupstream

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// controlPrefix starts the paths through which tests script and inspect a mock in another
// process (the cluster harness, benchmarks).
const controlPrefix = "/_mock/"

// ScriptRequest is the body of POST /_mock/script.
type ScriptRequest struct {
	// Key is the upstream key the script is for; ignored when Default is set.
	Key string `json:"key"`
	// Default sets the script of every key without its own.
	Default bool   `json:"default"`
	Script  Script `json:"script"`
}

// RecordedRequestJSON is one entry of GET /_mock/requests.
type RecordedRequestJSON struct {
	RecordedRequest
	// Body is the body as text (bytes that are not UTF-8 are replaced).
	Body string `json:"body"`
	// BodySHA256 is the hex SHA-256 of the exact body bytes, for byte-for-byte checks.
	BodySHA256 string `json:"body_sha256"`
}

// serveControl answers:
//
//	POST   /_mock/script                  ScriptRequest → {"ok":true}
//	DELETE /_mock/script?key=K            the key returns to the default script
//	GET    /_mock/stats?key=K             Stats of K; without key: {"key": Stats, ...}
//	GET    /_mock/idle?timeout=D          waits (default 10s) until nothing is in flight
//	POST   /_mock/release?key=K           K's held model-list answers go out (Script.HoldModels)
//	POST   /_mock/reset                   everything back to the state after start
//	POST   /_mock/reset?key=K             K's script, counters and recorded requests
//	POST   /_mock/reset?key=K&peak=1      only K's peak in flight
//	GET    /_mock/log?key=K&n=N           the last N request log entries (of K, or all)
//	GET    /_mock/requests?key=K&n=N      the last N requests K sent (headers and body)
//	GET    /_mock/oauth/stats             OAuthStats of the login server
//	POST   /_mock/oauth/login?email=E     a signed-in login's tokens (Login)
//	POST   /_mock/oauth/expire?token=T    access token T expires now
//	POST   /_mock/oauth/revoke?token=R    refresh token R is revoked (real invalid_grant)
//	POST   /_mock/oauth/hold, /release    refresh grants wait / go through
//	POST   /_mock/oauth/ttl?d=D           access tokens issued from now live D
//	GET    /_mock/google/...              Google's login server and Code Assist (codeassist_oauth.go)
func (s *Server) serveControl(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	key := q.Get("key")
	n := 0
	if v := q.Get("n"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			controlError(w, http.StatusBadRequest, fmt.Errorf("n: %w", err))
			return
		}
	}
	switch op := strings.TrimPrefix(r.URL.Path, controlPrefix); r.Method + " " + op {
	case "POST script":
		var req ScriptRequest
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			controlError(w, http.StatusBadRequest, fmt.Errorf("script request: %w", err))
			return
		}
		var err error
		switch {
		case req.Default:
			err = s.SetDefaultScript(req.Script)
		case req.Key == "":
			err = fmt.Errorf("script request: key is required (or default: true)")
		default:
			err = s.SetScript(req.Key, req.Script)
		}
		if err != nil {
			controlError(w, http.StatusBadRequest, err)
			return
		}
		controlJSON(w, map[string]bool{"ok": true})
	case "DELETE script":
		s.ClearScript(key)
		controlJSON(w, map[string]bool{"ok": true})
	case "GET stats":
		if key == "" {
			controlJSON(w, s.AllStats())
			return
		}
		controlJSON(w, s.Stats(key))
	case "GET idle":
		timeout := 10 * time.Second
		if v := q.Get("timeout"); v != "" {
			d, err := parseDuration(v)
			if err != nil {
				controlError(w, http.StatusBadRequest, fmt.Errorf("timeout: %w", err))
				return
			}
			timeout = d
		}
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		if err := s.WaitIdle(ctx); err != nil {
			controlError(w, http.StatusGatewayTimeout, err)
			return
		}
		controlJSON(w, map[string]bool{"ok": true})
	case "POST release":
		if key == "" {
			controlError(w, http.StatusBadRequest, fmt.Errorf("release: key is required"))
			return
		}
		s.ReleaseModels(key)
		controlJSON(w, map[string]bool{"ok": true})
	case "POST reset":
		switch {
		case key == "":
			s.Reset()
		case q.Get("peak") != "":
			s.ResetPeak(key)
		default:
			s.ResetKey(key)
		}
		controlJSON(w, map[string]bool{"ok": true})
	case "GET log":
		entries := s.Log(key, n)
		if entries == nil {
			entries = []LogEntry{}
		}
		controlJSON(w, entries)
	case "GET requests":
		reqs := s.Requests(key, n)
		out := make([]RecordedRequestJSON, len(reqs))
		for i, rr := range reqs {
			sum := sha256.Sum256(rr.Body)
			out[i] = RecordedRequestJSON{RecordedRequest: rr, Body: string(rr.Body), BodySHA256: hex.EncodeToString(sum[:])}
		}
		controlJSON(w, out)
	case "GET oauth/stats":
		controlJSON(w, s.OAuthStats())
	case "POST oauth/login":
		controlJSON(w, s.NewLogin(q.Get("email")))
	case "POST oauth/expire":
		s.ExpireAccess(q.Get("token"))
		controlJSON(w, map[string]bool{"ok": true})
	case "POST oauth/revoke":
		s.RevokeLogin(q.Get("token"))
		controlJSON(w, map[string]bool{"ok": true})
	case "POST oauth/hold":
		s.HoldRefreshes()
		controlJSON(w, map[string]bool{"ok": true})
	case "POST oauth/release":
		s.ReleaseRefreshes()
		controlJSON(w, map[string]bool{"ok": true})
	case "POST oauth/ttl":
		d, err := parseDuration(q.Get("d"))
		if err != nil {
			controlError(w, http.StatusBadRequest, fmt.Errorf("d: %w", err))
			return
		}
		s.SetAccessTTL(d)
		controlJSON(w, map[string]bool{"ok": true})
	default:
		if s.serveGoogleControl(w, r, op) {
			return
		}
		controlError(w, http.StatusNotFound, fmt.Errorf("no control endpoint %s %s", r.Method, r.URL.Path))
	}
}

func controlJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		controlError(w, http.StatusInternalServerError, err)
		return
	}
	_ = writeJSONBytes(w, http.StatusOK, b)
}

func controlError(w http.ResponseWriter, status int, err error) {
	b, _ := json.Marshal(map[string]string{"error": err.Error()})
	_ = writeJSONBytes(w, status, b)
}
