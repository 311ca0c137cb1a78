// Package reaper cleans up after the lab when the lab process dies without doing so itself
// (kill -9, a test binary's timeout): it kills the lab's child processes, unmounts its
// namespace files and removes its directories.
//
// The lab spawns a reaper process, a copy of its own binary, and tells it through a pipe
// what to clean. The reaper reads until the pipe's end of file, which comes however the
// lab dies; if the lab did not say "clean" first, the reaper cleans up. Parent-death
// signals would not do: Linux sends them when the forking thread exits, and Go retires
// threads at will.
//
// Every binary that calls Start must call Serve first thing in main (and in TestMain):
//
//	func main() {
//		reaper.Serve()
//		...
//	}
package reaper

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// reaperEnv marks a process started as a reaper.
const reaperEnv = "MTU_LAB_REAPER"

// registrationsFD is where the reaper reads registrations: the first of exec.Cmd.ExtraFiles.
const registrationsFD = 3

// readyTimeout bounds how long Start waits for the reaper to say it is ready.
const readyTimeout = 10 * time.Second

// cleanMessage tells the reaper that the lab cleaned up itself.
const cleanMessage = "clean"

// readyMessage is what the reaper writes on its standard output once it ignores signals
// and holds nothing of the lab's but the pipe.
const readyMessage = "ready"

// namespaceKinds are the namespaces the reaper must share with the lab process as a whole:
// the network namespace, so that it keeps no node's namespace alive, and the mount
// namespace, so that it sees the lab's mounts.
var namespaceKinds = []string{"net", "mnt"}

var (
	served bool
	// homeNamespaces are the namespaces of the thread that called Serve, before the program
	// could move any thread elsewhere, as "net:[4026531840]".
	homeNamespaces    map[string]string
	homeNamespacesErr error
)

// Serve must be called first thing in main and in TestMain of every binary that uses Start.
// It returns at once in a normal process; in a process started as a reaper it runs the
// reaper and exits.
func Serve() {
	if os.Getenv(reaperEnv) == "1" {
		os.Exit(serveReaper())
	}
	served = true
	homeNamespaces, homeNamespacesErr = threadNamespaces()
}

// Reaper is the lab's end of the pipe to its reaper. Its methods are safe for concurrent
// use.
type Reaper struct {
	mu sync.Mutex
	// registrations is the pipe's write end; nil once closed.
	registrations *os.File
	cmd           *exec.Cmd
}

// Start spawns the reaper for the calling process. Once it returns, the reaper cleans up
// whatever is registered when the process exits, normally or not, without calling Close.
//
// Any goroutine may call it, even one locked to a thread in a node's network namespace: the
// reaper starts in the namespaces the program started in, and holds no file of the lab's but
// its pipe.
func Start() (*Reaper, error) {
	if !served {
		return nil, errors.New("starting the lab reaper: Serve was not called first thing in main or TestMain, so the reaper would run the program's main instead")
	}
	if homeNamespacesErr != nil {
		return nil, fmt.Errorf("starting the lab reaper: %w", homeNamespacesErr)
	}
	type started struct {
		reaper *Reaper
		ready  *os.File
		err    error
	}
	done := make(chan started, 1)
	// The reaper inherits the namespaces of the thread that forks it, and the caller's
	// thread may be locked in a node's namespace: fork from a new goroutine's thread,
	// checked.
	go func() {
		runtime.LockOSThread()
		if err := checkThreadNamespaces(); err != nil {
			// Leave the thread locked: the runtime retires it with this goroutine.
			done <- started{err: err}
			return
		}
		r, ready, err := spawn()
		runtime.UnlockOSThread()
		done <- started{r, ready, err}
	}()
	s := <-done
	if s.err != nil {
		return nil, s.err
	}
	if err := awaitReady(s.ready); err != nil {
		_ = s.reaper.cmd.Process.Kill()
		_ = s.reaper.registrations.Close()
		_ = s.reaper.cmd.Wait()
		return nil, err
	}
	return s.reaper, nil
}

// spawn starts the reaper and returns the read end of the pipe on which it says it is
// ready.
func spawn() (_ *Reaper, ready *os.File, err error) {
	registrationsRead, registrationsWrite, err := os.Pipe()
	if err != nil {
		return nil, nil, fmt.Errorf("starting the lab reaper: %w", err)
	}
	defer registrationsRead.Close()
	ready, readyWrite, err := os.Pipe()
	if err != nil {
		_ = registrationsWrite.Close()
		return nil, nil, fmt.Errorf("starting the lab reaper: %w", err)
	}
	defer readyWrite.Close()

	cmd := &exec.Cmd{
		// /proc/self/exe still runs this binary when its file was replaced or deleted.
		Path:       "/proc/self/exe",
		Args:       []string{"mtu-lab-reaper"},
		Env:        append(os.Environ(), reaperEnv+"=1"),
		Dir:        "/", // not a lab directory, which a working directory would keep busy
		Stdout:     readyWrite,
		Stderr:     os.Stderr,
		ExtraFiles: []*os.File{registrationsRead},
		// Its own process group: a Ctrl-C in the terminal goes to the lab, not the reaper.
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true},
	}
	if err := cmd.Start(); err != nil {
		_ = registrationsWrite.Close()
		_ = ready.Close()
		return nil, nil, fmt.Errorf("starting the lab reaper: %w", err)
	}
	return &Reaper{registrations: registrationsWrite, cmd: cmd}, ready, nil
}

func awaitReady(ready *os.File) error {
	defer ready.Close()
	if err := ready.SetReadDeadline(time.Now().Add(readyTimeout)); err != nil {
		return fmt.Errorf("waiting for the lab reaper: %w", err)
	}
	line, err := bufio.NewReader(ready).ReadString('\n')
	if line == readyMessage+"\n" {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		return fmt.Errorf("the lab reaper did not start: it wrote %q", line)
	}
	return fmt.Errorf("waiting for the lab reaper: %w", err)
}

// Process has the reaper SIGKILL the process if the lab dies. The process is identified by
// its pid and start time, so that a process that later gets the same pid is never killed.
func (r *Reaper) Process(pid int) error {
	st, err := readStat(pid)
	if err != nil {
		return fmt.Errorf("registering process %d with the lab reaper: %w", pid, err)
	}
	return r.register(processLine(process{pid: pid, start: st.start}))
}

// Children registers every current child process of the calling process, for children
// started by libraries that do not expose their pids (envtest's kube-apiserver and etcd).
func (r *Reaper) Children() error {
	children, err := ChildrenOf(os.Getpid())
	if err != nil {
		return fmt.Errorf("registering child processes with the lab reaper: %w", err)
	}
	for _, c := range children {
		// The reaper itself is among the children; it skips its own pid.
		if err := r.register(processLine(c.process())); err != nil {
			return err
		}
	}
	return nil
}

// Mount has the reaper unmount the mount point (lazily) and remove the file if the lab
// dies. Register before mounting: a path not there yet is fine.
func (r *Reaper) Mount(path string) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("registering mount %s with the lab reaper: %w", path, err)
	}
	return r.register(pathLine(mountKind, abs))
}

// Dir has the reaper unmount every mount point at or under the directory, deepest first,
// and remove the directory with its contents if the lab dies. Register before creating.
func (r *Reaper) Dir(path string) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("registering directory %s with the lab reaper: %w", path, err)
	}
	if abs == "/" {
		return errors.New("registering / with the lab reaper: refusing to have it removed")
	}
	return r.register(pathLine(dirKind, abs))
}

// Close tells the reaper that the lab cleaned up itself and waits for it to exit. Later
// calls do nothing.
func (r *Reaper) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.registrations == nil {
		return nil
	}
	_, writeErr := io.WriteString(r.registrations, cleanMessage+"\n")
	closeErr := r.registrations.Close()
	r.registrations = nil
	waitErr := r.cmd.Wait()
	if err := errors.Join(writeErr, closeErr, waitErr); err != nil {
		return fmt.Errorf("closing the lab reaper: %w", err)
	}
	return nil
}

// register writes one registration. A write to a pipe that returned is readable by the
// reaper even if the lab dies right after.
func (r *Reaper) register(line string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.registrations == nil {
		return fmt.Errorf("registering %s with the lab reaper: already closed", line)
	}
	if _, err := io.WriteString(r.registrations, line+"\n"); err != nil {
		return fmt.Errorf("registering %s with the lab reaper: %w", line, err)
	}
	return nil
}

// The registration lines: "process <pid> <start time>", "mount <quoted path>",
// "dir <quoted path>".
const (
	processKind = "process"
	mountKind   = "mount"
	dirKind     = "dir"
)

func processLine(p process) string {
	return fmt.Sprintf("%s %d %d", processKind, p.pid, p.start)
}

// pathLine quotes the path: a path may hold spaces and newlines.
func pathLine(kind, path string) string { return kind + " " + strconv.Quote(path) }

// threadNamespaces returns the namespaces of the calling thread.
func threadNamespaces() (map[string]string, error) {
	ns := make(map[string]string, len(namespaceKinds))
	for _, kind := range namespaceKinds {
		link, err := os.Readlink("/proc/thread-self/ns/" + kind)
		if err != nil {
			return nil, err
		}
		ns[kind] = link
	}
	return ns, nil
}

// checkThreadNamespaces fails when the calling thread is not in the namespaces the program
// started in: some code let a thread it moved into another namespace go back to the
// runtime.
func checkThreadNamespaces() error {
	current, err := threadNamespaces()
	if err != nil {
		return fmt.Errorf("starting the lab reaper: %w", err)
	}
	for _, kind := range namespaceKinds {
		if current[kind] != homeNamespaces[kind] {
			return fmt.Errorf("starting the lab reaper: this thread is in %s, not the program's %s namespace %s; some code returned a thread it moved to the runtime",
				current[kind], kind, homeNamespaces[kind])
		}
	}
	return nil
}
