package lab

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vishvananda/netns"

	"github.com/mtu-operator/mtu-operator/internal/node/netdev"
)

// stopGrace is how long a process asked to stop may take before it is killed, as a kubelet's
// termination grace period.
const stopGrace = 10 * time.Second

// process is a program the lab runs on a node as the node's kubelet runs a container: in the
// node's network namespace, with its output in the lab's log.
type process struct {
	name string
	// logFile holds its output.
	logFile string
	cmd     *exec.Cmd
	done    chan struct{}
	err     error // set before done closes
}

// startProcess starts path in the network namespace ns, its output appended to logFile. The
// fork happens on a thread that has entered ns, so the child starts there and never needs to
// enter it itself. The output goes to a file, not a pipe to the lab, so that a lab killed
// without warning does not kill its node programs by SIGPIPE: cleaning up after it is the
// reaper's job, and the test of the reaper must see it done.
func startProcess(ns netns.NsHandle, logFile, name, path string, args, env []string) (*process, error) {
	log, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer log.Close() // the child has its own copy
	fmt.Fprintf(log, "=== %s: starting %s %s\n", time.Now().Format(time.RFC3339Nano), path, strings.Join(args, " "))
	cmd := exec.Command(path, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = log, log
	// Its own process group: a Ctrl-C at the terminal reaches the lab, which stops it in
	// order, not every node program at once.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := netdev.InNamespace(ns, cmd.Start); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &process{name: name, logFile: logFile, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// pid is the process's ID.
func (p *process) pid() int { return p.cmd.Process.Pid }

// running says whether the process has not exited yet.
func (p *process) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// stop asks the process to end (SIGTERM), kills it after stopGrace, and waits.
func (p *process) stop() error {
	if !p.running() {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(stopGrace):
	}
	if err := p.kill(); err != nil {
		return err
	}
	return fmt.Errorf("%s did not stop within %s of SIGTERM and was killed", p.name, stopGrace)
}

// kill ends the process at once (SIGKILL), as a crash or an OOM kill would, and waits.
func (p *process) kill() error {
	if !p.running() {
		return nil
	}
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, syscall.ESRCH) && p.running() {
		return fmt.Errorf("killing %s: %w", p.name, err)
	}
	<-p.done
	return nil
}

// linePrefixer writes whole lines, each with a prefix, so the output of CNI plugins and the
// lab's other logs interleave by line.
type linePrefixer struct {
	prefix string
	to     io.Writer
	mu     sync.Mutex
	buf    []byte
}

func (w *linePrefixer) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, b...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			return len(b), nil
		}
		line := append([]byte(w.prefix), w.buf[:i+1]...)
		w.buf = w.buf[i+1:]
		if _, err := w.to.Write(line); err != nil {
			return len(b), err
		}
	}
}
