package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"
)

// child is one server process of ours (mock, proxy, FluxCode node) with its output in a log
// file. Children are started from the main goroutine, which main locks to its OS thread:
// Pdeathsig fires when the thread that forked a child exits (golang/go#27505), so the
// children die with the harness however it ends.
type child struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{}
}

// startChild runs path with args and env (added to a minimal environment).
func startChild(name, logDir, path string, args, env []string) (*child, error) {
	logPath := logDir + "/" + name + ".log"
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close() // the child has its own copy
	cmd := exec.Command(path, args...)
	cmd.Env = append([]string{"PATH=/usr/bin:/bin", "HOME=" + logDir, "TZ=UTC"}, env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, logPath: logPath, exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(c.exited) }()
	return c, nil
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// stop asks the process to end (SIGTERM), then kills its group after a bound.
func (c *child) stop() {
	if c == nil {
		return
	}
	select {
	case <-c.exited:
		return
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
	case <-time.After(15 * time.Second):
	}
	_ = syscall.Kill(-c.pid(), syscall.SIGKILL)
	<-c.exited
}

// waitReady polls probe until it succeeds, the process exits, or a minute passes.
func (c *child) waitReady(probe func() error) error {
	deadline := time.Now().Add(time.Minute)
	for {
		err := probe()
		if err == nil {
			return nil
		}
		select {
		case <-c.exited:
			return fmt.Errorf("%s exited during start-up: %v\n%s", c.name, err, c.logTail())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after a minute: %v\n%s", c.name, err, c.logTail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *child) logTail() string {
	data, _ := os.ReadFile(c.logPath)
	lines := bytes.Split(bytes.TrimRight(data, "\n"), []byte("\n"))
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return fmt.Sprintf("--- last lines of %s:\n%s", c.logPath, bytes.Join(lines, []byte("\n")))
}

// freeAddr returns 127.0.0.1:PORT with a port that was free a moment ago.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("free port: %w", err)
	}
	defer l.Close()
	return "127.0.0.1:" + strconv.Itoa(l.Addr().(*net.TCPAddr).Port), nil
}
