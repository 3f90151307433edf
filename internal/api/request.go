package api

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/fluxcode/fluxcode/internal/store"
)

// maxBodyBytes bounds every JSON request body of the API.
const maxBodyBytes = 1 << 20

// decodeJSON reads the request body into dst: one JSON object, no unknown fields, at most
// maxBodyBytes. Its errors name the offending field where there is one.
func decodeJSON(w http.ResponseWriter, r *http.Request, dst any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			return newError(kindUnsupportedMedia, "the body must be application/json")
		}
	}
	if r.ContentLength > maxBodyBytes {
		return newError(kindTooLarge, "the body is larger than %d bytes", maxBodyBytes)
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return decodeError(err)
	}
	// One object and nothing after it: trailing data means the client sent something else
	// than it thinks.
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return decodeError(err)
		}
		return newError(kindMalformedJSON, "the body must hold exactly one JSON object")
	}
	return nil
}

// decodeError turns a json.Decoder error into the API's error.
func decodeError(err error) error {
	var (
		mbe *http.MaxBytesError
		se  *json.SyntaxError
		te  *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &mbe):
		return newError(kindTooLarge, "the body is larger than %d bytes", mbe.Limit)
	case errors.Is(err, io.EOF):
		return newError(kindMalformedJSON, "the body is empty; a JSON object is required")
	case errors.As(err, &se):
		return newError(kindMalformedJSON, "malformed JSON at byte %d: %s", se.Offset, se.Error())
	case errors.Is(err, io.ErrUnexpectedEOF):
		return newError(kindMalformedJSON, "malformed JSON: the body ends early")
	case errors.As(err, &te):
		if te.Field == "" {
			return newError(kindInvalid, "the body must be a JSON object")
		}
		return invalid(te.Field, "%s must be %s", te.Field, describeType(te.Type))
	}
	// encoding/json reports unknown fields only as text: `json: unknown field "name"`.
	if rest, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		name, _ := strconv.Unquote(rest)
		return &apiError{kind: kindUnknownField, field: name, message: "unknown field " + rest}
	}
	return newError(kindMalformedJSON, "malformed JSON")
}

// describeType names what a field expects, for error messages.
func describeType(t reflect.Type) string {
	switch t {
	case reflect.TypeFor[money](), reflect.TypeFor[*money]():
		return `a decimal string of US dollars, e.g. "12.5"`
	case reflect.TypeFor[multiplier](), reflect.TypeFor[*multiplier]():
		return `a decimal string, e.g. "1.5"`
	case reflect.TypeFor[timestamp](), reflect.TypeFor[*timestamp]():
		return `an RFC 3339 time string, e.g. "2030-01-02T15:04:05Z"`
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer in range"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	}
	return "of another type"
}

// optional is a PATCH field that may be absent (Set=false), null (Null=true) or a value, so a
// client can clear a nullable field with null.
type optional[T any] struct {
	Set  bool
	Null bool
	V    T
}

func (o *optional[T]) UnmarshalJSON(b []byte) error {
	o.Set = true
	if string(b) == "null" {
		o.Null = true
		return nil
	}
	return json.Unmarshal(b, &o.V)
}

// timestamp is a request time in RFC 3339.
type timestamp time.Time

func (t *timestamp) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return &json.UnmarshalTypeError{Value: "non-string", Type: reflect.TypeFor[timestamp]()}
	}
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return &json.UnmarshalTypeError{Value: "string " + strconv.Quote(s), Type: reflect.TypeFor[timestamp]()}
	}
	// As the store keeps times: UTC, microseconds.
	*t = timestamp(v.UTC().Truncate(time.Microsecond))
	return nil
}

// pathID reads a positive integer id from the route pattern's wildcard name.
func pathID(r *http.Request, name string) (int64, error) {
	v, err := strconv.ParseInt(r.PathValue(name), 10, 64)
	if err != nil || v <= 0 {
		return 0, invalid(name, "%s must be a positive integer", name)
	}
	return v, nil
}

// Pagination bounds.
const (
	defaultPageSize = 20
	maxPageSize     = 200
)

// pageReq is a validated ?page=&page_size= pair.
type pageReq struct{ page, size int }

func (p pageReq) store() store.Page { return store.Page{Offset: (p.page - 1) * p.size, Limit: p.size} }

// pageParams reads ?page= (from 1) and ?page_size= (1..200, default 20).
func pageParams(r *http.Request) (pageReq, error) {
	p := pageReq{page: 1, size: defaultPageSize}
	q := r.URL.Query()
	if s := q.Get("page"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 || v > 1_000_000 {
			return p, invalid("page", "page must be an integer from 1")
		}
		p.page = v
	}
	if s := q.Get("page_size"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 || v > maxPageSize {
			return p, invalid("page_size", "page_size must be an integer from 1 to %d", maxPageSize)
		}
		p.size = v
	}
	return p, nil
}

// maxSearchLen bounds a list's ?search=.
const maxSearchLen = 200

// listFilter reads the list filters a route offers from the query: search (a substring of
// the name or email), status, platform, role and group_id. A filter the route does not offer
// is not read.
func listFilter(r *http.Request, offered ...string) (store.ListFilter, error) {
	var f store.ListFilter
	q := r.URL.Query()
	for _, name := range offered {
		v := strings.TrimSpace(q.Get(name))
		if v == "" {
			continue
		}
		var err error
		switch name {
		case "search":
			if utf8.RuneCountInString(v) > maxSearchLen {
				err = invalid(name, "search must have at most %d characters", maxSearchLen)
			}
			f.Search = v
		case "status":
			err = checkEnum(name, v, store.StatusActive, store.StatusDisabled, store.StatusError)
			f.Status = v
		case "platform":
			err = checkEnum(name, v, store.PlatformAnthropic, store.PlatformOpenAI, store.PlatformGemini)
			f.Platform = v
		case "role":
			err = checkEnum(name, v, store.RoleAdmin, store.RoleUser)
			f.Role = v
		case "group_id":
			f.GroupID, err = queryID(r, name)
		default:
			panic("listFilter: unknown filter " + name) // a route table mistake
		}
		if err != nil {
			return store.ListFilter{}, err
		}
	}
	return f, nil
}

// queryID reads an optional positive id from the query; 0 when absent.
func queryID(r *http.Request, name string) (int64, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return 0, nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v <= 0 {
		return 0, invalid(name, "%s must be a positive integer", name)
	}
	return v, nil
}

// queryTime reads an optional time from the query: RFC 3339, or a date YYYY-MM-DD meaning
// midnight UTC. With endOfDay a date means the midnight after it, so ?to=2030-01-31 includes
// that day.
func queryTime(r *http.Request, name string, endOfDay bool) (time.Time, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return time.Time{}, invalid(name, "%s must be an RFC 3339 time or a date YYYY-MM-DD", name)
	}
	if endOfDay {
		t = t.AddDate(0, 0, 1)
	}
	return t, nil
}
