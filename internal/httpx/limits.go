package httpx

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// BodyReadTimeout gives every read of a request body its own deadline, timeout(r) from the
// moment the read starts (0 = none). A client that trickles its body, or stops sending it, is
// cut off after that long without a byte, instead of holding a connection and a handler for
// ever; a slow but moving upload is not. The handler sees the deadline as a read error
// matching os.ErrDeadlineExceeded.
//
// Once the body has been read to its end the deadline is lifted: the server then watches the
// connection for the client leaving, and a deadline there would end a long answer. A body
// the handler did not read to its end (it refused the request, or the read timed out) keeps a
// deadline of now: before answering, net/http reads what is left of a small body, and must
// not wait on a client that sends nothing; the connection is then closed after the answer.
func BodyReadTimeout(timeout func(*http.Request) time.Duration) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			d := timeout(r)
			if d <= 0 || r.Body == nil || r.Body == http.NoBody {
				next.ServeHTTP(w, r)
				return
			}
			b := &deadlineBody{ReadCloser: r.Body, rc: http.NewResponseController(w), d: d}
			r.Body = b
			// Errors mean the connection takes no deadlines (not a net/http server
			// connection): the body is then read without one.
			defer func() {
				if !b.done {
					_ = b.rc.SetReadDeadline(time.Now())
				}
			}()
			next.ServeHTTP(w, r)
		})
	}
}

type deadlineBody struct {
	io.ReadCloser
	rc   *http.ResponseController
	d    time.Duration
	done bool // read to io.EOF, deadline lifted
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	if b.done {
		return b.ReadCloser.Read(p)
	}
	_ = b.rc.SetReadDeadline(time.Now().Add(b.d))
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		b.done = true
		_ = b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}

// RejectConnections is the X-Fluxcode-Reject reason of a connection refused by LimitListener.
const RejectConnections = "connections"

// refusalTimeout bounds the time spent refusing one connection, and refusingMax the
// refusals under way at once; past it, surplus connections are closed without a word.
const (
	refusalTimeout = 2 * time.Second
	refusingMax    = 64
	refusalHead    = 64 << 10
)

// LimitListener accepts at most maxConns connections at once (0 = no limit). A connection
// over the limit gets a 503 with Retry-After and a JSON body — in Anthropic's error shape
// when it asked for /v1/, in the API's shape otherwise — and is closed; the server never
// sees it. The request head is read first (briefly and boundedly), so that the client reads
// the answer rather than a reset.
func LimitListener(ln net.Listener, maxConns int, log *slog.Logger) net.Listener {
	if maxConns <= 0 {
		return ln
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &limitListener{Listener: ln, slots: make(chan struct{}, maxConns), refusing: make(chan struct{}, refusingMax), log: log}
}

type limitListener struct {
	net.Listener
	slots    chan struct{}
	refusing chan struct{}
	log      *slog.Logger
	refused  atomic.Int64
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		select {
		case l.slots <- struct{}{}:
			return &limitedConn{Conn: c, release: func() { <-l.slots }}, nil
		default:
		}
		if n := l.refused.Add(1); n&(n-1) == 0 { // log the 1st, 2nd, 4th, 8th… refusal
			l.log.Warn("connection limit reached (SERVER_MAX_CONNS): refusing connections", "limit", cap(l.slots), "refused", n)
		}
		select {
		case l.refusing <- struct{}{}:
			go func() {
				defer func() { <-l.refusing }()
				refuseConn(c)
			}()
		default:
			c.Close()
		}
	}
}

// limitedConn gives its slot back when closed, once.
type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// refuseConn answers one over-the-limit connection and closes it.
func refuseConn(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(refusalTimeout))
	path := ""
	if req, err := http.ReadRequest(bufio.NewReader(io.LimitReader(c, refusalHead))); err == nil {
		path = req.URL.Path
	}
	const msg = "FluxCode: this node has as many connections as it accepts (SERVER_MAX_CONNS); retry shortly"
	var body any
	if path == "/v1" || strings.HasPrefix(path, "/v1/") {
		body = map[string]any{"type": "error", "error": map[string]string{"type": "overloaded_error", "message": msg}}
	} else {
		body = map[string]any{"error": map[string]string{"code": "unavailable", "message": msg}}
	}
	b, _ := json.Marshal(body)
	fmt.Fprintf(c, "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"+
		"Retry-After: 1\r\nX-Should-Retry: true\r\nX-Fluxcode-Reject: %s\r\nConnection: close\r\n\r\n%s\n",
		len(b)+1, RejectConnections, b)
}
