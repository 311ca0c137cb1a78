package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mtu-operator/mtu-operator/internal/node/nettest"
	"github.com/mtu-operator/mtu-operator/internal/testenv"
	"github.com/mtu-operator/mtu-operator/test/e2e/lab"
	"github.com/mtu-operator/mtu-operator/test/e2e/lab/reaper"
)

// labChildEnv makes the test binary run a lab and wait to be killed (see runLabChild).
const labChildEnv = "E2E_LAB_CHILD_DIR"

// TestKilledLabLeavesNothing starts a flannel lab in a child process, kills and restarts one
// node's agent there as a crash would, then kills the whole lab process with SIGKILL: every
// process it started (API server, etcd, flanneld, agents) must be gone, and every mount and
// directory it made removed.
func TestKilledLabLeavesNothing(t *testing.T) {
	nettest.RequirePrivileged(t)
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), labChildEnv+"="+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	lines := bufio.NewScanner(out)
	var ready string
	for lines.Scan() {
		if l := lines.Text(); strings.HasPrefix(l, "ready") || strings.HasPrefix(l, "skip") || strings.HasPrefix(l, "fail") {
			ready = l
			break
		}
	}
	switch {
	case strings.HasPrefix(ready, "skip") && !nettest.InCI():
		t.Skip(ready)
	case !strings.HasPrefix(ready, "ready"):
		t.Fatalf("the lab process did not start its lab: %q", ready)
	}
	// The lab starts every process itself: they are its children.
	started, err := reaper.ChildrenOf(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if len(started) < 8 { // etcd, kube-apiserver, 3 flanneld, 3 agents (and the reaper)
		t.Fatalf("the lab runs %d processes, want at least 8: %v", len(started), started)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	testenv.Eventually(t, "everything the killed lab started to be gone", 30*time.Second, func() error {
		for _, c := range started {
			if c.Running() {
				return fmt.Errorf("%s (pid %d) still runs", c.Comm, c.Pid)
			}
		}
		for _, d := range []string{"netns", "pods", "nodes", "bin", "kubeconfig"} {
			if _, err := os.Stat(filepath.Join(dir, d)); err == nil {
				return fmt.Errorf("%s is still there", filepath.Join(dir, d))
			}
		}
		info, err := os.ReadFile("/proc/self/mountinfo")
		if err != nil {
			return err
		}
		if strings.Contains(string(info), dir) {
			return fmt.Errorf("something is still mounted under %s", dir)
		}
		return nil
	})
}

// runLabChild is the lab process of TestKilledLabLeavesNothing: it starts a lab, kills one
// agent with SIGKILL and restarts it, says "ready" and waits to be killed.
func runLabChild(dir string) {
	fail := func(err error) {
		fmt.Printf("fail: %v\n", err)
		os.Exit(1)
	}
	ctx := context.Background()
	l, err := lab.Start(ctx, lab.Options{CNI: lab.Flannel, Dir: dir})
	if err != nil {
		if errors.Is(err, testenv.ErrNoAssets) || errors.Is(err, lab.ErrNoFlannel) {
			fmt.Printf("skip: %v\n", err)
			os.Exit(0)
		}
		fail(err)
	}
	node := l.Node("node-b")
	if err := node.KillAgent(); err != nil {
		fail(err)
	}
	if node.AgentRunning() {
		fail(fmt.Errorf("node-b's agent runs after SIGKILL"))
	}
	if err := node.RestartAgent(l.AgentBinary()); err != nil {
		fail(err)
	}
	if !node.AgentRunning() {
		fail(fmt.Errorf("node-b's agent does not run after a restart"))
	}
	fmt.Println("ready")
	select {}
}
