package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/mtu-operator/mtu-operator/test/e2e/lab/reaper"
)

// RestartAPIServer kills the API server with SIGKILL, as a crashed or restarted control plane
// node does, waits down, and starts it again with the same command line, environment and
// files (its certificates and etcd stay), then waits until it is ready. It returns the new
// process's ID and a function that stops it; Stop no longer does, since envtest does not know
// the new process.
func (e *Env) RestartAPIServer(ctx context.Context, down time.Duration) (pid int, stop func() error, err error) {
	old, err := e.APIServerPID()
	if err != nil {
		return 0, nil, err
	}
	args, err := procFields(old, "cmdline")
	if err != nil {
		return 0, nil, err
	}
	environ, err := procFields(old, "environ")
	if err != nil {
		return 0, nil, err
	}
	cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", old))
	if err != nil {
		return 0, nil, err
	}
	if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
		return 0, nil, fmt.Errorf("killing the API server (pid %d): %w", old, err)
	}
	for alive(old) {
		time.Sleep(50 * time.Millisecond)
	}
	select {
	case <-time.After(down):
	case <-ctx.Done():
		return 0, nil, ctx.Err()
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env, cmd.Dir = environ, cwd
	if err := cmd.Start(); err != nil {
		return 0, nil, fmt.Errorf("starting the API server again: %w", err)
	}
	waited := make(chan struct{})
	go func() {
		_ = cmd.Wait() // killed at the end: its exit status says nothing
		close(waited)
	}()
	stop = func() error {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-waited:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-waited
		}
		return nil
	}
	cs, err := kubernetes.NewForConfig(e.Config)
	if err != nil {
		return 0, nil, errors.Join(err, stop())
	}
	for {
		body, err := cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if err == nil && bytes.Equal(body, []byte("ok")) {
			return cmd.Process.Pid, stop, nil
		}
		select {
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
			return 0, nil, errors.Join(ctx.Err(), stop())
		}
	}
}

// APIServerPID finds this process's kube-apiserver child that serves e.Config's port, for
// tests that measure what it costs.
func (e *Env) APIServerPID() (int, error) {
	u, err := url.Parse(e.Config.Host)
	if err != nil {
		return 0, err
	}
	children, err := reaper.ChildrenOf(os.Getpid())
	if err != nil {
		return 0, err
	}
	for _, c := range children {
		if c.Comm != "kube-apiserver" {
			continue
		}
		args, err := procFields(c.Pid, "cmdline")
		if err == nil && slices.Contains(args, "--secure-port="+u.Port()) {
			return c.Pid, nil
		}
	}
	return 0, fmt.Errorf("no kube-apiserver serving port %s among this process's children", u.Port())
}

func procFields(pid int, file string) ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", pid, file))
	if err != nil {
		return nil, err
	}
	return strings.Split(strings.TrimRight(string(b), "\x00"), "\x00"), nil
}

// alive says whether the process exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	return len(fields) > 0 && fields[0] != "Z"
}
