package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mtu-operator/mtu-operator/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	os.Exit(testenv.Main(m, testenv.Options{}, func(e *testenv.Env) func() { env = e; return nil }))
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func get(url string) (int, string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// TestManagerServesProbesMetricsAndLeads starts the manager as the binary does and checks
// what an operator of the Deployment relies on: probes answer, metrics are exposed, and
// the manager holds the leader-election Lease.
func TestManagerServesProbesMetricsAndLeads(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	ns := &corev1.Namespace{}
	ns.Name = "mtu-operator-system"
	if err := env.Client.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	metricsAddr, probeAddr := freeAddr(t), freeAddr(t)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, env.Config, []string{
			"--metrics-bind-address", metricsAddr,
			"--health-probe-bind-address", probeAddr,
			"--leader-elect", "--leader-election-namespace", ns.Name,
		})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("manager returned %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("manager did not stop within 30s of cancellation")
		}
	})

	testenv.Eventually(t, "healthz and readyz answer ok", 30*time.Second, func() error {
		for _, path := range []string{"/healthz", "/readyz"} {
			code, body, err := get(fmt.Sprintf("http://%s%s", probeAddr, path))
			if err != nil {
				return err
			}
			if code != http.StatusOK || body != "ok" {
				return fmt.Errorf("%s: %d %q", path, code, body)
			}
		}
		return nil
	})
	testenv.Eventually(t, "the leader Lease names this manager", 30*time.Second, func() error {
		lease := &coordinationv1.Lease{}
		key := client.ObjectKey{Namespace: ns.Name, Name: "mtu-operator-manager.networking.mtu-operator.io"}
		if err := env.Client.Get(ctx, key, lease); err != nil {
			return err
		}
		if lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity == "" {
			return fmt.Errorf("lease has no holder")
		}
		return nil
	})
	testenv.Eventually(t, "metrics are exposed", 30*time.Second, func() error {
		code, body, err := get(fmt.Sprintf("http://%s/metrics", metricsAddr))
		if err != nil {
			return err
		}
		if code != http.StatusOK || !strings.Contains(body, "leader_election_master_status") {
			return fmt.Errorf("/metrics: %d, leader metric present %v", code, strings.Contains(body, "leader_election_master_status"))
		}
		return nil
	})
}
