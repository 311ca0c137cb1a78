package reaper

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// killWait bounds how long the reaper waits for killed processes to go before it unmounts
// what they may still use.
const killWait = 10 * time.Second

// maxUnmountRounds bounds the unmounting of mounts stacked on one another.
const maxUnmountRounds = 16

// serveReaper is the reaper process: it reads registrations until the lab closes the pipe
// and cleans up unless the lab said it had. It returns the exit code.
func serveReaper() int {
	// SIGINT, SIGTERM, SIGHUP: whatever stops the lab must not stop the reaper before it
	// cleans. SIGPIPE: its standard error may be a pipe to a reader that died with the lab,
	// and Go exits on a broken standard error unless the signal is ignored. SIGTTOU: under
	// `stty tostop` a background process group writing to the terminal would be stopped.
	signal.Ignore(syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGPIPE, syscall.SIGTTOU)
	closeInheritedFiles()
	registrations := os.NewFile(registrationsFD, "lab registrations")
	// The lab waits for this line, so that once Start returns the signals are ignored and
	// the files closed. If the lab is already gone, the pipe tells the rest.
	_, _ = fmt.Fprintln(os.Stdout, readyMessage)
	_ = os.Stdout.Close()

	reg, clean := readRegistrations(registrations, os.Stderr)
	if !clean {
		reg.cleanUp(os.Stderr)
	}
	return 0
}

// closeInheritedFiles closes the files the reaper inherited by mistake: a descriptor the lab
// opened without close-on-exec. One on a node's network namespace would keep that namespace
// alive as long as the reaper runs. Every descriptor this process opened itself has
// close-on-exec set, as Go sets it everywhere.
func closeInheritedFiles() {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return
	}
	for _, e := range entries {
		fd, err := strconv.Atoi(e.Name())
		if err != nil || fd <= registrationsFD {
			continue
		}
		if flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err == nil && flags&unix.FD_CLOEXEC == 0 {
			_ = unix.Close(fd)
		}
	}
}

// registry is what the lab registered, in order.
type registry struct {
	processes []process
	mounts    []string
	dirs      []string
	seen      map[string]bool
}

// readRegistrations reads registrations until end of file and reports whether the lab said
// it cleaned up. A read error counts as the lab's death.
func readRegistrations(in io.Reader, log io.Writer) (_ *registry, clean bool) {
	reg := &registry{seen: map[string]bool{}}
	s := bufio.NewScanner(in)
	for s.Scan() {
		line := s.Text()
		if line == cleanMessage {
			clean = true
			continue
		}
		if err := reg.add(line); err != nil {
			report(log, "ignoring registration %q: %v", line, err)
		}
	}
	if err := s.Err(); err != nil {
		report(log, "reading registrations: %v", err)
		clean = false
	}
	return reg, clean
}

func (reg *registry) add(line string) error {
	if reg.seen[line] {
		return nil // Children registers a child on every call
	}
	kind, arg, _ := strings.Cut(line, " ")
	switch kind {
	case processKind:
		pidField, startField, _ := strings.Cut(arg, " ")
		pid, err := strconv.Atoi(pidField)
		if err != nil {
			return err
		}
		start, err := strconv.ParseUint(startField, 10, 64)
		if err != nil {
			return err
		}
		reg.processes = append(reg.processes, process{pid: pid, start: start})
	case mountKind, dirKind:
		path, err := strconv.Unquote(arg)
		if err != nil {
			return err
		}
		if !filepath.IsAbs(path) || path == "/" {
			return errors.New("not an absolute path below /")
		}
		if kind == mountKind {
			reg.mounts = append(reg.mounts, path)
		} else {
			reg.dirs = append(reg.dirs, path)
		}
	default:
		return errors.New("unknown kind")
	}
	reg.seen[line] = true
	return nil
}

// cleanUp kills the processes, waits for them to go, then unmounts the mounts and removes
// the directories, each kind in the reverse order of registration.
func (reg *registry) cleanUp(log io.Writer) {
	killAll(reg.processes, log)
	for _, path := range slices.Backward(reg.mounts) {
		unmountAndRemove(path, log)
	}
	for _, dir := range slices.Backward(reg.dirs) {
		removeDir(dir, log)
	}
}

// killAll SIGKILLs the processes still running and waits, bounded by killWait, for them to
// go.
func killAll(processes []process, log io.Writer) {
	var killed []process
	for _, p := range processes {
		if p.pid == os.Getpid() {
			continue // the reaper is among the lab's children
		}
		if comm, ok := kill(p, log); ok {
			report(log, "killed process %d (%s)", p.pid, comm)
			killed = append(killed, p)
		}
	}
	deadline := time.Now().Add(killWait)
	for {
		killed = slices.DeleteFunc(killed, func(p process) bool { return !p.running() })
		if len(killed) == 0 {
			return
		}
		if time.Now().After(deadline) {
			for _, p := range killed {
				report(log, "process %d still running %s after SIGKILL", p.pid, killWait)
			}
			return
		}
		time.Sleep(50 * time.Millisecond) // another process's exit cannot be awaited: poll
	}
}

// kill SIGKILLs the process if it is still the registered one and returns its command name.
func kill(p process, log io.Writer) (comm string, ok bool) {
	// A pidfd: once the start time matches, the signal reaches that process or none, even
	// if the pid is reused in between.
	handle, err := os.FindProcess(p.pid)
	if err != nil {
		return "", false
	}
	defer func() { _ = handle.Release() }()
	st, err := readStat(p.pid)
	if err != nil || st.start != p.start || st.exited() {
		return "", false
	}
	if err := handle.Kill(); err != nil {
		if !errors.Is(err, os.ErrProcessDone) {
			report(log, "killing process %d (%s): %v", p.pid, st.comm, err)
		}
		return "", false
	}
	return st.comm, true
}

// unmountAndRemove unmounts every mount stacked on path, lazily, and removes the file.
func unmountAndRemove(path string, log io.Writer) {
	for range maxUnmountRounds {
		err := unix.Unmount(path, unix.MNT_DETACH)
		if err != nil {
			if !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) { // EINVAL: not a mount point
				report(log, "unmounting %s: %v", path, err)
			}
			break
		}
		report(log, "unmounted %s", path)
	}
	if err := os.Remove(path); err == nil {
		report(log, "removed %s", path)
	} else if !errors.Is(err, os.ErrNotExist) {
		report(log, "removing %s: %v", path, err)
	}
}

// Sweep removes paths now, as the reaper does after an unclean end: every mount at or under
// each, then the path itself. It reports what it removed to log. A later lab uses it for what
// an earlier one left when its reaper was killed too.
func Sweep(log io.Writer, paths ...string) {
	for _, p := range paths {
		removeDir(p, log)
	}
}

// removeDir unmounts every mount point at or under dir, deepest first, and removes dir. It
// removes nothing while a mount is left: removing recursively would delete the contents of
// the mounted file system.
func removeDir(dir string, log io.Writer) {
	if resolved, err := filepath.EvalSymlinks(dir); err == nil {
		dir = resolved // mountinfo names mount points without symlinks
	} else if errors.Is(err, os.ErrNotExist) {
		return
	}
	for round := 0; ; round++ {
		mounts, err := mountPointsUnder(dir)
		if err != nil {
			report(log, "not removing %s: listing its mounts: %v", dir, err)
			return
		}
		if len(mounts) == 0 {
			break
		}
		if round == maxUnmountRounds {
			report(log, "not removing %s: still mounted: %s", dir, strings.Join(mounts, ", "))
			return
		}
		for _, mountPoint := range mounts {
			if err := unix.Unmount(mountPoint, unix.MNT_DETACH); err == nil {
				report(log, "unmounted %s", mountPoint)
			} else if !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
				report(log, "unmounting %s: %v", mountPoint, err)
			}
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		report(log, "removing %s: %v", dir, err)
		return
	}
	report(log, "removed %s", dir)
}

func report(log io.Writer, format string, args ...any) {
	_, _ = fmt.Fprintf(log, "lab reaper: "+format+"\n", args...)
}
