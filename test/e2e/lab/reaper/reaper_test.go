package reaper

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/mtu-operator/mtu-operator/internal/node/nettest"
	"github.com/mtu-operator/mtu-operator/internal/poll"
)

// The test binary re-executed as a lab: these say how.
const (
	// labRegisterEnv: how the lab registers its sleeping child, "process" or "children".
	labRegisterEnv = "MTU_REAPER_TEST_LAB_REGISTER"
	// labDirEnv: where the lab mounts.
	labDirEnv = "MTU_REAPER_TEST_LAB_DIR"
	// labCloseEnv: "1" to close the reaper and exit once ready; otherwise the lab waits for
	// its standard input to close and exits without closing it, as a crash would.
	labCloseEnv = "MTU_REAPER_TEST_LAB_CLOSE"
)

func TestMain(m *testing.M) {
	Serve()
	if register := os.Getenv(labRegisterEnv); register != "" {
		if err := runLab(register, labPathsIn(os.Getenv(labDirEnv)), os.Getenv(labCloseEnv) == "1"); err != nil {
			fmt.Fprintln(os.Stderr, "lab:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(nettest.Main(m))
}

// labPaths are the files of a test lab, all in one temporary directory.
type labPaths struct {
	// source is bind-mounted on fileMount and dirBound; it is not registered.
	source     string
	fileMount  string
	netnsMount string
	// dir holds tmpfs mounts on dirOuter and dirInner and a bind mount on dirBound.
	dir, dirOuter, dirInner, dirBound string
}

func labPathsIn(tmp string) labPaths {
	dir := filepath.Join(tmp, "lab")
	return labPaths{
		source:     filepath.Join(tmp, "source"),
		fileMount:  filepath.Join(tmp, "file-mount"),
		netnsMount: filepath.Join(tmp, "netns-mount"),
		dir:        dir,
		dirOuter:   filepath.Join(dir, "outer"),
		dirInner:   filepath.Join(dir, "outer", "inner"),
		dirBound:   filepath.Join(dir, "bound"),
	}
}

// mountPoints lists the lab's mount points, each after the one it is inside.
func (p labPaths) mountPoints() []string {
	return []string{p.fileMount, p.netnsMount, p.dirOuter, p.dirInner, p.dirBound}
}

// runLab is the lab process: it starts a reaper, a sleeping child and mounts, as the real lab
// does, registering each before creating it, then prints "sleeper <pid> <start time>",
// "reaper <pid> <start time>" and "ready".
func runLab(register string, paths labPaths, closeReaper bool) error {
	r, err := Start()
	if err != nil {
		return err
	}
	sleeper := exec.Command("/bin/sleep", "1000")
	if err := sleeper.Start(); err != nil {
		return err
	}
	switch register {
	case "process":
		err = r.Process(sleeper.Process.Pid)
	case "children":
		err = r.Children()
	default:
		err = fmt.Errorf("unknown registration %q", register)
	}
	if err != nil {
		return err
	}

	bindFile := func(target string) error {
		if err := os.WriteFile(target, nil, 0o644); err != nil {
			return err
		}
		return unix.Mount(paths.source, target, "", unix.MS_BIND, "")
	}
	if err := r.Mount(paths.fileMount); err != nil {
		return err
	}
	if err := bindFile(paths.fileMount); err != nil {
		return err
	}
	if err := r.Mount(paths.netnsMount); err != nil {
		return err
	}
	ns, err := nettest.CreateNamespace()
	if err != nil {
		return err
	}
	if err := nettest.Mount(fmt.Sprintf("/proc/self/fd/%d", ns), paths.netnsMount); err != nil {
		return err
	}
	_ = ns.Close() // the mount keeps the namespace
	if err := r.Dir(paths.dir); err != nil {
		return err
	}
	for _, tmpfs := range []string{paths.dirOuter, paths.dirInner} {
		if err := os.MkdirAll(tmpfs, 0o755); err != nil {
			return err
		}
		if err := unix.Mount("tmpfs", tmpfs, "tmpfs", 0, ""); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(tmpfs, "data"), []byte("data"), 0o644); err != nil {
			return err
		}
	}
	if err := bindFile(paths.dirBound); err != nil {
		return err
	}

	// The start times are read here, where both processes surely run: the reaper exits
	// on Close.
	for name, pid := range map[string]int{"sleeper": sleeper.Process.Pid, "reaper": r.cmd.Process.Pid} {
		st, err := readStat(pid)
		if err != nil {
			return err
		}
		fmt.Printf("%s %d %d\n", name, pid, st.start)
	}
	fmt.Println("ready")
	if closeReaper {
		return r.Close()
	}
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
	return errors.New("standard input closed")
}

// testLab is a lab process started by a test.
type testLab struct {
	paths   labPaths
	cmd     *exec.Cmd
	stderr  bytes.Buffer
	sleeper process
	reaper  process
}

// startLab starts the test binary as a lab and waits until it is ready. Whatever the lab and
// its reaper leave is removed when the test ends.
func startLab(t *testing.T, register string, closeReaper bool) *testLab {
	t.Helper()
	nettest.RequirePrivileged(t)
	tmp := t.TempDir()
	lab := &testLab{paths: labPathsIn(tmp)}
	if err := os.WriteFile(lab.paths.source, []byte("source"), 0o644); err != nil {
		t.Fatal(err)
	}
	closeValue := ""
	if closeReaper {
		closeValue = "1"
	}
	lab.cmd = exec.Command("/proc/self/exe")
	lab.cmd.Env = append(os.Environ(), labRegisterEnv+"="+register, labDirEnv+"="+tmp, labCloseEnv+"="+closeValue)
	lab.cmd.Stderr = &lab.stderr
	// The reaper inherits the lab's standard error: Wait returns once both have exited.
	lab.cmd.WaitDelay = 2 * killWait
	// A pipe the test holds open until Wait: were the test binary to die, the lab would
	// read end of file and exit, and its reaper clean up.
	if _, err := lab.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := lab.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(lab.remove) // before Start: cleanups run last-registered first, TempDir's after
	if err := lab.cmd.Start(); err != nil {
		t.Fatal(err)
	}

	lines := bufio.NewScanner(stdout)
	for lines.Scan() {
		if lines.Text() == "ready" {
			return lab
		}
		var name string
		var p process
		if _, err := fmt.Sscanf(lines.Text(), "%s %d %d", &name, &p.pid, &p.start); err != nil {
			t.Fatalf("lab wrote %q: %v", lines.Text(), err)
		}
		switch name {
		case "sleeper":
			lab.sleeper = p
		case "reaper":
			lab.reaper = p
		}
	}
	err = lab.cmd.Wait()
	t.Fatalf("lab exited before it was ready (%v):\n%s", err, lab.stderr.String())
	return nil
}

// remove kills the lab's processes and unmounts its mounts, if still there.
func (lab *testLab) remove() {
	if lab.cmd.Process != nil && lab.cmd.ProcessState == nil {
		_ = lab.cmd.Process.Kill()
		_ = lab.cmd.Wait()
	}
	for _, p := range []process{lab.sleeper, lab.reaper} {
		if p.pid != 0 {
			_, _ = kill(p, io.Discard)
		}
	}
	for _, mountPoint := range slices.Backward(lab.paths.mountPoints()) {
		for range maxUnmountRounds {
			if unix.Unmount(mountPoint, unix.MNT_DETACH) != nil {
				break
			}
		}
	}
}

// mountedUnder reads the mount points under dir from /proc/self/mountinfo, without the
// package's parser (the test paths hold no characters mountinfo escapes).
func mountedUnder(t *testing.T, dir string) []string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var under []string
	for line := range strings.Lines(string(b)) {
		if mountPoint := strings.Fields(line)[4]; strings.HasPrefix(mountPoint, dir+"/") {
			under = append(under, mountPoint)
		}
	}
	return under
}

func TestReaperCleansUpAfterAKilledLab(t *testing.T) {
	for _, register := range []string{"process", "children"} {
		t.Run(register, func(t *testing.T) {
			lab := startLab(t, register, false)
			tmp := filepath.Dir(lab.paths.source)
			if got := mountedUnder(t, tmp); len(got) != len(lab.paths.mountPoints()) {
				t.Fatalf("the lab mounted %v, want %v", got, lab.paths.mountPoints())
			}

			// What stops the lab must not stop the reaper: a Ctrl-C in the terminal goes to
			// the lab's process group, a system shutting down sends SIGTERM, a closed
			// terminal SIGHUP.
			if pgid, err := unix.Getpgid(lab.reaper.pid); err != nil || pgid != lab.reaper.pid {
				t.Errorf("reaper %d in process group %d (%v), want its own", lab.reaper.pid, pgid, err)
			}
			for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP} {
				if err := syscall.Kill(lab.reaper.pid, sig); err != nil {
					t.Fatal(err)
				}
			}

			if err := lab.cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			_ = lab.cmd.Wait()

			poll.Eventually(t, "the reaper kills the lab's sleeping child", 5*time.Second, func() error {
				if lab.sleeper.running() {
					return fmt.Errorf("process %d still running", lab.sleeper.pid)
				}
				return nil
			})
			poll.Eventually(t, "the reaper unmounts the lab's mounts", 5*time.Second, func() error {
				if got := mountedUnder(t, tmp); len(got) > 0 {
					return fmt.Errorf("still mounted: %v", got)
				}
				return nil
			})
			poll.Eventually(t, "the reaper removes the lab's files and directory", 5*time.Second, func() error {
				for _, path := range []string{lab.paths.fileMount, lab.paths.netnsMount, lab.paths.dir} {
					if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
						return fmt.Errorf("%s: %w", path, err)
					}
				}
				return nil
			})
			poll.Eventually(t, "the reaper exits", 5*time.Second, func() error {
				if lab.reaper.running() {
					return fmt.Errorf("reaper %d still running", lab.reaper.pid)
				}
				return nil
			})
			if b, err := os.ReadFile(lab.paths.source); err != nil || string(b) != "source" {
				t.Errorf("the reaper touched the unregistered %s: %q, %v", lab.paths.source, b, err)
			}
			stderr := lab.stderr.String()
			for _, want := range []string{
				fmt.Sprintf("lab reaper: killed process %d (sleep)\n", lab.sleeper.pid),
				fmt.Sprintf("lab reaper: unmounted %s\n", lab.paths.netnsMount),
				// Deepest first: unmounting the outer tmpfs first would take the inner one
				// along unreported.
				fmt.Sprintf("lab reaper: unmounted %s\n", lab.paths.dirInner),
				fmt.Sprintf("lab reaper: removed %s\n", lab.paths.dir),
			} {
				if !strings.Contains(stderr, want) {
					t.Errorf("the reaper did not report %q; its output:\n%s", want, stderr)
				}
			}
		})
	}
}

func TestReaperLeavesEverythingWhenTheLabCloses(t *testing.T) {
	lab := startLab(t, "process", true)
	if err := lab.cmd.Wait(); err != nil {
		t.Fatalf("lab: %v\n%s", err, lab.stderr.String())
	}
	if lab.reaper.running() {
		t.Errorf("reaper %d still running after Close", lab.reaper.pid)
	}
	if !lab.sleeper.running() {
		t.Errorf("the lab's sleeping child %d was killed", lab.sleeper.pid)
	}
	if got := mountedUnder(t, filepath.Dir(lab.paths.source)); len(got) != len(lab.paths.mountPoints()) {
		t.Errorf("mounted after Close: %v, want %v", got, lab.paths.mountPoints())
	}
	if _, err := os.Stat(filepath.Join(lab.paths.dirInner, "data")); err != nil {
		t.Errorf("the lab's directory was touched: %v", err)
	}
	if strings.Contains(lab.stderr.String(), "lab reaper:") {
		t.Errorf("the reaper reported after Close:\n%s", lab.stderr.String())
	}
}

// startSleeper starts a child process that sleeps until the test ends.
func startSleeper(t *testing.T) process {
	t.Helper()
	cmd := exec.Command("/bin/sleep", "1000")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	st, err := readStat(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	return process{pid: cmd.Process.Pid, start: st.start}
}

func TestKillSparesAProcessWithAnotherStartTime(t *testing.T) {
	sleeper := startSleeper(t)
	var log bytes.Buffer

	killAll([]process{{pid: sleeper.pid, start: sleeper.start + 1}}, &log)
	if !sleeper.running() {
		t.Fatalf("killed process %d registered with another start time", sleeper.pid)
	}
	if log.Len() > 0 {
		t.Errorf("reported: %s", log.String())
	}

	killAll([]process{sleeper}, &log)
	if sleeper.running() {
		t.Errorf("process %d still running after killAll", sleeper.pid)
	}
}

func TestKillSparesAProcessThatReusedThePid(t *testing.T) {
	nettest.RequirePrivileged(t) // ns_last_pid is writable by root only
	first := exec.Command("/bin/sleep", "1000")
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	st, err := readStat(first.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	exited := process{pid: first.Process.Pid, start: st.start}
	_ = first.Process.Kill()
	_ = first.Wait()
	time.Sleep(30 * time.Millisecond) // start times count 10 ms ticks: let the next differ

	// Have the kernel hand out the freed pid again; other processes and new threads may
	// take it first, so try a few times.
	var reused *exec.Cmd
	for range 100 {
		if err := os.WriteFile("/proc/sys/kernel/ns_last_pid", []byte(strconv.Itoa(exited.pid-1)), 0); err != nil {
			t.Skipf("cannot choose the next pid: %v", err)
		}
		cmd := exec.Command("/bin/sleep", "1000")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		if cmd.Process.Pid == exited.pid {
			reused = cmd
			break
		}
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
	if reused == nil {
		t.Skipf("pid %d was not handed out again in 100 tries", exited.pid)
	}
	t.Cleanup(func() {
		_ = reused.Process.Kill()
		_ = reused.Wait()
	})

	var log bytes.Buffer
	killAll([]process{exited}, &log)
	if err := reused.Process.Signal(syscall.Signal(0)); err != nil {
		t.Errorf("killed process %d, which reused the pid of the registered one: %v", exited.pid, err)
	}
	if st, err := readStat(exited.pid); err != nil || st.exited() {
		t.Errorf("process %d that reused the pid is gone: %v", exited.pid, err)
	}
	if log.Len() > 0 {
		t.Errorf("reported: %s", log.String())
	}
}

func TestChildrenOfFindsAnUnregisteredChild(t *testing.T) {
	sleeper := startSleeper(t)
	children, err := ChildrenOf(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(children, func(c Child) bool { return c.process() == sleeper }) {
		t.Errorf("children %v lack the sleeper %v", children, sleeper)
	}
}

// startReaperLoggingTo starts a reaper whose standard error is log.
func startReaperLoggingTo(t *testing.T, log *os.File) *Reaper {
	t.Helper()
	stderr := os.Stderr
	os.Stderr = log // the reaper inherits what os.Stderr is when it starts
	r, err := Start()
	os.Stderr = stderr
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// die closes the lab's end of the pipe without saying "clean", as the kernel does when the
// lab dies, and waits for the reaper.
func (r *Reaper) die(t *testing.T) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	_ = r.registrations.Close()
	r.registrations = nil
	if err := r.cmd.Wait(); err != nil {
		t.Fatalf("reaper: %v", err)
	}
}

func TestConcurrentRegistrationsAllReachTheReaper(t *testing.T) {
	tmp := t.TempDir()
	log, err := os.Create(filepath.Join(tmp, "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	r := startReaperLoggingTo(t, log)

	const writers, dirsEach = 8, 50
	dirs := make([][]string, writers)
	for w := range writers {
		for i := range dirsEach {
			// Long names with spaces and newlines, so that interleaved writes would show.
			dir := filepath.Join(tmp, fmt.Sprintf("writer %d\ndir %d %s", w, i, strings.Repeat("x", 200)))
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			dirs[w] = append(dirs[w], dir)
		}
	}
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make(chan error, writers*dirsEach)
	for _, mine := range dirs {
		wg.Go(func() {
			<-start
			for _, dir := range mine {
				errs <- r.Dir(dir)
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}

	r.die(t)
	for _, dir := range slices.Concat(dirs...) {
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%q not removed: %v", dir, err)
		}
	}
	reported, err := os.ReadFile(log.Name())
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(string(reported), "lab reaper: removed "); got != writers*dirsEach {
		t.Errorf("reported %d removals, want %d:\n%s", got, writers*dirsEach, reported)
	}
}

func TestCloseTwiceAndRegisterAfterClose(t *testing.T) {
	r, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := r.Dir(t.TempDir()); err == nil {
		t.Error("Dir after Close succeeded")
	}
}

func TestReaperStartsInTheProgramsNamespacesHoldingNoOtherFile(t *testing.T) {
	node := nettest.NewNamespace(t)
	hostNS, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	nodeNS, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", node.NS))
	if err != nil {
		t.Fatal(err)
	}
	// A descriptor without close-on-exec, as careless code may open: the reaper must not
	// keep the node's namespace alive through it.
	leaked, err := unix.Dup(int(node.NS))
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(leaked)

	// Start from a thread in the node's namespace, as a lab goroutine setting up a node
	// might.
	type started struct {
		r   *Reaper
		err error
	}
	done := make(chan started, 1)
	go func() {
		runtime.LockOSThread()
		home, err := netns.Get()
		if err != nil {
			done <- started{err: err}
			return
		}
		defer home.Close()
		if err := netns.Set(node.NS); err != nil {
			done <- started{err: err}
			return
		}
		r, err := Start()
		if netns.Set(home) == nil {
			runtime.UnlockOSThread() // else the runtime retires the thread with this goroutine
		}
		done <- started{r, err}
	}()
	s := <-done
	if s.err != nil {
		t.Fatal(s.err)
	}
	t.Cleanup(func() { _ = s.r.Close() })

	pid := s.r.cmd.Process.Pid
	if got, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid)); err != nil || got != hostNS {
		t.Errorf("reaper in network namespace %s (%v), want the program's %s", got, err, hostNS)
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		if target, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())); target == nodeNS {
			t.Errorf("reaper holds the node's namespace %s open as fd %s", nodeNS, fd.Name())
		}
	}
}

func TestParseStat(t *testing.T) {
	tests := []struct {
		name, line string
		want       stat
		wantErr    bool
	}{
		{
			name: "plain",
			line: "4242 (sleep) S 4241 4242 100 0 -1 4194304 100 0 0 0 0 0 0 0 20 0 1 0 987654 5513216 200 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n",
			want: stat{comm: "sleep", state: 'S', ppid: 4241, start: 987654},
		},
		{
			name: "command name with spaces and parentheses",
			line: "7 (a) (b c) Z 1 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 12 0 0 0\n",
			want: stat{comm: "a) (b c", state: 'Z', ppid: 1, start: 12},
		},
		{name: "truncated", line: "7 (x) S 1 7 7", wantErr: true},
		{name: "no command name", line: "7 x S 1", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStat(tt.line)
			if (err != nil) != tt.wantErr {
				t.Fatalf("error %v, want error %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestReadRegistrations(t *testing.T) {
	spaced := "/tmp/a dir\nwith a newline"
	tests := []struct {
		name      string
		input     string
		wantClean bool
		want      registry
		// wantIgnored counts the lines reported as ignored.
		wantIgnored int
	}{
		{
			name:  "end of file without clean: the lab died",
			input: "process 12 345\nmount \"/run/netns/x\"\ndir " + strconv.Quote(spaced) + "\nprocess 12 345\n",
			want:  registry{processes: []process{{12, 345}}, mounts: []string{"/run/netns/x"}, dirs: []string{spaced}},
		},
		{
			name:      "clean last",
			input:     "dir \"/tmp/x\"\nclean\n",
			wantClean: true,
			want:      registry{dirs: []string{"/tmp/x"}},
		},
		{
			name:        "malformed lines are reported and skipped",
			input:       "process x 1\ndir \"relative\"\ndir \"/\"\nmount /unquoted\nfile \"/x\"\n",
			wantIgnored: 5,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var log bytes.Buffer
			got, clean := readRegistrations(strings.NewReader(tt.input), &log)
			if clean != tt.wantClean {
				t.Errorf("clean %v, want %v", clean, tt.wantClean)
			}
			if !slices.Equal(got.processes, tt.want.processes) || !slices.Equal(got.mounts, tt.want.mounts) || !slices.Equal(got.dirs, tt.want.dirs) {
				t.Errorf("got %+v, want %+v", *got, tt.want)
			}
			if ignored := strings.Count(log.String(), "lab reaper: ignoring registration"); ignored != tt.wantIgnored {
				t.Errorf("%d lines reported as ignored, want %d: %q", ignored, tt.wantIgnored, log.String())
			}
		})
	}
}
