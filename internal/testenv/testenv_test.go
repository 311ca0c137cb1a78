package testenv_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/mtu-operator/mtu-operator/internal/testenv"
	"github.com/mtu-operator/mtu-operator/test/e2e/lab/reaper"
)

// TestFailedStartStopsTheControlPlane: a CRD the API server refuses fails Start after the API
// server and etcd are up; Start must stop them, or they outlive the test.
func TestFailedStartStopsTheControlPlane(t *testing.T) {
	dir := t.TempDir()
	bad := "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: widgets.example.com\nspec:\n  group: example.com\n  names: {kind: Widget, plural: widgets}\n  scope: Cluster\n  versions: []\n"
	if err := os.WriteFile(filepath.Join(dir, "bad.yaml"), []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	env, err := testenv.Start(testenv.Options{ExtraCRDPaths: []string{dir}})
	if errors.Is(err, testenv.ErrNoAssets) {
		t.Skipf("skipping: %v", err)
	}
	if err == nil {
		_ = env.Stop()
		t.Fatal("Start succeeded with a CRD the API server must refuse")
	}
	children, err := reaper.ChildrenOf(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range children {
		if c.Comm == "kube-apiserver" || c.Comm == "etcd" {
			t.Errorf("%s (pid %d) still runs after the failed Start", c.Comm, c.Pid)
		}
	}
}
