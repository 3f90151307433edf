package openai

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tidwall/gjson"

	"github.com/fluxcode/fluxcode/internal/provider"
	"github.com/fluxcode/fluxcode/internal/store"
)

var (
	_ provider.AnswerAdapter = (*Provider)(nil)
	_ provider.AccountFilter = (*Provider)(nil)
	_ provider.WindowReader  = (*Provider)(nil)
)

// maxCodexModels bounds the model catalogue read whole to be converted.
const maxCodexModels = 4 << 20

// AdaptAnswer implements provider.AnswerAdapter for ChatGPT logins (API-key answers are the
// platform API's own and are not touched). A Responses stream goes to a streaming client as
// it came; a client that asked for one JSON response gets the stream's final response
// object, with the output items the stream carried; the model catalogue becomes OpenAI's
// model list.
func (*Provider) AdaptAnswer(op provider.Operation, t provider.Target, req provider.Request, resp *http.Response, body io.Reader) io.Reader {
	if !isCodex(t.Account) {
		return body
	}
	switch {
	case op == provider.OpModels:
		return codexModelList(resp, body)
	case req.Stream || !eventStream(resp.Header):
		return body
	}
	resp.Header.Set("Content-Type", "application/json")
	resp.Header.Del("Content-Length")
	resp.ContentLength = -1
	return &streamCollector{er: provider.NewEventReader(body)}
}

func eventStream(h http.Header) bool {
	mt, _, err := mime.ParseMediaType(h.Get("Content-Type"))
	return err == nil && mt == "text/event-stream"
}

// codexModelList converts {"models":[{"slug",…}]} into {"object":"list","data":[…]}; an
// answer that is not a catalogue passes as it came.
func codexModelList(resp *http.Response, body io.Reader) io.Reader {
	raw, err := io.ReadAll(io.LimitReader(body, maxCodexModels))
	if err != nil {
		return io.MultiReader(bytes.NewReader(raw), errReader{err})
	}
	models := gjson.GetBytes(raw, "models")
	if !models.IsArray() {
		return bytes.NewReader(raw)
	}
	list := modelList{Object: "list", Data: []modelInfo{}}
	models.ForEach(func(_, m gjson.Result) bool {
		if id := m.Get("slug").Str; id != "" {
			list.Data = append(list.Data, modelInfo{ID: id, Object: "model", OwnedBy: "openai"})
		}
		return true
	})
	b, _ := json.Marshal(list)
	resp.Header.Set("Content-Type", "application/json")
	resp.ContentLength = int64(len(b))
	return bytes.NewReader(b)
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// errNoFinalResponse: the stream ended before its final event, so there is no response to
// give a client that asked for one JSON answer.
var errNoFinalResponse = errors.New("the upstream stream ended before response.completed")

// streamCollector reads a whole Responses stream and yields its final response object:
// response.completed's (or response.incomplete's, response.failed's), whose output is filled
// from the output_item.done events when the final event lists none. A stream error event
// yields {"error":{…}}. A stream cut short yields its read error and nothing else.
type streamCollector struct {
	er  *provider.EventReader
	out *bytes.Reader
	err error
}

func (c *streamCollector) Read(p []byte) (int, error) {
	if c.out == nil && c.err == nil {
		b, err := c.collect()
		c.er.Release()
		c.out, c.err = bytes.NewReader(b), err
	}
	if c.out.Len() > 0 {
		return c.out.Read(p)
	}
	if c.err != nil {
		return 0, c.err
	}
	return 0, io.EOF
}

func (c *streamCollector) collect() ([]byte, error) {
	var items []json.RawMessage
	for {
		ev, err := c.er.Next()
		if err == io.EOF {
			return nil, errNoFinalResponse
		}
		if err != nil {
			return nil, err
		}
		typ := string(ev.Name)
		if typ == "" {
			typ = gjson.GetBytes(ev.Data, "type").Str
		}
		switch typ {
		case "response.output_item.done":
			if item := gjson.GetBytes(ev.Data, "item"); item.IsObject() {
				items = append(items, json.RawMessage(item.Raw))
			}
		case "response.completed", "response.incomplete", "response.failed":
			r := gjson.GetBytes(ev.Data, "response")
			if !r.IsObject() {
				return nil, errNoFinalResponse
			}
			if out := r.Get("output"); len(items) > 0 && (!out.IsArray() || len(out.Array()) == 0) {
				return withOutput([]byte(r.Raw), items)
			}
			return []byte(r.Raw), nil
		case "error":
			e := gjson.ParseBytes(ev.Data)
			b, _ := json.Marshal(errorBody{Error: errorDetail{Message: e.Get("message").Str, Type: "server_error",
				Code: strPtr(e.Get("code").Str)}})
			return b, nil
		}
	}
}

func strPtr(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// withOutput sets the response object's output to items.
func withOutput(response []byte, items []json.RawMessage) ([]byte, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(response, &obj); err != nil {
		return nil, err
	}
	out, _ := json.Marshal(items)
	obj["output"] = out
	return json.Marshal(obj)
}

// codexWindows are the windows a ChatGPT login's answers report, as
// x-codex-<name>-used-percent (0–100), -window-minutes, -reset-at (epoch seconds) or
// -reset-after-seconds.
var codexWindows = []string{"primary", "secondary"}

// Windows implements provider.WindowReader for ChatGPT logins: each x-codex window becomes a
// usage window named by its length ("5h", "7d"), so that the pause and the admin view treat
// it like a Claude login's.
func (*Provider) Windows(h http.Header, now time.Time) (store.UsageWindows, bool) {
	w := store.UsageWindows{UpdatedAt: now.UTC()}
	for _, name := range codexWindows {
		p := "X-Codex-" + name
		used, err := strconv.ParseFloat(strings.TrimSpace(h.Get(p+"-Used-Percent")), 64)
		if err != nil || used < 0 {
			continue
		}
		x := store.UsageWindow{Name: name, Utilization: used / 100, Status: windowStatus(used / 100)}
		if m, err := strconv.Atoi(strings.TrimSpace(h.Get(p + "-Window-Minutes"))); err == nil && m > 0 {
			x.Name = windowName(m)
		}
		if at, err := strconv.ParseInt(strings.TrimSpace(h.Get(p+"-Reset-At")), 10, 64); err == nil && at > 0 {
			x.ResetsAt = time.Unix(at, 0).UTC()
		} else if s, err := strconv.ParseInt(strings.TrimSpace(h.Get(p+"-Reset-After-Seconds")), 10, 64); err == nil && s >= 0 {
			x.ResetsAt = now.Add(time.Duration(s) * time.Second).UTC()
		}
		w.Windows = append(w.Windows, x)
		if worse(x.Status, w.Status) {
			w.Status = x.Status
		}
	}
	return w, len(w.Windows) > 0
}

// windowStatus words a utilisation as Claude's unified status does.
func windowStatus(u float64) string {
	switch {
	case u >= 1:
		return "rejected"
	case u >= 0.9:
		return "allowed_warning"
	}
	return "allowed"
}

func worse(a, b string) bool {
	rank := map[string]int{"": 0, "allowed": 1, "allowed_warning": 2, "rejected": 3}
	return rank[a] > rank[b]
}

// windowName names a window by its length: 300 minutes "5h", 10080 "7d".
func windowName(minutes int) string {
	switch {
	case minutes%(24*60) == 0:
		return strconv.Itoa(minutes/(24*60)) + "d"
	case minutes%60 == 0:
		return strconv.Itoa(minutes/60) + "h"
	}
	return strconv.Itoa(minutes) + "m"
}

// usageLimitReset is when a ChatGPT login's exhausted usage limit resets: the 429 body's
// resets_at (epoch seconds) or resets_in_seconds, else the latest reset of an exhausted
// x-codex window, else the platform's rate-limit headers.
func usageLimitReset(body []byte, h http.Header, now time.Time) time.Time {
	if at := gjson.GetBytes(body, "error.resets_at").Int(); at > 0 {
		return time.Unix(at, 0).UTC()
	}
	if in := gjson.GetBytes(body, "error.resets_in_seconds").Int(); in > 0 {
		return now.Add(time.Duration(in) * time.Second)
	}
	var end time.Time
	if w, ok := (*Provider)(nil).Windows(h, now); ok {
		for _, x := range w.Windows {
			if x.Utilization >= 1 {
				end = later(end, x.ResetsAt)
			}
		}
	}
	if !end.IsZero() {
		return end
	}
	return RateLimitReset(h, now)
}
