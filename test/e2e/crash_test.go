package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mtuv1alpha1 "github.com/mtu-operator/mtu-operator/api/v1alpha1"
	"github.com/mtu-operator/mtu-operator/internal/node/journal"
	"github.com/mtu-operator/mtu-operator/test/e2e/lab"
	"github.com/mtu-operator/mtu-operator/test/e2e/story"
)

// TestAgentKilledMidTransaction kills a node's agent with SIGKILL while its transaction waits
// for its probe, with the devices already raised, and starts it again. The transaction's probe
// is held up on purpose: node-c's NIC is at 9000 but the switch port towards it carries only
// 1500, so the don't-fragment probe of 9000 bytes to node-c gets no answer. The restarted agent
// undoes the half-made change from its journal, runs it again (the port is fixed by then) and
// the rollout ends Ready, with no pin left in any kernel and not one datagram of the routable
// size lost.
func TestAgentKilledMidTransaction(t *testing.T) {
	ctx := context.Background()
	l := startLabWith(t, lab.Options{CNI: lab.Flannel, Nodes: []lab.NodeSpec{{Name: "node-a", UnderlayMTU: 1500}, {Name: "node-b", UnderlayMTU: 1500}, {Name: "node-c", UnderlayMTU: 9000}}})
	if err := l.SetSwitchPortMTU("node-c", 1500); err != nil {
		t.Fatal(err)
	}
	w, err := story.NewWorld(ctx, l)
	if err != nil {
		t.Fatal(err)
	}
	traffic, err := w.StartTraffic(ctx, matrixPaths)
	if err != nil {
		t.Fatal(err)
	}
	defer traffic.Stop()
	up := migration{mtu: 9000, encap: mtuv1alpha1.EncapsulationVXLAN, maxUnavailable: "1"}
	if err := w.Apply(ctx, story.Step{Policy: up.policy()}); err != nil {
		t.Fatal(err)
	}

	var victim *lab.Node
	var pending *journal.Pending
	if err := l.WaitFor(ctx, "an agent mid-transaction, its devices changed, waiting for its probe", 2*time.Minute, func(context.Context) error {
		for _, n := range l.Nodes {
			p, err := pendingTransaction(n)
			if err != nil || p == nil {
				continue
			}
			mtus, err := n.LinkMTUs()
			if err != nil {
				return err
			}
			applied := true
			for _, c := range p.Changes {
				applied = applied && mtus[c.Link] == c.To
			}
			if applied {
				victim, pending = n, p
				return nil
			}
		}
		return errors.New("no agent is in the middle of a transaction")
	}); err != nil {
		t.Fatal(err)
	}
	if err := victim.KillAgent(); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed the agent on %s in the middle of %v", victim.Name, pending.Changes)
	if err := l.SetSwitchPortMTU("node-c", 9000); err != nil {
		t.Fatal(err)
	}
	if err := victim.RestartAgent(l.AgentBinary()); err != nil {
		t.Fatal(err)
	}

	if err := l.WaitFor(ctx, "the policy Ready", 3*time.Minute, policyReady(l)); err != nil {
		t.Fatal(err)
	}
	state := &mtuv1alpha1.NodeMTUState{}
	if err := l.Client.Get(ctx, types.NamespacedName{Name: victim.Name}, state); err != nil {
		t.Fatal(err)
	}
	if tx := state.Status.LastTransaction; tx == nil || tx.Outcome != mtuv1alpha1.TransactionCommitted || !strings.Contains(tx.Message, "run again after the agent stopped during it 1 time(s)") {
		t.Errorf("%s's last transaction: %+v; want Committed, run again after the restart", victim.Name, tx)
	}
	if p, err := pendingTransaction(victim); err != nil || p != nil {
		t.Errorf("%s's journal still holds a transaction: %+v (%v)", victim.Name, p, err)
	}
	noPinsAnywhere(t, l)
	noLoss(t, traffic.Stop(), "while an agent was killed mid-transaction and restarted")
}

// TestManagerRestartedMidRollout stops the manager in the middle of a paced rollout, while
// nodes are raising their devices, and starts a new one with nothing in memory: it takes the
// rollout up from what the API server holds, and it ends Ready, with no node rolled back, no
// pin left and nothing of the routable size lost.
func TestManagerRestartedMidRollout(t *testing.T) {
	ctx := context.Background()
	l := startLabWith(t, lab.Options{CNI: lab.Flannel, Nodes: []lab.NodeSpec{{Name: "node-a", UnderlayMTU: 1500}, {Name: "node-b", UnderlayMTU: 1500}, {Name: "node-c", UnderlayMTU: 1500}}})
	w, err := story.NewWorld(ctx, l)
	if err != nil {
		t.Fatal(err)
	}
	traffic, err := w.StartTraffic(ctx, matrixPaths)
	if err != nil {
		t.Fatal(err)
	}
	defer traffic.Stop()
	up := migration{mtu: 9000, encap: mtuv1alpha1.EncapsulationVXLAN, maxUnavailable: "1"}
	if err := w.Apply(ctx, story.Step{Policy: up.policy()}); err != nil {
		t.Fatal(err)
	}
	for _, phase := range []mtuv1alpha1.MigrationPhase{mtuv1alpha1.MigrationRaisingDevices, mtuv1alpha1.MigrationRestartingCNI} {
		if err := l.WaitFor(ctx, "the migration in "+string(phase), 2*time.Minute, func(ctx context.Context) error {
			p, err := story.Policy(ctx, l)
			if err != nil {
				return err
			}
			if m := p.Status.Migration; m == nil || m.Phase != phase {
				return fmt.Errorf("migration %+v", m)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		l.StopManager()
		t.Logf("stopped the manager in phase %s", phase)
		time.Sleep(2 * time.Second) // the agents go on alone meanwhile
		if err := l.StartManager(); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.WaitFor(ctx, "the policy Ready", 3*time.Minute, policyReady(l)); err != nil {
		t.Fatal(err)
	}
	var states mtuv1alpha1.NodeMTUStateList
	if err := l.Client.List(ctx, &states); err != nil {
		t.Fatal(err)
	}
	for _, s := range states.Items {
		if tx := s.Status.LastTransaction; tx != nil && tx.Outcome != mtuv1alpha1.TransactionCommitted {
			t.Errorf("%s: %s %s", s.Name, tx.Outcome, tx.Message)
		}
	}
	noPinsAnywhere(t, l)
	noLoss(t, traffic.Stop(), "while the manager was restarted twice mid-rollout")
}

// pendingTransaction reads the transaction a node's agent has under way from its journal.
func pendingTransaction(n *lab.Node) (*journal.Pending, error) {
	b, err := os.ReadFile(filepath.Join(n.StateDir, n.Name+".json"))
	if err != nil {
		return nil, err
	}
	var rec journal.Record
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, err
	}
	return rec.Transaction, nil
}

// policyReady: the story's policy is Ready for its generation.
func policyReady(l *lab.Lab) func(context.Context) error { return readyPolicy(l, story.PolicyName) }

// deletePolicy deletes a policy and waits until it is gone (its finalizer done).
func deletePolicy(ctx context.Context, t *testing.T, l *lab.Lab, name, what string, timeout time.Duration) {
	t.Helper()
	p := &mtuv1alpha1.NetworkMTUPolicy{}
	p.Name = name
	if err := l.Client.Delete(ctx, p); err != nil {
		t.Fatal(err)
	}
	if err := l.WaitFor(ctx, what, timeout, func(ctx context.Context) error {
		err := l.Client.Get(ctx, types.NamespacedName{Name: name}, &mtuv1alpha1.NetworkMTUPolicy{})
		if err == nil {
			return errors.New("still there")
		}
		return client.IgnoreNotFound(err)
	}); err != nil {
		t.Fatal(err)
	}
}

func noPinsAnywhere(t *testing.T, l *lab.Lab) {
	t.Helper()
	if err := pinsLeft(l); err != nil {
		t.Error(err)
	}
}

// pinsLeft names the nodes whose kernel still pins a route.
func pinsLeft(l *lab.Lab) error {
	var errs []error
	for _, n := range l.Nodes {
		pinned, err := n.PinnedRoutes()
		if err != nil {
			return err
		}
		if len(pinned) > 0 {
			errs = append(errs, fmt.Errorf("%s still pins %v", n.Name, pinned))
		}
	}
	return errors.Join(errs...)
}

func noLoss(t *testing.T, reports []story.PathReport, while string) {
	t.Helper()
	for _, r := range reports {
		s := r.Report.Size(story.RoutableSize)
		t.Logf("%s %s: %s", r.Path, while, s)
		if s.Lost > 0 {
			t.Errorf("%s lost %d datagrams of %d B %s:\n%s", r.Path, s.Lost, story.RoutableSize, while, r.Report)
		}
	}
}

// TestAPIServerRestartedMidRollout kills the API server while nodes raise their devices and
// starts it again five seconds later with its etcd: the manager, the agents and flanneld lose
// their connections and their watches, and the rollout still ends Ready, with no node rolled
// back, no pin left and nothing of the routable size lost.
func TestAPIServerRestartedMidRollout(t *testing.T) {
	ctx := context.Background()
	l := startLabWith(t, lab.Options{CNI: lab.Flannel, Nodes: []lab.NodeSpec{{Name: "node-a", UnderlayMTU: 1500}, {Name: "node-b", UnderlayMTU: 1500}, {Name: "node-c", UnderlayMTU: 1500}}})
	w, err := story.NewWorld(ctx, l)
	if err != nil {
		t.Fatal(err)
	}
	traffic, err := w.StartTraffic(ctx, matrixPaths)
	if err != nil {
		t.Fatal(err)
	}
	defer traffic.Stop()
	up := migration{mtu: 9000, encap: mtuv1alpha1.EncapsulationVXLAN, maxUnavailable: "1"}
	if err := w.Apply(ctx, story.Step{Policy: up.policy()}); err != nil {
		t.Fatal(err)
	}
	if err := l.WaitFor(ctx, "the migration raising devices", 2*time.Minute, func(ctx context.Context) error {
		p, err := story.Policy(ctx, l)
		if err != nil {
			return err
		}
		if m := p.Status.Migration; m == nil || m.Phase != mtuv1alpha1.MigrationRaisingDevices {
			return fmt.Errorf("migration %+v", m)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := l.RestartAPIServer(ctx, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	t.Log("the API server was down for 5 s while nodes raised their devices")
	if err := l.WaitFor(ctx, "the policy Ready", 4*time.Minute, policyReady(l)); err != nil {
		t.Fatal(err)
	}
	var states mtuv1alpha1.NodeMTUStateList
	if err := l.Client.List(ctx, &states); err != nil {
		t.Fatal(err)
	}
	for _, s := range states.Items {
		if tx := s.Status.LastTransaction; tx != nil && tx.Outcome != mtuv1alpha1.TransactionCommitted {
			t.Errorf("%s: %s %s", s.Name, tx.Outcome, tx.Message)
		}
	}
	noPinsAnywhere(t, l)
	noLoss(t, traffic.Stop(), "while the API server was restarted mid-rollout")
}
