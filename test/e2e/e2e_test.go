// Package e2e runs the operator end to end on the lab (see test/e2e/lab): the story of
// `make demo`, step by step, with the assertions the demo only prints.
package e2e

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/mtu-operator/mtu-operator/internal/node/nettest"
	"github.com/mtu-operator/mtu-operator/internal/testenv"
	"github.com/mtu-operator/mtu-operator/test/e2e/lab"
	"github.com/mtu-operator/mtu-operator/test/e2e/story"
)

// TestMain fails the run if the labs left a namespace, link, mount or goroutine behind.
func TestMain(m *testing.M) { os.Exit(nettest.Main(m)) }

// startLab starts a lab for the test and closes it when the test ends.
func startLab(t *testing.T, cni lab.CNI) *lab.Lab {
	t.Helper()
	nettest.RequirePrivileged(t)
	var logs strings.Builder
	l, err := lab.Start(context.Background(), lab.Options{CNI: cni, Dir: t.TempDir(), Logs: &syncWriter{b: &logs}, Say: func(s string) { t.Log(s) }})
	if errors.Is(err, testenv.ErrNoAssets) && !nettest.InCI() {
		t.Skipf("skipping: %v", err)
	}
	if err != nil {
		t.Fatalf("starting the lab: %v", err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("closing the lab: %v", err)
		}
		if t.Failed() || os.Getenv("TEST_VERBOSE_LOGS") != "" {
			t.Logf("operator logs:\n%s", logs.String())
		}
	})
	return l
}

// TestStory runs the demo's story for each CNI and fails at the first step whose outcome the
// operator does not reach.
func TestStory(t *testing.T) {
	for _, cni := range lab.CNIs {
		t.Run(string(cni), func(t *testing.T) {
			ctx := context.Background()
			l := startLab(t, cni)
			w, err := story.NewWorld(ctx, l)
			if err != nil {
				t.Fatal(err)
			}
			for i, step := range story.Steps(cni) {
				if err := w.Apply(ctx, step); err != nil {
					t.Fatalf("step %d (%s): applying the policy: %v", i+1, step.Title, err)
				}
				if err := l.WaitFor(ctx, step.Expect, step.Timeout, func(ctx context.Context) error { return step.Until(ctx, w) }); err != nil {
					t.Fatalf("step %d (%s): %v", i+1, step.Title, err)
				}
				t.Logf("step %d reached: %s", i+1, step.Expect)
			}
		})
	}
}
