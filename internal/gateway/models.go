package gateway

import (
	"net/http"
	"slices"

	"github.com/fluxcode/fluxcode/internal/provider"
)

// listModels answers a model list request from the group's model mappings when every usable
// account of the group has one: the union of their names is exactly what the group serves.
// When some usable account takes any model, only an upstream knows the list, so it returns
// false and the request is relayed to an account like a message (without slots).
func (c *call) listModels() bool {
	accts, err := c.g.groupAccounts(c.ctx(), c.auth.Group.ID)
	if err != nil {
		c.g.log.ErrorContext(c.ctx(), "reading the group's accounts failed", "err", err)
		c.reject(RejectDatabase, provider.KindOverloaded, http.StatusServiceUnavailable, "the gateway cannot read its accounts right now; retry shortly", retryShortly)
		return true
	}
	now := c.g.now()
	seen := map[string]bool{}
	for i := range accts {
		a := &accts[i]
		if a.Platform != c.prov.Platform() || !a.Available(now) {
			continue
		}
		if len(a.ModelMapping) == 0 {
			return false
		}
		for m := range a.ModelMapping {
			seen[m] = true
		}
	}
	if len(seen) == 0 {
		return false // nothing usable: the relay answers with the right error
	}
	if c.req.Model != "" { // one model, named in the path
		mw, ok := c.prov.(provider.ModelWriter)
		if !ok || !seen[c.req.Model] {
			c.reject(RejectRequest, provider.KindNotFound, 0, "model "+c.req.Model+" is not served to this API key", 0)
			return true
		}
		mw.WriteModel(c.w, c.req.Model)
		c.committed = true
		return true
	}
	ids := make([]string, 0, len(seen))
	for m := range seen {
		ids = append(ids, m)
	}
	slices.Sort(ids)
	c.prov.WriteModels(c.w, ids)
	c.committed = true
	return true
}
