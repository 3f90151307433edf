package openai

import (
	"encoding/json"
	"net/http"
	"strconv"
)

type modelInfo struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

type modelList struct {
	Object string      `json:"object"`
	Data   []modelInfo `json:"data"`
}

// WriteModels implements provider.Provider: OpenAI's list object, every id in one page.
// The gateway knows no creation dates; zero says so honestly.
func (*Provider) WriteModels(w http.ResponseWriter, ids []string) {
	list := modelList{Object: "list", Data: make([]modelInfo, len(ids))}
	for i, id := range ids {
		list.Data[i] = modelInfo{ID: id, Object: "model", OwnedBy: "openai"}
	}
	body, _ := json.Marshal(list)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}
