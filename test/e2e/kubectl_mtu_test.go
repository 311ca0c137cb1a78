package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/mtu-operator/mtu-operator/internal/testenv"
	"github.com/mtu-operator/mtu-operator/test/e2e/lab"
)

// kubectlMTUBuild is the plugin, built once for the tests of this binary into a directory
// TestMain removes.
var kubectlMTUBuild struct {
	once sync.Once
	dir  string
	err  error
}

// kubectlMTU runs `kubectl mtu ARGS` against the lab as a user would: the plugin binary built
// from cmd/kubectl-mtu on the PATH, found by the bundled kubectl.
func kubectlMTU(t *testing.T, l *lab.Lab, args ...string) string {
	t.Helper()
	b := &kubectlMTUBuild
	b.once.Do(func() {
		root, err := testenv.RepoRoot()
		if err != nil {
			b.err = err
			return
		}
		b.dir, b.err = os.MkdirTemp("", "kubectl-mtu-")
		if b.err != nil {
			return
		}
		build := exec.Command("go", "build", "-o", filepath.Join(b.dir, "kubectl-mtu"), "./cmd/kubectl-mtu")
		build.Dir = root
		if out, err := build.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("%w\n%s", err, out)
		}
	})
	if b.err != nil {
		t.Fatalf("building kubectl-mtu: %v", b.err)
	}
	cmd := exec.Command(filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kubectl"), append([]string{"mtu"}, args...)...)
	cmd.Env = append(os.Environ(), "PATH="+b.dir+string(os.PathListSeparator)+os.Getenv("PATH"), "KUBECONFIG="+l.Kubeconfig)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl mtu %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	t.Logf("$ kubectl mtu %s\n%s", strings.Join(args, " "), out)
	return string(out)
}
