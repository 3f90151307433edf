package api

import (
	"encoding/json"
	"net/http"

	"github.com/fluxcode/fluxcode/internal/httpx"
)

// requestID is the id the app's middleware gave this request (httpx), or, for a handler
// mounted without it, the incoming X-Request-Id header.
func requestID(r *http.Request) string {
	if id := httpx.RequestID(r.Context()); id != "" {
		return id
	}
	return r.Header.Get(httpx.HeaderRequestID)
}

// writeJSON answers with v as JSON. API answers carry tokens and keys, so nothing is cached.
func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	// The status is sent; an encoding error here can only be a broken connection.
	_ = json.NewEncoder(w).Encode(v)
}

// pageBody is the shape of every paginated list.
type pageBody[T any] struct {
	Items    []T `json:"items"`
	Total    int `json:"total"`
	Page     int `json:"page"`
	PageSize int `json:"page_size"`
}

// writePage answers with one page of records, each turned into its view.
func writePage[R, V any](w http.ResponseWriter, pg pageReq, recs []R, total int, view func(*R) V) {
	items := make([]V, len(recs))
	for i := range recs {
		items[i] = view(&recs[i])
	}
	writeJSON(w, http.StatusOK, pageBody[V]{Items: items, Total: total, Page: pg.page, PageSize: pg.size})
}

// listBody is the shape of an unpaginated list.
type listBody[T any] struct {
	Items []T `json:"items"`
}

func writeList[R, V any](w http.ResponseWriter, recs []R, view func(*R) V) {
	items := make([]V, len(recs))
	for i := range recs {
		items[i] = view(&recs[i])
	}
	writeJSON(w, http.StatusOK, listBody[V]{Items: items})
}
