package gemini

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/tidwall/gjson"

	"github.com/fluxcode/fluxcode/internal/provider"
)

var _ provider.AnswerAdapter = (*Provider)(nil)

// maxWrappedJSON bounds a generateContent answer read whole to be unwrapped; the gateway
// keeps as much of a JSON answer to meter it.
const maxWrappedJSON = 32 << 20

// AdaptAnswer implements provider.AnswerAdapter: a Google login's answer comes out of Code
// Assist's envelope. A generateContent answer {"response":{…},"traceId":…} becomes the
// response; each SSE chunk of a stream likewise; a stream the client asked for as one JSON
// array (no alt=sse) is rebuilt from the SSE chunks as Google writes such an array. An
// error object inside a stream carries no envelope and passes as it is. countTokens
// answers {"totalTokens"} in either API, and the model list is the logins' fixed one (the
// upstream call, loadCodeAssist, only proved the login works). Answers of API-key
// accounts are the Gemini API's own and are not touched.
func (*Provider) AdaptAnswer(op provider.Operation, t provider.Target, req provider.Request, resp *http.Response, body io.Reader) io.Reader {
	if !isLogin(t.Account) {
		return body
	}
	switch {
	case op == provider.OpCountTokens:
		return body
	case op == provider.OpModels:
		return setJSON(resp, modelsAnswer(req.Model))
	case req.Stream:
		resp.Header.Set("Content-Type", "text/event-stream")
		resp.Header.Del("Content-Length")
		resp.ContentLength = -1
		return &chunkUnwrapper{er: provider.NewEventReader(body)}
	case req.Variant == variantArray:
		resp.Header.Set("Content-Type", "application/json; charset=UTF-8")
		resp.Header.Del("Content-Length")
		resp.ContentLength = -1
		return &chunkUnwrapper{er: provider.NewEventReader(body), array: true}
	}
	resp.Header.Del("Content-Length")
	resp.ContentLength = -1
	return &jsonUnwrapper{body: body}
}

// setJSON makes b the whole answer.
func setJSON(resp *http.Response, b []byte) io.Reader {
	resp.Header.Set("Content-Type", "application/json; charset=UTF-8")
	resp.ContentLength = int64(len(b))
	return bytes.NewReader(b)
}

// modelsAnswer is the model list of a Google login, or one model's description.
func modelsAnswer(id string) []byte {
	if id != "" {
		b, _ := json.Marshal(modelOf(id))
		return b
	}
	page := struct {
		Models []model `json:"models"`
	}{}
	for _, m := range CodeAssistModels {
		page.Models = append(page.Models, modelOf(m))
	}
	b, _ := json.Marshal(page)
	return b
}

// unwrap returns the response inside one Code Assist chunk, or the chunk itself when it has
// none (an error object).
func unwrap(chunk []byte) []byte {
	if r := gjson.GetBytes(chunk, "response"); r.IsObject() {
		return []byte(r.Raw)
	}
	return chunk
}

// jsonUnwrapper reads a generateContent answer whole (it comes at once) and hands out the
// response inside it.
type jsonUnwrapper struct {
	body io.Reader
	out  []byte
	err  error
	read bool
}

func (u *jsonUnwrapper) Read(p []byte) (int, error) {
	if !u.read {
		u.read = true
		all, err := io.ReadAll(io.LimitReader(u.body, maxWrappedJSON+1))
		switch {
		case err != nil:
			u.err = err // nothing goes out of a broken answer: it cannot be unwrapped
		case len(all) > maxWrappedJSON:
			u.err = fmt.Errorf("code assist answer larger than %d bytes", maxWrappedJSON)
		default:
			u.out, u.err = unwrap(all), io.EOF
		}
	}
	if len(u.out) == 0 {
		return 0, u.err
	}
	n := copy(p, u.out)
	u.out = u.out[n:]
	return n, nil
}

// chunkUnwrapper unwraps an SSE stream chunk by chunk, each as soon as it arrives: into SSE
// again ("data: …" and a blank line, as the API writes them), or into the elements of one
// JSON array ("[", "\n,\r\n" between elements, "\n]" at the end). A stream that breaks
// ends on the last whole chunk and the read error: an array then stops between two
// elements, where the gateway completes it with an error element.
type chunkUnwrapper struct {
	er      *provider.EventReader
	array   bool
	started bool // the array's "[" is out
	buf     []byte
	out     []byte // the part of buf not yet read
	err     error
}

func (u *chunkUnwrapper) Read(p []byte) (int, error) {
	for len(u.out) == 0 {
		if u.err != nil {
			return 0, u.err
		}
		u.next()
	}
	n := copy(p, u.out)
	u.out = u.out[n:]
	return n, nil
}

// next renders the next chunk, or the end, into out.
func (u *chunkUnwrapper) next() {
	b := u.buf[:0]
	ev, err := u.er.Next()
	switch {
	case err == nil && len(ev.Data) == 0: // a comment or an empty event: nothing to pass
	case err == nil && u.array:
		b = u.separator(b)
		b = append(b, unwrap(ev.Data)...)
	case err == nil:
		b = append(b, "data: "...)
		b = append(b, unwrap(ev.Data)...)
		b = append(b, "\r\n\r\n"...)
	case errors.Is(err, io.EOF) && u.array:
		if !u.started {
			b = append(b, '[')
		}
		b = append(b, "\n]"...)
		fallthrough
	default:
		u.err = err
		u.er.Release()
	}
	u.buf, u.out = b, b
}

func (u *chunkUnwrapper) separator(b []byte) []byte {
	if !u.started {
		u.started = true
		return append(b, '[')
	}
	return append(b, "\n,\r\n"...)
}
