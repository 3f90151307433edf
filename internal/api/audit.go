package api

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/fluxcode/fluxcode/internal/store"
)

// The audit log records every admin change. It hooks the one place every admin route passes
// through (requireAdmin), so a route added later is recorded without touching its handler:
// the action and target come from the route's pattern, "before" from reading the target
// before the handler runs, "after" from the handler's own answer (the stored record's view).
// Both go through redactJSON: no credential, password, key or token is ever recorded.

// maxAuditBody bounds the answer kept as "after"; a larger one is recorded as truncated.
const maxAuditBody = 64 << 10

// auditedAction is what one admin request does, from its route pattern.
type auditedAction struct {
	action, targetType, targetID string
}

// describeAdminRoute names the action of an admin route: the singular of each literal path
// segment after /api/v1/admin/, then the verb (create, update, delete). A POST to a singular
// sub-resource is a verb of its own: POST /admin/accounts/{id}/recover is "account.recover",
// POST /admin/users/{id}/keys is "user.key.create". The target is the first resource and its id.
func describeAdminRoute(r *http.Request) auditedAction {
	pattern := r.Pattern
	if _, p, ok := strings.Cut(pattern, " "); ok {
		pattern = p
	}
	rest := strings.TrimPrefix(pattern, "/api/v1/admin/")
	segs := strings.Split(strings.Trim(rest, "/"), "/")
	var names []string
	var a auditedAction
	lastLiteral := false
	for _, s := range segs {
		if strings.HasPrefix(s, "{") {
			if a.targetID == "" && len(names) == 1 {
				a.targetID = r.PathValue(strings.Trim(s, "{}."))
			}
			lastLiteral = false
			continue
		}
		names = append(names, singular(s))
		lastLiteral = true
	}
	if len(names) == 0 {
		names = []string{"admin"}
	}
	a.targetType = names[0]
	last := segs[len(segs)-1]
	switch {
	case r.Method == http.MethodPost && lastLiteral && len(names) > 1 && !strings.HasSuffix(last, "s"):
		a.action = strings.Join(names, ".")
	case r.Method == http.MethodPost:
		a.action = strings.Join(names, ".") + ".create"
	case r.Method == http.MethodDelete:
		a.action = strings.Join(names, ".") + ".delete"
	default:
		a.action = strings.Join(names, ".") + ".update"
	}
	return a
}

func singular(s string) string {
	switch {
	case strings.HasSuffix(s, "ies"):
		return strings.TrimSuffix(s, "ies") + "y"
	case strings.HasSuffix(s, "s") && !strings.HasSuffix(s, "ss"):
		return strings.TrimSuffix(s, "s")
	}
	return s
}

// auditRecorder passes the answer through and keeps its status and (bounded) body.
type auditRecorder struct {
	http.ResponseWriter
	status    int
	body      bytes.Buffer
	truncated bool
}

func (w *auditRecorder) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *auditRecorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if room := maxAuditBody - w.body.Len(); room > 0 {
		w.body.Write(b[:min(len(b), room)])
	}
	if w.body.Len()+len(b) > maxAuditBody {
		w.truncated = true
	}
	return w.ResponseWriter.Write(b)
}

func (w *auditRecorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// audited records h's change when it succeeds. Reads are not recorded.
func (a *api) audited(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet || r.Method == http.MethodHead || r.Method == http.MethodOptions {
			h(w, r)
			return
		}
		ctx := r.Context()
		act := describeAdminRoute(r)
		before := a.auditSnapshot(ctx, act.targetType, act.targetID)
		rec := &auditRecorder{ResponseWriter: w}
		h(rec, r)
		if rec.status == 0 || rec.status >= 400 {
			return // refused or failed: nothing changed
		}
		after := ""
		switch {
		case rec.truncated:
			after = `{"truncated":true}`
		case rec.status != http.StatusNoContent && r.Method != http.MethodDelete:
			after = redactJSON(rec.body.Bytes())
		}
		if act.targetID == "" && after != "" {
			act.targetID = createdID(rec.body.Bytes())
		}
		actor := currentUser(ctx)
		e := &store.AuditEntry{ActorUserID: actor.ID, ActorEmail: actor.Email, AdminKeyID: adminKeyID(ctx), Action: act.action,
			TargetType: act.targetType, TargetID: act.targetID, Before: before, After: after, ClientIP: clientIP(r)}
		// The change is made; its record must not be lost to a client that hung up.
		if err := a.store.AppendAudit(context.WithoutCancel(ctx), e); err != nil {
			a.log.ErrorContext(ctx, "audit log write failed", "action", e.Action, "target_type", e.TargetType,
				"target_id", e.TargetID, "actor", e.ActorUserID, "err", err)
		}
	}
}

// auditSnapshot is the target's view before the change, redacted; "" when there is no
// target (a create) or it cannot be read.
func (a *api) auditSnapshot(ctx context.Context, targetType, targetID string) string {
	var v any
	var err error
	if targetType == "setting" {
		v, err = a.loadSettings(ctx)
	} else {
		id, perr := strconv.ParseInt(targetID, 10, 64)
		if perr != nil {
			return ""
		}
		switch targetType {
		case "user":
			v, err = viewOf(ctx, a.getUserAccess, id, viewUserAccess)
		case "group":
			v, err = viewOf(ctx, a.store.GetGroup, id, viewGroup)
		case "key":
			v, err = viewOf(ctx, a.store.GetAPIKey, id, viewKey)
		case "account":
			v, err = viewOf(ctx, a.store.GetAccount, id, viewAccount)
		case "proxy":
			v, err = viewOf(ctx, a.store.GetProxy, id, viewProxy)
		case "admin-key":
			v, err = viewOf(ctx, a.store.GetAdminAPIKey, id, viewAdminKey)
		default:
			return ""
		}
	}
	if err != nil {
		return ""
	}
	b, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	return redactJSON(b)
}

func viewOf[R, V any](ctx context.Context, get func(context.Context, int64) (*R, error), id int64, view func(*R) V) (any, error) {
	rec, err := get(ctx, id)
	if err != nil {
		return nil, err
	}
	return view(rec), nil
}

// createdID reads the "id" of a created record from the answer.
func createdID(body []byte) string {
	var v struct {
		ID json.Number `json:"id"`
	}
	if json.Unmarshal(body, &v) != nil {
		return ""
	}
	return v.ID.String()
}

// redacted replaces every secret value in an audit record.
const redacted = "[redacted]"

// secretField reports whether a JSON field holds a secret by its name.
func secretField(name string) bool {
	n := strings.ToLower(name)
	switch n {
	case "key", "api_key", "password", "credentials", "token", "access_token", "refresh_token", "id_token",
		"secret", "client_secret", "recovery_codes", "recovery_code", "code", "otpauth_uri", "challenge", "session_key":
		return true
	}
	return strings.HasSuffix(n, "_password") || strings.HasSuffix(n, "_secret") || strings.HasSuffix(n, "_token") ||
		strings.HasPrefix(n, "password")
}

// redactJSON returns the JSON text b with the value of every secret field replaced, at any
// depth; "" when b is not JSON.
func redactJSON(b []byte) string {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return ""
	}
	out, err := json.Marshal(redactValue(v))
	if err != nil {
		return ""
	}
	return string(out)
}

func redactValue(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, val := range x {
			if secretField(k) && val != nil && val != "" {
				x[k] = redacted
			} else {
				x[k] = redactValue(val)
			}
		}
	case []any:
		for i := range x {
			x[i] = redactValue(x[i])
		}
	}
	return v
}

// auditView is one audit entry in the API.
type auditView struct {
	ID          int64  `json:"id"`
	ActorUserID int64  `json:"actor_user_id"`
	ActorEmail  string `json:"actor_email"`
	// AdminKeyID is the admin API key the change was made through; 0 for a signed-in session.
	AdminKeyID int64           `json:"admin_key_id"`
	Action     string          `json:"action"`
	TargetType string          `json:"target_type"`
	TargetID   string          `json:"target_id"`
	Before     json.RawMessage `json:"before"`
	After      json.RawMessage `json:"after"`
	ClientIP   string          `json:"client_ip"`
	CreatedAt  time.Time       `json:"created_at"`
}

func viewAudit(e *store.AuditEntry) auditView {
	raw := func(s string) json.RawMessage {
		if s == "" {
			return json.RawMessage("null")
		}
		return json.RawMessage(s)
	}
	return auditView{ID: e.ID, ActorUserID: e.ActorUserID, ActorEmail: e.ActorEmail, AdminKeyID: e.AdminKeyID, Action: e.Action,
		TargetType: e.TargetType, TargetID: e.TargetID, Before: raw(e.Before), After: raw(e.After),
		ClientIP: e.ClientIP, CreatedAt: e.CreatedAt}
}

// listAudit answers GET /admin/audit: newest first, filtered by ?actor_id=, ?actor= (e-mail),
// ?action=, ?target_type=, ?target_id=, ?from= and ?to= (as the usage filters), paged.
func (a *api) listAudit(w http.ResponseWriter, r *http.Request) {
	var f store.AuditFilter
	var err error
	q := r.URL.Query()
	if f.ActorUserID, err = queryID(r, "actor_id"); err != nil {
		a.writeError(w, r, err)
		return
	}
	f.ActorEmail = strings.ToLower(strings.TrimSpace(q.Get("actor")))
	f.Action, f.TargetType, f.TargetID = q.Get("action"), q.Get("target_type"), q.Get("target_id")
	for name, v := range map[string]string{"actor": f.ActorEmail, "action": f.Action, "target_type": f.TargetType, "target_id": f.TargetID} {
		if len(v) > maxNameLen {
			a.writeError(w, r, invalid(name, "%s is too long", name))
			return
		}
	}
	if f.From, err = queryTime(r, "from", false); err == nil {
		f.To, err = queryTime(r, "to", true)
	}
	if err == nil && !f.From.IsZero() && !f.To.IsZero() && !f.To.After(f.From) {
		err = invalid("to", "to must be after from")
	}
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	listRoute(a, func(ctx context.Context, p store.Page) ([]store.AuditEntry, int, error) {
		return a.store.ListAudit(ctx, f, p)
	}, viewAudit)(w, r)
}
