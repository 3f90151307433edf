package api

import (
	"context"
	"net/http"

	"github.com/fluxcode/fluxcode/internal/store"
)

// byPathID reads the record whose id the path's {id} names.
func byPathID[R any](r *http.Request, get func(context.Context, int64) (*R, error)) (*R, error) {
	id, err := pathID(r, "id")
	if err != nil {
		return nil, err
	}
	return get(r.Context(), id)
}

// getRoute answers with the record the path's {id} names.
func getRoute[R, V any](a *api, get func(context.Context, int64) (*R, error), view func(*R) V) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := pathID(r, "id")
		if err != nil {
			a.writeError(w, r, err)
			return
		}
		writeStored(a, w, r, get, id, view)
	}
}

// listRoute answers with the page of records that ?page= and ?page_size= ask for, narrowed
// by the filters the route offers (see listFilter).
func listRoute[R, V any](a *api, list func(context.Context, store.Page) ([]R, int, error), view func(*R) V, filters ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		pg, err := pageParams(r)
		if err != nil {
			a.writeError(w, r, err)
			return
		}
		p := pg.store()
		if p.Filter, err = listFilter(r, filters...); err != nil {
			a.writeError(w, r, err)
			return
		}
		recs, total, err := list(r.Context(), p)
		if err != nil {
			a.writeError(w, r, err)
			return
		}
		writePage(w, pg, recs, total, view)
	}
}

// ofUser narrows a per-user list method to one user.
func ofUser[R any](list func(context.Context, int64, store.Page) ([]R, int, error), userID int64) func(context.Context, store.Page) ([]R, int, error) {
	return func(ctx context.Context, p store.Page) ([]R, int, error) { return list(ctx, userID, p) }
}

// writeStored answers with the record as the store now holds it, after a write: timestamps
// and fields the store derives are its own.
func writeStored[R, V any](a *api, w http.ResponseWriter, r *http.Request, get func(context.Context, int64) (*R, error), id int64, view func(*R) V) {
	rec, err := get(r.Context(), id)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, view(rec))
}
