package api

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/fluxcode/fluxcode/internal/invalidate"
	"github.com/fluxcode/fluxcode/internal/store"
)

// proxyReq is the body of create and update. The password is write-only: absent keeps it,
// null or "" clears it.
type proxyReq struct {
	Name     *string          `json:"name"`
	Protocol *string          `json:"protocol"`
	Host     *string          `json:"host"`
	Port     *int             `json:"port"`
	Username *string          `json:"username"`
	Password optional[string] `json:"password"`
	Status   *string          `json:"status"`
}

func (req *proxyReq) apply(p *store.Proxy) error {
	if req.Name != nil {
		name, err := checkText("name", *req.Name, true, maxNameLen)
		if err != nil {
			return err
		}
		p.Name = name
	}
	if req.Protocol != nil {
		p.Protocol = *req.Protocol
	}
	if err := checkEnum("protocol", p.Protocol, "http", "https", "socks5"); err != nil {
		return err
	}
	if req.Host != nil {
		h := strings.TrimSpace(*req.Host)
		if h == "" || len(h) > 253 || strings.ContainsAny(h, "/?#@ \t") {
			return invalid("host", "host must be a host name or IP address")
		}
		p.Host = h
	}
	if req.Port != nil {
		p.Port = *req.Port
	}
	if p.Port < 1 || p.Port > 65535 {
		return invalid("port", "port must be from 1 to 65535")
	}
	if req.Username != nil {
		if len(*req.Username) > maxTextLen {
			return invalid("username", "username is too long")
		}
		p.Username = *req.Username
	}
	if req.Password.Set {
		if len(req.Password.V) > maxTextLen {
			return invalid("password", "password is too long")
		}
		p.Password = req.Password.V
	}
	if req.Status != nil {
		p.Status = *req.Status
	}
	return checkEnum("status", p.Status, store.StatusActive, store.StatusDisabled)
}

func (a *api) createProxy(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	var req proxyReq
	if err := decodeJSON(w, r, &req); err != nil {
		a.writeError(w, r, err)
		return
	}
	for field, missing := range map[string]bool{"name": req.Name == nil, "protocol": req.Protocol == nil, "host": req.Host == nil} {
		if missing {
			a.writeError(w, r, invalid(field, "%s is required", field))
			return
		}
	}
	p := &store.Proxy{Status: store.StatusActive}
	if err := req.apply(p); err != nil {
		a.writeError(w, r, err)
		return
	}
	if err := a.checkUpstreamHost("host", p.Host); err != nil {
		a.writeError(w, r, err)
		return
	}
	if err := a.store.CreateProxy(ctx, p); err != nil {
		a.writeError(w, r, nameConflict(err))
		return
	}
	writeJSON(w, http.StatusCreated, viewProxy(p))
}

func (a *api) updateProxy(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	p, err := byPathID(r, a.store.GetProxy)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	var req proxyReq
	if err := decodeJSON(w, r, &req); err != nil {
		a.writeError(w, r, err)
		return
	}
	if err := req.apply(p); err != nil {
		a.writeError(w, r, err)
		return
	}
	if err := a.checkUpstreamHost("host", p.Host); err != nil {
		a.writeError(w, r, err)
		return
	}
	users, err := a.accountsUsingProxy(ctx, p.ID)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	if err := a.store.UpdateProxy(ctx, p); err != nil {
		a.writeError(w, r, nameConflict(err))
		return
	}
	for _, id := range users {
		a.publish(ctx, invalidate.Account, id)
	}
	writeStored(a, w, r, a.store.GetProxy, p.ID, viewProxy)
}

// deleteProxy removes a proxy no account uses. Deleting one in use would silently send its
// accounts direct, from the node's own address; the admin moves them off it first.
func (a *api) deleteProxy(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	p, err := byPathID(r, a.store.GetProxy)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	users, err := a.accountsUsingProxy(ctx, p.ID)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	if len(users) == 0 {
		err = a.store.DeleteProxy(ctx, p.ID)
		if err == nil {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if !errors.Is(err, store.ErrConflict) {
			a.writeError(w, r, err)
			return
		}
		// An account took the proxy since the count: the store refused atomically.
		if users, err = a.accountsUsingProxy(ctx, p.ID); err != nil {
			a.writeError(w, r, err)
			return
		}
	}
	a.writeError(w, r, newError(kindConflict, "proxy %d is used by %d account(s); move them to another proxy or none first",
		p.ID, max(len(users), 1)))
}

// accountsUsingProxy lists the accounts that go out through the proxy: nodes hold a
// transport per proxy setting, so a proxy change invalidates them.
func (a *api) accountsUsingProxy(ctx context.Context, proxyID int64) ([]int64, error) {
	var ids []int64
	for off := 0; ; off += maxPageSize {
		accs, _, err := a.store.ListAccounts(ctx, store.Page{Offset: off, Limit: maxPageSize})
		if err != nil {
			return nil, err
		}
		for _, acc := range accs {
			if acc.ProxyID != nil && *acc.ProxyID == proxyID {
				ids = append(ids, acc.ID)
			}
		}
		if len(accs) < maxPageSize {
			return ids, nil
		}
	}
}
