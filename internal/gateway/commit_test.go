package gateway_test

import (
	"bufio"
	"context"
	"database/sql"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fluxcode/fluxcode/internal/gateway"
	"github.com/fluxcode/fluxcode/internal/gateway/gatewaytest"
	"github.com/fluxcode/fluxcode/internal/store"
	_ "github.com/fluxcode/fluxcode/internal/store/sqlstore" // the "sqlite" driver of lockWrites
)

// lockableEnv is an env whose SQLite file the test can lock against writers, which stops
// every ledger commit until it lets go (a real lock, taken by a second connection).
type lockableEnv struct {
	*env
	path string
}

func newLockableEnv(t *testing.T, cfg gateway.Config) *lockableEnv {
	t.Helper()
	keys := gatewaytest.NewKeys(t)
	path := filepath.Join(t.TempDir(), "fluxcode.db")
	d := gatewaytest.NewDeps(t, gatewaytest.Deps{Store: gatewaytest.OpenSQLiteFile(t, keys, path), Keys: keys})
	e := &env{Deps: d, tap: gatewaytest.NewTap(t, d.Mock), clock: &gatewaytest.Clock{}}
	e.node = gatewaytest.Start(t, d, cfg, "n1", e.clock.Now)
	e.tenant = gatewaytest.NewTenant(t, d, gatewaytest.TenantOptions{})
	e.account(t, "up-commit", nil)
	return &lockableEnv{env: e, path: path}
}

// lockWrites takes the database's write lock from another connection and returns the
// function that gives it back.
func (e *lockableEnv) lockWrites(t *testing.T) (unlock func()) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+e.path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(context.Background(), "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	done := false
	unlock = func() {
		if done {
			return
		}
		done = true
		if _, err := conn.ExecContext(context.Background(), "ROLLBACK"); err != nil {
			t.Error(err)
		}
		conn.Close()
		db.Close()
	}
	t.Cleanup(unlock)
	return unlock
}

// ledgerHas reports, reading the ledger once, whether it holds a row of the request id.
func (e *env) ledgerHas(t *testing.T, requestID string) bool {
	t.Helper()
	rows, _, err := e.Store.ListUsage(context.Background(), store.UsageFilter{UserID: e.tenant.User.ID}, store.Page{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range rows {
		if r.RequestID == requestID {
			n++
		}
	}
	if n > 1 {
		t.Fatalf("request %s has %d ledger rows", requestID, n)
	}
	return n == 1
}

// nextEvent reads one SSE event and returns its name.
func nextEvent(r *bufio.Reader) (string, error) {
	name := ""
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return name, err
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			if name != "" {
				return name, nil
			}
			continue
		}
		if v, ok := strings.CutPrefix(line, "event:"); ok {
			name = strings.TrimSpace(v)
		}
	}
}

// grace is how long a test gives a wrong implementation to show itself (an answer's end
// sent before its commit). It is not a bound on anything the gateway does.
const grace = 300 * time.Millisecond

// TestAnswerEndWaitsForItsCommit: the client gets everything of an answer but its end while
// the ledger row cannot commit, and the end once it has committed; so a client that saw the
// end was billed, whatever happens to the node afterwards.
func TestAnswerEndWaitsForItsCommit(t *testing.T) {
	cfg := testConfig()
	cfg.BillCommitWait = time.Minute
	t.Run("Stream", func(t *testing.T) {
		e := newLockableEnv(t, cfg)
		unlock := e.lockWrites(t)
		resp := e.post(t, "/v1/messages", streamBody, nil)
		if resp.StatusCode != 200 {
			t.Fatalf("status %d: %s", resp.StatusCode, readBody(t, resp))
		}
		id := resp.Header.Get(gateway.HeaderRequestID)
		r := bufio.NewReader(resp.Body)
		for {
			name, err := nextEvent(r)
			if err != nil {
				t.Fatalf("stream ended before message_delta: %v", err)
			}
			if name == "message_stop" {
				t.Fatal("message_stop arrived while its ledger row could not be committed")
			}
			if name == "message_delta" {
				break
			}
		}
		next := make(chan string, 1)
		go func() {
			name, err := nextEvent(r)
			if err != nil {
				name = "error: " + err.Error()
			}
			next <- name
		}()
		select {
		case name := <-next:
			t.Fatalf("got %q while the ledger row could not be committed", name)
		case <-time.After(grace):
		}
		if e.ledgerHas(t, id) {
			t.Fatal("the row is in the ledger although the database was locked")
		}
		unlock()
		if name := <-next; name != "message_stop" {
			t.Fatalf("after the commit the client got %q, want message_stop", name)
		}
		if !e.ledgerHas(t, id) {
			t.Fatal("message_stop arrived before the row was in the ledger")
		}
		if rest, _ := io.ReadAll(r); len(rest) != 0 {
			t.Fatalf("after message_stop: %q", rest)
		}
	})
	t.Run("JSON", func(t *testing.T) {
		e := newLockableEnv(t, cfg)
		unlock := e.lockWrites(t)
		type answer struct {
			resp *http.Response
			body []byte
			err  error
		}
		got := make(chan answer, 1)
		go func() {
			req, _ := http.NewRequest(http.MethodPost, e.node.URL+"/v1/messages", strings.NewReader(jsonBody))
			req.Header.Set("X-Api-Key", e.tenant.Secret)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				got <- answer{err: err}
				return
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			got <- answer{resp: resp, body: b, err: err}
		}()
		select {
		case a := <-got:
			t.Fatalf("the whole answer arrived while its ledger row could not be committed: %v %s", a.err, a.body)
		case <-time.After(grace):
		}
		unlock()
		a := <-got
		if a.err != nil || a.resp.StatusCode != 200 {
			t.Fatalf("answer: %v", a.err)
		}
		ex := e.tap.Exchanges()
		if len(ex) != 1 || string(a.body) != string(ex[0].Body()) {
			t.Fatalf("client body differs from the upstream's:\n got %s", a.body)
		}
		if !e.ledgerHas(t, a.resp.Header.Get(gateway.HeaderRequestID)) {
			t.Fatal("the body was complete before its row was in the ledger")
		}
	})
}

// TestEveryAnswerIsBilledWhenItEnds: without any waiting by the test, each complete answer
// (JSON or stream) is in the ledger the moment the client has it.
func TestEveryAnswerIsBilledWhenItEnds(t *testing.T) {
	e := newEnv(t, testConfig(), gatewaytest.TenantOptions{})
	e.account(t, "up-ends", nil)
	for i := range 10 {
		body := jsonBody
		if i%2 == 1 {
			body = streamBody
		}
		resp := e.post(t, "/v1/messages", body, nil)
		b := readBody(t, resp)
		if resp.StatusCode != 200 {
			t.Fatalf("status %d: %s", resp.StatusCode, b)
		}
		if i%2 == 1 && !strings.Contains(string(b), "event: message_stop") {
			t.Fatalf("stream without message_stop: %s", b)
		}
		if !e.ledgerHas(t, resp.Header.Get(gateway.HeaderRequestID)) {
			t.Fatalf("answer %d (stream=%v) ended before its row was in the ledger", i, i%2 == 1)
		}
	}
}

// TestCommitWaitIsBounded: a database that cannot take the row does not hang the answer
// past BillCommitWait; the row stays queued and lands once, when the database is back.
func TestCommitWaitIsBounded(t *testing.T) {
	cfg := testConfig()
	cfg.BillCommitWait = 100 * time.Millisecond
	e := newLockableEnv(t, cfg)
	unlock := e.lockWrites(t)
	resp := e.post(t, "/v1/messages", streamBody, nil)
	b := readBody(t, resp)
	if resp.StatusCode != 200 || !strings.HasSuffix(string(b), "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n") {
		t.Fatalf("status %d, answer does not end with message_stop: %s", resp.StatusCode, b)
	}
	id := resp.Header.Get(gateway.HeaderRequestID)
	if e.ledgerHas(t, id) {
		t.Fatal("the row is in the ledger although the database was locked")
	}
	if n := e.node.Metric(t, "fluxcode_gateway_billing_uncommitted_answers_total", nil); n != 1 {
		t.Fatalf("billing_uncommitted_answers_total = %v, want 1", n)
	}
	unlock()
	usageRows(t, e.Store, e.tenant.User.ID, 1)
	if !e.ledgerHas(t, id) {
		t.Fatal("the queued row is not the request's")
	}
}

// TestCloseWritesQueuedRows: rows still queued at shutdown (their answers gave up waiting)
// are written by Close, which waits for the database.
func TestCloseWritesQueuedRows(t *testing.T) {
	cfg := testConfig()
	cfg.BillCommitWait = 50 * time.Millisecond
	e := newLockableEnv(t, cfg)
	unlock := e.lockWrites(t)
	for i := range 5 {
		resp := e.post(t, "/v1/messages", uniqueBody("queued "+string(rune('a'+i))), nil)
		if b := readBody(t, resp); resp.StatusCode != 200 {
			t.Fatalf("status %d: %s", resp.StatusCode, b)
		}
	}
	if _, n, _ := e.Store.ListUsage(context.Background(), store.UsageFilter{}, store.Page{}); n != 0 {
		t.Fatalf("%d rows written while the database was locked", n)
	}
	closed := make(chan struct{})
	go func() { defer close(closed); e.node.Close(t) }()
	select {
	case <-closed:
		t.Fatal("Close returned while 5 rows could not be written")
	case <-time.After(grace):
	}
	unlock()
	<-closed
	if _, n, _ := e.Store.ListUsage(context.Background(), store.UsageFilter{}, store.Page{}); n != 5 {
		t.Fatalf("%d rows after Close, want 5", n)
	}
}
