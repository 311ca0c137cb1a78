// Package testenv starts a real kube-apiserver and etcd (envtest) with the project's CRDs
// installed, for tests. The binaries come from `make envtest-assets`, which builds them from
// Go modules into bin/k8s.
package testenv

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/mtu-operator/mtu-operator/internal/kubescheme"
	"github.com/mtu-operator/mtu-operator/test/e2e/lab/reaper"
)

// Env is a running API server with the project's CRDs installed.
type Env struct {
	Config *rest.Config
	Client client.Client
	Scheme *runtime.Scheme
	env    *envtest.Environment
}

// Options adds to the default environment.
type Options struct {
	// ExtraCRDPaths are further CRD files or folders to install (test fixtures of other
	// projects' CRDs, such as Calico's), absolute or relative to the repository's root.
	ExtraCRDPaths []string
}

// Start starts an API server for a package's tests; call it from TestMain and Stop it after
// m.Run. When the assets are missing it returns ErrNoAssets, which TestMain should turn into
// a skip message (or a failure under CI=true) with Exit.
func Start(opts Options) (*Env, error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		assets = filepath.Join(root, "bin", "k8s")
	}
	for _, binary := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(assets, binary)); err != nil {
			return nil, fmt.Errorf("%w: %s not found in %s; run `make envtest-assets` (or `make test`)", ErrNoAssets, binary, assets)
		}
	}

	scheme, err := kubescheme.New()
	if err != nil {
		return nil, err
	}
	env := &envtest.Environment{
		CRDDirectoryPaths:     append([]string{filepath.Join(root, "config", "crd", "bases")}, fromRoot(root, opts.ExtraCRDPaths)...),
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: assets,
		Scheme:                scheme,
	}
	cfg, err := env.Start()
	if err != nil {
		// envtest returns errors after the API server and etcd are up (a CRD it cannot
		// install) without stopping them.
		return nil, errors.Join(fmt.Errorf("starting envtest: %w", err), env.Stop())
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		_ = env.Stop()
		return nil, err
	}
	return &Env{Config: cfg, Client: c, Scheme: scheme, env: env}, nil
}

// AdminKubeconfig returns a kubeconfig for a new cluster-admin user (system:masters) of the
// API server, for kubectl.
func (e *Env) AdminKubeconfig(user string) ([]byte, error) {
	u, err := e.env.ControlPlane.AddUser(envtest.User{Name: user, Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return nil, fmt.Errorf("adding user %s: %w", user, err)
	}
	return u.KubeConfig()
}

// Stop stops the API server and etcd.
func (e *Env) Stop() error { return e.env.Stop() }

// ErrNoAssets means kube-apiserver or etcd has not been built.
var ErrNoAssets = errors.New("envtest assets missing")

// Main runs a package's tests against a fresh API server: the body of a TestMain. started
// sets the package up and may return a function that tears it down before the API server
// stops (nil when there is nothing to stop). Without assets it skips the package with a
// message, except under CI=true where that is a failure.
//
// A reaper process (the lab's) kills the API server and etcd if the test binary dies without
// stopping them: a panicking test, a timeout. The reaper is a copy of the test binary run in
// another directory: what TestMain does before Main must not depend on the working directory.
func Main(m *testing.M, opts Options, started func(*Env) (stop func())) int {
	reaper.Serve()
	r, err := reaper.Start()
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: %v\n", err)
		return 1
	}
	env, err := Start(opts)
	if err == nil {
		// envtest does not say which processes it started: its children, so far.
		err = r.Children()
	}
	if errors.Is(err, ErrNoAssets) && os.Getenv("CI") != "true" {
		fmt.Fprintf(os.Stderr, "SKIP: %v\n", err)
		return closeReaper(r, 0)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: %v\n", err)
		if env != nil {
			_ = env.Stop()
		}
		return closeReaper(r, 1)
	}
	stop := started(env)
	code := m.Run()
	if stop != nil {
		stop()
	}
	if err := env.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "stopping envtest: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	return closeReaper(r, code)
}

// closeReaper tells the reaper everything is stopped, and fails the run if it cannot.
func closeReaper(r *reaper.Reaper, code int) int {
	if err := r.Close(); err != nil {
		fmt.Fprintf(os.Stderr, "%v\n", err)
		if code == 0 {
			return 1
		}
	}
	return code
}

// RepoRoot finds the module root by walking up from the working directory to go.mod.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			if _, err := os.Stat(filepath.Join(dir, "PROJECT")); err == nil {
				return dir, nil
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("repository root (go.mod beside PROJECT) not found above the working directory")
		}
		dir = parent
	}
}

// fromRoot makes relative paths relative to the repository's root: TestMain must not depend on
// the working directory, since the reaper runs a copy of the test binary elsewhere.
func fromRoot(root string, paths []string) []string {
	out := make([]string, 0, len(paths))
	for _, p := range paths {
		if !filepath.IsAbs(p) {
			p = filepath.Join(root, p)
		}
		out = append(out, p)
	}
	return out
}
