package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/mtu-operator/mtu-operator/test/e2e/lab/reaper"
)

// removeLeftovers clears what an earlier demo left when neither it nor its reaper could clean
// up (both killed): its node namespaces in /run/netns and its state under dir. While a
// process of that demo still runs (or another demo is running), it removes nothing and says
// how to stop them.
func removeLeftovers(out io.Writer, root, dir string) error {
	running := false
	for _, p := range processesOf(root, dir) {
		fmt.Fprintf(out, "  still running, from an earlier demo or a test run: %s\n    stop it with: kill %d\n", p.cmd, p.pid)
		running = running || p.demo
	}
	if running {
		return fmt.Errorf("processes of another demo still run on %s; stop them (see above) and run the demo again", dir)
	}
	files, err := filepath.Glob(filepath.Join("/run/netns", netnsPrefix+"*"))
	if err != nil {
		return err
	}
	for _, d := range []string{"pods", "nodes", "bin", "kubeconfig"} {
		files = append(files, filepath.Join(dir, d))
	}
	reaper.Sweep(out, files...)
	return nil
}

type leftover struct {
	pid int
	cmd string
	// demo: its command line names the demo's directory.
	demo bool
}

// processesOf lists the running processes of this repository's lab binaries (bin/k8s,
// bin/flannel) and those whose command line names the demo's directory.
func processesOf(root, dir string) []leftover {
	entries, _ := os.ReadDir("/proc")
	var out []leftover
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		raw, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(raw) == 0 {
			continue
		}
		cmd := strings.Join(strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00"), " ")
		exe, _ := os.Readlink(filepath.Join("/proc", e.Name(), "exe"))
		demo := strings.Contains(cmd, dir+"/")
		if demo || strings.HasPrefix(exe, filepath.Join(root, "bin", "k8s")+"/") || strings.HasPrefix(exe, filepath.Join(root, "bin", "flannel")+"/") {
			if len(cmd) > 100 {
				cmd = cmd[:100] + "..."
			}
			out = append(out, leftover{pid, cmd, demo})
		}
	}
	return out
}
