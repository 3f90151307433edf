package netguard_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fluxcode/fluxcode/internal/netguard"
)

func TestParseAddrNotations(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1":        "127.0.0.1",
		"2130706433":       "127.0.0.1",
		"0x7f000001":       "127.0.0.1",
		"0X7F000001":       "127.0.0.1",
		"127.1":            "127.0.0.1",
		"127.0.1":          "127.0.0.1",
		"0177.0.0.1":       "127.0.0.1",
		"0x7f.1":           "127.0.0.1",
		"169.254.43518":    "169.254.169.254",
		"::ffff:127.0.0.1": "::ffff:127.0.0.1",
		"0":                "0.0.0.0",
	} {
		got, ok := netguard.ParseAddr(in)
		if !ok || got.String() != want {
			t.Errorf("ParseAddr(%q) = %v, %v; want %s", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "api.anthropic.com", "1.2.3.4.5", "256.1.1.1", "0x", "08", "1_000", "4294967296", "127.0.0.0x1g", "-1"} {
		if got, ok := netguard.ParseAddr(in); ok {
			t.Errorf("ParseAddr(%q) = %v, want not an address", in, got)
		}
	}
}

func TestCheckHostRefusesSpecialRangesByDefault(t *testing.T) {
	g := netguard.New(nil)
	for _, host := range []string{
		"127.0.0.1", "0x7f000001", "2130706433", "127.1", "[::ffff:127.0.0.1]", "::ffff:7f00:1", "::1", "[::1]",
		"localhost", "LOCALHOST.", "api.localhost", "169.254.169.254", "10.0.0.1", "172.16.5.4", "192.168.1.1",
		"100.100.100.200", "0.0.0.0", "fd00:ec2::254", "fe80::1%eth0", "64:ff9b::a9fe:a9fe", "2002:7f00:1::", "::7f00:1",
	} {
		err := g.CheckHost(host)
		var be *netguard.BlockedError
		if !errors.As(err, &be) {
			t.Errorf("CheckHost(%q) = %v, want a refusal", host, err)
			continue
		}
		if !strings.Contains(err.Error(), "UPSTREAM_ALLOWED_NETWORKS") {
			t.Errorf("refusal %q does not say how to allow the address", err)
		}
	}
	for _, host := range []string{"api.anthropic.com", "8.8.8.8", "2606:4700::1", "[2606:4700::1]", "64:ff9b::808:808"} {
		if err := g.CheckHost(host); err != nil {
			t.Errorf("CheckHost(%q) = %v, want allowed", host, err)
		}
	}
}

func TestAllowlist(t *testing.T) {
	g := netguard.New([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")})
	for _, host := range []string{"127.0.0.1", "0x7f000001", "[::ffff:127.0.0.1]"} {
		if err := g.CheckHost(host); err != nil {
			t.Errorf("allowlisted %q refused: %v", host, err)
		}
	}
	if err := g.CheckHost("10.0.0.1"); err == nil {
		t.Error("10.0.0.1 allowed by a 127.0.0.0/8 allowlist")
	}
}

// tripwire stands behind the guard in the dialer's Control chain: it sees every address the
// guard let through, and stops anything but loopback before connect, so a guard that failed
// would still send no packet off this machine.
type tripwire struct {
	mu   sync.Mutex
	seen []string
}

func (tw *tripwire) control(_, address string, _ syscall.RawConn) error {
	tw.mu.Lock()
	tw.seen = append(tw.seen, address)
	tw.mu.Unlock()
	if ap, err := netip.ParseAddrPort(address); err != nil || !ap.Addr().Unmap().IsLoopback() {
		return errors.New("tripwire: the guard let a non-loopback address through: " + address)
	}
	return nil
}

func (tw *tripwire) addresses() []string {
	tw.mu.Lock()
	defer tw.mu.Unlock()
	return append([]string(nil), tw.seen...)
}

// acceptCounter is a loopback listener that counts the connections that reached it.
func acceptCounter(t *testing.T) (port string, accepted func() int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var mu sync.Mutex
	n := 0
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			n++
			mu.Unlock()
			c.Close()
		}
	}()
	_, port, _ = net.SplitHostPort(ln.Addr().String())
	return port, func() int { mu.Lock(); defer mu.Unlock(); return n }
}

// TestDialRefusesBeforeConnect dials the usual SSRF tricks through the guard: each is refused
// by the guard (a *BlockedError), none reaches the tripwire's connect, and the loopback
// listener accepts nothing. "localhost" resolves through /etc/hosts, so this is the
// dial-time check on a name resolving to loopback.
func TestDialRefusesBeforeConnect(t *testing.T) {
	port, accepted := acceptCounter(t)
	tw := &tripwire{}
	dial := netguard.New(nil).DialContext(net.Dialer{Timeout: 2 * time.Second, Control: tw.control})
	for _, host := range []string{
		"127.0.0.1", "0x7f000001", "2130706433", "127.1", "::ffff:127.0.0.1", "localhost",
		"169.254.169.254", "10.0.0.1", "100.100.100.200", "[fd00:ec2::254]",
	} {
		h := strings.Trim(host, "[]")
		conn, err := dial(context.Background(), "tcp", net.JoinHostPort(h, port))
		if err == nil {
			conn.Close()
			t.Errorf("dial %s: connected, want refused", host)
			continue
		}
		var be *netguard.BlockedError
		if !errors.As(err, &be) {
			t.Errorf("dial %s: %v, want a guard refusal", host, err)
			continue
		}
		if !strings.Contains(err.Error(), h) {
			t.Errorf("dial %s: refusal %q does not name the host", host, err)
		}
	}
	if seen := tw.addresses(); len(seen) > 0 {
		t.Errorf("the guard let these addresses reach connect: %v", seen)
	}
	if n := accepted(); n != 0 {
		t.Errorf("the loopback listener accepted %d connections through the guard", n)
	}
}

// TestDialAllowlistedLoopback: with 127.0.0.0/8 allowed (as the tests' harnesses set it),
// loopback upstreams are dialed, in any notation.
func TestDialAllowlistedLoopback(t *testing.T) {
	port, accepted := acceptCounter(t)
	tw := &tripwire{}
	g := netguard.New([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")})
	dial := g.DialContext(net.Dialer{Timeout: 2 * time.Second, Control: tw.control})
	hosts := []string{"127.0.0.1", "0x7f000001", "2130706433", "localhost"}
	for _, host := range hosts {
		conn, err := dial(context.Background(), "tcp4", net.JoinHostPort(host, port))
		if err != nil {
			t.Errorf("dial allowlisted %s: %v", host, err)
			continue
		}
		conn.Close()
	}
	deadline := time.Now().Add(5 * time.Second)
	for accepted() < len(hosts) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := accepted(); n != len(hosts) {
		t.Errorf("accepted %d connections, want %d", n, len(hosts))
	}
}
