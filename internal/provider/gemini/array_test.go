package gemini

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/fluxcode/fluxcode/internal/provider"
)

// TestArrayEnd: an array stream that broke off between elements is completed into a valid
// array ending in one error element; anything else gets nothing, however the bytes were
// split between reads.
func TestArrayEnd(t *testing.T) {
	for _, c := range []struct {
		in       string
		complete bool
	}{
		{`[`, true},
		{` [{"a":"x}]"}`, true},
		{"[{\"a\":\"x}]\"}\n,\r\n", true},
		{`[{"a":"b\\"},{"c":[1,{"d":null}]}` + "\n", true},
		{`[{"a":1`, false},
		{`[{"a":"\"}`, false},
		{`[{"a":[1,2]`, false},
		{`[{"a":1}]`, false},
		{`[1`, false},
		{`{"a":1}`, false},
		{``, false},
		{` `, false},
	} {
		for split := 0; split <= len(c.in); split++ {
			a := New().NewArrayEnd(provider.Request{Variant: variantArray})
			a.Add([]byte(c.in[:split]))
			a.Add([]byte(c.in[split:]))
			end := a.ErrorEnd(provider.KindAPI, "broke off", "req-1")
			if (end != nil) != c.complete {
				t.Fatalf("%q split at %d: end %q, want one: %v", c.in, split, end, c.complete)
			}
			if end == nil {
				continue
			}
			var elems []json.RawMessage
			if err := json.Unmarshal([]byte(c.in+string(end)), &elems); err != nil || len(elems) == 0 {
				t.Fatalf("%q + %q: %v", c.in, end, err)
			}
			var last struct {
				Error struct {
					Code   int    `json:"code"`
					Status string `json:"status"`
				} `json:"error"`
			}
			if err := json.Unmarshal(elems[len(elems)-1], &last); err != nil || last.Error.Code != 500 || last.Error.Status != statusInternal ||
				strings.Count(c.in+string(end), `"error"`) != 1 {
				t.Fatalf("%q + %q: last element %s", c.in, end, elems[len(elems)-1])
			}
		}
	}
	// The upstream's own error element: the array is only closed, never given a second one.
	for _, c := range []struct {
		in     string
		end    string
		failed bool
	}{
		{`[{"candidates":[]}` + "\n,\r\n" + `{"error":{"code":503,"status":"UNAVAILABLE"}}`, "]", true},
		{`[{"error":{"code":503}},`, "", true},
		{`[{"error":{"code":503}}]`, "", true},
		{`[{"candidates":[{"error":1}]},{"a":1,"error":2}`, ",\r\n", false},
		{`[{"err\u006fr":1}`, ",\r\n", false},
		{`[{"errors":1}`, ",\r\n", false},
	} {
		for split := 0; split <= len(c.in); split++ {
			a := New().NewArrayEnd(provider.Request{Variant: variantArray})
			a.Add([]byte(c.in[:split]))
			a.Add([]byte(c.in[split:]))
			end := a.ErrorEnd(provider.KindAPI, "broke off", "")
			if a.Failed() != c.failed || !strings.HasPrefix(string(end), c.end) || (c.end == "") != (end == nil) {
				t.Fatalf("%q split at %d: failed %v, end %q", c.in, split, a.Failed(), end)
			}
			if end != nil && !json.Valid([]byte(c.in+string(end))) {
				t.Fatalf("%q + %q is not JSON", c.in, end)
			}
		}
	}
	// Its content is kept for marking the account, however the bytes were split, and only
	// once the element has closed.
	for _, c := range []struct{ in, want string }{
		{`[{"candidates":[]}` + "\n,\r\n" + `{ "error" : {"code":429,"message":"q\"}","status":"RESOURCE_EXHAUSTED"}}` + "\n]",
			`{"code":429,"message":"q\"}","status":"RESOURCE_EXHAUSTED"}`},
		{`[{"error":{"code":503,"status":"UNAVAILABLE"}},{"error":{"code":429}}]`, `{"code":503,"status":"UNAVAILABLE"}`},
		{`[{"error":{"code":503,"status":"UNAV`, ""},
		{`[{"candidates":[{"error":{"code":1}}]}]`, ""},
	} {
		for split := 0; split <= len(c.in); split++ {
			a := New().NewArrayEnd(provider.Request{Variant: variantArray})
			a.Add([]byte(c.in[:split]))
			a.Add([]byte(c.in[split:]))
			el := a.ErrorElement()
			if c.want == "" {
				if el != nil {
					t.Fatalf("%q split at %d: error element %q, want none", c.in, split, el)
				}
				continue
			}
			var got struct{ Error json.RawMessage }
			if err := json.Unmarshal(el, &got); err != nil || string(got.Error) != c.want {
				t.Fatalf("%q split at %d: error element %q, want the error %s", c.in, split, el, c.want)
			}
		}
	}
	if New().NewArrayEnd(provider.Request{Stream: true}) != nil {
		t.Error("an SSE stream got an array end")
	}
}
