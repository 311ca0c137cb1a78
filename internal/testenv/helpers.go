package testenv

import (
	"context"
	"io"
	"os"
	"testing"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/mtu-operator/mtu-operator/internal/poll"
)

// Eventually retries check every 20ms until it succeeds, failing the test with what and the
// last error once timeout has passed.
func Eventually(t testing.TB, what string, timeout time.Duration, check func() error) {
	t.Helper()
	poll.Eventually(t, what, timeout, check)
}

// StartManager runs a manager in the background; stop ends it and returns what Start
// returned. Stop managers before the API server stops.
func StartManager(mgr ctrl.Manager) (stop func() error) { return Go(mgr.Start) }

// Go runs run in the background until stop cancels its context; stop returns what run
// returned.
func Go(run func(context.Context) error) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	return func() error {
		cancel()
		return <-done
	}
}

// SetLogger gives controller-runtime a logger that is quiet unless TEST_VERBOSE_LOGS is set.
func SetLogger() {
	out := io.Discard
	if os.Getenv("TEST_VERBOSE_LOGS") != "" {
		out = os.Stderr
	}
	ctrl.SetLogger(zap.New(zap.UseDevMode(true), zap.WriteTo(out)))
}
