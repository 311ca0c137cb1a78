package agent_test

import (
	"context"
	"fmt"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	mtuv1alpha1 "github.com/mtu-operator/mtu-operator/api/v1alpha1"
)

func jumboPolicy(name string, maxUnavailable intstr.IntOrString) *mtuv1alpha1.NetworkMTUPolicy {
	p := &mtuv1alpha1.NetworkMTUPolicy{}
	p.Name = name
	underlay := int32(9000)
	p.Spec.Underlay.MTU = &underlay
	p.Spec.Underlay.InterfacePattern = "^eth"
	p.Spec.Encapsulation.Type = mtuv1alpha1.EncapsulationVXLAN
	p.Spec.IPFamilies = []mtuv1alpha1.IPFamily{mtuv1alpha1.IPv4}
	p.Spec.Rollout.MaxUnavailable = &maxUnavailable
	return p
}

func getPolicy(t *testing.T, name string) *mtuv1alpha1.NetworkMTUPolicy {
	t.Helper()
	p := &mtuv1alpha1.NetworkMTUPolicy{}
	if err := env.Client.Get(context.Background(), client.ObjectKey{Name: name}, p); err != nil {
		t.Fatal(err)
	}
	return p
}

func conditionOf(p *mtuv1alpha1.NetworkMTUPolicy, conditionType string) (status, reason, message string) {
	if c := meta.FindStatusCondition(p.Status.Conditions, conditionType); c != nil && c.ObservedGeneration == p.Generation {
		return string(c.Status), c.Reason, c.Message
	}
	return "absent", "", ""
}

func states(t *testing.T) []mtuv1alpha1.NodeMTUState {
	t.Helper()
	var list mtuv1alpha1.NodeMTUStateList
	if err := env.Client.List(context.Background(), &list); err != nil {
		t.Fatal(err)
	}
	return list.Items
}

// changing counts nodes asked to converge that do not yet report every interface at its
// target (a node that has reported nothing yet counts too).
func changing(list []mtuv1alpha1.NodeMTUState) int {
	n := 0
	for _, s := range list {
		if s.Spec.Phase == mtuv1alpha1.PhaseConverge && !reportsTarget(s) {
			n++
		}
	}
	return n
}

func reportsTarget(s mtuv1alpha1.NodeMTUState) bool {
	for _, want := range s.Spec.Interfaces {
		found := false
		for _, have := range s.Status.Interfaces {
			found = found || (have.Name == want.Name && have.MTU == want.MTU)
		}
		if !found {
			return false
		}
	}
	return true
}

// TestRolloutPacesAndConverges: five nodes move from 1450 to 8950 two at a time, with routes
// pinned to the old MTU until every node has converged, then released.
func TestRolloutPacesAndConverges(t *testing.T) {
	flannelFixture(t)
	var nodes []*testNode
	for i := 1; i <= 5; i++ {
		nodes = append(nodes, newNode(fmt.Sprintf("pace-%d", i), 9000))
	}
	cluster(t, 300*time.Millisecond, nodes...)
	createPolicy(t, jumboPolicy("pace", intstr.FromInt32(2)))

	// Watch every state the API server holds while the rollout runs.
	var most, pinnedSeen atomic.Int32
	stop := make(chan struct{})
	watching := make(chan struct{})
	go func() {
		defer close(watching)
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			list := states(t)
			if c := int32(changing(list)); c > most.Load() {
				most.Store(c)
			}
			for _, s := range list {
				if s.Status.RouteMTU != nil && *s.Status.RouteMTU == 1450 {
					pinnedSeen.Store(1)
				}
			}
		}
	}()
	eventually(t, "policy Ready", func() error {
		p := getPolicy(t, "pace")
		if status, reason, msg := conditionOf(p, mtuv1alpha1.ConditionReady); status != "True" {
			return fmt.Errorf("Ready %s %s: %s", status, reason, msg)
		}
		return nil
	})
	close(stop)
	<-watching

	if got := most.Load(); got > 2 || got == 0 {
		t.Errorf("at most %d nodes were changing at once; want 1 or 2 (maxUnavailable 2)", got)
	}
	if pinnedSeen.Load() == 0 {
		t.Errorf("routes were never pinned to the old MTU 1450 during the rollout")
	}
	p := getPolicy(t, "pace")
	if p.Status.Nodes != (mtuv1alpha1.NodeCounts{Selected: 5, Converged: 5}) || p.Status.PodMTU != 8950 {
		t.Errorf("nodes %+v pod MTU %d; want 5/5 converged at 8950", p.Status.Nodes, p.Status.PodMTU)
	}
	if status, _, msg := conditionOf(p, mtuv1alpha1.ConditionUnderlayConsistent); status != "True" {
		t.Errorf("UnderlayConsistent %s: %s", status, msg)
	}
	for _, n := range nodes {
		for _, name := range []string{"flannel.1", "cni0"} {
			if l, _ := n.links.Link(name); l.MTU != 8950 {
				t.Errorf("%s %s MTU %d; want 8950", n.name, name, l.MTU)
			}
		}
	}
	// The policy's transition releases the pins; each agent acts on it as it sees it.
	eventually(t, "every route released", func() error {
		for _, n := range nodes {
			for _, r := range n.links.AllRoutes() {
				if r.MTU != 0 {
					return fmt.Errorf("%s route %s still pinned to %d after the rollout", n.name, r, r.MTU)
				}
			}
		}
		return nil
	})
}

// TestUnderlayMismatchIsNamedAndEnforced: the 1500 node in a 9000 cluster is named; with
// underlay.management Enforce its NIC is raised and the policy goes Ready.
func TestUnderlayMismatchIsNamedAndEnforced(t *testing.T) {
	flannelFixture(t)
	odd := newNode("mismatch-3", 1500)
	nodes := []*testNode{newNode("mismatch-1", 9000), newNode("mismatch-2", 9000), odd}
	cluster(t, 0, nodes...)
	createPolicy(t, jumboPolicy("mismatch", intstr.FromString("100%")))

	eventually(t, "the 1500 node named", func() error {
		p := getPolicy(t, "mismatch")
		status, reason, msg := conditionOf(p, mtuv1alpha1.ConditionUnderlayConsistent)
		if status != "False" || reason != mtuv1alpha1.ReasonUnderlayMismatch || !strings.Contains(msg, "mismatch-3 (1500)") {
			return fmt.Errorf("UnderlayConsistent %s %s: %s", status, reason, msg)
		}
		if status, reason, _ := conditionOf(p, mtuv1alpha1.ConditionStalled); status != "True" || reason != mtuv1alpha1.ReasonUnderlayMismatch {
			return fmt.Errorf("Stalled %s %s", status, reason)
		}
		return nil
	})
	if l, _ := odd.links.Link("eth0"); l.MTU != 1500 {
		t.Fatalf("eth0 changed to %d although the policy only observes the underlay", l.MTU)
	}

	eventually(t, "switch to Enforce", func() error {
		p := getPolicy(t, "mismatch")
		p.Spec.Underlay.Management = mtuv1alpha1.UnderlayEnforce
		return env.Client.Update(context.Background(), p)
	})
	eventually(t, "policy Ready with the NIC raised", func() error {
		p := getPolicy(t, "mismatch")
		if status, reason, msg := conditionOf(p, mtuv1alpha1.ConditionReady); status != "True" {
			return fmt.Errorf("Ready %s %s: %s", status, reason, msg)
		}
		if status, _, msg := conditionOf(p, mtuv1alpha1.ConditionUnderlayConsistent); status != "True" {
			return fmt.Errorf("UnderlayConsistent %s: %s", status, msg)
		}
		return nil
	})
	if l, _ := odd.links.Link("eth0"); l.MTU != 9000 {
		t.Errorf("mismatch-3 eth0 MTU %d; want 9000", l.MTU)
	}
}

// TestFailedNodeHaltsTheRollout: a node whose probe fails rolls back; the policy stalls naming
// it and no further node is touched. Its agent measures the paths that failed (a switch port
// at 1500 between 9000-byte NICs), and the policy names them, worst first.
func TestFailedNodeHaltsTheRollout(t *testing.T) {
	flannelFixture(t)
	bad := newNode("halt-1", 9000)
	bad.failProbe, bad.pathCarries = true, 1500
	nodes := []*testNode{bad, newNode("halt-2", 9000), newNode("halt-3", 9000)}
	cluster(t, 0, nodes...)
	createPolicy(t, jumboPolicy("halt", intstr.FromInt32(1)))

	eventually(t, "the rollout stalls naming halt-1", func() error {
		p := getPolicy(t, "halt")
		status, reason, msg := conditionOf(p, mtuv1alpha1.ConditionStalled)
		if status != "True" || reason != mtuv1alpha1.ReasonNodeFailed || !strings.Contains(msg, "halt-1") {
			return fmt.Errorf("Stalled %s %s: %s", status, reason, msg)
		}
		if p.Status.Nodes.Failed != 1 {
			return fmt.Errorf("failed count %d", p.Status.Nodes.Failed)
		}
		return nil
	})
	eventually(t, "the policy names the short paths", func() error {
		_, reason, msg := conditionOf(getPolicy(t, "halt"), mtuv1alpha1.ConditionPathMTUVerified)
		if want := "halt-1 → halt-2: the path carries 1500, the NICs 9000"; reason != mtuv1alpha1.ReasonPathMTUBlackHole || !strings.Contains(msg, want) {
			return fmt.Errorf("PathMTUVerified %s: %s; want %q", reason, msg, want)
		}
		return nil
	})
	if got := shortPathSeries(t, "halt-1"); len(got) == 0 || slices.ContainsFunc(got, func(v float64) bool { return v != 1500 }) {
		t.Errorf("halt-1's mtu_operator_agent_path_mtu_bytes: %v, want 1500 for each short path", got)
	}
	// What the alerts read: the rollback counted, the failed probe by kind, the MTUs seen.
	if got := series(t, "mtu_operator_agent_transactions_total", "halt-1"); got["outcome=RolledBack"] < 1 {
		t.Errorf("halt-1's mtu_operator_agent_transactions_total: %v, want a RolledBack", got)
	}
	if got := series(t, "mtu_operator_agent_probe_failures_total", "halt-1"); got["kind=change"] < 1 {
		t.Errorf("halt-1's mtu_operator_agent_probe_failures_total: %v, want a failed change", got)
	}
	if got, want := series(t, "mtu_operator_agent_observed_mtu_bytes", "halt-1"), map[string]float64{"kind=underlay": 9000, "kind=overlay": 1450}; !maps.Equal(got, want) {
		t.Errorf("halt-1's mtu_operator_agent_observed_mtu_bytes: %v, want %v", got, want)
	}
	alertsReadWhatIsExported(t)
	eventually(t, "an Event on halt-1's NodeMTUState says it rolled back", func() error {
		var list eventsv1.EventList
		if err := env.Client.List(context.Background(), &list); err != nil {
			return err
		}
		for _, e := range list.Items {
			if e.Regarding.Kind == "NodeMTUState" && e.Regarding.Name == "halt-1" && e.Reason == "TransactionRolledBack" && e.Type == corev1.EventTypeWarning {
				return nil
			}
		}
		return fmt.Errorf("no TransactionRolledBack Event for halt-1 among %d", len(list.Items))
	})
	for _, s := range states(t) {
		switch s.Name {
		case "halt-1":
			if s.Status.LastTransaction == nil || s.Status.LastTransaction.Outcome != mtuv1alpha1.TransactionRolledBack {
				t.Errorf("halt-1 last transaction %+v; want RolledBack", s.Status.LastTransaction)
			}
			if len(s.Status.Paths) == 0 {
				t.Errorf("halt-1 reports no short path")
			}
			for _, p := range s.Status.Paths {
				if p.Expected != 9000 || p.Measured != 1500 || p.Layer != mtuv1alpha1.PathLayerUnderlay {
					t.Errorf("halt-1 path %+v; want 9000 expected, 1500 measured, on the underlay", p)
				}
			}
		case "halt-2", "halt-3":
			if s.Spec.Phase != mtuv1alpha1.PhaseObserve {
				t.Errorf("%s phase %s; the rollout must stop at the failed node", s.Name, s.Spec.Phase)
			}
		}
	}
	for _, n := range nodes {
		if l, _ := n.links.Link("flannel.1"); l.MTU != 1450 {
			t.Errorf("%s flannel.1 MTU %d; want 1450 (rolled back or untouched)", n.name, l.MTU)
		}
	}

	// The port is fixed and the node retried, as the stall says: its next check passes and
	// the short paths go.
	bad.fixed.Store(true)
	retry := client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"annotations":{"`+mtuv1alpha1.RetryAnnotation+`":"true"}}}`))
	state := &mtuv1alpha1.NodeMTUState{}
	state.Name = "halt-1"
	if err := env.Client.Patch(context.Background(), state, retry); err != nil {
		t.Fatal(err)
	}
	eventually(t, "no short path once fixed", func() error {
		status, reason, msg := conditionOf(getPolicy(t, "halt"), mtuv1alpha1.ConditionPathMTUVerified)
		if status != "True" {
			return fmt.Errorf("PathMTUVerified %s %s: %s", status, reason, msg)
		}
		return nil
	})
	if got := shortPathSeries(t, "halt-1"); len(got) > 0 {
		t.Errorf("halt-1's mtu_operator_agent_path_mtu_bytes once fixed: %v, want no series", got)
	}
}

// shortPathSeries are the values of node's mtu_operator_agent_path_mtu_bytes series.
func shortPathSeries(t *testing.T, node string) []float64 {
	t.Helper()
	return slices.Collect(maps.Values(series(t, "mtu_operator_agent_path_mtu_bytes", node)))
}

// alertsReadWhatIsExported: every metric the alerts and the dashboard users install read
// (config/prometheus/rules.yaml, config/grafana/mtu-operator.json) is among the series the
// manager's and the agents' code export now, mid-failure (test/alerts tests the alerts and
// the queries themselves).
func alertsReadWhatIsExported(t *testing.T) {
	t.Helper()
	var rules []byte
	for _, file := range []string{"../../config/prometheus/rules.yaml", "../../config/grafana/mtu-operator.json"} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		rules = append(rules, b...)
	}
	families, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	exported := map[string]bool{}
	for _, f := range families {
		exported[f.GetName()] = true
	}
	names := regexp.MustCompile(`mtu_operator_\w+`).FindAllString(string(rules), -1)
	if len(names) == 0 {
		t.Fatal("the rules read no mtu_operator metric")
	}
	for _, name := range names {
		if !exported[name] {
			t.Errorf("the alerts or the dashboard read %s, which is not exported", name)
		}
	}
}

// series are the values of node's series of an agent metric, by their other labels
// ("layer=Underlay,peer=192.0.2.2").
func series(t *testing.T, name, node string) map[string]float64 {
	t.Helper()
	families, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	values := map[string]float64{}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			var others []string
			ours := false
			for _, l := range m.GetLabel() {
				if l.GetName() == "node" {
					ours = l.GetValue() == node
				} else {
					others = append(others, l.GetName()+"="+l.GetValue())
				}
			}
			if ours {
				values[strings.Join(others, ",")] = m.GetGauge().GetValue() + m.GetCounter().GetValue()
			}
		}
	}
	return values
}

// TestStateOfAGonePolicyIsNotEnforced: a NodeMTUState whose policy no longer exists (deleted
// while the manager was away, its finalizer removed by hand) changes nothing on the node and
// pins nothing, and the agent says why.
func TestStateOfAGonePolicyIsNotEnforced(t *testing.T) {
	n := newNode("orphan-1", 9000)
	cluster(t, 0, n)
	ctx := context.Background()
	pin := int32(1450)
	state := &mtuv1alpha1.NodeMTUState{}
	state.Name = n.name
	state.Spec = mtuv1alpha1.NodeMTUStateSpec{
		Policy: "deleted-long-ago", Phase: mtuv1alpha1.PhaseConverge, UnderlayInterfacePattern: "^eth", PodMTU: 8950, RouteMTU: &pin,
		Interfaces: []mtuv1alpha1.ManagedInterface{{Name: "flannel.1", Role: mtuv1alpha1.RoleTunnel, MTU: 8950}, {Name: "cni0", Role: mtuv1alpha1.RoleBridge, MTU: 8950}},
	}
	if err := env.Client.Create(ctx, state); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the agent says the policy is gone", func() error {
		s := &mtuv1alpha1.NodeMTUState{}
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(state), s); err != nil {
			return err
		}
		if c := meta.FindStatusCondition(s.Status.Conditions, mtuv1alpha1.ConditionConverged); c == nil || c.Reason != "PolicyGone" {
			return fmt.Errorf("converged %+v", c)
		}
		return nil
	})
	if l, _ := n.links.Link("flannel.1"); l.MTU != 1450 {
		t.Errorf("flannel.1 changed to %d for a policy that is gone", l.MTU)
	}
	for _, r := range n.links.AllRoutes() {
		if r.MTU != 0 {
			t.Errorf("route %s pinned at %d for a policy that is gone", r.ID(), r.MTU)
		}
	}
}

// TestPathsAreProbedBetweenRollouts: once the policy is Ready its agents keep probing the
// paths between the nodes, a few peers a round. A switch port towards one node that comes back
// at 1500 is found and named within a few rounds, with no rollout and no retry; fixed, it is
// cleared the same way.
func TestPathsAreProbedBetweenRollouts(t *testing.T) {
	flannelFixture(t)
	nodes := []*testNode{newNode("rounds-1", 9000), newNode("rounds-2", 9000), newNode("rounds-3", 9000)}
	cluster(t, 0, nodes...)
	p := jumboPolicy("rounds", intstr.FromInt32(3))
	p.Spec.PathProbing = mtuv1alpha1.PathProbingSpec{PeersPerRound: ptr.To[int32](1), RoundSeconds: 1}
	createPolicy(t, p)
	eventually(t, "the policy Ready, the probing scheduled", func() error {
		if status, reason, msg := conditionOf(getPolicy(t, "rounds"), mtuv1alpha1.ConditionReady); status != "True" {
			return fmt.Errorf("Ready %s %s: %s", status, reason, msg)
		}
		tr := &mtuv1alpha1.NetworkMTUTransition{}
		if err := env.Client.Get(context.Background(), client.ObjectKey{Name: "rounds"}, tr); err != nil {
			return err
		}
		if s := tr.Spec.Probing; s == nil || len(s.Targets) != 3 || s.PeersPerRound != 1 || s.RoundSeconds != 1 ||
			s.Targets[2] != nodeAddress(2)+","+nodeAddress6(2)+"/9000 "+tunnelAddress(2)+"/8950" {
			return fmt.Errorf("probing %+v", s)
		}
		return nil
	})

	third := nodeAddress(2)
	switchPorts.Store(third, 1500)
	t.Cleanup(func() { switchPorts.Delete(third) })
	eventually(t, "the paths to and from rounds-3 named", func() error {
		status, reason, msg := conditionOf(getPolicy(t, "rounds"), mtuv1alpha1.ConditionPathMTUVerified)
		for _, want := range []string{
			"rounds-1 → rounds-3: the path carries 1500, the NICs 9000", "rounds-3 → rounds-1: the path carries 1500",
			"rounds-1 → rounds-3 over IPv6: the path carries 1500, the NICs 9000",
			"rounds-1 → rounds-3 through the tunnel: the path carries 1450, the pod networks 8950",
		} {
			if status != "False" || !strings.Contains(msg, want) {
				return fmt.Errorf("PathMTUVerified %s %s: %s; want %q", status, reason, msg, want)
			}
		}
		return nil
	})

	// A change of the policy now does not start: nothing is changed across a black hole.
	edited := getPolicy(t, "rounds")
	edited.Spec.Rollout.MaxUnavailable = ptr.To(intstr.FromInt32(2))
	if err := env.Client.Update(context.Background(), edited); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the change held before it starts", func() error {
		p := getPolicy(t, "rounds")
		status, reason, msg := conditionOf(p, mtuv1alpha1.ConditionStalled)
		if status != "True" || reason != mtuv1alpha1.ReasonPathMTUBlackHole || !strings.Contains(msg, "rounds-1 → rounds-3") ||
			p.Status.Migration == nil || p.Status.Migration.Phase != mtuv1alpha1.MigrationGathering || p.Status.ObservedGeneration != p.Generation {
			return fmt.Errorf("Stalled %s %s: %s; migration %+v", status, reason, msg, p.Status.Migration)
		}
		return nil
	})

	switchPorts.Delete(third)
	eventually(t, "no short path once fixed, without a retry, and the change carried out", func() error {
		p := getPolicy(t, "rounds")
		status, reason, msg := conditionOf(p, mtuv1alpha1.ConditionPathMTUVerified)
		if status != "True" {
			return fmt.Errorf("PathMTUVerified %s %s: %s", status, reason, msg)
		}
		if status, reason, msg := conditionOf(p, mtuv1alpha1.ConditionReady); status != "True" {
			return fmt.Errorf("Ready %s %s: %s", status, reason, msg)
		}
		return nil
	})
}
