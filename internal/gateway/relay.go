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
// http.ErrAbortHandler after billing what was read), unless the answer is an array stream
// that broke off between two elements (endBroken).
//
// A billed answer's end is held back in res.tail: its last byte that is not white space,
// and what follows. Without it no client can have the whole body (neither its length nor
// a complete JSON value), so it is sent once the ledger row is committed (bill.go).
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
	var arr provider.ArrayEnd // set for an array stream, whose length is never known
	if as, ok := c.prov.(provider.ArrayStreams); ok && resp.ContentLength < 0 {
		arr = as.NewArrayEnd(c.req)
	}
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
	var end []byte // held back while meter: see above
	var err error
	for {
		var n int
		n, err = body.Read(buf)
		if n > 0 {
			if arr != nil {
				arr.Add(buf[:n])
			}
			if meter && !overflow {
				if kept.Len()+n > meteredJSONLimit {
					overflow = true
				} else {
					kept.Write(buf[:n])
				}
			}
			out := buf[:n]
			if meter {
				out, end = holdEnd(end, out)
			}
			if !c.gone.Load() && len(out) > 0 {
				if _, werr := c.w.Write(out); werr != nil {
					c.clientLeft(at)
				} else if resp.ContentLength < 0 {
					// An answer of unknown length may be a stream of its own (Gemini's
					// streamGenerateContent without alt=sse is one growing JSON array):
					// each part goes on as it arrives.
					c.flush(at)
				}
			}
		}
		if err != nil {
			break
		}
	}
	if el := arrayError(arr); el != nil {
		// The upstream's own error element: the account is marked as for an error event
		// of a stream; the client has the element as it came.
		f := c.prov.ClassifyEvent(el, c.g.now())
		c.markMidStream(res.account, &f)
	}
	broke := !errors.Is(err, io.EOF)
	if broke && !c.gone.Load() {
		c.endBroken(at, arr, end, err)
	}
	if meter {
		res.usage = c.prov.JSONUsage(kept.Bytes())
	}
	res.partial = broke || overflow || c.gone.Load() || (arr != nil && arr.Failed())
	if cs, ok := c.prov.(provider.Continuations); ok && meter && !broke && !overflow {
		res.answerSession = cs.AnswerSession(c.req, kept.Bytes())
	}
	if res.partial && c.outcome == outcomeOK {
		c.outcome = outcomePartial
	}
	if !broke {
		res.tail = end
	}
}

// arrayError is the upstream's own error element of an array stream, or nil.
func arrayError(arr provider.ArrayEnd) []byte {
	if arr == nil {
		return nil
	}
	return arr.ErrorElement()
}

// endBroken ends a JSON answer the upstream broke off, for a client still there. An array
// stream whose bytes so far end between two elements is completed with one error element
// and its closing bracket, as the provider ends an array stream that fails: the client gets
// a valid answer that says it failed. Anything else cannot be completed honestly, and the
// connection is cut. held is the end relayJSON held back; it goes out before the error.
func (c *call) endBroken(at *attempt, arr provider.ArrayEnd, held []byte, err error) {
	var errorEnd []byte
	if arr != nil {
		kind, msg := brokeOff(at, err)
		errorEnd = arr.ErrorEnd(kind, msg, c.id)
	}
	if errorEnd == nil {
		c.abort = true
		return
	}
	if c.write(at, held) {
		c.send(at, errorEnd)
	}
}

// holdEnd moves the end of what has arrived into the held part: the last byte that is not
// JSON white space, and everything after it. It returns what may be written now (the held
// part of before, then chunk up to its new end) and the new held part. Only the held part
// is copied, so a body costs one small copy per read, whatever its size.
func holdEnd(held, chunk []byte) (out, newHeld []byte) {
	i := len(chunk) - 1
	for i >= 0 && isJSONSpace(chunk[i]) {
		i--
	}
	if i < 0 { // only white space: it joins the held end
		return nil, append(held, chunk...)
	}
	if len(held) > 0 {
		// Rare (an answer split inside its trailing white space): one more copy.
		out = append(append(make([]byte, 0, len(held)+i), held...), chunk[:i]...)
	} else {
		out = chunk[:i]
	}
	return out, append(held[:0], chunk[i:]...)
}

func isJSONSpace(b byte) bool { return b == ' ' || b == '\n' || b == '\r' || b == '\t' }
