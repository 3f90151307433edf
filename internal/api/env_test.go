package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fluxcode/fluxcode/internal/api"
	"github.com/fluxcode/fluxcode/internal/auth"
	"github.com/fluxcode/fluxcode/internal/coord/memory"
	"github.com/fluxcode/fluxcode/internal/httpx"
	"github.com/fluxcode/fluxcode/internal/invalidate"
	"github.com/fluxcode/fluxcode/internal/netguard"
	"github.com/fluxcode/fluxcode/internal/secret"
	"github.com/fluxcode/fluxcode/internal/store"
	"github.com/fluxcode/fluxcode/internal/store/sqlstore"
)

const (
	adminEmail    = "admin@example.com"
	adminPassword = "admin-password-1"
)

// env is one API on a real SQLite store and the in-process coordinator, with a signed-in
// admin. Every response body is kept, so a test can scan them all for secrets.
type env struct {
	t      *testing.T
	h      http.Handler
	st     *sqlstore.DB
	co     *memory.Coordinator
	keys   *secret.Keys
	tokens *auth.Tokens

	admin      *store.User
	adminToken string

	mu     sync.Mutex
	bodies []string
	msgs   <-chan string
}

// newEnv starts an API on SQLite; opts adjust its options before New.
func newEnv(t *testing.T, opts ...func(*api.Options)) *env {
	t.Helper()
	return newEnvOn(t, filepath.Join(t.TempDir(), "api.db"), opts...)
}

// newEnvOn is newEnv on the database dsn names (a SQLite path or a PostgreSQL URL).
func newEnvOn(t *testing.T, dsn string, opts ...func(*api.Options)) *env {
	t.Helper()
	ctx := context.Background()
	keys, err := secret.NewKeys(bytes.Repeat([]byte{7}, secret.MasterKeySize))
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlstore.Open(ctx, sqlstore.Config{DSN: dsn, Keys: keys,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	co := memory.New()
	t.Cleanup(func() { co.Close() })
	subCtx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	msgs, err := co.Subscribe(subCtx, invalidate.Channel)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, st: st, co: co, keys: keys, msgs: msgs,
		tokens: auth.NewTokens([]byte("test secret of thirty-two bytes!"), time.Hour)}
	// The tests' upstreams and proxies are on loopback, which the API refuses by default.
	o := api.Options{Store: st, Keys: keys, Tokens: e.tokens, Coord: co,
		Upstreams: netguard.New([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")})}
	for _, f := range opts {
		f(&o)
	}
	e.h = httpx.WithRequestIDs(api.New(o))

	admin := &store.User{Email: adminEmail, PasswordHash: secret.HashPassword(adminPassword), Role: store.RoleAdmin,
		Status: store.StatusActive}
	if created, err := st.CreateFirstAdmin(ctx, admin); err != nil || !created {
		t.Fatalf("create admin: created=%v err=%v", created, err)
	}
	e.admin = admin
	e.adminToken = e.login(adminEmail, adminPassword)
	return e
}

// resp is one recorded answer.
type resp struct {
	status int
	header http.Header
	body   []byte
}

// do sends one request. body may be nil, a string or []byte (sent as is), or any value
// (sent as JSON).
func (e *env) do(method, path, token string, body any) *resp {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req := httptest.NewRequest(method, path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return e.doRequest(req)
}

// doRequest sends req as it is and records the answer.
func (e *env) doRequest(req *http.Request) *resp {
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	e.mu.Lock()
	e.bodies = append(e.bodies, rec.Body.String())
	e.mu.Unlock()
	return &resp{status: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}
}

// ok requires the status and decodes the body into out (when not nil).
func (r *resp) ok(t *testing.T, status int, out any) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status = %d, want %d; body: %s", r.status, status, r.body)
	}
	if out != nil {
		if err := json.Unmarshal(r.body, out); err != nil {
			t.Fatalf("decode %s: %v", r.body, err)
		}
	}
}

// apiErr is the documented error body.
type apiErr struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Field   string `json:"field"`
	} `json:"error"`
	RequestID string `json:"request_id"`
}

// wantError requires the documented error shape with status, code and field.
func (r *resp) wantError(t *testing.T, status int, code, field string) apiErr {
	t.Helper()
	var b apiErr
	if r.status != status {
		t.Fatalf("status = %d, want %d; body: %s", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type = %q, want JSON", ct)
	}
	if err := json.Unmarshal(r.body, &b); err != nil {
		t.Fatalf("error body is not JSON: %s", r.body)
	}
	if b.Error.Code != code || b.Error.Field != field {
		t.Errorf("error = %s/%q, want %s/%q; body: %s", b.Error.Code, b.Error.Field, code, field, r.body)
	}
	if b.Error.Message == "" {
		t.Errorf("error without a message: %s", r.body)
	}
	if b.RequestID == "" || b.RequestID != r.header.Get(httpx.HeaderRequestID) {
		t.Errorf("request_id = %q, header X-Request-Id = %q", b.RequestID, r.header.Get(httpx.HeaderRequestID))
	}
	return b
}

type tokenBody struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
	User      userBody  `json:"user"`
}

type userBody struct {
	ID          int64  `json:"id"`
	Email       string `json:"email"`
	Role        string `json:"role"`
	Status      string `json:"status"`
	Balance     string `json:"balance"`
	Concurrency int    `json:"concurrency"`
}

func (e *env) login(email, password string) string {
	e.t.Helper()
	var tb tokenBody
	e.do("POST", "/api/v1/auth/login", "", map[string]string{"email": email, "password": password}).ok(e.t, 200, &tb)
	if tb.Token == "" {
		e.t.Fatal("login answered no token")
	}
	return tb.Token
}

// newUser creates a user through the admin API and signs them in.
func (e *env) newUser(email string) (id int64, token string) {
	e.t.Helper()
	var u userBody
	e.do("POST", "/api/v1/admin/users", e.adminToken, map[string]any{"email": email, "password": "user-password-1"}).
		ok(e.t, 201, &u)
	return u.ID, e.login(email, "user-password-1")
}

// newGroup creates a group through the admin API; extra fields override the defaults.
func (e *env) newGroup(name string, extra map[string]any) int64 {
	e.t.Helper()
	body := map[string]any{"name": name, "platform": "anthropic"}
	for k, v := range extra {
		body[k] = v
	}
	var g struct{ ID int64 }
	e.do("POST", "/api/v1/admin/groups", e.adminToken, body).ok(e.t, 201, &g)
	return g.ID
}

// wantMessage waits for the invalidation msg, skipping others. The wait is bounded only so
// a missing message fails instead of hanging; it asserts nothing about speed.
func (e *env) wantMessage(msg string) {
	e.t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case m := <-e.msgs:
			if m == msg {
				return
			}
		case <-timeout:
			e.t.Fatalf("no invalidation %q was published", msg)
		}
	}
}

// snapshot is the whole durable state, to show a refused request changed nothing.
func (e *env) snapshot() string {
	e.t.Helper()
	ctx := context.Background()
	all := store.Page{Limit: 200}
	var parts []any
	add := func(v any, _ int, err error) {
		if err != nil {
			e.t.Fatal(err)
		}
		parts = append(parts, v)
	}
	add(e.st.ListUsers(ctx, all))
	add(e.st.ListGroups(ctx, all))
	add(e.st.ListAPIKeys(ctx, 0, all))
	add(e.st.ListAccounts(ctx, all))
	add(e.st.ListProxies(ctx, all))
	add(e.st.ListSubscriptions(ctx, 0, all))
	add(e.st.ListBalanceTransactions(ctx, 0, all))
	add(e.st.ListUsage(ctx, store.UsageFilter{}, all))
	settings, err := e.st.ListSettings(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	rules, err := e.st.ListErrorRules(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	parts = append(parts, settings, rules)
	b, err := json.Marshal(parts)
	if err != nil {
		e.t.Fatal(err)
	}
	return string(b)
}

// allBodies joins every response body so far.
func (e *env) allBodies() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return strings.Join(e.bodies, "\n")
}
