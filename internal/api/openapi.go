package api

import (
	"encoding/json"
	"net/http"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The OpenAPI 3.1 document of /api/v1 is built from the route descriptions in
// openapi_routes.go and from the very structs the handlers decode and answer with: a field
// added to a request struct appears in the document without anyone remembering to. The test
// (openapi_test.go) holds the descriptions to the route table and the handlers.

// access is who may call a route.
type access int

const (
	public    access = iota
	signedIn         // a session token or cookie of an active user
	adminOnly        // an admin's session, or an admin API key
)

// docOp describes one route of the table.
type docOp struct {
	pattern string // exactly as in routes(): "METHOD /api/v1/..."
	summary string
	access  access
	query   []string // the query parameters it reads, as keys of queryDocs
	// body is a zero value of the struct the handler decodes; nil when it reads no body.
	body         any
	optionalBody bool // the body may be left out
	status       int  // the success status
	// resp is a zero value of the success answer; nil for 204 or a CSV answer (csv).
	resp any
	csv  bool
	desc string
}

// queryDocs describes every query parameter a route may read.
var queryDocs = map[string]struct {
	schema map[string]any
	desc   string
}{
	"page":          {intSchema(1), "page number, from 1"},
	"page_size":     {map[string]any{"type": "integer", "minimum": 1, "maximum": maxPageSize, "default": defaultPageSize}, "records per page"},
	"search":        {strSchema(), "case-insensitive substring of the name (a user's e-mail)"},
	"status":        {enumSchema("active", "disabled", "error"), "only records of this status"},
	"status/redeem": {enumSchema("active", "disabled", "used"), "only codes of this status (a used code keeps its own)"},
	"platform":      {enumSchema("anthropic", "openai", "gemini"), "only records of this platform"},
	"role":          {enumSchema("admin", "user"), "only users of this role"},
	"group_id":      {intSchema(1), "only records of this group"},
	"user_id":       {intSchema(1), "only records of this user"},
	"key_id":        {intSchema(1), "only ledger rows of this API key"},
	"account_id":    {intSchema(1), "only ledger rows served by this upstream account"},
	"model":         {strSchema(), "only ledger rows of this model"},
	"from":          {strSchema(), "start, inclusive: RFC 3339 or YYYY-MM-DD"},
	"to":            {strSchema(), "end, exclusive; a date YYYY-MM-DD includes its day"},
	"actor_id":      {intSchema(1), "only changes made by this user"},
	"actor":         {strSchema(), "only changes made by this e-mail"},
	"action":        {strSchema(), `only this action, e.g. "account.update"`},
	"target_type":   {strSchema(), `only changes of this record type, e.g. "account"`},
	"target_id":     {strSchema(), "only changes of this record"},
}

func intSchema(min int) map[string]any { return map[string]any{"type": "integer", "minimum": min} }
func strSchema() map[string]any        { return map[string]any{"type": "string"} }
func enumSchema(v ...string) map[string]any {
	return map[string]any{"type": "string", "enum": v}
}

// serveOpenAPI answers the document. It describes the API, not any data, so it needs no
// sign-in: a client generator or an operator's browser can fetch it as it is.
func (a *api) serveOpenAPI(doc []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "application/json; charset=utf-8")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-cache")
		w.Write(doc)
	}
}

// openAPIDocument builds the document once, at start.
func openAPIDocument() []byte {
	b, err := json.MarshalIndent(buildOpenAPI(docRoutes()), "", "  ")
	if err != nil {
		panic("openapi: " + err.Error()) // only a programming mistake in the descriptions
	}
	return b
}

var pathParam = regexp.MustCompile(`\{([a-z_]+)\}`)

func buildOpenAPI(ops []docOp) map[string]any {
	sc := &schemas{defs: map[string]any{}, named: map[string]reflect.Type{}}
	paths := map[string]map[string]any{}
	for _, op := range ops {
		method, path, _ := strings.Cut(op.pattern, " ")
		item := paths[path]
		if item == nil {
			item = map[string]any{}
			paths[path] = item
		}
		item[strings.ToLower(method)] = sc.operation(op, method, path)
	}
	sc.defs["Error"] = sc.of(reflect.TypeFor[errorBody](), false)
	return map[string]any{
		"openapi": "3.1.0",
		"info": map[string]any{
			"title":   "FluxCode API",
			"version": "1",
			"description": "The JSON API of the console and of scripts. Sign in with POST /api/v1/auth/login " +
				"and send the token as `Authorization: Bearer <token>`, or use an admin API key (`fkadmin-...`) as " +
				"`x-api-key` or Bearer on /api/v1/admin routes. Every error answers with the Error schema; a body " +
				"field the route does not know is refused with 400 `unknown_field` naming it (query parameters a route " +
				"does not read are ignored). Amounts of money are " +
				"decimal strings of US dollars.",
		},
		"servers": []any{map[string]any{"url": "/"}},
		"paths":   paths,
		"components": map[string]any{
			"schemas": sc.defs,
			"securitySchemes": map[string]any{
				"bearer":      map[string]any{"type": "http", "scheme": "bearer"},
				"adminApiKey": map[string]any{"type": "apiKey", "in": "header", "name": "x-api-key"},
			},
		},
	}
}

func (sc *schemas) operation(op docOp, method, path string) map[string]any {
	o := map[string]any{
		"summary":     op.summary,
		"operationId": operationID(method, path),
		"tags":        []string{tagOf(path)},
	}
	if op.desc != "" {
		o["description"] = op.desc
	}
	switch op.access {
	case public:
		o["security"] = []any{}
	case signedIn:
		o["security"] = []any{map[string]any{"bearer": []string{}}}
	case adminOnly:
		o["security"] = []any{map[string]any{"bearer": []string{}}, map[string]any{"adminApiKey": []string{}}}
	}
	var params []any
	for _, m := range pathParam.FindAllStringSubmatch(path, -1) {
		schema, desc := intSchema(1), "a record's id"
		if m[1] == "provider" {
			schema, desc = strSchema(), "a login provider this node offers: claude, openai, …"
		}
		params = append(params, map[string]any{"name": m[1], "in": "path", "required": true,
			"schema": schema, "description": desc})
	}
	for _, q := range op.query {
		d, ok := queryDocs[q]
		if !ok {
			panic("openapi: undescribed query parameter " + q)
		}
		name, _, _ := strings.Cut(q, "/") // "status/redeem": status, as redeem codes read it
		params = append(params, map[string]any{"name": name, "in": "query", "schema": d.schema, "description": d.desc})
	}
	if params != nil {
		o["parameters"] = params
	}
	if op.body != nil {
		o["requestBody"] = map[string]any{
			"required": !op.optionalBody,
			"content": map[string]any{"application/json": map[string]any{
				"schema": sc.of(reflect.TypeOf(op.body), true)}},
		}
	}
	status := op.status
	if status == 0 {
		status = http.StatusOK
	}
	ok := map[string]any{"description": http.StatusText(status)}
	switch {
	case op.csv:
		ok["content"] = map[string]any{"text/csv": map[string]any{"schema": strSchema()}}
	case op.resp != nil:
		ok["content"] = map[string]any{"application/json": map[string]any{"schema": sc.of(reflect.TypeOf(op.resp), false)}}
	}
	errRef := map[string]any{"description": "an error", "content": map[string]any{
		"application/json": map[string]any{"schema": map[string]any{"$ref": "#/components/schemas/Error"}}}}
	o["responses"] = map[string]any{strconv.Itoa(status): ok, "default": errRef}
	return o
}

// operationID is a stable name for code generators: the method and the path's segments.
func operationID(method, path string) string {
	var b strings.Builder
	b.WriteString(strings.ToLower(method))
	for _, seg := range strings.Split(strings.TrimPrefix(path, "/api/v1/"), "/") {
		seg = strings.Trim(seg, "{}")
		for _, part := range strings.FieldsFunc(seg, func(r rune) bool { return r == '-' || r == '_' }) {
			b.WriteString(strings.ToUpper(part[:1]) + part[1:])
		}
	}
	return b.String()
}

// tagOf groups operations by their first resource: "admin/accounts", "keys", ...
func tagOf(path string) string {
	segs := strings.Split(strings.TrimPrefix(path, "/api/v1/"), "/")
	if segs[0] == "admin" && len(segs) > 1 {
		return "admin/" + segs[1]
	}
	return segs[0]
}

// schemas turns Go types into JSON Schema, keeping named structs as components.
type schemas struct {
	defs  map[string]any
	named map[string]reflect.Type
}

var (
	typeTime      = reflect.TypeFor[time.Time]()
	typeRaw       = reflect.TypeFor[json.RawMessage]()
	typeMoney     = reflect.TypeFor[money]()
	typeMult      = reflect.TypeFor[multiplier]()
	typeTimestamp = reflect.TypeFor[timestamp]()
)

// of is t's schema. In a request (in) a pointer means "may be left out", which null also
// means; in an answer a pointer is a value or null.
func (sc *schemas) of(t reflect.Type, in bool) map[string]any {
	switch t {
	case typeTime, typeTimestamp:
		return map[string]any{"type": "string", "format": "date-time"}
	case typeRaw:
		return map[string]any{"description": "any JSON value"}
	case typeMoney:
		return map[string]any{"type": "string", "pattern": `^-?[0-9]+(\.[0-9]+)?$`,
			"description": "US dollars as a decimal string", "examples": []string{"12.5"}}
	case typeMult:
		return map[string]any{"type": "string", "pattern": `^[0-9]+(\.[0-9]+)?$`,
			"description": "a decimal string", "examples": []string{"1.5"}}
	}
	if strings.HasPrefix(t.Name(), "optional[") {
		// A PATCH field that null clears: the wrapped value or null.
		return nullable(sc.of(t.Field(2).Type, in))
	}
	switch t.Kind() {
	case reflect.Pointer:
		if in {
			return sc.of(t.Elem(), in)
		}
		return nullable(sc.of(t.Elem(), in))
	case reflect.String:
		return strSchema()
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return map[string]any{"type": "integer"}
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.Slice, reflect.Array:
		return map[string]any{"type": "array", "items": sc.of(t.Elem(), in)}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": sc.of(t.Elem(), in)}
	case reflect.Interface:
		return map[string]any{}
	case reflect.Struct:
		return sc.object(t, in)
	}
	panic("openapi: no schema for " + t.String())
}

func nullable(s map[string]any) map[string]any {
	if typ, ok := s["type"].(string); ok && len(s) <= 4 {
		out := map[string]any{}
		for k, v := range s {
			out[k] = v
		}
		out["type"] = []string{typ, "null"}
		return out
	}
	return map[string]any{"anyOf": []any{s, map[string]any{"type": "null"}}}
}

// object is a struct's schema: a component reference for a named struct, inline otherwise.
// Request and answer structs never share a name, so one component serves each.
func (sc *schemas) object(t reflect.Type, in bool) map[string]any {
	name := componentName(t)
	if name != "" {
		if prev, ok := sc.named[name]; ok && prev != t {
			panic("openapi: two types named " + name)
		}
		ref := map[string]any{"$ref": "#/components/schemas/" + name}
		if _, ok := sc.named[name]; ok {
			return ref
		}
		sc.named[name] = t
		sc.defs[name] = map[string]any{} // placeholder against recursion
		sc.defs[name] = sc.structSchema(t, in)
		return ref
	}
	return sc.structSchema(t, in)
}

func (sc *schemas) structSchema(t reflect.Type, in bool) map[string]any {
	props := map[string]any{}
	var required []string
	sc.fields(t, in, props, &required)
	s := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
	if !in && len(required) > 0 {
		sort.Strings(required)
		s["required"] = required
	}
	return s
}

// fields adds t's JSON fields, those of embedded structs included, as encoding/json sees them.
func (sc *schemas) fields(t reflect.Type, in bool, props map[string]any, required *[]string) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				sc.fields(ft, in, props, required)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		props[name] = sc.of(f.Type, in)
		if !strings.Contains(opts, "omitempty") && !strings.Contains(opts, "omitzero") {
			*required = append(*required, name)
		}
	}
}

var pkgPath = regexp.MustCompile(`[\w./-]*\.`)

// componentName is a struct's name without package paths, as a component key:
// pageBody[api.userView] becomes PageBody_UserView.
func componentName(t reflect.Type) string {
	n := pkgPath.ReplaceAllString(t.Name(), "")
	if n == "" {
		return ""
	}
	parts := strings.FieldsFunc(n, func(r rune) bool { return r == '[' || r == ']' || r == ',' || r == ' ' })
	for i, p := range parts {
		parts[i] = strings.ToUpper(p[:1]) + p[1:]
	}
	return strings.Join(parts, "_")
}
