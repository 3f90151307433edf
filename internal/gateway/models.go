package gateway

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"

	"github.com/fluxcode/fluxcode/internal/provider"
)

// listModels answers GET /v1/models from the group's model mappings when every usable
// account of the group has one: the union of their names is exactly what the group serves.
// When some usable account takes any model, only an upstream knows the list, so it returns
// false and the request is relayed to an account like a message (without slots).
func (c *call) listModels() bool {
	accts, err := c.g.groupAccounts(c.ctx(), c.auth.Group.ID)
	if err != nil {
		c.g.log.ErrorContext(c.ctx(), "reading the group's accounts failed", "err", err)
		c.fail(provider.KindAPI, 0, "the gateway cannot read its accounts right now", "")
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
	ids := make([]string, 0, len(seen))
	for m := range seen {
		ids = append(ids, m)
	}
	slices.Sort(ids)
	writeModelPage(c.w, ids)
	c.committed = true
	return true
}

type modelInfo struct {
	Type        string `json:"type"`
	ID          string `json:"id"`
	DisplayName string `json:"display_name"`
	CreatedAt   string `json:"created_at"`
}

type modelPage struct {
	Data    []modelInfo `json:"data"`
	HasMore bool        `json:"has_more"`
	FirstID *string     `json:"first_id"`
	LastID  *string     `json:"last_id"`
}

// writeModelPage writes one page in the Models API's shape (protocols.md §1.6). The gateway
// knows no creation dates; the epoch says so honestly.
func writeModelPage(w http.ResponseWriter, ids []string) {
	page := modelPage{Data: make([]modelInfo, len(ids))}
	for i, id := range ids {
		page.Data[i] = modelInfo{Type: "model", ID: id, DisplayName: id, CreatedAt: "1970-01-01T00:00:00Z"}
	}
	if len(ids) > 0 {
		page.FirstID, page.LastID = &ids[0], &ids[len(ids)-1]
	}
	body, _ := json.Marshal(page)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}
