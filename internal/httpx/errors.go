package httpx

import (
	"encoding/json"
	"net/http"
)

// WriteError answers with the API's error shape, {"error":{"code","message"},"request_id"},
// for the routes outside the gateway and the API's own handlers (404s, /metrics, panics).
// The encoder makes any message (a path that is not UTF-8, quotes) valid JSON.
func WriteError(w http.ResponseWriter, r *http.Request, status int, code, message string) {
	type apiErr struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	body := struct {
		Error     apiErr `json:"error"`
		RequestID string `json:"request_id"`
	}{Error: apiErr{Code: code, Message: message}, RequestID: RequestID(r.Context())}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body) // the status is out: an error here is a gone client
}
