package provider

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"unicode"
	"unicode/utf8"
	"unsafe"

	"github.com/tidwall/gjson"
)

// MaxJSONDepth bounds how deeply a request body may nest. gjson validates and walks nested
// values by recursion, so a body of a few megabytes of "[" would exhaust the goroutine stack,
// which kills the whole process, not one request. Real requests nest a few dozen levels
// (tool schemas); the upstream APIs refuse far shallower bodies than this anyway.
const MaxJSONDepth = 512

// MaxModelLen is the longest model name accepted, in bytes. Real names are under 64; the
// name is stored in the ledger and logged, so a client must not choose its size.
const MaxModelLen = 200

// ErrNoCredentials means an account has no usable secret for its type: the account's own
// fault, whatever the request.
var ErrNoCredentials = errors.New("account has no credentials")

// Member is one top-level member of a request body. Value.Index is the byte offset of the
// value in the body.
type Member struct {
	Key   string
	Value gjson.Result
}

// ReadObject checks that body is a single JSON object, no deeper than MaxJSONDepth, whose
// top-level keys are unique, and calls visit for each member in order. Values view the body
// without copying: copy what is kept (strings.Clone).
//
// Keys are compared after unescaping, the way the upstreams decode them: "model" and
// "mod\u0065l" are the same key. A duplicate is refused rather than resolved, because
// parsers disagree about which copy wins (gjson reads the first, most upstreams keep the
// last), and the model the gateway bills must be the model the upstream serves. The error
// text is safe to show the client.
func ReadObject(body []byte, visit func(m Member) error) error {
	if len(body) == 0 {
		return errors.New("request body is empty")
	}
	if err := checkDepth(body); err != nil {
		return err
	}
	if !gjson.ValidBytes(body) {
		return errors.New("request body is not valid JSON")
	}
	// The walk reads the body in place; ParseBytes would copy it first.
	root := gjson.Result{Type: gjson.JSON, Raw: unsafe.String(unsafe.SliceData(body), len(body))}
	if !root.IsObject() {
		return errors.New("request body must be a JSON object")
	}
	var small [16]string // most bodies have a dozen keys: no map for them
	seen := small[:0]
	var many map[string]bool
	var err error
	root.ForEach(func(key, value gjson.Result) bool {
		k := key.Str
		dup := false
		if many != nil {
			dup = many[k]
			many[k] = true
		} else {
			for _, s := range seen {
				if s == k {
					dup = true
					break
				}
			}
			seen = append(seen, k)
			if len(seen) == cap(small) {
				many = make(map[string]bool, 2*len(seen))
				for _, s := range seen {
					many[s] = true
				}
			}
		}
		if dup {
			err = fmt.Errorf("request body has the key %s more than once", quoteKey(k))
			return false
		}
		err = visit(Member{Key: k, Value: value})
		return err == nil
	})
	return err
}

// quoteKey renders a client's key for an error message: JSON-quoted and short.
func quoteKey(k string) string {
	if len(k) > 64 {
		k = CleanText(k, 64)
	}
	b, _ := json.Marshal(k)
	return string(b)
}

// checkDepth refuses nesting beyond MaxJSONDepth without recursing itself. Brackets inside
// strings do not count; the string bodies are skipped with IndexByte, so the cost is close
// to one memchr over the body.
func checkDepth(b []byte) error {
	depth := 0
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '"':
			end, ok := stringEnd(b, i+1)
			if !ok {
				return nil // unterminated: the validator says what is wrong
			}
			i = end
		case '{', '[':
			depth++
			if depth > MaxJSONDepth {
				return fmt.Errorf("request body nests deeper than %d levels", MaxJSONDepth)
			}
		case '}', ']':
			depth--
		}
	}
	return nil
}

// stringEnd returns the index of the quote that closes the string starting at b[from].
func stringEnd(b []byte, from int) (int, bool) {
	for {
		j := bytes.IndexByte(b[from:], '"')
		if j < 0 {
			return 0, false
		}
		q := from + j
		slashes := 0
		for k := q - 1; k >= from && b[k] == '\\'; k-- {
			slashes++
		}
		if slashes%2 == 0 {
			return q, true
		}
		from = q + 1
	}
}

// CheckModel refuses a model name the gateway will not bill or store: empty, longer than
// MaxModelLen, not UTF-8 (PostgreSQL would refuse the ledger row), or with control
// characters (it is logged).
func CheckModel(model string) error {
	switch {
	case model == "":
		return errors.New("model: field required (a non-empty string)")
	case len(model) > MaxModelLen:
		return fmt.Errorf("model: at most %d bytes", MaxModelLen)
	case !utf8.ValidString(model):
		return errors.New("model: not valid UTF-8")
	}
	for _, r := range model {
		if unicode.IsControl(r) {
			return errors.New("model: must not contain control characters")
		}
	}
	return nil
}

// ReplaceValue returns body with the value of the top-level member m (found by ReadObject
// on this same body) replaced by s as a JSON string. Every other byte stays as the client
// sent it.
func ReplaceValue(body []byte, m Member, s string) ([]byte, error) {
	start, end := m.Value.Index, m.Value.Index+len(m.Value.Raw)
	if start <= 0 || end > len(body) || string(body[start:end]) != m.Value.Raw {
		return nil, fmt.Errorf("replace %q: value not found at its offset", m.Key)
	}
	quoted, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("replace %q: %w", m.Key, err)
	}
	out := make([]byte, 0, len(body)-(end-start)+len(quoted))
	out = append(out, body[:start]...)
	out = append(out, quoted...)
	return append(out, body[end:]...), nil
}
