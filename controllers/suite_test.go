package controllers

import (
	"context"
	"fmt"
	"io"
	"os"
	"testing"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/mtu-operator/mtu-operator/internal/testenv"
)

var env *testenv.Env

// TestMain starts one API server for the package and a manager running the controllers, as
// cmd/manager wires them.
func TestMain(m *testing.M) {
	os.Exit(testenv.Main(m, testenv.Options{}, func(e *testenv.Env) func() {
		env = e
		ctrl.SetLogger(zap.New(zap.UseDevMode(true), zap.WriteTo(logOutput())))
		mgr, err := ctrl.NewManager(e.Config, ctrl.Options{Scheme: e.Scheme, Metrics: metricsserver.Options{BindAddress: "0"}})
		if err != nil {
			panic(err)
		}
		if err := (&NetworkMTUPolicyReconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader()}).SetupWithManager(mgr); err != nil {
			panic(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- mgr.Start(ctx) }()
		return func() {
			cancel()
			if err := <-done; err != nil {
				fmt.Fprintln(os.Stderr, "manager:", err)
			}
		}
	}))
}

// logOutput keeps test output quiet unless TEST_VERBOSE_LOGS is set.
func logOutput() io.Writer {
	if os.Getenv("TEST_VERBOSE_LOGS") != "" {
		return os.Stderr
	}
	return io.Discard
}

// eventually retries check until it succeeds or 30 seconds pass.
func eventually(t *testing.T, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 30s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
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
	})
}
