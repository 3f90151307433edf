package login

import (
	"fmt"
	"net/http"
	"sort"

	"github.com/fluxcode/fluxcode/internal/coord"
)

// Provider is one kind of subscription login ready to use: its OAuth client and sign-in flows.
type Provider struct {
	Client *Client
	Flows  *Flows
}

// Registry holds the providers a node offers: by name for the admin routes
// (/admin/logins/{name}/…), by platform for the refresher (an account's platform says whose
// token endpoint renews it; a refresh token never reaches another provider's endpoint).
type Registry struct {
	byName     map[string]*Provider
	byPlatform map[string]*Provider
}

// NewRegistry builds the providers of cfgs. hc nil: each client gets its own with a 20 s
// timeout. derive is the keyed hash every node shares (PKCE verifiers are derived with it);
// with counters or derive nil the providers only renew (their Flows are nil).
func NewRegistry(cfgs []Config, hc *http.Client, counters coord.Counters, derive func(string) []byte) (*Registry, error) {
	r := &Registry{byName: map[string]*Provider{}, byPlatform: map[string]*Provider{}}
	for _, cfg := range cfgs {
		if cfg.Name == "" || cfg.Platform == "" {
			return nil, fmt.Errorf("login: a provider needs a name and a platform (%q, %q)", cfg.Name, cfg.Platform)
		}
		if _, dup := r.byName[cfg.Name]; dup {
			return nil, fmt.Errorf("login: provider %q configured twice", cfg.Name)
		}
		if _, dup := r.byPlatform[cfg.Platform]; dup {
			return nil, fmt.Errorf("login: two login providers for platform %q", cfg.Platform)
		}
		c := NewClient(cfg, hc, nil)
		p := &Provider{Client: c}
		if counters != nil && derive != nil {
			p.Flows = NewFlows(c, counters, derive)
		}
		r.byName[cfg.Name], r.byPlatform[cfg.Platform] = p, p
	}
	return r, nil
}

// Get is the provider named name. A nil registry has none.
func (r *Registry) Get(name string) (*Provider, bool) {
	if r == nil {
		return nil, false
	}
	p, ok := r.byName[name]
	return p, ok
}

// ForPlatform is the provider whose logins are accounts of platform.
func (r *Registry) ForPlatform(platform string) (*Provider, bool) {
	if r == nil {
		return nil, false
	}
	p, ok := r.byPlatform[platform]
	return p, ok
}

// Names lists the providers' names, sorted.
func (r *Registry) Names() []string {
	if r == nil {
		return nil
	}
	out := make([]string, 0, len(r.byName))
	for n := range r.byName {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
