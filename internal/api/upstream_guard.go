package api

import (
	"net/url"
)

// checkUpstreamHost refuses, as a 400 on field, a host the gateway would refuse to dial: an
// address in a loopback, private, link-local or metadata range (in any notation) or
// localhost, unless UPSTREAM_ALLOWED_NETWORKS allows it. Names are not resolved here (the
// answer could change by the time of the dial, which checks what they resolve to).
func (a *api) checkUpstreamHost(field, host string) error {
	if err := a.upstreams.CheckHost(host); err != nil {
		return invalid(field, "%s", err.Error())
	}
	return nil
}

// checkUpstreamURL is checkUpstreamHost for the host of a base URL ("" = the platform's
// default, which is public).
func (a *api) checkUpstreamURL(field, raw string) error {
	if raw == "" {
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return invalid(field, "%s must be an http(s) URL", field)
	}
	return a.checkUpstreamHost(field, u.Hostname())
}
