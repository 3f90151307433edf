package testenv

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// SentinelOptions configures StartSentinel.
type SentinelOptions struct {
	// Name is the monitored master's name; MasterAddr its host:port.
	Name, MasterAddr string
	// MasterPassword authenticates to the master and its replicas; Password, when set, is
	// the Sentinel's own (requirepass).
	MasterPassword, Password string
	// DownAfter is how long the master may not answer before the Sentinel fails it over
	// (down-after-milliseconds); zero keeps Redis's default of 30 s.
	DownAfter time.Duration
	// Quorum is how many Sentinels must agree that the master is down; zero means 1 (a
	// Sentinel alone). Sentinels of one master find each other through it (WaitSentinels).
	Quorum int
}

// StartSentinel runs `redis-server <conf> --sentinel` on a free port of 127.0.0.1 (alone
// unless o.Quorum says otherwise), and waits until it answers with the master's address. It
// is killed when t ends. It returns the Sentinel's host:port.
func StartSentinel(t testing.TB, o SentinelOptions) string {
	t.Helper()
	bin := RequireBinary(t, "redis-server", redisPackage)
	dir := t.TempDir()
	port := FreePort(t)
	host, mport, _ := strings.Cut(o.MasterAddr, ":")
	conf := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nsentinel monitor %s %s %s %d\n", port, dir, o.Name, host, mport, max(o.Quorum, 1))
	if o.MasterPassword != "" {
		conf += fmt.Sprintf("sentinel auth-pass %s %s\n", o.Name, o.MasterPassword)
	}
	if o.Password != "" {
		conf += fmt.Sprintf("requirepass %s\n", o.Password)
	}
	if o.DownAfter > 0 {
		conf += fmt.Sprintf("sentinel down-after-milliseconds %s %d\nsentinel failover-timeout %s %d\n",
			o.Name, o.DownAfter.Milliseconds(), o.Name, 10*o.DownAfter.Milliseconds())
	}
	// Sentinel rewrites its configuration file, so it must be writable.
	confPath := filepath.Join(dir, "sentinel.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	p := StartProcess(t, bin, ProcessOptions{Name: "sentinel", Args: []string{confPath, "--sentinel"}, InheritEnv: true})
	addr := loopbackAddr(port)
	p.WaitReady(t, func() error {
		got, err := SentinelCommand(addr, o.Password, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", o.Name)
		if err == nil && strings.Join(got, ":") != o.MasterAddr {
			err = fmt.Errorf("sentinel on %s names the master %v, want %s", addr, got, o.MasterAddr)
		}
		return err
	})
	return addr
}

// WaitSentinels waits until each Sentinel of addrs (none with a password of its own) knows
// all the others and replicas replicas of the master name, so that a failover can be
// agreed on.
func WaitSentinels(t testing.TB, addrs []string, name string, replicas int) {
	t.Helper()
	want := map[string]string{"num-other-sentinels": strconv.Itoa(len(addrs) - 1), "num-slaves": strconv.Itoa(replicas)}
	deadline := time.Now().Add(processBound)
	for _, addr := range addrs {
		for {
			got, err := SentinelCommand(addr, "", "SENTINEL", "MASTER", name)
			if err == nil {
				err = fieldsAre(got, want)
			}
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("testenv: sentinel %s: %v", addr, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// fieldsAre checks the values of a flattened field/value reply.
func fieldsAre(reply []string, want map[string]string) error {
	for i := 0; i+1 < len(reply); i += 2 {
		if w, ok := want[reply[i]]; ok && reply[i+1] != w {
			return fmt.Errorf("%s is %s, want %s", reply[i], reply[i+1], w)
		}
	}
	return nil
}

// SentinelCommand sends one command to the Sentinel at addr (authenticating first when
// password is set) and returns its reply as strings: an array's elements, or the one value.
func SentinelCommand(addr, password string, args ...string) ([]string, error) {
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	rd := bufio.NewReader(conn)
	if password != "" {
		if err := RedisCommand(conn, rd, "+OK", "AUTH", password); err != nil {
			return nil, err
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := conn.Write([]byte(b.String())); err != nil {
		return nil, err
	}
	return readReply(rd)
}

// readReply reads one RESP reply of simple strings, integers, bulk strings or an array of
// them.
func readReply(rd *bufio.Reader) ([]string, error) {
	line, err := rd.ReadString('\n')
	if err != nil {
		return nil, err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return nil, errors.New("empty RESP line")
	}
	switch line[0] {
	case '+', ':':
		return []string{line[1:]}, nil
	case '-':
		return nil, fmt.Errorf("redis: %s", line[1:])
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return nil, err
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(rd, buf); err != nil {
			return nil, err
		}
		return []string{string(buf[:n])}, nil
	case '*':
		n, err := strconv.Atoi(line[1:])
		if err != nil {
			return nil, err
		}
		var out []string
		for range n {
			v, err := readReply(rd)
			if err != nil {
				return nil, err
			}
			out = append(out, v...)
		}
		return out, nil
	}
	return nil, fmt.Errorf("unexpected RESP line %q", line)
}
