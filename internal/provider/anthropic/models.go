package anthropic

import (
	"encoding/json"
	"net/http"
	"strconv"
)

type modelInfo struct {
	Type        string `json:"type"`
	ID          string `json:"id"`
	DisplayName string `json:"display_name"`
	CreatedAt   string `json:"created_at"`
}

// modelPage is one page of the Models API (GET /v1/models): the models, has_more, and the
// first and last ids as the cursors of the neighbouring pages.
type modelPage struct {
	Data    []modelInfo `json:"data"`
	HasMore bool        `json:"has_more"`
	FirstID *string     `json:"first_id"`
	LastID  *string     `json:"last_id"`
}

// WriteModels implements provider.Provider: one page holding every id. The gateway knows no
// creation dates; the epoch says so honestly.
func (*Provider) WriteModels(w http.ResponseWriter, ids []string) {
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
