package e2e

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	mtuv1alpha1 "github.com/mtu-operator/mtu-operator/api/v1alpha1"
	"github.com/mtu-operator/mtu-operator/internal/node/nettest"
	"github.com/mtu-operator/mtu-operator/test/e2e/lab"
	"github.com/mtu-operator/mtu-operator/test/e2e/story"
)

// migration is one row of the matrix: a policy applied to the cluster as the previous row left
// it, and what the pods must carry at the end.
type migration struct {
	name           string
	mtu            int
	encap          mtuv1alpha1.EncapsulationType
	maxUnavailable string
	allowLowering  bool
	// podMTU is what every pod carries at the end (stale pods are corrected in place).
	podMTU int
	// revert puts the CNI's configuration back by hand while the agents restart.
	revert bool
	// swapsRoutes: flanneld replaces each route to a peer when it switches between host-gw
	// and VXLAN, deleting before adding: a datagram per path and node may meet the gap.
	swapsRoutes bool
	// roundSeconds, when set, is the policy's pathProbing.roundSeconds.
	roundSeconds int
}

func (m migration) policy() string {
	return fmt.Sprintf(`apiVersion: networking.mtu-operator.io/v1alpha1
kind: NetworkMTUPolicy
metadata:
  name: %s
spec:
  underlay:
    source: Declared
    mtu: %d
    management: Enforce
    allowLowering: %t
  encapsulation:
    type: %s
  rollout:
    maxUnavailable: %s
  stalePods:
    action: InPlace
`, story.PolicyName, m.mtu, m.allowLowering, m.encap, m.maxUnavailable) + m.probing()
}

func (m migration) probing() string {
	if m.roundSeconds == 0 {
		return ""
	}
	return fmt.Sprintf("  pathProbing:\n    roundSeconds: %d\n", m.roundSeconds)
}

// matrixPaths carry the routable size between every pair of nodes, both ways round the lab.
var matrixPaths = []story.Path{
	{From: "node-a", To: "node-b", Sizes: []int{story.RoutableSize}},
	{From: "node-b", To: "node-c", Sizes: []int{story.RoutableSize}},
	{From: "node-c", To: "node-a", Sizes: []int{story.RoutableSize}},
}

// TestMigrations runs the migration matrix on a lab whose NICs all start at 1500: up to jumbo
// frames, off VXLAN and back, down to 1500 with consent, and up again with the CNI's
// configuration reverted by hand halfway. Each migration must end Ready with no rollback and
// no pin, full-size datagrams crossing between every pair of nodes, and not one datagram of
// the routable size lost while it ran; the policy must never claim Ready before it is.
func TestMigrations(t *testing.T) {
	up := migration{name: "1500 → 9000", mtu: 9000, encap: mtuv1alpha1.EncapsulationVXLAN, maxUnavailable: "1", podMTU: 8950}
	rows := map[lab.CNI][]migration{
		lab.Flannel: {
			up,
			{name: "VXLAN → None", mtu: 9000, encap: mtuv1alpha1.EncapsulationNone, maxUnavailable: "50%", podMTU: 9000, swapsRoutes: true},
			{name: "None → VXLAN", mtu: 9000, encap: mtuv1alpha1.EncapsulationVXLAN, maxUnavailable: "1", podMTU: 8950, swapsRoutes: true},
			{name: "9000 → 1500", mtu: 1500, encap: mtuv1alpha1.EncapsulationVXLAN, maxUnavailable: "50%", allowLowering: true, podMTU: 1450},
			{name: "1500 → 9000, reverted by hand", mtu: 9000, encap: mtuv1alpha1.EncapsulationVXLAN, maxUnavailable: "1", podMTU: 8950, revert: true},
		},
		lab.Calico: {up, {name: "9000 → 1500", mtu: 1500, encap: mtuv1alpha1.EncapsulationVXLAN, maxUnavailable: "1", allowLowering: true, podMTU: 1450}},
		lab.Antrea: {up, {name: "9000 → 1500", mtu: 1500, encap: mtuv1alpha1.EncapsulationVXLAN, maxUnavailable: "1", allowLowering: true, podMTU: 1450}},
	}
	for _, cni := range lab.CNIs {
		t.Run(string(cni), func(t *testing.T) {
			nettest.RequirePrivileged(t)
			ctx := context.Background()
			l := startLabWith(t, lab.Options{CNI: cni, Nodes: []lab.NodeSpec{{Name: "node-a", UnderlayMTU: 1500}, {Name: "node-b", UnderlayMTU: 1500}, {Name: "node-c", UnderlayMTU: 1500}}})
			w, err := story.NewWorld(ctx, l)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range rows[cni] {
				if !runMigration(t, w, m) {
					return // the next row starts from where this one should have ended
				}
			}
		})
	}
}

// runMigration applies the row's policy with traffic flowing and checks what it must reach.
func runMigration(t *testing.T, w *story.World, m migration) bool {
	t.Helper()
	ctx := context.Background()
	traffic, err := w.StartTraffic(ctx, matrixPaths)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := w.Apply(ctx, story.Step{Policy: m.policy()}); err != nil {
		t.Fatalf("%s: applying the policy: %v", m.name, err)
	}
	var lies, said []string
	var stalled error
	reverted := !m.revert
	waitCtx, stop := context.WithCancel(ctx)
	defer stop()
	err = w.WaitFor(waitCtx, m.name, 4*time.Minute, func(ctx context.Context) error {
		p, err := story.Policy(ctx, w.Lab)
		if err != nil {
			return err
		}
		if lie := untruth(ctx, w, p); lie != "" && len(lies) < 5 {
			lies = append(lies, lie)
		}
		if c := meta.FindStatusCondition(p.Status.Conditions, mtuv1alpha1.ConditionNodesConverged); c != nil && c.ObservedGeneration == p.Generation {
			if line := fmt.Sprintf("%s %s: %s", time.Since(start).Round(time.Second), c.Reason, c.Message); len(said) == 0 || !strings.HasSuffix(said[len(said)-1], c.Reason+": "+c.Message) {
				said = append(said, line)
			}
		}
		if !reverted && restartedSinceWrite(ctx, w.Lab, p) > 0 {
			reverted = true
			if err := revertConfig(ctx, w.Lab); err != nil {
				return err
			}
			t.Logf("%s: the CNI configuration was put back by hand after a node's agent had restarted with it", m.name)
		}
		if p.Status.ObservedGeneration != p.Generation || !reverted {
			return fmt.Errorf("generation %d not observed yet", p.Generation)
		}
		if c := meta.FindStatusCondition(p.Status.Conditions, mtuv1alpha1.ConditionStalled); c != nil && c.Status == metav1.ConditionTrue {
			stalled = fmt.Errorf("stalled: %s", c.Message)
			stop() // a stalled migration waits for a person: no point waiting longer
			return stalled
		}
		if c := meta.FindStatusCondition(p.Status.Conditions, mtuv1alpha1.ConditionReady); c == nil || c.Status != metav1.ConditionTrue {
			return fmt.Errorf("not ready: %v", c)
		}
		if err := w.CNIRolledOut(ctx); err != nil {
			return err
		}
		return story.PodMTUs(ctx, w.Lab, m.podMTU)
	})
	elapsed := time.Since(start)
	reports := traffic.Stop()
	if err != nil {
		t.Errorf("%s: %v", m.name, errors.Join(stalled, err))
		return false
	}
	for _, lie := range lies {
		t.Errorf("%s: the policy's conditions did not tell the truth: %s", m.name, lie)
	}
	var sent, lost int
	for _, r := range reports {
		s := r.Report.Size(story.RoutableSize)
		sent, lost = sent+s.Sent, lost+s.Lost
		allowed := 0
		if m.swapsRoutes {
			allowed = len(w.Nodes)
		}
		if s.Lost > allowed {
			t.Errorf("%s: %s lost %d datagrams of %d B, which fit every path at every moment (%d allowed):\n%s", m.name, r.Path, s.Lost, story.RoutableSize, allowed, r.Report)
		}
	}
	t.Logf("%s %s, maxUnavailable %s: %s, %d nodes, %d datagrams of %d B sent, %d lost; NodesConverged said:\n  %s",
		w.CNI, m.name, m.maxUnavailable, elapsed.Round(time.Second), len(w.Nodes), sent, story.RoutableSize, lost, strings.Join(said, "\n  "))
	if err := errors.Join(noRollback(ctx, w.Lab), noPinLeft(ctx, w.Lab)); err != nil {
		t.Errorf("%s: %v", m.name, err)
	}
	if err := pathsVerified(ctx, w.Lab); err != nil {
		t.Errorf("%s: %v", m.name, err)
	}
	var full []story.Crossing
	for _, p := range matrixPaths {
		full = append(full, story.Crossing{From: p.From, To: p.To, Size: m.podMTU, Why: "every pod and every path at the new MTU"})
	}
	if err := w.CheckCrossings(ctx, full); err != nil {
		t.Errorf("%s: full-size datagrams at the end:\n%v", m.name, err)
	}
	return !t.Failed()
}

// untruth is what the policy claims that is not so: Ready while a node is still pinned or off
// its target, or while the migration has not finished.
func untruth(ctx context.Context, w *story.World, p *mtuv1alpha1.NetworkMTUPolicy) string {
	ready := meta.FindStatusCondition(p.Status.Conditions, mtuv1alpha1.ConditionReady)
	if ready == nil || ready.Status != metav1.ConditionTrue || ready.ObservedGeneration != p.Generation {
		return ""
	}
	if p.Status.Migration == nil || p.Status.Migration.Phase != mtuv1alpha1.MigrationDone {
		return fmt.Sprintf("Ready while the migration is in %v", p.Status.Migration)
	}
	if p.Status.Migration.RoutableMTU > 0 {
		t := &mtuv1alpha1.NetworkMTUTransition{}
		if err := w.Client.Get(ctx, types.NamespacedName{Name: p.Name}, t); err != nil || t.Spec.PinsReleasedGeneration < p.Generation {
			return fmt.Sprintf("Ready while the pins of generation %d are not released (%v, transition %+v)", p.Generation, err, t.Spec)
		}
	}
	if err := noRollback(ctx, w.Lab); err != nil {
		return "Ready while " + err.Error()
	}
	return ""
}

// noRollback: no node's last change failed.
func noRollback(ctx context.Context, l *lab.Lab) error {
	var states mtuv1alpha1.NodeMTUStateList
	if err := l.Client.List(ctx, &states); err != nil {
		return err
	}
	var errs []error
	for _, s := range states.Items {
		if t := s.Status.LastTransaction; t != nil && t.Outcome != mtuv1alpha1.TransactionCommitted {
			errs = append(errs, fmt.Errorf("%s rolled back: %s", s.Name, t.Message))
		}
	}
	return errors.Join(errs...)
}

// noPinLeft: once Ready, every node's kernel drops its pins soon, as its agent sees the
// transition's release (no agent reports it).
func noPinLeft(ctx context.Context, l *lab.Lab) error {
	return l.WaitFor(ctx, "every route pin released", 15*time.Second, func(context.Context) error { return pinsLeft(l) })
}

// restartedSinceWrite counts the nodes whose CNI agent started after the configuration was
// written for the policy's migration.
func restartedSinceWrite(ctx context.Context, l *lab.Lab, p *mtuv1alpha1.NetworkMTUPolicy) int {
	m := p.Status.Migration
	if m == nil || m.Generation != p.Generation || m.Phase != mtuv1alpha1.MigrationRestartingCNI || m.ConfigWrittenAt == nil {
		return 0
	}
	pods, err := l.CNIPods(ctx)
	if err != nil {
		return 0
	}
	n := 0
	for _, pod := range pods {
		if pod.CreationTimestamp.After(m.ConfigWrittenAt.Time) && podIsReady(pod) {
			n++
		}
	}
	return n
}

// pathsVerified: every node checked the paths to its peers at full size for the policy's
// generation, with real don't-fragment probes, before the pins went: in the Verifying phase
// when a NIC changed, otherwise at its turn (the probes of its committed transaction, or a
// check of its own when it had nothing to change), its peers' NICs carrying full size all along.
func pathsVerified(ctx context.Context, l *lab.Lab) error {
	p, err := story.Policy(ctx, l)
	if err != nil {
		return err
	}
	var states mtuv1alpha1.NodeMTUStateList
	if err := l.Client.List(ctx, &states); err != nil {
		return err
	}
	verifyPhase := p.Status.Migration != nil && p.Status.Migration.VerifyPaths
	var errs []error
	for _, s := range states.Items {
		if v := s.Status.Verification; v != nil && v.Passed && v.PolicyGeneration == p.Generation {
			continue
		}
		t := s.Status.LastTransaction
		probedAtTurn := !verifyPhase && t != nil && t.Outcome == mtuv1alpha1.TransactionCommitted && t.PolicyGeneration == p.Generation
		for _, peer := range s.Spec.Probe.Peers {
			if peer.Size != s.Status.UnderlayMTU {
				probedAtTurn = false // below full size: only a check after every NIC carries it counts
			}
		}
		if !probedAtTurn || len(s.Spec.Probe.Peers) == 0 {
			errs = append(errs, fmt.Errorf("%s has no passed path check at full size for generation %d: verification %+v, transaction %+v, peers %+v", s.Name, p.Generation, s.Status.Verification, t, s.Spec.Probe.Peers))
		}
	}
	return errors.Join(errs...)
}

// revertConfig puts the CNI's pod-MTU setting back to what the lab installed, as a person with
// kubectl edit would.
func revertConfig(ctx context.Context, l *lab.Lab) error {
	if l.CNI != lab.Flannel {
		return fmt.Errorf("no revert for %s", l.CNI)
	}
	key, field := types.NamespacedName{Namespace: "kube-flannel", Name: "kube-flannel-cfg"}, "net-conf.json"
	cm := &corev1.ConfigMap{}
	if err := l.Client.Get(ctx, key, cm); err != nil {
		return err
	}
	doc := cm.Data[field]
	i := strings.Index(doc, `"MTU"`)
	if i < 0 {
		return fmt.Errorf("%s has no MTU to revert:\n%s", field, doc)
	}
	j := strings.IndexAny(doc[i:], ",\n}")
	cm.Data[field] = doc[:i] + `"MTU": 1500` + doc[i+j:]
	return l.Client.Update(ctx, cm)
}
