package testenv

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	// readyTimeout bounds how long a server may take to start. It is long
	// because two cores may be busy with other test binaries; it never
	// shapes a passing test's result, only how long a broken start hangs.
	readyTimeout = 90 * time.Second
	// stopTimeout bounds a graceful stop before the process group is killed.
	stopTimeout = 15 * time.Second
	// logTailLines is how much of a server's log failure messages carry.
	logTailLines = 40
)

// process is one server child process. It can be started again after it has
// stopped (restarts keep the same arguments, hence the same port and data).
type process struct {
	name    string // for messages: "postgres", "redis-server", "caddy"
	path    string
	args    []string
	env     []string
	dir     string
	logPath string
	cred    *syscall.Credential // run as this user (PostgreSQL refuses root)
	stopSig syscall.Signal      // the server's graceful-stop signal

	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has been waited for
	err    error         // cmd.Wait's result, valid once exited is closed
}

// start launches the process with its output appended to the log file.
func (p *process) start() error {
	if p.cmd != nil && !p.hasExited() {
		return fmt.Errorf("%s: already running", p.name)
	}
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("%s: open log: %w", p.name, err)
	}
	defer logf.Close() // the child holds its own copy of the descriptor
	fmt.Fprintf(logf, "=== testenv: starting %s %s\n", p.path, strings.Join(p.args, " "))

	cmd := exec.Command(p.path, p.args...)
	cmd.Env = p.env
	cmd.Dir = p.dir
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// Own process group: stopping kills helpers the server forked.
		Setpgid: true,
		// Die with the test binary even when it is SIGKILLed. Go sets this
		// after switching credentials, so it survives running as postgres.
		Pdeathsig:  syscall.SIGKILL,
		Credential: p.cred,
	}
	if err := startOnSpawnerThread(cmd); err != nil {
		return fmt.Errorf("%s: start: %w", p.name, err)
	}
	p.cmd = cmd
	p.exited = make(chan struct{})
	go func(exited chan struct{}) {
		p.err = cmd.Wait()
		close(exited)
	}(p.exited)
	return nil
}

func (p *process) hasExited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// running reports whether the process was started and has not exited.
func (p *process) running() bool {
	return p.cmd != nil && !p.hasExited()
}

// stop sends the graceful-stop signal, waits up to stopTimeout, then kills
// the whole process group. Stopping a stopped process is a no-op.
func (p *process) stop() error {
	if p == nil || p.cmd == nil || p.hasExited() {
		return nil
	}
	pid := p.cmd.Process.Pid
	_ = syscall.Kill(pid, p.stopSig)
	select {
	case <-p.exited:
	case <-time.After(stopTimeout):
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		<-p.exited
	}
	// Reap anything the server left in its group (PostgreSQL backends exit
	// with the postmaster, but be sure nothing outlives a stop).
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	return nil
}

// waitReady polls probe until it succeeds, the process exits, or
// readyTimeout passes; failures carry the log tail.
func (p *process) waitReady(probe func() error) error {
	deadline := time.Now().Add(readyTimeout)
	delay := 10 * time.Millisecond
	for {
		err := probe()
		if err == nil {
			return nil
		}
		if p.hasExited() {
			return fmt.Errorf("%s exited during start-up (%v); last probe: %v\n%s", p.name, p.err, err, p.logTail())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %s: %v\n%s", p.name, readyTimeout, err, p.logTail())
		}
		time.Sleep(delay)
		delay = min(delay*2, 200*time.Millisecond)
	}
}

// logTail returns the last lines of the server's log, labelled.
func (p *process) logTail() string {
	data, err := os.ReadFile(p.logPath)
	if err != nil {
		return fmt.Sprintf("--- %s log unreadable: %v", p.name, err)
	}
	lines := bytes.Split(bytes.TrimRight(data, "\n"), []byte("\n"))
	if len(lines) > logTailLines {
		lines = lines[len(lines)-logTailLines:]
	}
	return fmt.Sprintf("--- last lines of %s log (%s):\n%s", p.name, p.logPath, bytes.Join(lines, []byte("\n")))
}

// logContains reports whether the log mentions s (used to spot a port lost
// to a race between FreePort and the server's bind).
func (p *process) logContains(s string) bool {
	data, err := os.ReadFile(p.logPath)
	return err == nil && bytes.Contains(data, []byte(s))
}

var errPortTaken = errors.New("port taken")

// Pdeathsig fires when the OS thread that forked the child exits, not the
// process (golang/go#27505), and Go ends a thread whenever a goroutine exits
// while locked to it. So every child is forked from one goroutine locked
// to its thread for the life of the test binary. Package state because the
// thread must outlive every test.
var spawner struct {
	once sync.Once
	reqs chan spawnRequest
}

type spawnRequest struct {
	cmd  *exec.Cmd
	done chan error
}

func startOnSpawnerThread(cmd *exec.Cmd) error {
	spawner.once.Do(func() {
		spawner.reqs = make(chan spawnRequest)
		go func() {
			runtime.LockOSThread() // never unlocked: the thread lives until exit
			for req := range spawner.reqs {
				req.done <- req.cmd.Start()
			}
		}()
	})
	done := make(chan error, 1)
	spawner.reqs <- spawnRequest{cmd: cmd, done: done}
	return <-done
}

// server gives a started process its public life cycle: Stop, Start,
// Restart (same arguments, so same port and data) and LogTail. Postgres,
// Redis and Caddy embed it.
type server struct {
	mu    sync.Mutex // serialises life-cycle calls
	proc  *process
	probe func() error // succeeds once the server serves
	// portTaken is the log text meaning the port was taken between
	// FreePort and the server's bind; start then reports errPortTaken.
	portTaken string
}

// Stop shuts the server down gracefully, killing it after a bound.
// Stopping a stopped server is a no-op.
func (s *server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc.stop()
}

// Start starts a stopped server again with the same arguments (port, data
// directory, configuration file) and waits until it serves. Starting a
// running server is a no-op.
func (s *server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.startLocked()
}

// Restart stops and starts the server.
func (s *server) Restart() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.proc.stop(); err != nil {
		return err
	}
	return s.startLocked()
}

// LogTail returns the last lines of the server's log, for failure messages.
func (s *server) LogTail() string { return s.proc.logTail() }

func (s *server) startLocked() error {
	if s.proc.running() {
		return nil
	}
	if err := s.proc.start(); err != nil {
		return err
	}
	if err := s.proc.waitReady(s.probe); err != nil {
		_ = s.proc.stop()
		if s.portTaken != "" && s.proc.logContains(s.portTaken) {
			return fmt.Errorf("%w: %v", errPortTaken, err)
		}
		return err
	}
	return nil
}
