package e2e

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	mtuv1alpha1 "github.com/mtu-operator/mtu-operator/api/v1alpha1"
	"github.com/mtu-operator/mtu-operator/test/e2e/lab"
	"github.com/mtu-operator/mtu-operator/test/e2e/story"
)

// TestBlackHoleBetweenJumboNICs: every NIC is at 9000 but the switch port towards node-c
// carries 1500, the incident no comparison of NICs sees. The agents' checks of their peers at
// full size fail, they measure the paths, and the policy names them ("the path carries 1500,
// the NICs 9000") and stops. Once the port is fixed and the nodes retried, it ends Ready with
// no short path left.
func TestBlackHoleBetweenJumboNICs(t *testing.T) {
	ctx := context.Background()
	l := startLabWith(t, lab.Options{CNI: lab.Flannel, Nodes: []lab.NodeSpec{{Name: "node-a", UnderlayMTU: 9000}, {Name: "node-b", UnderlayMTU: 9000}, {Name: "node-c", UnderlayMTU: 9000}}})
	if err := l.SetSwitchPortMTU("node-c", 1500); err != nil {
		t.Fatal(err)
	}
	w, err := story.NewWorld(ctx, l)
	if err != nil {
		t.Fatal(err)
	}
	jumbo := migration{mtu: 9000, encap: mtuv1alpha1.EncapsulationVXLAN, maxUnavailable: "1", roundSeconds: 2}
	if err := w.Apply(ctx, story.Step{Policy: jumbo.policy()}); err != nil {
		t.Fatal(err)
	}

	var found string
	if err := l.WaitFor(ctx, "the short paths to node-c named and the rollout stopped", 2*time.Minute, func(ctx context.Context) error {
		p, err := story.Policy(ctx, l)
		if err != nil {
			return err
		}
		c := meta.FindStatusCondition(p.Status.Conditions, mtuv1alpha1.ConditionPathMTUVerified)
		stalled := meta.FindStatusCondition(p.Status.Conditions, mtuv1alpha1.ConditionStalled)
		switch {
		case c == nil || c.Status != metav1.ConditionFalse:
			return fmt.Errorf("PathMTUVerified: %+v", c)
		case stalled == nil || stalled.Status != metav1.ConditionTrue:
			return fmt.Errorf("not stalled: %+v", stalled)
		case p.Status.Migration == nil || p.Status.Migration.ConfigWrittenAt != nil ||
			p.Status.Migration.Phase != mtuv1alpha1.MigrationRaisingDevices && p.Status.Migration.Phase != mtuv1alpha1.MigrationGathering:
			// Held where the turns' checks found it, or before any turn if the probes
			// between rollouts found it first.
			return fmt.Errorf("want the migration held at %s or %s, the CNI configuration not written: %+v", mtuv1alpha1.MigrationGathering, mtuv1alpha1.MigrationRaisingDevices, p.Status.Migration)
		}
		// Every node checks its peers at its turn: both ways across node-c's port. Towards
		// node-c the port carries 1500; from node-c a veth lets a VLAN tag's 4 bytes more
		// in, so its echoes of up to 1504 bytes make it.
		for _, want := range []string{"node-a → node-c: the path carries 1500, the NICs 9000", "node-b → node-c: the path carries 1500, the NICs 9000", "node-c → node-a: the path carries 150", "node-c → node-b: the path carries 150"} {
			if !strings.Contains(c.Message, want) {
				return fmt.Errorf("PathMTUVerified does not say %q: %s", want, c.Message)
			}
		}
		found = c.Message
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("PathMTUVerified: %s", found)
	if strings.Contains(found, "node-a → node-b") || strings.Contains(found, "node-b → node-a") {
		t.Errorf("a path that carries 9000 is named short: %s", found)
	}
	// What a person sees: the stall, every node's state, the short paths.
	status := kubectlMTU(t, l, "status", story.PolicyName)
	for _, want := range []string{
		`NetworkMTUPolicy ` + story.PolicyName + ` \(Apply, Flannel, VXLAN\)`, `Stalled:\s+\w+: `,
		`(?m)^NODE\s+PHASE`, `(?m)^node-a\s+\w+\s+9000\s`, `(?m)^node-b\s`, `(?m)^node-c\s`,
		`Short paths \(worst first\):`, `node-a → node-c: the path carries 1500, the NICs 9000`,
	} {
		if !regexp.MustCompile(want).MatchString(status) {
			t.Errorf("kubectl mtu status does not match %q", want)
		}
	}

	if err := l.SetSwitchPortMTU("node-c", 9000); err != nil {
		t.Fatal(err)
	}
	// The retry the stall asks for, with the plugin: the nodes whose check failed, if the
	// turns' checks found the port before the rounds did.
	retried := kubectlMTU(t, l, "retry", "--failed", story.PolicyName)
	if !strings.Contains(retried, "retry requested") && !strings.Contains(retried, "nothing to retry") {
		t.Errorf("kubectl mtu retry --failed says %q", retried)
	}
	if err := l.WaitFor(ctx, "the policy Ready with no short path", 2*time.Minute, func(ctx context.Context) error {
		if err := policyReady(l)(ctx); err != nil {
			return err
		}
		p, err := story.Policy(ctx, l)
		if err != nil {
			return err
		}
		if c := meta.FindStatusCondition(p.Status.Conditions, mtuv1alpha1.ConditionPathMTUVerified); c == nil || c.Status != metav1.ConditionTrue {
			return fmt.Errorf("PathMTUVerified: %+v", c)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	// Between rollouts the agents keep probing, a round every 2 seconds: the port going bad
	// again is found with no change of the policy, and its fix clears it, with no retry.
	if err := l.SetSwitchPortMTU("node-c", 1500); err != nil {
		t.Fatal(err)
	}
	broke := time.Now()
	// Both layers: between the nodes, and through flannel's tunnel, where the pods' 8950
	// bytes plus VXLAN's 50 meet the same port: about 1450 cross (the veth's VLAN room
	// lets an encapsulated packet of 1504 through).
	if err := l.WaitFor(ctx, "the rounds between rollouts name the short paths", time.Minute, pathMTUCondition(l, metav1.ConditionFalse,
		"node-a → node-c: the path carries 1500, the NICs 9000",
		"node-a → node-c through the tunnel: the path carries 145", "node-c → node-b through the tunnel: the path carries 145",
		"the pod networks 8950")); err != nil {
		t.Fatal(err)
	}
	t.Logf("found by the rounds %s after the port went bad", time.Since(broke).Round(time.Second))
	if err := l.SetSwitchPortMTU("node-c", 9000); err != nil {
		t.Fatal(err)
	}
	if err := l.WaitFor(ctx, "the rounds clear the short paths", time.Minute, pathMTUCondition(l, metav1.ConditionTrue)); err != nil {
		t.Fatal(err)
	}
	if err := policyReady(l)(ctx); err != nil {
		t.Errorf("a black hole between rollouts is reported, not a rollout: %v", err)
	}

	// What lowering back to 1500 would change, planned with the plugin: the manager's own
	// decisions, and nothing written.
	versions := func() map[string]string {
		out := map[string]string{}
		p, err := story.Policy(ctx, l)
		if err != nil {
			t.Fatal(err)
		}
		out["policy"] = p.ResourceVersion
		cm := &corev1.ConfigMap{}
		if err := l.Client.Get(ctx, types.NamespacedName{Namespace: "kube-flannel", Name: "kube-flannel-cfg"}, cm); err != nil {
			t.Fatal(err)
		}
		out["configmap"] = cm.ResourceVersion
		var states mtuv1alpha1.NodeMTUStateList
		if err := l.Client.List(ctx, &states); err != nil {
			t.Fatal(err)
		}
		for _, s := range states.Items {
			out[s.Name] = fmt.Sprint(s.Generation)
		}
		return out
	}
	before := versions()
	file := filepath.Join(t.TempDir(), "lower.yaml")
	lower := migration{mtu: 1500, encap: mtuv1alpha1.EncapsulationVXLAN, maxUnavailable: "1", allowLowering: true}
	if err := os.WriteFile(file, []byte(lower.policy()), 0o600); err != nil {
		t.Fatal(err)
	}
	planned := kubectlMTU(t, l, "plan", "-f", file)
	for _, want := range []string{
		`size:\s+underlay 1500, pods 1450, tunnel IPv4 1450 \(Flannel\); 3 node\(s\) selected`,
		`ConfigMap kube-flannel/kube-flannel-cfg net-conf.json: Backend.MTU: \S+ → 1500`,
		`node-a eth0 mtu: 9000 → 1500`, `node-c flannel.1 mtu: 8950 → 1450`,
		`CNI agents restarted:\n\s+kube-flannel/kube-flannel-ds`,
		`stale pods: about \d+ pod\(s\) on \d node\(s\), at 8950 now`,
	} {
		if !regexp.MustCompile(want).MatchString(planned) {
			t.Errorf("kubectl mtu plan does not match %q", want)
		}
	}
	if after := versions(); !maps.Equal(before, after) {
		t.Errorf("kubectl mtu plan wrote: %v became %v", before, after)
	}
}

// pathMTUCondition checks the policy's PathMTUVerified condition.
func pathMTUCondition(l *lab.Lab, status metav1.ConditionStatus, says ...string) func(context.Context) error {
	return func(ctx context.Context) error {
		p, err := story.Policy(ctx, l)
		if err != nil {
			return err
		}
		c := meta.FindStatusCondition(p.Status.Conditions, mtuv1alpha1.ConditionPathMTUVerified)
		if c == nil || c.Status != status {
			return fmt.Errorf("PathMTUVerified: %+v", c)
		}
		for _, s := range says {
			if !strings.Contains(c.Message, s) {
				return fmt.Errorf("PathMTUVerified does not say %q: %s", s, c.Message)
			}
		}
		return nil
	}
}
