package gemini

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// model is one entry of the Models API in the fields the gateway knows: the name and the
// methods it serves. Token limits and sampling defaults are the upstream's to say, so they
// are left out rather than invented.
type model struct {
	Name                       string   `json:"name"`
	BaseModelID                string   `json:"baseModelId"`
	DisplayName                string   `json:"displayName"`
	SupportedGenerationMethods []string `json:"supportedGenerationMethods"`
}

func modelOf(id string) model {
	return model{Name: "models/" + id, BaseModelID: id, DisplayName: id,
		SupportedGenerationMethods: []string{methodGenerate, methodCount}}
}

// WriteModels implements provider.Provider: one page (no nextPageToken) holding every id.
func (*Provider) WriteModels(w http.ResponseWriter, ids []string) {
	page := struct {
		Models []model `json:"models"`
	}{Models: make([]model, len(ids))}
	for i, id := range ids {
		page.Models[i] = modelOf(id)
	}
	writeJSON(w, page)
}

// WriteModel implements provider.ModelWriter: GET /v1beta/models/{model}.
func (*Provider) WriteModel(w http.ResponseWriter, id string) { writeJSON(w, modelOf(id)) }

func writeJSON(w http.ResponseWriter, v any) {
	body, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}
