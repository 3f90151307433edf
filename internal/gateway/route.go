package gateway

import (
	"fmt"
	"net/http"
	"slices"

	"github.com/fluxcode/fluxcode/internal/provider"
)

// route is one row of the route table: a ServeMux pattern, the operation and the providers
// that serve it. A route has several providers when protocols share a path (GET /v1/models
// and the /v1/ 404 subtree, for Anthropic and OpenAI). Who answers a shared route:
//   - the platform of the key's group, once the key is known (call.choose; for a 404,
//     call.chooseByKey), so a Claude Code key sent as a bearer token gets Anthropic's shape;
//   - before that, or with no valid key, the place the key came in (byKeyPlace): the
//     provider whose clients put it there first (x-api-key: Anthropic; Authorization:
//     Bearer: OpenAI), else the route's first provider (no key at all).
type route struct {
	pattern string
	op      provider.Operation
	// opOf, when set, reads the operation from the request path instead (provider.Route).
	opOf  func(path string) provider.Operation
	provs []provider.Provider
	// keys are the key places of every provider of the route: all are looked at for the
	// key and all are removed before anything goes upstream.
	keys []provider.KeyPlace
}

// buildRoutes makes the route table from the providers' routes, in the order they declare
// them. A pattern declared twice must mean the same operation.
func buildRoutes(provs []provider.Provider) ([]route, error) {
	var table []route
	platforms := map[string]bool{}
	for _, p := range provs {
		if platforms[p.Platform()] {
			return nil, fmt.Errorf("gateway: two providers for platform %q", p.Platform())
		}
		platforms[p.Platform()] = true
		for _, r := range p.Routes() {
			i := slices.IndexFunc(table, func(t route) bool { return t.pattern == r.Pattern })
			if i < 0 {
				table = append(table, route{pattern: r.Pattern, op: r.Op, opOf: r.OpOf})
				i = len(table) - 1
			}
			rt := &table[i]
			if rt.op != r.Op {
				return nil, fmt.Errorf("gateway: route %q is %v for one provider and %v for another", r.Pattern, rt.op, r.Op)
			}
			rt.provs = append(rt.provs, p)
			for _, k := range p.KeyPlaces() {
				if !slices.Contains(rt.keys, k) {
					rt.keys = append(rt.keys, k)
				}
			}
		}
	}
	return table, nil
}

// handler serves one route: every operation goes through a call, which releases what it
// holds and is counted when it ends.
func (g *Gateway) handler(rt *route) http.HandlerFunc {
	serve := map[provider.Operation]func(*call){
		provider.OpMessages:    g.serveMessages,
		provider.OpCountTokens: g.serveCountTokens,
		provider.OpModels:      g.serveModels,
		provider.OpNotFound:    g.serveNotFound,
		provider.OpWebSocket:   g.serveWebSocket,
	}
	return func(w http.ResponseWriter, r *http.Request) {
		c := g.newCall(w, r, rt)
		defer c.finish()
		serve[c.op](c)
	}
}

// byKeyPlace is the provider that answers before the key's group is known: the first of the
// route's providers that lists place as its first key place, else the route's first.
func (rt *route) byKeyPlace(place provider.KeyPlace) provider.Provider {
	if len(rt.provs) > 1 && place != (provider.KeyPlace{}) {
		for _, p := range rt.provs {
			if kp := p.KeyPlaces(); len(kp) > 0 && kp[0] == place {
				return p
			}
		}
	}
	return rt.provs[0]
}

// chooseByKey settles the provider of a shared route that answers without authenticating
// (a 404): the platform of the key's group when the key is valid, else the one byKeyPlace
// chose. The key lookup is the node's cached one; nothing is refused here.
func (c *call) chooseByKey() {
	if len(c.route.provs) < 2 || c.key == "" {
		return
	}
	a, err := c.g.lookupKey(c.ctx(), c.key)
	if err != nil {
		return
	}
	for _, p := range c.route.provs {
		if p.Platform() == a.Group.Platform {
			c.prov = p
		}
	}
}

// choose settles the provider of a shared route by the platform of the key's group. A
// route's only provider is chosen already; a group of another platform is refused, so a key
// of an OpenAI group never reaches Anthropic accounts with the wrong credentials (which would
// get them marked as broken).
func (c *call) choose(platform string) bool {
	for _, p := range c.route.provs {
		if p.Platform() == platform {
			c.prov = p
			return true
		}
	}
	c.reject(RejectForbidden, provider.KindPermission, 0, "this API key's group serves "+platform+", not "+c.prov.Platform(), 0)
	return false
}
