package gateway

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strconv"
	"sync"

	"github.com/fluxcode/fluxcode/internal/provider"
)

// meteredJSONLimit bounds how much of a non-streamed answer is kept for reading its usage.
// Anthropic answers are at most a few MB (128k output tokens); the bytes still all reach the
// client beyond it, but usage could not be read and the row is flagged partial.
const meteredJSONLimit = 32 << 20

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}
var jsonBufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// relayJSON copies a non-streamed answer to the client as it arrives and keeps a copy to
// read the usage from at the end (Anthropic puts usage last). A client that leaves stops
// the writing, not the reading. An upstream that breaks off after the headers leaves the
// client a body that cannot be completed: the connection is cut (finish panics with
// http.ErrAbortHandler after billing what was read).
func (c *call) relayJSON(at *attempt, res *result, resp *http.Response, body io.Reader) {
	if !c.committed {
		c.copyHeaders(resp.Header)
		if resp.ContentLength >= 0 {
			c.w.Header().Set("Content-Length", strconv.FormatInt(resp.ContentLength, 10))
		}
		c.committed = true
		c.w.WriteHeader(resp.StatusCode)
	}
	res.firstByte = c.g.now().Sub(c.start)

	meter := c.op == provider.OpMessages
	kept := jsonBufs.Get().(*bytes.Buffer)
	kept.Reset()
	defer func() {
		if kept.Cap() <= 1<<20 { // do not pool a huge buffer from one answer
			jsonBufs.Put(kept)
		}
	}()
	bufp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bufp)
	buf := *bufp

	overflow := false
	var err error
	for {
		var n int
		n, err = body.Read(buf)
		if n > 0 {
			if meter && !overflow {
				if kept.Len()+n > meteredJSONLimit {
					overflow = true
				} else {
					kept.Write(buf[:n])
				}
			}
			if !c.gone.Load() {
				if _, werr := c.w.Write(buf[:n]); werr != nil {
					c.clientLeft(at)
				}
			}
		}
		if err != nil {
			break
		}
	}
	broke := !errors.Is(err, io.EOF)
	if broke && !c.gone.Load() {
		c.abort = true
	}
	if meter {
		res.usage = c.prov.JSONUsage(kept.Bytes())
	}
	res.partial = broke || overflow || c.gone.Load()
	if res.partial && c.outcome == "ok" {
		c.outcome = "partial"
	}
}
