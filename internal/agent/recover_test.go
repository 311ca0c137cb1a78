package agent_test

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/intstr"

	mtuv1alpha1 "github.com/mtu-operator/mtu-operator/api/v1alpha1"
	"github.com/mtu-operator/mtu-operator/internal/agent"
	"github.com/mtu-operator/mtu-operator/internal/node/journal"
	"github.com/mtu-operator/mtu-operator/internal/node/netdev"
	"github.com/mtu-operator/mtu-operator/internal/node/netdev/fake"
	"github.com/mtu-operator/mtu-operator/internal/node/routepin"
	"github.com/mtu-operator/mtu-operator/internal/node/txn"
)

// killedMidChange is a node whose agent was killed while raising flannel.1 and cni0 for
// generation 1 of a policy: flannel.1 is at 8950 already, cni0 not yet, and the route through
// flannel.1 is pinned at 1450 (it had no MTU metric). Its journal says so, with the number of
// earlier runs of the change that were cut short.
func killedMidChange(t *testing.T, name string, earlierInterruptions int) *testNode {
	t.Helper()
	n := newNode(name, 9000)
	n.links.PutLink(withMTU(n, "flannel.1", 8950))
	flannel1, _ := n.links.Link("flannel.1")
	var pinned routepin.Original
	for _, r := range n.links.AllRoutes() {
		if r.LinkIndex == flannel1.Index {
			pinned = routepin.Original{Route: r.ID(), LinkIndex: r.LinkIndex, MTU: 0, Pinned: 1450}
			n.links.RemoveRoute(r.ID())
			r.MTU = 1450
			n.links.AddRoute(r)
		}
	}
	j, _, _, err := journal.Open(filepath.Join(t.TempDir(), name+".json"), "this-boot")
	if err != nil {
		t.Fatal(err)
	}
	if err := j.SetPins([]routepin.Original{pinned}); err != nil {
		t.Fatal(err)
	}
	if err := j.SetTransaction(&journal.Pending{PolicyGeneration: 1, Started: time.Now(), Interruptions: earlierInterruptions, Changes: []txn.Change{
		{Link: "flannel.1", From: 1450, To: 8950, Role: txn.Tunnel}, {Link: "cni0", From: 1450, To: 8950, Role: txn.Bridge},
	}}); err != nil {
		t.Fatal(err)
	}
	n.journal = j
	return n
}

func withMTU(n *testNode, name string, mtu int) netdev.Link {
	l, _ := n.links.Link(name)
	l.MTU = mtu
	return l
}

// TestAnAgentKilledMidChangeUndoesItAndRunsItAgain: on start, before it reads anything from the
// API server, the agent undoes the half-made change its journal records; the change then runs
// again whole, with its probe, and the status says so. The route it had pinned is released when
// the rollout ends, from the journal's original.
func TestAnAgentKilledMidChangeUndoesItAndRunsItAgain(t *testing.T) {
	flannelFixture(t)
	n := killedMidChange(t, "killed-1", 0)
	recovered, err := agent.Recover(t.Context(), n.links, n.journal)
	if err != nil {
		t.Fatal(err)
	}
	if l, _ := n.links.Link("flannel.1"); l.MTU != 1450 || recovered.Undone == nil || recovered.Undone.Outcome != txn.RolledBack {
		t.Fatalf("after Recover flannel.1 is %d, undone %+v; want 1450, rolled back", l.MTU, recovered.Undone)
	}
	cluster(t, 0, n) // recovers again from the same journal, as a second restart would: nothing to undo
	createPolicy(t, jumboPolicy("resumed", intstr.FromInt32(1)))

	eventually(t, "the change ran again and the rollout ended", func() error {
		p := getPolicy(t, "resumed")
		if status, _, msg := conditionOf(p, mtuv1alpha1.ConditionReady); status != "True" {
			return fmt.Errorf("Ready %s: %s", status, msg)
		}
		return nil
	})
	s := states(t)[0]
	tx := s.Status.LastTransaction
	if tx == nil || tx.Outcome != mtuv1alpha1.TransactionCommitted || !strings.Contains(tx.Message, "run again after the agent stopped during it") {
		t.Errorf("last transaction %+v; want Committed, saying it ran again after the agent stopped", tx)
	}
	for _, name := range []string{"flannel.1", "cni0"} {
		if l, _ := n.links.Link(name); l.MTU != 8950 {
			t.Errorf("%s is %d, want 8950", name, l.MTU)
		}
	}
	for _, r := range n.links.AllRoutes() {
		if r.MTU != 0 {
			t.Errorf("route %s still pinned at %d: the pin from before the restart was not released", r.ID(), r.MTU)
		}
	}
	if rec := n.journal.Record(); rec.Transaction != nil || len(rec.Pins) != 0 {
		t.Errorf("journal after the rollout: %+v, want empty", rec)
	}
}

// TestAChangeThatKeepsKillingTheAgentIsGivenUp: the second time the agent finds the same change
// unfinished, it undoes it and gives up, as for a failed probe; the rollout stalls naming the
// node instead of the agent dying forever.
func TestAChangeThatKeepsKillingTheAgentIsGivenUp(t *testing.T) {
	flannelFixture(t)
	n := killedMidChange(t, "killer-1", 1)
	cluster(t, 0, n)
	createPolicy(t, jumboPolicy("killer", intstr.FromInt32(1)))

	eventually(t, "the node is failed, named", func() error {
		p := getPolicy(t, "killer")
		if status, reason, msg := conditionOf(p, mtuv1alpha1.ConditionStalled); status != "True" || reason != mtuv1alpha1.ReasonNodeFailed || !strings.Contains(msg, "killer-1") {
			return fmt.Errorf("Stalled %s %s: %s", status, reason, msg)
		}
		return nil
	})
	tx := states(t)[0].Status.LastTransaction
	if tx == nil || tx.Reason != agent.ReasonInterrupted || tx.Outcome != mtuv1alpha1.TransactionRolledBack {
		t.Errorf("last transaction %+v; want RolledBack, Interrupted", tx)
	}
	if l, _ := n.links.Link("flannel.1"); l.MTU != 1450 {
		t.Errorf("flannel.1 is %d, want 1450: undone and not tried again", l.MTU)
	}
}

// TestAPinIsReportedOnlyOnceInPlace: while the kernel refuses to pin the routes, the node does
// not report the pin, so the rollout waits (in RaisingDevices: a raise pins at each node's
// turn) instead of writing the configuration, which would give pods the new size behind
// routes that are not protected; once the pin lands, it goes on.
func TestAPinIsReportedOnlyOnceInPlace(t *testing.T) {
	flannelFixture(t)
	n := newNode("unpinnable-1", 9000)
	n.links.FailCalls(fake.Call{Method: fake.MethodSetRouteMTU}, errors.New("operation not permitted"))
	cluster(t, 0, n)
	createPolicy(t, jumboPolicy("unpinnable", intstr.FromInt32(1)))

	eventually(t, "the node is asked to pin", func() error {
		if s := states(t); len(s) != 1 || s[0].Spec.RouteMTU == nil {
			return fmt.Errorf("no pin asked yet")
		}
		return nil
	})
	for range 10 {
		s := states(t)[0]
		if s.Status.RouteMTU != nil {
			t.Fatalf("the node reports a pin at %d that the kernel refused", *s.Status.RouteMTU)
		}
		if m := getPolicy(t, "unpinnable").Status.Migration; m == nil || m.ConfigWrittenAt != nil ||
			m.Phase != mtuv1alpha1.MigrationPinning && m.Phase != mtuv1alpha1.MigrationGathering && m.Phase != mtuv1alpha1.MigrationRaisingDevices {
			t.Fatalf("migration %+v went on without the pin", m)
		}
		time.Sleep(200 * time.Millisecond)
	}
	n.links.ClearFailures()
	n.links.PutLink(withMTU(n, "lo", 65536)) // a link event: the agent looks again
	eventually(t, "the rollout ends once the pin is in place", func() error {
		if status, _, msg := conditionOf(getPolicy(t, "unpinnable"), mtuv1alpha1.ConditionReady); status != "True" {
			return fmt.Errorf("Ready %s: %s", status, msg)
		}
		return nil
	})
}
