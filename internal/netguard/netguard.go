// Package netguard keeps the gateway from being turned against its own network (SSRF): an
// operator's account base URL or proxy must not make a node connect to loopback, private,
// link-local or cloud-metadata addresses unless the configuration allows those networks.
//
// The check that counts runs at dial time, on the address the resolver returned, in the
// dialer's Control hook: after DNS (a name resolving to 127.0.0.1 is caught), before connect
// (no packet leaves for a refused address). Hosts written as numbers in the forms inet_aton
// accepts (2130706433, 0x7f000001, 127.1, 0177.0.0.1) are turned into the address they stand
// for before dialing, so they are checked as that address and never sent to DNS. CheckHost
// is the early, resolver-free check for configuration input (a clear 400 in the API).
package netguard

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
)

// Guard decides which upstream addresses may be dialed. The zero value refuses every
// special-purpose range; Allow lists networks that are permitted all the same.
type Guard struct {
	allow []netip.Prefix
}

// New returns a guard that permits the special-purpose addresses inside allow.
func New(allow []netip.Prefix) *Guard {
	return &Guard{allow: append([]netip.Prefix(nil), allow...)}
}

// BlockedError is a refused address.
type BlockedError struct {
	Host   string     // as configured (a name, or the address)
	Addr   netip.Addr // the address it stands for
	Reason string     // the range, e.g. "loopback"
}

func (e *BlockedError) Error() string {
	what := e.Addr.String()
	if e.Host != "" && e.Host != what {
		what = fmt.Sprintf("%s (%s)", e.Host, what)
	}
	return fmt.Sprintf("refusing to connect to %s: %s addresses are not allowed as upstreams or proxies; list the network in UPSTREAM_ALLOWED_NETWORKS to allow it", what, e.Reason)
}

// denied are the special-purpose ranges refused by default, with the name shown in errors.
// IPv4-mapped IPv6 addresses are unmapped before the lookup, so ::ffff:127.0.0.1 is loopback.
var denied = []struct {
	prefix netip.Prefix
	reason string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "this-network"},
	{netip.MustParsePrefix("10.0.0.0/8"), "private"},
	{netip.MustParsePrefix("100.64.0.0/10"), "shared (carrier-grade NAT, cloud metadata)"},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local (cloud metadata)"},
	{netip.MustParsePrefix("172.16.0.0/12"), "private"},
	{netip.MustParsePrefix("192.0.0.0/24"), "IETF protocol assignment"},
	{netip.MustParsePrefix("192.168.0.0/16"), "private"},
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved"},
	{netip.MustParsePrefix("::/96"), "IPv4-compatible or unspecified"}, // also ::1 below
	{netip.MustParsePrefix("::1/128"), "loopback"},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "local NAT64"},
	{netip.MustParsePrefix("2001::/32"), "Teredo"},
	{netip.MustParsePrefix("fc00::/7"), "private (unique local, cloud metadata)"},
	{netip.MustParsePrefix("fe80::/10"), "link-local"},
	{netip.MustParsePrefix("fec0::/10"), "site-local"},
	{netip.MustParsePrefix("ff00::/8"), "multicast"},
}

// Embedding prefixes: an IPv6 address that carries an IPv4 address a router will reach.
var (
	nat64  = netip.MustParsePrefix("64:ff9b::/96")
	sixTo4 = netip.MustParsePrefix("2002::/16")
)

// Check returns a *BlockedError when addr may not be dialed; host is only for the message.
func (g *Guard) Check(host string, addr netip.Addr) error {
	addr = addr.WithZone("").Unmap()
	for _, p := range g.allow {
		if p.Contains(addr) {
			return nil
		}
	}
	if reason := deniedReason(addr); reason != "" {
		return &BlockedError{Host: host, Addr: addr, Reason: reason}
	}
	return nil
}

func deniedReason(addr netip.Addr) string {
	if addr.Is6() {
		b := addr.As16()
		switch {
		case nat64.Contains(addr):
			if r := deniedReason(netip.AddrFrom4([4]byte(b[12:16]))); r != "" {
				return r + " via NAT64"
			}
		case sixTo4.Contains(addr):
			if r := deniedReason(netip.AddrFrom4([4]byte(b[2:6]))); r != "" {
				return r + " via 6to4"
			}
		}
	}
	for _, d := range denied {
		if d.prefix.Contains(addr) {
			return d.reason
		}
	}
	return ""
}

// CheckHost checks a configured host name or address without asking a resolver: addresses in
// any notation, and the names that always mean this machine (localhost, *.localhost). Other
// names are left to the dial-time check, which sees what they resolve to.
func (g *Guard) CheckHost(host string) error {
	h := strings.TrimSuffix(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"), ".")
	if a, ok := ParseAddr(h); ok {
		return g.Check(host, a)
	}
	if lower := strings.ToLower(h); lower == "localhost" || strings.HasSuffix(lower, ".localhost") {
		return g.Check(host, netip.IPv6Loopback())
	}
	return nil
}

// ParseAddr reads an IP address in the notations resolvers accept: standard IPv4 and IPv6
// (with a zone), and the inet_aton forms of IPv4 — one to four parts, each decimal, octal
// (leading 0) or hexadecimal (0x) — which a C resolver or a browser would turn into an address
// although they look like names.
func ParseAddr(s string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(s); err == nil {
		return a, true
	}
	parts := strings.Split(s, ".")
	if len(parts) > 4 {
		return netip.Addr{}, false
	}
	vals := make([]uint64, len(parts))
	for i, p := range parts {
		v, ok := parseAtonPart(p)
		if !ok {
			return netip.Addr{}, false
		}
		vals[i] = v
	}
	// All parts but the last are one byte; the last fills the remaining bytes.
	var n uint64
	for _, v := range vals[:len(vals)-1] {
		if v > 0xff {
			return netip.Addr{}, false
		}
		n = n<<8 | v
	}
	restBits := 8 * uint(4-len(vals)+1)
	last := vals[len(vals)-1]
	if last >= 1<<restBits {
		return netip.Addr{}, false
	}
	n = n<<restBits | last
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}), true
}

func parseAtonPart(p string) (uint64, bool) {
	base := 10
	switch {
	case p == "":
		return 0, false
	case len(p) > 2 && (p[:2] == "0x" || p[:2] == "0X"):
		p, base = p[2:], 16
	case len(p) > 1 && p[0] == '0':
		p, base = p[1:], 8
	}
	for _, r := range p { // ParseUint alone would also take "_" separators
		if !digitOf(r, base) {
			return 0, false
		}
	}
	v, err := strconv.ParseUint(p, base, 32)
	return v, err == nil
}

func digitOf(r rune, base int) bool {
	switch base {
	case 8:
		return r >= '0' && r <= '7'
	case 16:
		return r >= '0' && r <= '9' || r >= 'a' && r <= 'f' || r >= 'A' && r <= 'F'
	}
	return r >= '0' && r <= '9'
}

// Control is a net.Dialer Control hook: it refuses the socket before connect when the
// resolved address may not be dialed.
func (g *Guard) Control(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("netguard: cannot check dial address %q: %w", address, err)
	}
	return g.Check("", ap.Addr())
}

// DialContext returns d's DialContext with the guard in front: numeric hosts are rewritten to
// the address they stand for (so they are never looked up in DNS), and d.Control is wrapped
// so that every resolved address is checked before connecting. d is copied, not changed.
func (g *Guard) DialContext(d net.Dialer) func(ctx context.Context, network, address string) (net.Conn, error) {
	next := d.Control
	d.Control = func(network, address string, c syscall.RawConn) error {
		if err := g.Control(network, address, c); err != nil {
			return err
		}
		if next != nil {
			return next(network, address, c)
		}
		return nil
	}
	d.ControlContext = nil // Control must run; ControlContext would replace it
	return func(ctx context.Context, network, address string) (net.Conn, error) {
		host, port, err := net.SplitHostPort(address)
		if err != nil {
			return nil, fmt.Errorf("dial %s: %w", address, err)
		}
		if a, ok := ParseAddr(host); ok {
			if err := g.Check(host, a); err != nil {
				return nil, err
			}
			address = net.JoinHostPort(a.String(), port)
		}
		conn, err := d.DialContext(ctx, network, address)
		if err != nil {
			return nil, withHost(err, host)
		}
		return conn, nil
	}
}

// withHost names the configured host in a refusal raised by the Control hook, which only
// sees the resolved address.
func withHost(err error, host string) error {
	var be *BlockedError
	if !errors.As(err, &be) {
		return err
	}
	named := *be
	named.Host = host
	return &named
}
