package sqlstore

import (
	"strconv"
	"strings"

	"github.com/fluxcode/fluxcode/internal/store"
)

// filterSQL says how one list applies a store.ListFilter: the columns Search matches, and
// the column (or, for group, the condition with "$?" for the value) of each other field.
// An empty entry means the list has no such field, and the filter's value is not applied.
type filterSQL struct {
	search                 []string
	status, platform, role string
	group                  string
}

// where returns the filter's conditions joined by AND ("" for none), with their parameters
// numbered after args.
func (fs filterSQL) where(f store.ListFilter, args []any) (string, []any) {
	return fs.and("", f, args)
}

// and adds the filter's conditions to an existing WHERE clause (which may be empty).
func (fs filterSQL) and(where string, f store.ListFilter, args []any) (string, []any) {
	var conds []string
	if where != "" {
		conds = append(conds, where)
	}
	param := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if f.Search != "" && len(fs.search) > 0 {
		// LOWER on both sides: PostgreSQL's LIKE is case-sensitive, SQLite's is not.
		p := param("%" + escapeLike(strings.ToLower(f.Search)) + "%")
		ors := make([]string, len(fs.search))
		for i, c := range fs.search {
			ors[i] = "LOWER(" + c + ") LIKE " + p + ` ESCAPE '\'`
		}
		conds = append(conds, "("+strings.Join(ors, " OR ")+")")
	}
	for _, eq := range []struct{ col, v string }{{fs.status, f.Status}, {fs.platform, f.Platform}, {fs.role, f.Role}} {
		if eq.v != "" && eq.col != "" {
			conds = append(conds, eq.col+" = "+param(eq.v))
		}
	}
	if f.GroupID != 0 && fs.group != "" {
		conds = append(conds, strings.ReplaceAll(fs.group, "$?", param(f.GroupID)))
	}
	return strings.Join(conds, " AND "), args
}

// escapeLike makes s match itself literally inside a LIKE pattern with ESCAPE '\'.
func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, "%", `\%`, "_", `\_`).Replace(s)
}
