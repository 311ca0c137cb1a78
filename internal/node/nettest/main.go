package nettest

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// leakWait bounds how long Main waits for goroutines and namespaces of finished tests to go
// away: their exit is not an event it can await.
const leakWait = 5 * time.Second

// Main runs the package's tests and then fails the run if they left anything behind: a host
// link or a named namespace in /run/netns carrying this run's Prefix, a namespace file this
// run mounted (Mount), an open namespace handle, a thread still inside a test namespace, or
// a goroutine of netlink or of this project's node packages. It looks only at what this run
// made, so two test runs, or a test run and `make demo`, can share a machine. One exception:
// a link that appeared in the host's namespace during the run is reported whatever its name,
// since no correct test or lab makes one there (a CNI plugin run in the wrong namespace does).
// Use it as
//
//	func TestMain(m *testing.M) { os.Exit(nettest.Main(m)) }
func Main(m *testing.M) int {
	before, err := snapshot()
	if err != nil {
		fmt.Fprintf(os.Stderr, "nettest: recording the host's network state: %v\n", err)
		return 1
	}
	code := m.Run()

	var problems []string
	deadline := time.Now().Add(leakWait)
	for {
		problems = problems[:0]
		if g := leakedGoroutines(); g != "" {
			problems = append(problems, "goroutines still running after the tests:\n"+g)
		}
		after, err := snapshot()
		if err != nil {
			problems = append(problems, "recording the host's network state: "+err.Error())
		} else {
			problems = append(problems, before.diff(after)...)
		}
		if len(problems) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond) // goroutine exit cannot be awaited: poll, bounded by leakWait
	}
	if len(problems) > 0 {
		fmt.Fprintf(os.Stderr, "nettest: the tests left the host changed:\n%s\n", strings.Join(problems, "\n"))
		return 1
	}
	return code
}

// hostState is what this run has made that is visible from outside it.
type hostState struct {
	// links and namedNS carry the run's Prefix.
	links []string
	// hostLinks are every host link, by name and index.
	hostLinks   []string
	namedNS     []string
	mounts      []string
	nsHandles   int
	hostNS      string
	threadNSOut []string
}

func snapshot() (hostState, error) {
	var s hostState
	links, err := hostLinks()
	if err != nil {
		return s, fmt.Errorf("listing links: %w", err)
	}
	for _, l := range links {
		if strings.HasPrefix(l, Prefix()) {
			s.links = append(s.links, l)
		}
		name, _, _ := strings.Cut(l, " mtu ")
		s.hostLinks = append(s.hostLinks, name)
	}
	entries, err := os.ReadDir("/run/netns")
	if err != nil && !os.IsNotExist(err) {
		return s, err
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), Prefix()) {
			s.namedNS = append(s.namedNS, e.Name())
		}
	}
	if s.mounts, err = mountedByThisRun(); err != nil {
		return s, err
	}
	if s.hostNS, err = os.Readlink("/proc/self/ns/net"); err != nil {
		return s, err
	}
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return s, err
	}
	for _, fd := range fds {
		if target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name())); err == nil && strings.HasPrefix(target, "net:[") {
			s.nsHandles++
		}
	}
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return s, err
	}
	for _, task := range tasks {
		ns, err := os.Readlink(filepath.Join("/proc/self/task", task.Name(), "ns/net"))
		if err == nil && ns != s.hostNS {
			s.threadNSOut = append(s.threadNSOut, fmt.Sprintf("thread %s in %s", task.Name(), ns))
		}
	}
	return s, nil
}

func (s hostState) diff(after hostState) []string {
	var out []string
	if !slices.Equal(s.links, after.links) {
		out = append(out, fmt.Sprintf("host links of this run changed: before %v, after %v", s.links, after.links))
	}
	if !slices.Equal(s.namedNS, after.namedNS) {
		out = append(out, fmt.Sprintf("named network namespaces of this run changed: before %v, after %v", s.namedNS, after.namedNS))
	}
	var appeared []string
	for _, l := range after.hostLinks {
		if !slices.Contains(s.hostLinks, l) && !strings.HasPrefix(l, Prefix()) {
			appeared = append(appeared, l)
		}
	}
	if len(appeared) > 0 {
		out = append(out, fmt.Sprintf("links appeared in the host's network namespace: %v", appeared))
	}
	if len(after.mounts) > 0 {
		out = append(out, fmt.Sprintf("namespace files still mounted: %v", after.mounts))
	}
	if after.nsHandles > s.nsHandles {
		out = append(out, fmt.Sprintf("%d network namespace handles left open", after.nsHandles-s.nsHandles))
	}
	if len(after.threadNSOut) > 0 {
		out = append(out, "threads outside the host network namespace: "+strings.Join(after.threadNSOut, ", "))
	}
	return out
}

// leakedGoroutines returns the stacks of goroutines, other than the caller's, running code of
// netlink or of the node packages.
func leakedGoroutines() string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	stacks := strings.Split(string(buf), "\n\n")
	var leaked []string
	for _, g := range stacks[1:] { // the first is the caller
		if strings.Contains(g, "github.com/vishvananda/") || strings.Contains(g, "github.com/mtu-operator/mtu-operator/internal/node/") {
			leaked = append(leaked, g)
		}
	}
	return strings.Join(leaked, "\n\n")
}
