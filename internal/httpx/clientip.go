package httpx

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// ClientIP returns the client address the ClientIPs middleware stored in ctx, or the zero
// Addr when there is none.
func ClientIP(ctx context.Context) netip.Addr {
	a, _ := ctx.Value(clientIPKey).(netip.Addr)
	return a
}

// ClientIPs decides each request's client address and stores it in the context. The TCP peer
// is the client unless it is one of trusted; then X-Forwarded-For is read from the right,
// skipping trusted hops, and the first untrusted address is the client. Reading from the
// right matters: a client can put anything at the left of the header, but each trusted proxy
// appends the address it saw.
func ClientIPs(trusted []netip.Prefix) func(http.Handler) http.Handler {
	isTrusted := func(a netip.Addr) bool {
		for _, p := range trusted {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ip := clientIP(r, isTrusted)
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), clientIPKey, ip)))
		})
	}
}

func clientIP(r *http.Request, isTrusted func(netip.Addr) bool) netip.Addr {
	peer := parseAddr(r.RemoteAddr)
	if !peer.IsValid() || !isTrusted(peer) {
		return peer
	}
	hops := forwardedHops(r.Header.Values("X-Forwarded-For"))
	for i := len(hops) - 1; i >= 0; i-- {
		a := parseAddr(hops[i])
		if !a.IsValid() {
			// A hop we cannot read: stop believing the header here, the peer is all we know.
			return peer
		}
		if !isTrusted(a) {
			return a
		}
		peer = a
	}
	return peer // every hop was a trusted proxy: the leftmost one is as far as we can see
}

// forwardedHops splits the (possibly repeated) X-Forwarded-For headers into addresses.
func forwardedHops(values []string) []string {
	var hops []string
	for _, v := range values {
		for _, h := range strings.Split(v, ",") {
			if h = strings.TrimSpace(h); h != "" {
				hops = append(hops, h)
			}
		}
	}
	return hops
}

// parseAddr reads "ip", "ip:port", "[ipv6]:port" or "[ipv6]".
func parseAddr(s string) netip.Addr {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap()
	}
	if host, _, err := net.SplitHostPort(s); err == nil {
		s = host
	}
	a, err := netip.ParseAddr(strings.Trim(s, "[]"))
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}
