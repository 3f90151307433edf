package gateway

import (
	"github.com/fluxcode/fluxcode/internal/provider"
	"github.com/fluxcode/fluxcode/internal/store"
)

// unservedError says that every account that could otherwise serve the request cannot serve
// this kind of request at all (provider.AccountFilter): a retry cannot cure it.
type unservedError struct{ reason string }

func (e *unservedError) Error() string {
	return "no upstream account of this group serves this request: " + e.reason
}

// keepServed drops the candidates the provider says cannot serve the request (a ChatGPT
// login asked for Chat Completions). Before any attempt, when no account of the group (accts,
// available or not) could ever serve it, that is an *unservedError naming why; when one could
// but is marked now, the request is refused as for no available account (a retry may cure
// it); after an attempt, the request reports that attempt's failure.
func (c *call) keepServed(cands []Candidate, accts []store.Account, tried map[int64]bool) ([]Candidate, error) {
	f, ok := c.prov.(provider.AccountFilter)
	if !ok || len(cands) == 0 {
		return cands, nil
	}
	kept := cands[:0]
	var reason string
	for _, cand := range cands {
		if why := f.Unserved(cand.Account, c.op, c.req); why == "" {
			kept = append(kept, cand)
		} else if reason == "" {
			reason = why
		}
	}
	if len(kept) > 0 || len(tried) > 0 || reason == "" {
		return kept, nil
	}
	for i := range accts {
		if a := &accts[i]; a.Platform == c.prov.Platform() && f.Unserved(a, c.op, c.req) == "" {
			return kept, nil // one that serves it is only unavailable now
		}
	}
	return nil, &unservedError{reason: reason}
}
