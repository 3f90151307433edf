// Package proc reads what the benchmark harness measures about a server process from Linux's
// /proc: CPU time used (utime+stime, for one process or a process and all its descendants)
// and resident memory (VmRSS).
package proc

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// userHZ is the unit of the CPU times in /proc/<pid>/stat (USER_HZ). It is 100 on every
// Linux architecture Go supports; the kernel fixes it for user space whatever CONFIG_HZ is.
const userHZ = 100

// Root is the proc file system; tests point it at a fixture directory.
type Root string

// Default is the live /proc.
const Default Root = "/proc"

// Times is the CPU time of a process: its own user and system time, plus that of its children
// it has waited for (so a PostgreSQL backend that exited still counts, through the postmaster).
type Times struct {
	User, System, ChildUser, ChildSystem time.Duration
}

// Total is the sum of all four times.
func (t Times) Total() time.Duration { return t.User + t.System + t.ChildUser + t.ChildSystem }

// stat holds the /proc/<pid>/stat fields the harness uses.
type stat struct {
	ppid  int
	times Times
}

// readStat parses /proc/<pid>/stat. The command name (field 2) is in parentheses and may hold
// spaces and parentheses itself, so fields are counted from the last ')'.
func (r Root) readStat(pid int) (stat, error) {
	data, err := os.ReadFile(filepath.Join(string(r), strconv.Itoa(pid), "stat"))
	if err != nil {
		return stat{}, fmt.Errorf("read stat of pid %d: %w", pid, err)
	}
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return stat{}, fmt.Errorf("stat of pid %d: no command name", pid)
	}
	// After ") ": field 3 (state) is index 0, so field n is index n-3.
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 15 {
		return stat{}, fmt.Errorf("stat of pid %d: %d fields after the name, want at least 15", pid, len(f))
	}
	num := func(field int) (int64, error) {
		v, err := strconv.ParseInt(f[field-3], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("stat of pid %d field %d: %w", pid, field, err)
		}
		return v, nil
	}
	var vals [5]int64
	for k, field := range []int{4, 14, 15, 16, 17} { // ppid, utime, stime, cutime, cstime
		if vals[k], err = num(field); err != nil {
			return stat{}, err
		}
	}
	tick := func(v int64) time.Duration { return time.Duration(v) * time.Second / userHZ }
	return stat{ppid: int(vals[0]), times: Times{
		User: tick(vals[1]), System: tick(vals[2]), ChildUser: tick(vals[3]), ChildSystem: tick(vals[4]),
	}}, nil
}

// CPU returns the CPU times of process pid.
func (r Root) CPU(pid int) (Times, error) {
	s, err := r.readStat(pid)
	return s.times, err
}

// TreeCPU returns the summed CPU times of process pid and every live descendant of it
// (PostgreSQL's postmaster and its backends). It follows parent ids, not the process group:
// each PostgreSQL backend calls setsid() and leads a group of its own. Processes that vanish
// while they are read are skipped: their time, once reaped, shows in their parent's child
// times.
func (r Root) TreeCPU(pid int) (Times, error) {
	entries, err := os.ReadDir(string(r))
	if err != nil {
		return Times{}, fmt.Errorf("list processes: %w", err)
	}
	stats := make(map[int]stat)
	children := make(map[int][]int)
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil || !e.IsDir() {
			continue
		}
		s, err := r.readStat(p)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			return Times{}, err
		}
		stats[p] = s
		children[s.ppid] = append(children[s.ppid], p)
	}
	if _, ok := stats[pid]; !ok {
		return Times{}, fmt.Errorf("no process %d", pid)
	}
	var sum Times
	for todo := []int{pid}; len(todo) > 0; {
		p := todo[len(todo)-1]
		todo = append(todo[:len(todo)-1], children[p]...)
		t := stats[p].times
		sum.User += t.User
		sum.System += t.System
		sum.ChildUser += t.ChildUser
		sum.ChildSystem += t.ChildSystem
	}
	return sum, nil
}

// RSS returns the resident set size of process pid (VmRSS in /proc/<pid>/status), in bytes.
func (r Root) RSS(pid int) (int64, error) {
	data, err := os.ReadFile(filepath.Join(string(r), strconv.Itoa(pid), "status"))
	if err != nil {
		return 0, fmt.Errorf("read status of pid %d: %w", pid, err)
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		rest, ok := strings.CutPrefix(line, "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("status of pid %d: unexpected VmRSS line %q", pid, line)
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("status of pid %d: VmRSS: %w", pid, err)
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("status of pid %d: no VmRSS (a kernel thread or a zombie?)", pid)
}
