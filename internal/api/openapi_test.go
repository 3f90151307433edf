package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/fluxcode/fluxcode/internal/api"
	"github.com/fluxcode/fluxcode/internal/login"
)

// everyRoute opens every route: registration on, and a login provider with nothing behind
// it (the login routes decode before they sign in anywhere).
func everyRoute(t *testing.T) func(*api.Options) {
	return func(o *api.Options) {
		o.Registration = func() bool { return true }
		reg, err := login.NewRegistry([]login.Config{login.Claude()}, nil, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		o.Logins = &api.Logins{Providers: reg}
	}
}

// undocumented is a body field no route knows.
const undocumented = "zz_undocumented"

// TestOpenAPI holds the served document to the route table and the handlers: every route is
// described and nothing else; every described body is the struct the handler decodes; every
// described field is accepted, with the type described, and a field not described is
// refused; every GET answer fits its described schema.
func TestOpenAPI(t *testing.T) {
	e := newEnv(t, everyRoute(t))
	r := e.do("GET", "/api/v1/openapi.json", "", nil)
	var doc openAPIDoc
	r.ok(t, 200, &doc)
	if doc.OpenAPI != "3.1.0" {
		t.Fatalf("openapi = %q", doc.OpenAPI)
	}
	var raw any
	if err := json.Unmarshal(r.body, &raw); err != nil {
		t.Fatal(err)
	}
	checkRefs(t, raw, doc.Components.Schemas)

	table := routeTable(t)
	described := map[string]operation{}
	for path, item := range doc.Paths {
		for method, op := range item {
			described[strings.ToUpper(method)+" "+path] = op
		}
	}
	t.Run("EveryRouteDescribed", func(t *testing.T) {
		for _, rt := range table {
			if _, ok := described[rt.pattern]; !ok {
				t.Errorf("route %s is not in the OpenAPI document (internal/api/openapi_routes.go)", rt.pattern)
			}
		}
		for p := range described {
			if !slices.ContainsFunc(table, func(rt tableRoute) bool { return rt.pattern == p }) {
				t.Errorf("the OpenAPI document describes %s, which is not routed", p)
			}
		}
	})

	t.Run("BodiesAreTheDecodedStructs", func(t *testing.T) {
		decodes := decodedTypes(t)
		for _, rt := range table {
			op, ok := described[rt.pattern]
			if !ok {
				continue
			}
			want := decodes[rt.handler]
			got := ""
			if op.RequestBody != nil {
				got = strings.TrimPrefix(op.RequestBody.Content["application/json"].Schema.Ref, "#/components/schemas/")
			}
			if !strings.EqualFold(got, want) {
				t.Errorf("%s: the document describes body %q, the handler %s decodes %q", rt.pattern, got, rt.handler, want)
			}
		}
	})

	t.Run("ReadQueryParametersDescribed", func(t *testing.T) {
		for _, rt := range table {
			op, ok := described[rt.pattern]
			if !ok {
				continue
			}
			for _, name := range rt.reads {
				if !slices.ContainsFunc(op.Parameters, func(p parameter) bool { return p.In == "query" && p.Name == name }) {
					t.Errorf("%s reads the query parameter %q, which the document does not describe", rt.pattern, name)
				}
			}
		}
	})

	ids, userToken := populate(t, e)
	var ak struct{ ID int64 }
	e.do("POST", "/api/v1/admin/admin-keys", e.adminToken, map[string]any{"name": "doc"}).ok(t, 201, &ak)
	ids["adminkey"] = ak.ID
	call := func(pattern string, op operation, body any) *resp {
		method, path, _ := strings.Cut(pattern, " ")
		return e.do(method, fillPath(t, path, ids), tokenFor(op, e.adminToken, userToken), body)
	}

	t.Run("DescribedFieldsAcceptedOthersRefused", func(t *testing.T) {
		for pattern, op := range described {
			if op.RequestBody == nil {
				continue
			}
			schema := op.RequestBody.Content["application/json"].Schema
			// Every described field with a value of its described type, then one nobody
			// described: the decoder names the first field it does not know or cannot
			// take, so the answer names the last one only when all before it were taken.
			for _, body := range bodiesFor(t, schema, doc.Components.Schemas) {
				got := call(pattern, op, body)
				if got.status != 400 || !bytes.Contains(got.body, []byte(`"field":"`+undocumented+`"`)) {
					t.Errorf("%s with %s: answered %d %s; want 400 unknown_field %q", pattern, body, got.status, got.body, undocumented)
				}
			}
		}
	})

	t.Run("DescribedQueryParametersRead", func(t *testing.T) {
		// Every described query parameter is validated, so a value it cannot take shows
		// the route reads it: the answer is a field error naming it.
		for pattern, op := range described {
			for _, p := range op.Parameters {
				if p.In != "query" {
					continue
				}
				bad := strings.Repeat("x", 1000) // longer than any text filter allows, and no time
				switch {
				case len(p.Schema.Enum) > 0:
					bad = "bogus"
				case slices.Contains(p.Schema.types(), "integer"):
					bad = "x"
				}
				got := call(pattern+"?"+p.Name+"="+bad, op, nil)
				if got.status != 400 || !bytes.Contains(got.body, []byte(`"field":"`+p.Name+`"`)) {
					t.Errorf("%s?%s=%.10s…: answered %d %s; want a field error on %s", pattern, p.Name, bad, got.status, got.body, p.Name)
				}
			}
		}
	})

	t.Run("AnswersFitTheirSchemas", func(t *testing.T) {
		// Every schema of the document is JSON Schema 2020-12 (OpenAPI 3.1's dialect): the
		// answers are validated against it by a JSON Schema implementation.
		c := jsonschema.NewCompiler()
		c.DefaultDraft(jsonschema.Draft2020)
		root, err := jsonschema.UnmarshalJSON(bytes.NewReader(r.body))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.AddResource("openapi.json", root); err != nil {
			t.Fatal(err)
		}
		for name := range doc.Components.Schemas {
			if _, err := c.Compile("openapi.json#/components/schemas/" + name); err != nil {
				t.Errorf("component %s is not a valid JSON Schema: %v", name, err)
			}
		}
		for pattern, op := range described {
			if !strings.HasPrefix(pattern, "GET ") {
				continue
			}
			ok, found := op.Responses["200"]
			if _, isJSON := ok.Content["application/json"]; !found || !isJSON {
				continue
			}
			path := strings.TrimPrefix(pattern, "GET ")
			loc := "openapi.json#/paths/" + strings.ReplaceAll(path, "/", "~1") + "/get/responses/200/content/application~1json/schema"
			sch, err := c.Compile(loc)
			if err != nil {
				t.Errorf("%s: the answer's schema does not compile: %v", pattern, err)
				continue
			}
			got := call(pattern, op, nil)
			if got.status != 200 {
				t.Errorf("%s: answered %d %s", pattern, got.status, got.body)
				continue
			}
			v, err := jsonschema.UnmarshalJSON(bytes.NewReader(got.body))
			if err != nil {
				t.Fatalf("%s: %v", pattern, err)
			}
			if err := sch.Validate(v); err != nil {
				t.Errorf("%s: the answer does not fit its schema: %v\nbody %s", pattern, err, got.body)
			}
		}
	})
}

type openAPIDoc struct {
	OpenAPI    string                          `json:"openapi"`
	Paths      map[string]map[string]operation `json:"paths"`
	Components struct {
		Schemas map[string]*schema `json:"schemas"`
	} `json:"components"`
}

type operation struct {
	Security    []map[string][]string `json:"security"`
	Parameters  []parameter           `json:"parameters"`
	RequestBody *struct {
		Content map[string]struct{ Schema *schema } `json:"content"`
	} `json:"requestBody"`
	Responses map[string]struct {
		Content map[string]struct{ Schema *schema } `json:"content"`
	} `json:"responses"`
}

type parameter struct {
	Name   string  `json:"name"`
	In     string  `json:"in"`
	Schema *schema `json:"schema"`
}

type schema struct {
	Ref                  string             `json:"$ref"`
	Type                 any                `json:"type"` // a name or [name, "null"]
	Format               string             `json:"format"`
	Properties           map[string]*schema `json:"properties"`
	Required             []string           `json:"required"`
	AdditionalProperties any                `json:"additionalProperties"`
	Items                *schema            `json:"items"`
	AnyOf                []*schema          `json:"anyOf"`
	Enum                 []string           `json:"enum"`
}

func (s *schema) types() []string {
	switch t := s.Type.(type) {
	case string:
		return []string{t}
	case []any:
		var out []string
		for _, v := range t {
			out = append(out, v.(string))
		}
		return out
	}
	return nil
}

func resolve(s *schema, defs map[string]*schema) *schema {
	for s != nil && s.Ref != "" {
		s = defs[strings.TrimPrefix(s.Ref, "#/components/schemas/")]
	}
	return s
}

// checkRefs requires every $ref of the document to name a component.
func checkRefs(t *testing.T, v any, defs map[string]*schema) {
	switch x := v.(type) {
	case map[string]any:
		if ref, ok := x["$ref"].(string); ok {
			if _, found := defs[strings.TrimPrefix(ref, "#/components/schemas/")]; !found {
				t.Errorf("$ref %s names no component", ref)
			}
		}
		for _, c := range x {
			checkRefs(t, c, defs)
		}
	case []any:
		for _, c := range x {
			checkRefs(t, c, defs)
		}
	}
}

// tokenFor is the credential a route's security asks for.
func tokenFor(op operation, adminToken, userToken string) string {
	switch {
	case len(op.Security) == 0:
		return ""
	case len(op.Security) > 1: // an admin key may stand in: an admin route
		return adminToken
	}
	return userToken
}

// fillPath puts the id of an existing record of the right kind in each {wildcard}.
func fillPath(t *testing.T, path string, ids map[string]int64) string {
	kinds := map[string]string{"users": "user", "keys": "key", "groups": "group", "accounts": "account",
		"proxies": "proxy", "error-rules": "rule", "redeem-codes": "redeem", "admin-keys": "adminkey",
		"subscriptions": "subgroup"}
	segs := strings.Split(path, "/")
	for i, s := range segs {
		if !strings.HasPrefix(s, "{") {
			continue
		}
		if s == "{provider}" {
			segs[i] = "claude"
			continue
		}
		id, ok := ids[kinds[segs[i-1]]]
		if !ok {
			t.Fatalf("no record for %s in %s", s, path)
		}
		segs[i] = strconv.FormatInt(id, 10)
	}
	return strings.Join(segs, "/")
}

// bodiesFor is a body with every described field and an undocumented one last, then one per
// nested object with the undocumented field inside it.
func bodiesFor(t *testing.T, s *schema, defs map[string]*schema) []json.RawMessage {
	s = resolve(s, defs)
	bodies := []json.RawMessage{objectSample(t, s, defs, true)}
	names := sortedKeys(s.Properties)
	for _, name := range names {
		p := nonNull(resolve(s.Properties[name], defs), defs)
		if p.Properties == nil {
			continue
		}
		var b bytes.Buffer
		b.WriteString("{")
		for _, other := range names {
			if other != name {
				fmt.Fprintf(&b, "%q:%s,", other, sample(t, s.Properties[other], defs))
			}
		}
		fmt.Fprintf(&b, "%q:%s}", name, objectSample(t, p, defs, true))
		bodies = append(bodies, b.Bytes())
	}
	return bodies
}

func objectSample(t *testing.T, s *schema, defs map[string]*schema, extra bool) json.RawMessage {
	var b bytes.Buffer
	b.WriteString("{")
	for _, name := range sortedKeys(s.Properties) {
		fmt.Fprintf(&b, "%q:%s,", name, sample(t, s.Properties[name], defs))
	}
	if extra {
		fmt.Fprintf(&b, "%q:1,", undocumented)
	}
	out := bytes.TrimSuffix(b.Bytes(), []byte(",")) // no-op when nothing was written
	return append(out, '}')
}

// nonNull is the non-null branch of a nullable schema.
func nonNull(s *schema, defs map[string]*schema) *schema {
	for _, alt := range s.AnyOf {
		if alt := resolve(alt, defs); !slices.Equal(alt.types(), []string{"null"}) {
			return alt
		}
	}
	return s
}

// sample is a value of the schema's type.
func sample(t *testing.T, s *schema, defs map[string]*schema) string {
	s = nonNull(resolve(s, defs), defs)
	if s.Properties != nil {
		return string(objectSample(t, s, defs, false))
	}
	types := s.types()
	if len(types) == 0 {
		return "{}" // any JSON value
	}
	switch types[0] {
	case "string":
		switch {
		case s.Format == "date-time":
			return `"2030-01-02T15:04:05Z"`
		case len(s.Enum) > 0:
			return strconv.Quote(s.Enum[0])
		}
		return `"1"` // also a decimal of money and multipliers
	case "integer", "number":
		return "1"
	case "boolean":
		return "false"
	case "array":
		return "[" + sample(t, s.Items, defs) + "]"
	case "object":
		return "{}"
	}
	t.Fatalf("no sample for type %v", s.Type)
	return ""
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// tableRoute is one handle(...) line of api.go: its pattern, the handler method it names and
// the query parameters it reads by literal name (see queryReads).
type tableRoute struct {
	pattern, handler string
	access           string // accessOf the handler
	reads            []string
}

// routeTable reads the route table from api.go's source, so the test sees exactly what is
// routed without the package exporting it.
func routeTable(t *testing.T) []tableRoute {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "api.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	funcs := packageFuncs(t)
	var out []tableRoute
	ast.Inspect(f, func(n ast.Node) bool {
		c, ok := n.(*ast.CallExpr)
		if !ok || len(c.Args) != 2 {
			return true
		}
		if id, ok := c.Fun.(*ast.Ident); !ok || id.Name != "handle" {
			return true
		}
		lit, ok := c.Args[0].(*ast.BasicLit)
		if !ok {
			t.Fatalf("a route pattern that is not a literal: %#v", c.Args[0])
		}
		p, _ := strconv.Unquote(lit.Value)
		rt := tableRoute{pattern: p, handler: handlerName(c.Args[1]), access: accessOf(c.Args[1])}
		reads := map[string]bool{}
		queryReads(c.Args[1], funcs, reads, 0)
		for name := range reads {
			rt.reads = append(rt.reads, name)
		}
		sort.Strings(rt.reads)
		out = append(out, rt)
		return true
	})
	if len(out) < 50 {
		t.Fatalf("read only %d routes from api.go", len(out))
	}
	return out
}

// handlerName is the api method a route's handler expression calls: a.createAccount in
// admin(a.createAccount); "" for the generic list and get routes, which read no body.
func handlerName(e ast.Expr) string {
	name := ""
	ast.Inspect(e, func(n ast.Node) bool {
		if sel, ok := n.(*ast.SelectorExpr); ok {
			if id, ok := sel.X.(*ast.Ident); ok && id.Name == "a" && name == "" &&
				!strings.HasPrefix(sel.Sel.Name, "require") {
				name = sel.Sel.Name
			}
			return false
		}
		if c, ok := n.(*ast.CallExpr); ok {
			if id, ok := c.Fun.(*ast.Ident); ok && (id.Name == "listRoute" || id.Name == "getRoute") {
				return false
			}
		}
		return true
	})
	return name
}

// decodedTypes maps each api method to the type of the body it decodes, directly or through
// a method it calls (issueKey for createKey), from the package's source.
func decodedTypes(t *testing.T) map[string]string {
	t.Helper()
	funcs := packageFuncs(t)
	var direct func(fd *ast.FuncDecl, depth int) string
	direct = func(fd *ast.FuncDecl, depth int) string {
		vars := map[string]string{} // var req T
		found := ""
		ast.Inspect(fd.Body, func(n ast.Node) bool {
			switch x := n.(type) {
			case *ast.ValueSpec:
				if id, ok := x.Type.(*ast.Ident); ok {
					for _, nm := range x.Names {
						vars[nm.Name] = id.Name
					}
				}
			case *ast.CallExpr:
				fn, ok := x.Fun.(*ast.Ident)
				if ok && (fn.Name == "decodeJSON" || fn.Name == "decodeOptionalJSON") && len(x.Args) == 3 {
					if u, ok := x.Args[2].(*ast.UnaryExpr); ok {
						if id, ok := u.X.(*ast.Ident); ok {
							found = vars[id.Name]
						}
					}
				}
				if sel, ok := x.Fun.(*ast.SelectorExpr); ok && found == "" && depth < 2 {
					if id, ok := sel.X.(*ast.Ident); ok && id.Name == "a" {
						if callee, ok := funcs[sel.Sel.Name]; ok && callee != fd {
							found = direct(callee, depth+1)
						}
					}
				}
			}
			return true
		})
		return found
	}
	out := map[string]string{}
	for name, fd := range funcs {
		out[name] = direct(fd, 0)
	}
	return out
}

// packageFuncs are the package's functions and methods by name, from its source.
func packageFuncs(t *testing.T) map[string]*ast.FuncDecl {
	t.Helper()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	funcs := map[string]*ast.FuncDecl{}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			if fd, ok := d.(*ast.FuncDecl); ok {
				funcs[fd.Name.Name] = fd
			}
		}
	}
	return funcs
}

// queryReads adds the query parameters code reads by literal name: the filters a listRoute
// offers (and its paging), queryID/queryTime/queryDay's names, Get("name") on a query, in
// the code and in the package's functions it calls (a few calls deep). Names read through a
// variable are not seen; the behavioural test covers the described ones.
func queryReads(code ast.Node, funcs map[string]*ast.FuncDecl, out map[string]bool, depth int) {
	lit := func(e ast.Expr) (string, bool) {
		b, ok := e.(*ast.BasicLit)
		if !ok || b.Kind != token.STRING {
			return "", false
		}
		s, err := strconv.Unquote(b.Value)
		return s, err == nil
	}
	follow := func(name string) {
		if fd, ok := funcs[name]; ok && depth < 3 && fd.Body != nil {
			queryReads(fd.Body, funcs, out, depth+1)
		}
	}
	ast.Inspect(code, func(n ast.Node) bool {
		if sel, ok := n.(*ast.SelectorExpr); ok { // a.handler, called or handed on
			if id, ok := sel.X.(*ast.Ident); ok && id.Name == "a" {
				follow(sel.Sel.Name)
			}
			return true
		}
		c, ok := n.(*ast.CallExpr)
		if !ok {
			return true
		}
		name := ""
		switch fn := c.Fun.(type) {
		case *ast.Ident:
			name = fn.Name
		case *ast.IndexListExpr: // an explicitly instantiated generic
			if id, ok := fn.X.(*ast.Ident); ok {
				name = id.Name
			}
		case *ast.SelectorExpr:
			name = fn.Sel.Name
			if name == "Get" && len(c.Args) == 1 && isQuery(fn.X) {
				if s, ok := lit(c.Args[0]); ok {
					out[s] = true
				}
				return true
			}
		}
		switch name {
		case "listRoute":
			out["page"], out["page_size"] = true, true
			for _, arg := range c.Args {
				if s, ok := lit(arg); ok {
					out[s] = true
				}
			}
		case "pageParams":
			out["page"], out["page_size"] = true, true
		case "queryID", "queryTime", "queryDay":
			if len(c.Args) > 1 {
				if s, ok := lit(c.Args[1]); ok {
					out[s] = true
				}
			}
		default:
			follow(name)
		}
		return true
	})
}

// isQuery reports whether e is a request's query: r.URL.Query(), or q as the handlers name it.
func isQuery(e ast.Expr) bool {
	if id, ok := e.(*ast.Ident); ok {
		return id.Name == "q"
	}
	c, ok := e.(*ast.CallExpr)
	if !ok {
		return false
	}
	sel, ok := c.Fun.(*ast.SelectorExpr)
	return ok && sel.Sel.Name == "Query"
}
