package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
	// Metrics answer only a caller the API server authenticates and authorizes.
	scraper := tokenFor(t, ns.Name, "scraper", true)
	stranger := tokenFor(t, ns.Name, "stranger", false)
	url := fmt.Sprintf("https://%s/metrics", metricsAddr)
	testenv.Eventually(t, "metrics are exposed to the scraper", 30*time.Second, func() error {
		code, body, err := getWith(url, scraper)
		if err != nil {
			return err
		}
		if code != http.StatusOK || !strings.Contains(body, "leader_election_master_status") {
			return fmt.Errorf("/metrics: %d, leader metric present %v", code, strings.Contains(body, "leader_election_master_status"))
		}
		return nil
	})
	for who, want := range map[string]int{"": http.StatusUnauthorized, stranger: http.StatusForbidden} {
		if code, body, err := getWith(url, who); err != nil || code != want {
			t.Errorf("/metrics without the right token: %d %q (%v), want %d", code, body, err, want)
		}
	}
}

// getWith GETs url over TLS (the metrics server's certificate is self-signed) with a bearer token.
func getWith(url, token string) (int, string, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // the test talks to its own server
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// tokenFor returns a token of a new service account, allowed to read metrics (config/rbac's
// metrics-reader) when reader is set.
func tokenFor(t *testing.T, namespace, name string, reader bool) string {
	t.Helper()
	ctx := context.Background()
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}}
	if err := env.Client.Create(ctx, sa); err != nil {
		t.Fatal(err)
	}
	if reader {
		role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "metrics-reader"}, Rules: []rbacv1.PolicyRule{{NonResourceURLs: []string{"/metrics"}, Verbs: []string{"get"}}}}
		binding := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name + "-metrics"},
			RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: role.Name},
			Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: namespace, Name: name}}}
		for _, o := range []client.Object{role, binding} {
			if err := env.Client.Create(ctx, o); err != nil {
				t.Fatal(err)
			}
		}
	}
	req := &authenticationv1.TokenRequest{}
	if err := env.Client.SubResource("token").Create(ctx, sa, req); err != nil {
		t.Fatalf("requesting a token for %s: %v", name, err)
	}
	return req.Status.Token
}
