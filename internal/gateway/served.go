package gateway

import "github.com/fluxcode/fluxcode/internal/provider"

// unservedError says that every account that could otherwise serve the request cannot serve
// this kind of request at all (provider.AccountFilter): a retry cannot cure it.
type unservedError struct{ reason string }

func (e *unservedError) Error() string {
	return "no upstream account of this group serves this request: " + e.reason
}

// keepServed drops the candidates the provider says cannot serve the request (a ChatGPT
// login asked for Chat Completions). Before any attempt, candidates that all drop are an
// *unservedError naming why; after one, the request reports that attempt's failure.
func (c *call) keepServed(cands []Candidate, tried map[int64]bool) ([]Candidate, error) {
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
	if len(kept) == 0 && len(tried) == 0 {
		return nil, &unservedError{reason: reason}
	}
	return kept, nil
}
