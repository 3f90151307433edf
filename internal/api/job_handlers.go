package api

import (
	"net/http"
	"time"

	"github.com/fluxcode/fluxcode/internal/store"
)

// jobRunView is the last run of a background job (package jobs).
type jobRunView struct {
	Name       string    `json:"name"`
	Node       string    `json:"node"`
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at"`
	Result     string    `json:"result"`
	Error      string    `json:"error"`
}

// listJobRuns shows the last run of every background job: where it ran, when, and what it did.
func (a *api) listJobRuns(w http.ResponseWriter, r *http.Request) {
	runs, err := a.store.ListJobRuns(r.Context())
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	out := make([]jobRunView, len(runs))
	for i, run := range runs {
		out[i] = viewJobRun(run)
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": out})
}

func viewJobRun(r store.JobRun) jobRunView {
	return jobRunView{Name: r.Name, Node: r.Node, StartedAt: r.StartedAt, FinishedAt: r.FinishedAt, Result: r.Result, Error: r.Error}
}
