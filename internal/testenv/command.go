package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// processBound bounds every wait on a program started by NewProcess or Run:
// far above a normal start or stop, there only so that a broken program
// fails the test instead of hanging it. It never shapes a passing result.
const processBound = readyTimeout

// ProcessOptions says how NewProcess, StartProcess and Run run a program.
type ProcessOptions struct {
	// Name labels the program in messages; the binary's base name by default.
	Name string
	// Args are the program's arguments.
	Args []string
	// Dir is the working directory (the test's when empty) and, when set,
	// HOME.
	Dir string
	// Env is the program's environment beside PATH (the test's) and HOME
	// (Dir); its values win over both.
	Env map[string]string
	// InheritEnv starts from the test binary's whole environment instead of
	// PATH alone.
	InheritEnv bool
	// FailureLog shapes the output a failed test logs when it ends (for
	// example, to drop access-log lines); the whole output when nil.
	FailureLog func(output string) string
}

func (o ProcessOptions) name(bin string) string {
	if o.Name != "" {
		return o.Name
	}
	return filepath.Base(bin)
}

// environ is the program's environment, sorted for stable messages.
func (o ProcessOptions) environ() []string {
	vars := map[string]string{}
	if o.InheritEnv {
		for _, kv := range os.Environ() {
			if k, v, ok := strings.Cut(kv, "="); ok {
				vars[k] = v
			}
		}
	} else {
		vars["PATH"] = os.Getenv("PATH")
	}
	if o.Dir != "" {
		vars["HOME"] = o.Dir
	}
	maps.Copy(vars, o.Env)
	return envList(vars)
}

func (o ProcessOptions) command(ctx context.Context, bin string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, bin, o.Args...)
	cmd.Dir = o.Dir
	cmd.Env = o.environ()
	// Own process group, so cleanup can kill whatever the program forked;
	// Pdeathsig so that it dies with the test binary (see spawner).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	return cmd
}

// Buffer is a byte buffer that is safe to write from one goroutine while
// others read it, and that can be waited on for new output: a child
// process's output, or a log sink shared with a server's goroutines.
type Buffer struct {
	mu      sync.Mutex
	b       bytes.Buffer
	changed chan struct{} // closed (and replaced) by every Write
}

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := b.b.Write(p)
	if b.changed != nil {
		close(b.changed)
		b.changed = nil
	}
	return n, err
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// snapshot returns the contents and a channel closed by the next Write.
func (b *Buffer) snapshot() (string, <-chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.changed == nil {
		b.changed = make(chan struct{})
	}
	return b.b.String(), b.changed
}

// Process is a program started by a test (a FluxCode binary, a helper
// command), its stdout and stderr captured together. It dies with the test
// binary and is killed, with its process group, when the test ends; a failed
// test logs its output.
type Process struct {
	name string
	cmd  *exec.Cmd
	out  *Buffer
	done chan struct{} // closed once the program has exited and been reaped
	err  error         // cmd.Wait's result, valid once done is closed
}

// NewProcess prepares bin to run under opts, without starting it (see
// Start), so that several can be started at once (StartAll).
func NewProcess(t testing.TB, bin string, opts ProcessOptions) *Process {
	t.Helper()
	p := &Process{name: opts.name(bin), out: &Buffer{}, done: make(chan struct{})}
	// Not CommandContext's kill: the process lives until Kill, Terminate or
	// the end of the test.
	p.cmd = opts.command(context.Background(), bin)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out // one pipe: lines stay whole and in order
	t.Cleanup(func() {
		if p.cmd.Process == nil {
			return
		}
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
		if t.Failed() {
			out, what := p.out.String(), "output"
			if opts.FailureLog != nil {
				out, what = opts.FailureLog(out), "output (shortened)"
			}
			t.Logf("%s of %s:\n%s", what, p.name, out)
		}
	})
	return p
}

// StartProcess is NewProcess and Start; a program that cannot be started
// fails the test.
func StartProcess(t testing.TB, bin string, opts ProcessOptions) *Process {
	t.Helper()
	p := NewProcess(t, bin, opts)
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	return p
}

// StartAll starts every process (a *Process, or a type embedding one), one
// right after the other without waiting for any to be ready: they all start
// up at the same time. (Forks are serialised by the runtime anyway, so
// goroutines would start them no closer together.) A process that cannot be
// started fails the test.
func StartAll[P interface{ Start() error }](t testing.TB, procs ...P) {
	t.Helper()
	for _, p := range procs {
		if err := p.Start(); err != nil {
			t.Fatal(err)
		}
	}
}

// Start starts the program. It is safe to call from any goroutine.
func (p *Process) Start() error {
	if p.cmd.Process != nil {
		return fmt.Errorf("start %s: already started", p.name)
	}
	if err := startOnSpawnerThread(p.cmd); err != nil {
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	return nil
}

// Name is the label the process has in messages.
func (p *Process) Name() string { return p.name }

// Pid is the program's process id (0 before Start).
func (p *Process) Pid() int {
	if p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Output is everything the program wrote to stdout and stderr so far.
func (p *Process) Output() string { return p.out.String() }

// Done is closed once the program has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err is the program's exit status (nil for a clean exit) once Done is
// closed.
func (p *Process) Err() error { return p.err }

// Running reports whether the program was started and has not exited.
func (p *Process) Running() bool {
	if p.cmd.Process == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Kill ends the program with SIGKILL, as a crash would, and waits until it
// is gone.
func (p *Process) Kill(t testing.TB) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Fatalf("kill %s: %v", p.name, err)
	}
	p.waitExit(t, "SIGKILL")
}

// Terminate sends SIGTERM, waits until the program has exited and returns
// its exit status: nil when it stopped cleanly.
func (p *Process) Terminate(t testing.TB) error {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Fatalf("signal %s: %v", p.name, err)
	}
	p.waitExit(t, "SIGTERM")
	return p.err
}

func (p *Process) waitExit(t testing.TB, after string) {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(processBound):
		t.Fatalf("%s still running %s after %s", p.name, processBound, after)
	}
}

// WaitReady polls probe until it succeeds. The test fails if the program
// exits first, or if probe still fails after a generous bound; the message
// carries the end of the program's output.
func (p *Process) WaitReady(t testing.TB, probe func() error) {
	t.Helper()
	deadline := time.Now().Add(processBound)
	for {
		err := probe()
		if err == nil {
			return
		}
		select {
		case <-p.done:
			t.Fatalf("%s exited before it was ready (%v):\n%s", p.name, p.err, LastLines(p.Output(), 60))
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready after %s (last error %v):\n%s", p.name, processBound, err, LastLines(p.Output(), 60))
		}
	}
}

// WaitLine waits until the program has written a whole line matching re and
// returns its submatches (the line first). The test fails if the program
// exits without writing one, or after a generous bound.
func (p *Process) WaitLine(t testing.TB, re *regexp.Regexp) []string {
	t.Helper()
	deadline := time.After(processBound)
	for {
		out, changed := p.out.snapshot()
		// Only lines that are complete: a line is matched once it has ended.
		if i := strings.LastIndexByte(out, '\n'); i >= 0 {
			for _, line := range strings.Split(out[:i], "\n") {
				if m := re.FindStringSubmatch(line); m != nil {
					return m
				}
			}
		}
		select {
		case <-changed:
		case <-p.done:
			if out == p.out.String() { // the pipe is drained once done closes
				t.Fatalf("%s exited (%v) without a line matching %s:\n%s", p.name, p.err, re, LastLines(out, 60))
			}
		case <-deadline:
			t.Fatalf("%s wrote no line matching %s in %s:\n%s", p.name, re, processBound, LastLines(out, 60))
		}
	}
}

// HTTPReady is a WaitReady probe: it succeeds once GET url answers 200.
func HTTPReady(url string) func() error {
	client := &http.Client{Timeout: 2 * time.Second}
	return func() error {
		resp, err := client.Get(url)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		return nil
	}
}

// Result is how a program run by Run ended.
type Result struct {
	ExitCode int    // 0 for success
	Stdout   string // what it wrote to stdout
	Stderr   string // what it wrote to stderr
	Output   string // both, in the order they arrived
}

// Run runs bin under opts to completion and returns its exit code and
// output. A program that cannot be started, or that is still running after
// a generous bound, fails the test; a non-zero exit does not.
func Run(t testing.TB, bin string, opts ProcessOptions) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), processBound)
	defer cancel()
	cmd := opts.command(ctx, bin)
	var stdout, stderr, both Buffer
	cmd.Stdout = multiWriter{&stdout, &both}
	cmd.Stderr = multiWriter{&stderr, &both}
	name := opts.name(bin) + " " + strings.Join(opts.Args, " ")
	if err := startOnSpawnerThread(cmd); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	err := cmd.Wait()
	res := Result{Stdout: stdout.String(), Stderr: stderr.String(), Output: both.String()}
	var exit *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("%s still running after %s:\n%s", name, processBound, LastLines(res.Output, 60))
	case err == nil:
	case errors.As(err, &exit):
		res.ExitCode = exit.ExitCode()
	default:
		t.Fatalf("%s: %v", name, err)
	}
	return res
}

// multiWriter writes to every Buffer (which never fail).
type multiWriter []*Buffer

func (m multiWriter) Write(p []byte) (int, error) {
	for _, b := range m {
		_, _ = b.Write(p)
	}
	return len(p), nil
}

// LastLines returns the last n lines of s, for failure messages.
func LastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
