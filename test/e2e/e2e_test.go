// Package e2e runs the operator end to end on the lab (see test/e2e/lab): the story of
// `make demo`, step by step, with the assertions the demo only prints.
package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	"github.com/mtu-operator/mtu-operator/internal/node/nettest"
	"github.com/mtu-operator/mtu-operator/internal/testenv"
	"github.com/mtu-operator/mtu-operator/test/e2e/lab"
	"github.com/mtu-operator/mtu-operator/test/e2e/lab/reaper"
	labtraffic "github.com/mtu-operator/mtu-operator/test/e2e/lab/traffic"
	"github.com/mtu-operator/mtu-operator/test/e2e/story"
)

// TestMain fails the run if the labs left a namespace, link, mount or goroutine behind. The
// test binary doubles as the labs' reaper.
func TestMain(m *testing.M) {
	reaper.Serve()
	if dir := os.Getenv(labChildEnv); dir != "" {
		runLabChild(dir)
	}
	code := nettest.Main(m)
	if kubectlMTUBuild.dir != "" {
		_ = os.RemoveAll(kubectlMTUBuild.dir)
	}
	os.Exit(code)
}

// startLab starts a lab for the test and closes it when the test ends.
func startLab(t *testing.T, cni lab.CNI) *lab.Lab {
	t.Helper()
	return startLabWith(t, lab.Options{CNI: cni})
}

// startLabWith starts a lab with the given options (its directory, logs and voice are the
// test's) and closes it when the test ends.
func startLabWith(t *testing.T, o lab.Options) *lab.Lab {
	t.Helper()
	nettest.RequirePrivileged(t)
	var logs strings.Builder
	o.Dir, o.Logs, o.Say = t.TempDir(), &logs, func(s string) { t.Log(s) }
	l, err := lab.Start(context.Background(), o)
	if (errors.Is(err, testenv.ErrNoAssets) || errors.Is(err, lab.ErrNoFlannel)) && !nettest.InCI() {
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
			files, _ := filepath.Glob(filepath.Join(l.LogDir, "*.log"))
			for _, f := range files {
				b, _ := os.ReadFile(f)
				t.Logf("%s:\n%s", filepath.Base(f), b)
			}
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
			traffic, err := w.StartTraffic(ctx, story.TrafficPaths)
			if err != nil {
				t.Fatal(err)
			}
			defer traffic.Stop()
			for i, step := range story.Steps(cni) {
				if err := w.Apply(ctx, step); err != nil {
					t.Fatalf("step %d (%s): applying the policy: %v", i+1, step.Title, err)
				}
				if err := w.Await(ctx, step); err != nil {
					t.Fatalf("step %d (%s): %v", i+1, step.Title, err)
				}
				t.Logf("step %d reached: %s", i+1, step.Expect)
				if err := w.CheckCrossings(ctx, step.Crossings); err != nil {
					t.Errorf("step %d (%s): packets between pods:\n%v", i+1, step.Title, err)
				}
				for _, r := range traffic.Mark() {
					t.Logf("step %d traffic %s:\n%s", i+1, r.Path, r.Report)
					// A send from a pod already deleted (the traffic follows the pods a step
					// replaced a moment late) is no packet of a running pod lost.
					routable := r.Report.Size(story.RoutableSize)
					lost := routable.Lost - routable.Errors[labtraffic.SourceGone]
					if allowed, bounded := step.LossAllowed(len(l.Nodes)); bounded && lost > allowed {
						t.Errorf("step %d (%s): %s lost %d datagrams of %d B, which fit every path at every moment (%d allowed):\n%s", i+1, step.Title, r.Path, lost, story.RoutableSize, allowed, r.Report)
					}
				}
			}
			checkFinalConfig(t, l)
		})
	}
}

// checkFinalConfig checks the CNI's documents after the story: the operator's fields hold the
// story's end state and everything else in the user's documents survived every edit.
func checkFinalConfig(t *testing.T, l *lab.Lab) {
	ctx := context.Background()
	cm := func(ns, name string) map[string]string {
		c := &corev1.ConfigMap{}
		if err := l.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, c); err != nil {
			t.Fatal(err)
		}
		return c.Data
	}
	switch l.CNI {
	case lab.Flannel:
		want := "{\n  \"Network\": \"10.244.0.0/16\",\n  \"EnableNFTables\": false,\n  \"Backend\": {\n    \"Type\": \"host-gw\"\n  }\n}\n"
		if got := cm("kube-flannel", "kube-flannel-cfg")["net-conf.json"]; got != want {
			t.Errorf("net-conf.json after the story:\n%s\nwant:\n%s", got, want)
		}
	case lab.Antrea:
		manifest, err := os.ReadFile("lab/manifests/antrea.yaml")
		if err != nil {
			t.Fatal(err)
		}
		got := cm("kube-system", "antrea-config")["antrea-agent.conf"]
		original, _, _ := strings.Cut(string(manifest), "antrea-cni.conflist:")
		for _, line := range strings.Split(original, "\n") {
			if c := strings.TrimSpace(line); strings.HasPrefix(c, "# ") && strings.HasPrefix(line, "    #") && !strings.Contains(got, c) {
				t.Errorf("antrea-agent.conf lost the comment %q:\n%s", c, got)
			}
		}
		for _, want := range []string{`trafficEncapMode: "noEncap"`, "defaultMTU: 9000", `tunnelType: "vxlan"`, `hostGateway: "antrea-gw0"`} {
			if !strings.Contains(got, want) {
				t.Errorf("antrea-agent.conf has no %q:\n%s", want, got)
			}
		}
	case lab.Calico:
		if got := cm("kube-system", "calico-config")["veth_mtu"]; got != "9000" {
			t.Errorf("veth_mtu %q, want 9000", got)
		}
		pool := &unstructured.Unstructured{}
		pool.SetAPIVersion("crd.projectcalico.org/v1")
		pool.SetKind("IPPool")
		if err := l.Client.Get(ctx, types.NamespacedName{Name: "default-ipv4-ippool"}, pool); err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(pool.Object["spec"]); got != "map[blockSize:24 cidr:10.244.0.0/16 ipipMode:Never natOutgoing:true nodeSelector:all() vxlanMode:Never]" {
			t.Errorf("IPPool spec after the story: %s", got)
		}
	}
}
