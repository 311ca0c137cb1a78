package reaper

import (
	"bufio"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
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

// childrenOf returns the running child processes of the process parent.
func childrenOf(parent int) ([]process, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var children []process
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
			children = append(children, process{pid: pid, start: st.start})
		}
	}
	return children, nil
}

// mountPointsUnder returns the mount points at or under dir in this process's mount
// namespace, deepest first.
func mountPointsUnder(dir string) ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var under []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		// "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw": field 5 is
		// the mount point.
		fields := strings.Fields(s.Text())
		if len(fields) < 5 {
			return nil, fmt.Errorf("malformed mountinfo line %q", s.Text())
		}
		mountPoint := unescapeMountinfo(fields[4])
		if mountPoint == dir || strings.HasPrefix(mountPoint, dir+"/") {
			under = append(under, mountPoint)
		}
	}
	if err := s.Err(); err != nil {
		return nil, err
	}
	slices.SortStableFunc(under, func(a, b string) int {
		return strings.Count(b, "/") - strings.Count(a, "/")
	})
	return under, nil
}

// unescapeMountinfo undoes the kernel's octal escapes in a mountinfo path: \040 for a space,
// \011 tab, \012 newline, \134 backslash.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }
