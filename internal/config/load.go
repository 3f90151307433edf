package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/fluxcode/fluxcode/internal/gateway"
)

// Sources of a value, as Redacted shows them.
const (
	sourceDefault = "default"
	sourceEnv     = "env"
	sourceFile    = "config file"
)

// MapEnv adapts a map to Load's env parameter (tests, or a config assembled in code).
func MapEnv(m map[string]string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		v, ok := m[name]
		return v, ok
	}
}

// Load reads the configuration from env (os.LookupEnv in the binary) and the optional file
// CONFIG_FILE names, applies defaults, and validates. The error lists every problem found.
func Load(env func(string) (string, bool)) (Config, error) {
	lookup := func(name string) (string, bool) {
		v, ok := env(name)
		if !ok || v == "" { // compose passes optional variables through as empty strings
			return "", false
		}
		return v, true
	}

	c := Config{Gateway: gateway.Default()} // the fields no variable fills keep their defaults
	var errs []error
	file := map[string]string{}
	if path, ok := lookup("CONFIG_FILE"); ok {
		var err error
		if file, err = readYAML(path); err != nil {
			return Config{}, err
		}
		c.ConfigFile = path
	}

	c.settings = map[string]setting{}
	for _, v := range Vars() {
		raw, src, err := resolve(v, lookup, file)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		c.settings[v.Name] = setting{raw: raw, source: src}
		if err := v.set(&c, raw); err != nil {
			errs = append(errs, fmt.Errorf("%s (from %s): %w", v.Name, src, err))
		}
	}
	if len(errs) > 0 {
		return Config{}, errors.Join(errs...)
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// resolve finds the raw text of v: environment, then config file, then default.
func resolve(v Var, env func(string) (string, bool), file map[string]string) (raw, source string, err error) {
	val, hasVal := env(v.Name)
	path, hasPath := "", false
	if v.File {
		path, hasPath = env(v.Name + "_FILE")
	}
	switch {
	case hasVal && hasPath:
		return "", "", fmt.Errorf("%s and %s_FILE are both set in the environment: set one", v.Name, v.Name)
	case hasVal:
		return val, sourceEnv, nil
	case hasPath:
		s, err := readSecretFile(path)
		if err != nil {
			return "", "", fmt.Errorf("%s_FILE: %w", v.Name, err)
		}
		return s, sourceEnv + " " + v.Name + "_FILE", nil
	}

	key := strings.ToLower(v.Name)
	val, hasVal = file[key]
	path, hasPath = file[key+"_file"]
	switch {
	case hasVal && hasPath:
		return "", "", fmt.Errorf("config file sets both %s and %s_file: set one", key, key)
	case hasVal:
		return val, sourceFile, nil
	case hasPath:
		s, err := readSecretFile(path)
		if err != nil {
			return "", "", fmt.Errorf("%s_file in the config file: %w", key, err)
		}
		return s, sourceFile + " " + key + "_file", nil
	}
	return v.Default, sourceDefault, nil
}

func readSecretFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read secret file: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// readYAML reads a flat YAML mapping of lower-case variable names to scalars (or, for lists,
// sequences of scalars). Unknown keys are errors, so a typo does not silently do nothing.
func readYAML(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("CONFIG_FILE: %w", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("CONFIG_FILE %s: %w", path, err)
	}
	out := map[string]string{}
	if len(doc.Content) == 0 { // an empty file
		return out, nil
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("CONFIG_FILE %s: want a mapping of variable names to values, like server_port: 8080", path)
	}
	known := map[string]bool{}
	for _, v := range Vars() {
		known[strings.ToLower(v.Name)] = true
		if v.File {
			known[strings.ToLower(v.Name)+"_file"] = true
		}
	}
	var errs []error
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, n := root.Content[i].Value, root.Content[i+1]
		if !known[k] {
			errs = append(errs, fmt.Errorf("CONFIG_FILE %s line %d: unknown key %q (keys are the lower-case variable names, like server_port)", path, root.Content[i].Line, k))
			continue
		}
		switch n.Kind {
		case yaml.ScalarNode:
			if n.Tag != "!!null" {
				out[k] = n.Value
			}
		case yaml.SequenceNode:
			var items []string
			for _, item := range n.Content {
				if item.Kind != yaml.ScalarNode {
					errs = append(errs, fmt.Errorf("CONFIG_FILE %s line %d: %s: list items must be plain values", path, item.Line, k))
					break
				}
				items = append(items, item.Value)
			}
			out[k] = strings.Join(items, ",")
		default:
			errs = append(errs, fmt.Errorf("CONFIG_FILE %s line %d: %s: want a plain value or a list", path, n.Line, k))
		}
	}
	return out, errors.Join(errs...)
}

// set parses raw into v's field. The empty string leaves the zero value, except where a
// number or enum is required (then it is invalid: an explicit empty default does not exist).
func (v Var) set(c *Config, raw string) error {
	raw = strings.TrimSpace(raw)
	switch p := v.field(c).(type) {
	case *string:
		if raw == "" {
			return nil
		}
		if len(v.Enum) > 0 && !slices.Contains(v.Enum, raw) {
			return fmt.Errorf("%q is not accepted; want one of: %s", raw, strings.Join(v.Enum, ", "))
		}
		if v.check != nil {
			if err := v.check(raw); err != nil {
				return err
			}
		}
		*p = raw
	case *int:
		n, err := v.parseInt(raw)
		if err != nil {
			return err
		}
		*p = int(n)
	case *int64:
		n, err := v.parseInt(raw)
		if err != nil {
			return err
		}
		*p = n
	case *bool:
		b, err := parseBool(raw)
		if err != nil {
			return err
		}
		*p = b
	case *time.Duration:
		d, err := parseDuration(raw)
		if err != nil {
			return err
		}
		*p = d
	case *[]netip.Prefix:
		ps, err := parsePrefixes(raw)
		if err != nil {
			return err
		}
		*p = ps
	case *[]string:
		addrs, err := parseHostPorts(raw)
		if err != nil {
			return err
		}
		*p = addrs
	default:
		return fmt.Errorf("config: no parser for %T", p) // a programming error in the table
	}
	return nil
}

func (v Var) parseInt(raw string) (int64, error) {
	n, err := strconv.ParseInt(raw, 10, 64)
	bounded := v.Max > v.Min
	if err != nil {
		if bounded {
			return 0, fmt.Errorf("%q is not an integer; want a whole number from %d to %d", raw, v.Min, v.Max)
		}
		return 0, fmt.Errorf("%q is not an integer", raw)
	}
	if bounded && (n < v.Min || n > v.Max) {
		return 0, fmt.Errorf("%d is out of range; want a whole number from %d to %d", n, v.Min, v.Max)
	}
	return n, nil
}

func parseBool(raw string) (bool, error) {
	switch strings.ToLower(raw) {
	case "1", "true", "yes", "on":
		return true, nil
	case "0", "false", "no", "off":
		return false, nil
	}
	return false, fmt.Errorf("%q is not a boolean; want one of: true, false, 1, 0, yes, no, on, off", raw)
}

// parseDuration accepts Go durations (90s, 5m, 1h30m) and bare integers as seconds. Zero and
// negative durations are refused: every duration here bounds a wait or a lease.
func parseDuration(raw string) (time.Duration, error) {
	const want = "want a positive duration like 30s, 5m, 1h30m (or whole seconds)"
	var d time.Duration
	if n, err := strconv.ParseInt(raw, 10, 64); err == nil {
		if n > int64(1<<63-1)/int64(time.Second) {
			return 0, fmt.Errorf("%q is too large; %s", raw, want)
		}
		d = time.Duration(n) * time.Second
	} else if d, err = time.ParseDuration(raw); err != nil {
		return 0, fmt.Errorf("%q is not a duration; %s", raw, want)
	}
	if d <= 0 {
		return 0, fmt.Errorf("%q is not positive; %s", raw, want)
	}
	return d, nil
}

// parsePrefixes reads comma-separated IPs and CIDRs; a bare IP is a single-address prefix.
func parsePrefixes(raw string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(raw, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if strings.Contains(f, "/") {
			p, err := netip.ParsePrefix(f)
			if err != nil {
				return nil, fmt.Errorf("%q is not an IP or CIDR; want a list like 10.0.0.0/8, 172.16.0.0/12, 127.0.0.1", f)
			}
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("%q is not an IP or CIDR; want a list like 10.0.0.0/8, 172.16.0.0/12, 127.0.0.1", f)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// parseHostPorts reads comma-separated host:port addresses.
func parseHostPorts(raw string) ([]string, error) {
	var out []string
	for _, f := range strings.Split(raw, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		host, port, err := splitHostPort(f)
		if err == nil && host == "" {
			err = errors.New("the host is missing")
		}
		if err == nil && port == 0 {
			err = errors.New("port 0 is not a server's port")
		}
		if err != nil {
			return nil, fmt.Errorf("%q is not host:port (%v); want a list like 10.0.0.1:26379, 10.0.0.2:26379", f, err)
		}
		out = append(out, f)
	}
	return out, nil
}

// splitHostPort splits host:port and checks that the port is a number from 0 to 65535.
func splitHostPort(s string) (host string, port int, err error) {
	host, p, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, err
	}
	n, err := strconv.ParseUint(p, 10, 16)
	if err != nil {
		return "", 0, fmt.Errorf("port %q is not a number from 0 to 65535", p)
	}
	return host, int(n), nil
}
