package controllers

import (
	"context"
	"fmt"

	"os"
	"path/filepath"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/mtu-operator/mtu-operator/internal/testenv"
)

var (
	env *testenv.Env
	// managerClient reads through the manager's cache, to wait until the controller has seen
	// a deletion before the next test starts.
	managerClient client.Client
)

// TestMain starts one API server for the package and a manager running the controllers, as
// cmd/manager wires them.
// testReleaseTimeout is how long a deleted policy waits here for a silent agent.
const testReleaseTimeout = 3 * time.Second

func TestMain(m *testing.M) {
	testenv.SetLogger()
	opts := testenv.Options{ExtraCRDPaths: []string{filepath.Join("test", "fixtures", "calico-crds")}}
	os.Exit(testenv.Main(m, opts, func(e *testenv.Env) func() {
		env = e
		mgr, err := ctrl.NewManager(e.Config, ctrl.Options{Scheme: e.Scheme, Cache: CacheOptions(), Client: ClientOptions(), Metrics: metricsserver.Options{BindAddress: "0"}})
		if err != nil {
			panic(err)
		}
		managerClient = mgr.GetClient()
		if err := (&NetworkMTUPolicyReconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Recorder: mgr.GetEventRecorder(FieldManager), ReleaseTimeout: testReleaseTimeout}).SetupWithManager(mgr); err != nil {
			panic(err)
		}
		stop := testenv.StartManager(mgr)
		return func() {
			if err := stop(); err != nil {
				fmt.Fprintln(os.Stderr, "manager:", err)
			}
		}
	}))
}

func createPolicy(t *testing.T, obj client.Object) {
	t.Helper()
	ctx := context.Background()
	if err := env.Client.Create(ctx, obj); err != nil {
		t.Fatalf("creating %s: %v", obj.GetName(), err)
	}
	t.Cleanup(func() {
		if err := env.Client.Delete(ctx, obj); client.IgnoreNotFound(err) != nil {
			t.Errorf("deleting %s: %v", obj.GetName(), err)
		}
		eventually(t, "the controller sees "+obj.GetName()+" deleted and goes idle", func() error {
			err := managerClient.Get(ctx, client.ObjectKeyFromObject(obj), obj.DeepCopyObject().(client.Object))
			switch {
			case err == nil:
				return fmt.Errorf("still in the manager's cache")
			case !apierrors.IsNotFound(err):
				return err
			}
			return controllerIdle()
		})
	})
}

// controllerIdle reports whether the policy controller has nothing queued and nothing in
// flight, read from controller-runtime's metrics in this process: a reconcile that started
// before a test deleted its policy must not land in the next test.
func controllerIdle() error {
	families, err := metrics.Registry.Gather()
	if err != nil {
		return err
	}
	for _, f := range families {
		if f.GetName() != "controller_runtime_active_workers" && f.GetName() != "workqueue_depth" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if (l.GetName() == "controller" || l.GetName() == "name") && l.GetValue() == "networkmtupolicy" && m.GetGauge().GetValue() != 0 {
					return fmt.Errorf("%s is %v", f.GetName(), m.GetGauge().GetValue())
				}
			}
		}
	}
	return nil
}

// eventually retries check until it succeeds or 30 seconds pass.
func eventually(t *testing.T, what string, check func() error) {
	t.Helper()
	testenv.Eventually(t, what, 30*time.Second, check)
}
