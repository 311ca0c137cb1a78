package testenv_test

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mtu-operator/mtu-operator/internal/testenv"
	"github.com/mtu-operator/mtu-operator/test/e2e/lab/reaper"
)

// panicPIDsEnv makes TestMain write the control plane's pids to the file it names and panic,
// as a test that panics would, for TestAPanickingTestLeavesNoControlPlane.
const panicPIDsEnv = "TESTENV_PANIC_PIDS_FILE"

func TestMain(m *testing.M) {
	os.Exit(testenv.Main(m, testenv.Options{}, func(*testenv.Env) func() {
		if file := os.Getenv(panicPIDsEnv); file != "" {
			var pids []string
			for _, c := range controlPlaneOf(os.Getpid()) {
				pids = append(pids, strconv.Itoa(c.Pid))
			}
			if err := os.WriteFile(file, []byte(strings.Join(pids, " ")), 0o600); err != nil {
				panic(err)
			}
			panic("a test binary that panics, leaving testenv.Main no chance to stop the control plane")
		}
		return nil
	}))
}

// controlPlaneOf lists the kube-apiserver and etcd children of a process.
func controlPlaneOf(pid int) []reaper.Child {
	children, err := reaper.ChildrenOf(pid)
	if err != nil {
		panic(err)
	}
	var out []reaper.Child
	for _, c := range children {
		if c.Comm == "kube-apiserver" || c.Comm == "etcd" {
			out = append(out, c)
		}
	}
	return out
}

// TestAPanickingTestLeavesNoControlPlane: a test binary whose test panics exits without
// TestMain's clean-up; its API server and etcd must not outlive it.
func TestAPanickingTestLeavesNoControlPlane(t *testing.T) {
	file := filepath.Join(t.TempDir(), "pids")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), panicPIDsEnv+"="+file)
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("the panicking test binary succeeded:\n%s", out)
	}
	b, err := os.ReadFile(file)
	if err != nil || len(strings.Fields(string(b))) < 2 {
		t.Fatalf("no control plane pids (%v): %q\n%s", err, b, out)
	}
	for _, f := range strings.Fields(string(b)) {
		pid, _ := strconv.Atoi(f)
		testenv.Eventually(t, fmt.Sprintf("process %d of the panicked binary gone", pid), 20*time.Second, func() error {
			stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			if err != nil {
				return err
			}
			if fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:])); len(fields) > 0 && fields[0] == "Z" {
				return nil // dead, waiting for init to reap it
			}
			return fmt.Errorf("still running: %s", strings.Fields(string(stat))[1])
		})
	}
}

// TestFailedStartStopsTheControlPlane: a CRD the API server refuses fails Start after the API
// server and etcd are up; Start must stop them, or they outlive the test.
func TestFailedStartStopsTheControlPlane(t *testing.T) {
	before := len(controlPlaneOf(os.Getpid())) // TestMain's own
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
	if after := controlPlaneOf(os.Getpid()); len(after) != before {
		t.Errorf("%v still run after the failed Start (TestMain's own are %d)", after, before)
	}
}

// TestBundledToolsSayTheirVersion: the kubectl the demo hands users and the API server the
// tests run report the release they were built from, not v0.0.0-master.
func TestBundledToolsSayTheirVersion(t *testing.T) {
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	want := os.Getenv("KUBERNETES_VERSION") // set by the Makefile
	if assets == "" {
		t.Skip("KUBEBUILDER_ASSETS is not set")
	}
	out, err := exec.Command(filepath.Join(assets, "kubectl"), "version", "--client", "-o", "json").Output()
	if err != nil {
		t.Fatalf("kubectl version: %v", err)
	}
	var v struct {
		ClientVersion struct{ GitVersion, Major, Minor string } `json:"clientVersion"`
	}
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatalf("kubectl version: %v\n%s", err, out)
	}
	checkVersion(t, "kubectl", v.ClientVersion.GitVersion, want)
	if v.ClientVersion.Major != "1" || !strings.HasPrefix(strings.TrimPrefix(v.ClientVersion.GitVersion, "v1."), v.ClientVersion.Minor+".") {
		t.Errorf("kubectl says major %q minor %q for %s", v.ClientVersion.Major, v.ClientVersion.Minor, v.ClientVersion.GitVersion)
	}
	out, err = exec.Command(filepath.Join(assets, "kube-apiserver"), "--version").Output()
	if err != nil {
		t.Fatalf("kube-apiserver --version: %v", err)
	}
	checkVersion(t, "kube-apiserver", strings.TrimPrefix(strings.TrimSpace(string(out)), "Kubernetes "), want)
}

func checkVersion(t *testing.T, tool, got, want string) {
	t.Helper()
	if want != "" && got != want || !regexp.MustCompile(`^v1\.\d+\.\d+$`).MatchString(got) {
		t.Errorf("%s says it is %q, want %s", tool, got, cmp.Or(want, "a release version"))
	}
}
