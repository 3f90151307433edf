package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// buildTimeout bounds one "go build": a cold cache on two busy cores is slow,
// but a build that takes longer is broken.
const buildTimeout = 10 * time.Minute

// BuildOption changes how BuildBinary builds.
type BuildOption func(*buildSpec)

// BuildFlags adds flags to "go build" (before the package), e.g.
// BuildFlags("-trimpath", "-ldflags", "-X main.version=1").
func BuildFlags(flags ...string) BuildOption {
	return func(b *buildSpec) { b.flags = append(b.flags, flags...) }
}

// BuildEnv adds "NAME=value" variables to the build's environment, e.g.
// BuildEnv("CGO_ENABLED=0").
func BuildEnv(vars ...string) BuildOption {
	return func(b *buildSpec) { b.env = append(b.env, vars...) }
}

type buildSpec struct {
	pkg   string
	flags []string
	env   []string
}

func (b buildSpec) key() string {
	return strings.Join([]string{b.pkg, strings.Join(b.flags, "\x00"), strings.Join(b.env, "\x00")}, "\x01")
}

// BuildBinary builds the main package pkg (a full import path, e.g.
// "github.com/fluxcode/fluxcode/cmd/fluxcode") and returns the binary's path.
// Each package and set of options is built once per test binary; later
// calls, from any test, return the same file. Main removes the binaries.
func BuildBinary(t testing.TB, pkg string, opts ...BuildOption) string {
	t.Helper()
	spec := buildSpec{pkg: pkg}
	for _, o := range opts {
		o(&spec)
	}
	bin, err := builds.get(spec)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return bin
}

// builds caches the binaries built by this test binary. Package state
// because a binary outlives the test that first asked for it.
var builds buildCache

type buildCache struct {
	mu      sync.Mutex
	dir     string
	entries map[string]*buildEntry
}

type buildEntry struct {
	once sync.Once
	path string
	err  error
}

func (c *buildCache) get(spec buildSpec) (string, error) {
	c.mu.Lock()
	if c.entries == nil {
		c.entries = map[string]*buildEntry{}
	}
	if c.dir == "" {
		dir, err := os.MkdirTemp("", "fluxcode-testbin-")
		if err != nil {
			c.mu.Unlock()
			return "", fmt.Errorf("build %s: %w", spec.pkg, err)
		}
		c.dir = dir
	}
	e, ok := c.entries[spec.key()]
	if !ok {
		e = &buildEntry{path: filepath.Join(c.dir, fmt.Sprintf("%d", len(c.entries)), path.Base(spec.pkg))}
		c.entries[spec.key()] = e
	}
	c.mu.Unlock()
	// Outside the lock: different packages build side by side.
	e.once.Do(func() { e.err = build(spec, e.path) })
	return e.path, e.err
}

// remove deletes every binary built so far.
func (c *buildCache) remove() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dir != "" {
		_ = os.RemoveAll(c.dir)
	}
	c.dir, c.entries = "", nil
}

func build(spec buildSpec, out string) error {
	gobin, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("build %s: the go tool is not in PATH: %w", spec.pkg, err)
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return fmt.Errorf("build %s: %w", spec.pkg, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	args := append(append([]string{"build"}, spec.flags...), "-o", out, spec.pkg)
	cmd := exec.CommandContext(ctx, gobin, args...)
	cmd.Env = append(os.Environ(), spec.env...)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, b)
	}
	return nil
}
