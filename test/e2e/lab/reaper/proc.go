package reaper

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/mtu-operator/mtu-operator/internal/node/nettest"
)

// process identifies a process across pid reuse: a pid names a different process once the
// first has exited, but that one has a different start time.
type process struct {
	pid int
	// start is field 22 of /proc/<pid>/stat: clock ticks (10 ms) after boot. Only a pid
	// handed out again within the same tick would fool it.
	start uint64
}

// running reports whether the process is still there: its pid exists, has the registered
// start time and has not exited. A zombie has exited: it holds no files, mounts or
// namespaces any more, and only its parent, which may be dead, can remove it.
func (p process) running() bool {
	st, err := readStat(p.pid)
	return err == nil && st.start == p.start && !st.exited()
}

// stat holds the fields of /proc/<pid>/stat the reaper needs.
type stat struct {
	comm  string
	state byte
	ppid  int
	start uint64
}

// exited reports a zombie ('Z') or a process being removed ('X').
func (s stat) exited() bool { return s.state == 'Z' || s.state == 'X' }

func readStat(pid int) (stat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return stat{}, err
	}
	return parseStat(string(b))
}

// parseStat parses a /proc/<pid>/stat line: "pid (comm) state ppid ... starttime ...". The
// command name may hold spaces and parentheses, so the fields start after the last ')'.
func parseStat(line string) (stat, error) {
	open := strings.IndexByte(line, '(')
	end := strings.LastIndexByte(line, ')')
	if open < 0 || end < open {
		return stat{}, fmt.Errorf("malformed stat line %q", line)
	}
	fields := strings.Fields(line[end+1:]) // fields[0] is field 3, state
	const startIndex = 22 - 3
	if len(fields) <= startIndex || len(fields[0]) != 1 {
		return stat{}, fmt.Errorf("malformed stat line %q", line)
	}
	ppid, err := strconv.Atoi(fields[1])
	if err != nil {
		return stat{}, fmt.Errorf("malformed parent pid in stat line %q", line)
	}
	start, err := strconv.ParseUint(fields[startIndex], 10, 64)
	if err != nil {
		return stat{}, fmt.Errorf("malformed start time in stat line %q", line)
	}
	return stat{comm: line[open+1 : end], state: fields[0][0], ppid: ppid, start: start}, nil
}

// Child is a running child process: its pid, command name and start time, which tell it
// from a later process given the same pid.
type Child struct {
	Pid   int
	Comm  string
	start uint64
}

func (c Child) process() process { return process{pid: c.Pid, start: c.start} }

// Running says whether the child still runs: the same process, not exited.
func (c Child) Running() bool { return c.process().running() }

// ChildrenOf returns the running child processes of the process parent.
func ChildrenOf(parent int) ([]Child, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var children []Child
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue // not a process
		}
		st, err := readStat(pid)
		if err != nil {
			continue // exited meanwhile
		}
		if st.ppid == parent && !st.exited() {
			children = append(children, Child{Pid: pid, Comm: st.comm, start: st.start})
		}
	}
	return children, nil
}

// mountPointsUnder returns the mount points at or under dir in this process's mount
// namespace, deepest first.
func mountPointsUnder(dir string) ([]string, error) {
	points, err := nettest.MountPoints()
	if err != nil {
		return nil, err
	}
	var under []string
	for _, p := range points {
		if p == dir || strings.HasPrefix(p, dir+"/") {
			under = append(under, p)
		}
	}
	slices.SortStableFunc(under, func(a, b string) int {
		return strings.Count(b, "/") - strings.Count(a, "/")
	})
	return under, nil
}
