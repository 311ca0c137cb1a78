package migration

import (
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	mtuv1alpha1 "github.com/mtu-operator/mtu-operator/api/v1alpha1"
)

// TestMigrations runs every kind of migration to its end on a simulated cluster whose agents
// follow the NodeMTUState contract, checking the invariants after every reconcile: no packet
// a pod's routes allow is lost between any two nodes, no device is larger than its carrier,
// the configuration is written only once every device carries it, and no more than
// maxUnavailable nodes change at once.
func TestMigrations(t *testing.T) {
	tests := []struct {
		name          string
		from          encap
		underlays     []int32
		to            encap
		mtu           int32
		enforce       bool
		allowLowering bool
	}{
		{name: "whole cluster 1500 to 9000", from: vxlan, underlays: []int32{1500, 1500, 1500, 1500}, to: vxlan, mtu: 9000, enforce: true},
		{name: "one odd node among jumbo nodes", from: vxlan, underlays: []int32{9000, 9000, 1500}, to: vxlan, mtu: 9000, enforce: true},
		{name: "NICs raised by hand, pods follow", from: vxlan, underlays: []int32{9000, 9000, 9000}, to: vxlan, mtu: 9000},
		{name: "whole cluster 9000 to 1500, with consent", from: vxlan, underlays: []int32{9000, 9000, 9000, 9000}, to: vxlan, mtu: 1500, enforce: true, allowLowering: true},
		{name: "VXLAN to None", from: vxlan, underlays: []int32{9000, 9000, 9000}, to: none, mtu: 9000, enforce: true},
		{name: "None to VXLAN", from: none, underlays: []int32{9000, 9000, 9000}, to: vxlan, mtu: 9000, enforce: true},
		{name: "underlay only", from: none, underlays: []int32{9000, 1500, 9000}, to: none, mtu: 9000, enforce: true},
	}
	for _, tc := range tests {
		for _, maxUnavailable := range []intstr.IntOrString{intstr.FromInt32(1), intstr.FromString("50%"), intstr.FromString("100%")} {
			t.Run(tc.name+"/maxUnavailable="+maxUnavailable.String(), func(t *testing.T) {
				s := newSim(t, tc.from, tc.underlays...)
				s.generation = 1
				input := func() Input { return s.input(tc.to, tc.mtu, tc.enforce, tc.allowLowering, maxUnavailable) }
				step := s.run(input, 200)
				target := input().Target
				s.checkDone(step, target)
				limit, _ := intstr.GetScaledValueFromIntOrPercent(&maxUnavailable, len(s.nodes), true)
				if s.maxChanging > limit {
					t.Errorf("%d nodes changed at once, maxUnavailable %s allows %d\n%s", s.maxChanging, maxUnavailable.String(), limit, strings.Join(s.log, "\n"))
				}
				if s.writes > 1 {
					t.Errorf("configuration written %d times", s.writes)
				}
				// Nothing more happens once done.
				again := s.round(input())
				if again.WriteConfig || len(again.RestartCNI) > 0 || again.Migration.Phase != mtuv1alpha1.MigrationDone {
					t.Errorf("after done: %+v", again)
				}
			})
		}
	}
}

func one() intstr.IntOrString { return intstr.FromInt32(1) }

// TestSilentNode: nothing is pinned or written until every node reported; after the timeout
// the policy is Stalled naming the node, and it goes on once the node reports.
func TestSilentNode(t *testing.T) {
	s := newSim(t, vxlan, 1500, 1500, 1500)
	s.generation = 1
	s.node("node-b").silent = true
	input := func() Input { return s.input(vxlan, 9000, true, false, one()) }
	step := s.run(input, 5)
	if step.Verdict.Progressing == nil || !strings.Contains(step.Verdict.Progressing.Message, "node-b") || step.Verdict.Progressing.Reason != mtuv1alpha1.ReasonNodesSilent {
		t.Fatalf("verdict %+v, want progressing naming node-b", step.Verdict)
	}
	if step.Requeue <= 0 {
		t.Errorf("no requeue for the report timeout")
	}
	s.now = s.now.Add(ReportTimeout)
	step = s.round(input())
	if step.Verdict.Stalled == nil || !strings.Contains(step.Verdict.Stalled.Message, "node-b") {
		t.Fatalf("verdict %+v, want stalled naming node-b", step.Verdict)
	}
	for name, spec := range step.Specs {
		if spec.RouteMTU != nil || spec.Phase != mtuv1alpha1.PhaseObserve {
			t.Errorf("%s: %+v while a node is silent", name, spec)
		}
	}
	if s.writes > 0 {
		t.Errorf("configuration written while a node is silent")
	}
	s.node("node-b").silent = false
	s.checkDone(s.run(input, 100), input().Target)
}

// TestFailedNode: a node whose change fails is put back to Observe, the rollout halts with the
// agent's message, nothing is retried on its own, and the retry annotation retries once.
func TestFailedNode(t *testing.T) {
	s := newSim(t, vxlan, 1500, 1500, 1500)
	s.generation = 1
	s.node("node-a").refuse = true
	input := func() Input { return s.input(vxlan, 9000, true, false, one()) }
	step := s.run(input, 30)
	if step.Verdict.Stalled == nil || step.Verdict.Stalled.Reason != mtuv1alpha1.ReasonNodeFailed ||
		!strings.Contains(step.Verdict.Stalled.Message, "node-a: ICMP echo of 1500 bytes to node-b") || !strings.Contains(step.Verdict.Stalled.Message, mtuv1alpha1.RetryAnnotation) {
		t.Fatalf("verdict %+v, want stalled naming node-a's failed probe and the retry", step.Verdict)
	}
	if got := step.Specs["node-a"].Phase; got != mtuv1alpha1.PhaseObserve {
		t.Errorf("failed node-a is in %s, want Observe", got)
	}
	for _, n := range []string{"node-b", "node-c"} {
		if step.Specs[n].Phase != mtuv1alpha1.PhaseObserve {
			t.Errorf("%s was handed the change after node-a failed", n)
		}
	}
	// A raise pins each node at its turn: node-a keeps its pin while halted; node-b and node-c,
	// whose devices never changed, were never pinned.
	if step.Specs["node-a"].RouteMTU == nil || step.PinsReleased != 0 {
		t.Errorf("pins released while halted")
	}
	if step.Counts.Failed != 1 {
		t.Errorf("failed count %d", step.Counts.Failed)
	}
	generation := s.node("node-a").state.Generation
	s.run(input, 10)
	if s.node("node-a").state.Generation != generation {
		t.Errorf("the failed node's spec kept changing: generation %d → %d", generation, s.node("node-a").state.Generation)
	}

	// Fixed, then retried by the annotation.
	s.node("node-a").refuse = false
	in := input()
	in.Nodes[0].RetryRequested = true
	step = s.round(in)
	if step.Specs["node-a"].Attempt != 1 {
		t.Fatalf("retry gave attempt %d, want 1", step.Specs["node-a"].Attempt)
	}
	s.checkDone(s.run(input, 100), input().Target)
}

// TestFirstPin: the first pin is the smallest pod MTU in play, not the target.
func TestFirstPin(t *testing.T) {
	s := newSim(t, vxlan, 1500, 1500, 1500)
	s.generation = 1
	input := func() Input { return s.input(vxlan, 9000, true, false, one()) }
	for range 30 {
		step := s.round(input())
		for name, spec := range step.Specs {
			if spec.RouteMTU != nil && *spec.RouteMTU != 1450 {
				t.Fatalf("%s pinned at %d in %s, want 1450", name, *spec.RouteMTU, step.Migration.Phase)
			}
		}
	}
}

// TestRefusals: a policy that must not be carried out changes nothing, pins nothing and says
// why; DryRun lists every node interface it would change.
func TestRefusals(t *testing.T) {
	tests := []struct {
		name                   string
		underlays              []int32
		mtu                    int32
		enforce, allow, dryRun bool
		wantReason, wantMsg    string
		wantPlanned            int
	}{
		{name: "a typo would lower every NIC", underlays: []int32{9000, 9000}, mtu: 1500, enforce: true,
			wantReason: mtuv1alpha1.ReasonLoweringRefused, wantMsg: "node-a (9000)", wantPlanned: 6},
		{name: "a NIC below the declared MTU without Enforce", underlays: []int32{9000, 1500}, mtu: 9000,
			wantReason: mtuv1alpha1.ReasonUnderlayMismatch, wantMsg: "node-b (1500)", wantPlanned: 2},
		{name: "DryRun plans NICs and devices", underlays: []int32{1500, 1500}, mtu: 9000, enforce: true, dryRun: true,
			wantPlanned: 6},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newSim(t, vxlan, tc.underlays...)
			s.generation = 1
			input := func() Input {
				in := s.input(vxlan, tc.mtu, tc.enforce, tc.allow, one())
				in.DryRun = tc.dryRun
				return in
			}
			step := s.run(input, 10)
			if tc.wantReason != "" && (step.Verdict.Stalled == nil || step.Verdict.Stalled.Reason != tc.wantReason || !strings.Contains(step.Verdict.Stalled.Message, tc.wantMsg)) {
				t.Errorf("verdict %+v, want stalled %s mentioning %q", step.Verdict, tc.wantReason, tc.wantMsg)
			}
			if len(step.Planned) != tc.wantPlanned {
				t.Errorf("planned %d changes, want %d: %+v", len(step.Planned), tc.wantPlanned, step.Planned)
			}
			if s.writes > 0 {
				t.Errorf("configuration written")
			}
			for name, spec := range step.Specs {
				if spec.RouteMTU != nil || spec.Phase != mtuv1alpha1.PhaseObserve {
					t.Errorf("%s: pin %v phase %s", name, spec.RouteMTU, spec.Phase)
				}
			}
			for _, n := range s.nodes {
				if n.underlay != tc.underlays[n.name[len(n.name)-1]-'a'] {
					t.Errorf("%s underlay changed to %d", n.name, n.underlay)
				}
			}
		})
	}
}

// TestConfigRevertedMidRestart: a configuration reverted by hand while the agents restart is
// written again, and every agent that started before restarts again.
func TestConfigRevertedMidRestart(t *testing.T) {
	s := newSim(t, vxlan, 1500, 1500, 1500)
	s.generation = 1
	input := func() Input { return s.input(vxlan, 9000, true, false, one()) }
	restarts, reverted := 0, false
	for range 100 {
		step := s.round(input())
		restarts += len(step.RestartCNI)
		if restarts == 1 && !reverted {
			reverted = true
			s.config = 1450 // kubectl edit puts the old value back
			s.log = append(s.log, "reverted by hand")
		}
		if step.Migration.Phase == mtuv1alpha1.MigrationDone {
			break
		}
	}
	s.checkDone(s.round(input()), input().Target)
	if s.writes != 2 {
		t.Errorf("configuration written %d times, want 2", s.writes)
	}
	if restarts < 4 {
		t.Errorf("%d restarts, want the 3 nodes after the second write and one before", restarts)
	}
}

// TestCNIPodNotBack: a node whose CNI agent does not come back holds the restarts and is named.
func TestCNIPodNotBack(t *testing.T) {
	s := newSim(t, vxlan, 1500, 1500, 1500)
	s.generation = 1
	input := func() Input {
		in := s.input(vxlan, 9000, true, false, one())
		for i := range in.Nodes {
			if in.Nodes[i].Name == "node-a" && s.writes > 0 && in.Nodes[i].CNIPod.Created.After(s.migration.ConfigWrittenAt.Time) {
				in.Nodes[i].CNIPod.Ready = false // crash-looping with the new configuration
			}
		}
		return in
	}
	step := s.run(input, 60)
	if step.Migration.Phase != mtuv1alpha1.MigrationRestartingCNI || step.Verdict.Progressing == nil || !strings.Contains(step.Verdict.Progressing.Message, "node-a") {
		t.Fatalf("phase %s verdict %+v, want restarting CNI naming node-a", step.Migration.Phase, step.Verdict.Progressing)
	}
	if len(step.RestartCNI) > 0 {
		t.Errorf("restarted %v while node-a's agent is down", step.RestartCNI)
	}
	if step.Verdict.Stalled != nil {
		t.Errorf("stalled before the timeout: %+v", step.Verdict.Stalled)
	}
	s.now = s.now.Add(CNIAgentTimeout)
	step = s.round(input())
	if step.Verdict.Stalled == nil || step.Verdict.Stalled.Reason != mtuv1alpha1.ReasonCNIAgentDown || !strings.Contains(step.Verdict.Stalled.Message, "node-a (pod ") {
		t.Errorf("after %s: verdict %+v, want Stalled naming node-a's pod", CNIAgentTimeout, step.Verdict)
	}
	if step.Specs["node-b"].RouteMTU == nil || step.PinsReleased != 0 {
		t.Errorf("pins released while the CNI restarts")
	}
}

// TestVerifyFindsABlackHole: a switch port that carries only 1500 towards node-b, found after
// every node raised its devices, stops the migration before the pins go; once fixed, a retry
// checks again and the migration ends.
func TestVerifyFindsABlackHole(t *testing.T) {
	s := newSim(t, vxlan, 1500, 1500, 1500, 1500, 1500)
	s.generation = 1
	input := func() Input { return s.input(vxlan, 9000, true, false, one()) }
	var step Step
	for range 60 {
		step = s.round(input())
		if step.Migration.Phase == mtuv1alpha1.MigrationRestartingCNI {
			s.node("node-b").port = 1500 // someone swaps node-b's switch port
		}
		if step.Verdict.Stalled != nil {
			break
		}
	}
	if step.Verdict.Stalled == nil || step.Verdict.Stalled.Reason != mtuv1alpha1.ReasonPathCheckFailed || !strings.Contains(step.Verdict.Stalled.Message, "node-a: ICMP echo of 9000 bytes to node-b") {
		t.Fatalf("phase %s verdict %+v, want PathCheckFailed naming node-a's 9000-byte check to node-b\n%s", step.Migration.Phase, step.Verdict, strings.Join(s.log, "\n"))
	}
	for name, spec := range step.Specs {
		if spec.RouteMTU == nil || step.PinsReleased >= s.generation {
			t.Errorf("%s released its pin with a black hole in the cluster", name)
		}
	}
	s.node("node-b").port = 0
	in := input()
	for i := range in.Nodes {
		in.Nodes[i].RetryRequested = true
	}
	s.round(in)
	s.checkDone(s.run(input, 50), input().Target)
}

// TestShortPathsStopARolloutBeforeItStarts: the agents' probes between rollouts found that the
// path from node-a to node-c carries 1500 between 9000-byte NICs. A raise to 9000 stops in
// Gathering, names the path and changes nothing; DryRun says Apply would stop. Once the
// probes find the path whole again the rollout runs to its end.
func TestShortPathsStopARolloutBeforeItStarts(t *testing.T) {
	for _, dryRun := range []bool{false, true} {
		t.Run(fmt.Sprintf("dryRun=%t", dryRun), func(t *testing.T) {
			s := newSim(t, vxlan, 9000, 9000, 9000)
			s.generation = 1
			s.node("node-a").short = []mtuv1alpha1.PathMTU{{Peer: "node-c", Layer: mtuv1alpha1.PathLayerUnderlay, Expected: 9000, Measured: 1500}}
			input := func() Input {
				in := s.input(vxlan, 9000, false, false, one())
				in.DryRun = dryRun
				return in
			}
			step := s.run(input, 10)
			const named = "node-a → node-c: the path carries 1500, the NICs 9000"
			if dryRun {
				if !strings.Contains(step.Nodes.Message, "Apply would stop here") || !strings.Contains(step.Nodes.Message, named) {
					t.Errorf("DryRun says %q, want that Apply would stop, naming the path", step.Nodes.Message)
				}
			} else if v := step.Verdict.Stalled; v == nil || v.Reason != mtuv1alpha1.ReasonPathMTUBlackHole || !strings.Contains(v.Message, named) || step.Migration.Phase != mtuv1alpha1.MigrationGathering {
				t.Fatalf("phase %s verdict %+v, want stalled in Gathering with %s naming the path", step.Migration.Phase, step.Verdict, mtuv1alpha1.ReasonPathMTUBlackHole)
			}
			if s.writes > 0 {
				t.Errorf("configuration written across a short path")
			}
			for name, spec := range step.Specs {
				if spec.Phase != mtuv1alpha1.PhaseObserve || spec.RouteMTU != nil {
					t.Errorf("%s: phase %s pin %v, want nothing changed", name, spec.Phase, spec.RouteMTU)
				}
			}
			if dryRun {
				return
			}
			s.node("node-a").short = nil
			s.checkDone(s.run(input, 50), input().Target)
		})
	}
}

// TestOverlayPathsAreJudgedAtThePodMTU: node-a's probe through the tunnel to node-c carries
// 1450 while the pod networks carry 8950. A policy that keeps pods at 8950 stops, naming the
// path; one that lowers them to what crosses goes ahead.
func TestOverlayPathsAreJudgedAtThePodMTU(t *testing.T) {
	for _, tt := range []struct {
		name    string
		mtu     int32
		stopped bool
	}{
		{"pods kept at 8950", 9000, true},
		{"pods lowered to 1450", 1500, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := newSim(t, vxlan, 9000, 9000, 9000)
			s.generation = 1
			s.node("node-a").short = []mtuv1alpha1.PathMTU{{Peer: "node-c", Layer: mtuv1alpha1.PathLayerOverlay, Expected: 8950, Measured: 1450}}
			input := func() Input { return s.input(vxlan, tt.mtu, true, true, one()) }
			step := s.run(input, 50)
			if !tt.stopped {
				s.checkDone(step, input().Target)
				return
			}
			const named = "node-a → node-c through the tunnel: the path carries 1450, the pod networks 8950"
			if v := step.Verdict.Stalled; v == nil || v.Reason != mtuv1alpha1.ReasonPathMTUBlackHole || !strings.Contains(v.Message, named) {
				t.Fatalf("phase %s verdict %+v, want stalled with %s naming the path", step.Migration.Phase, step.Verdict, mtuv1alpha1.ReasonPathMTUBlackHole)
			}
			if s.writes > 0 {
				t.Errorf("configuration written across a short path")
			}
		})
	}
}

// TestDriftCorrectionRestartsOnlyAgentsThatReadTheRevert: after the rollout, someone puts the
// old value back and node-b's CNI agent happens to restart and read it. The correction writes
// the value again and restarts node-b's agent only: the others started before the revert and
// still run the operator's value.
func TestDriftCorrectionRestartsOnlyAgentsThatReadTheRevert(t *testing.T) {
	s := newSim(t, vxlan, 1500, 1500, 1500)
	s.generation = 1
	var revertedAt *time.Time
	input := func() Input {
		in := s.input(vxlan, 9000, true, false, one())
		in.RevertedAt = revertedAt
		return in
	}
	if step := s.run(input, 100); step.Migration.Phase != mtuv1alpha1.MigrationDone {
		t.Fatalf("the rollout did not end: %s", step.Migration.Phase)
	}
	s.now = s.now.Add(time.Minute)
	at := s.now
	revertedAt = &at
	s.config = 1450 // kubectl edit puts the old value back
	s.now = s.now.Add(3 * time.Second)
	b := s.node("node-b")
	b.cni = CNIPod{Created: s.now, Ready: true} // restarted on its own, reading the reverted value
	b.podMTU = s.config
	for _, lost := range s.lostPaths() {
		s.broken[lost.pair] = true // the revert's damage, before the operator could see it
	}

	restarted := map[string]int{}
	var step Step
	for range 60 {
		step = s.round(input())
		for _, n := range step.RestartCNI {
			restarted[n]++
		}
		if step.Migration.Phase == mtuv1alpha1.MigrationDone && s.config == 8950 && step.Nodes.Status == metav1.ConditionTrue {
			break
		}
	}
	s.checkDone(step, input().Target)
	if s.writes != 2 {
		t.Errorf("configuration written %d times, want 2", s.writes)
	}
	if fmt.Sprint(restarted) != "map[node-b:1]" {
		t.Errorf("restarted %v after the correction, want node-b only\n%s", restarted, strings.Join(s.log, "\n"))
	}
	if b.podMTU != 8950 {
		t.Errorf("node-b's CNI hands out %d, want 8950", b.podMTU)
	}

	// Without knowing when the revert happened, every agent restarts.
	revertedAt = nil
	s.config = 1450
	restarted = map[string]int{}
	for range 60 {
		step = s.round(input())
		for _, n := range step.RestartCNI {
			restarted[n]++
		}
		if step.Migration.Phase == mtuv1alpha1.MigrationDone && s.config == 8950 && step.Nodes.Status == metav1.ConditionTrue {
			break
		}
	}
	if len(restarted) != 3 {
		t.Errorf("restarted %v with the revert time unknown, want every node", restarted)
	}
}

// TestRestoreGivesEachNICItsOwnOriginal: a restore lowers each node's NIC back to the MTU it
// had before the operator (node-c's was 1400, the others' 1500), with pods sized for the
// smallest, without losing a packet on the way.
func TestRestoreGivesEachNICItsOwnOriginal(t *testing.T) {
	s := newSim(t, vxlan, 9000, 9000, 9000)
	s.generation = 1
	originals := map[string]int32{"node-a": 1500, "node-b": 1500, "node-c": 1400}
	input := func() Input {
		in := s.input(vxlan, 1400, true, true, one())
		in.UnderlayByNode = originals
		return in
	}
	target := input().Target
	target.UnderlayMTU = nil // checked per node below
	s.checkDone(s.run(input, 100), target)
	for _, n := range s.nodes {
		if n.underlay != originals[n.name] {
			t.Errorf("%s NIC at %d, want its original %d", n.name, n.underlay, originals[n.name])
		}
	}
}

// TestListCNIPods: the controller lists the CNI's agent pods (thousands, uncached) only when
// the step may restart one; Decide never restarts an agent it was not shown.
func TestListCNIPods(t *testing.T) {
	at := func(generation int64, phase mtuv1alpha1.MigrationPhase) *mtuv1alpha1.MigrationStatus {
		return &mtuv1alpha1.MigrationStatus{Generation: generation, Phase: phase}
	}
	tests := []struct {
		name string
		in   Input
		want bool
	}{
		{name: "first reconcile", in: Input{Generation: 1}, want: false},
		{name: "raising devices", in: Input{Generation: 1, Previous: at(1, mtuv1alpha1.MigrationRaisingDevices)}, want: false},
		{name: "documents to write, devices not raised yet", in: Input{Generation: 1, ConfigPending: true, Previous: at(1, mtuv1alpha1.MigrationRaisingDevices)}, want: false},
		{name: "documents changed back after the rollout", in: Input{Generation: 1, ConfigPending: true, Previous: at(1, mtuv1alpha1.MigrationDone)}, want: true},
		{name: "configuring", in: Input{Generation: 1, Previous: at(1, mtuv1alpha1.MigrationConfiguring)}, want: true},
		{name: "restarting", in: Input{Generation: 1, Previous: at(1, mtuv1alpha1.MigrationRestartingCNI)}, want: true},
		{name: "restarting an older generation", in: Input{Generation: 2, Previous: at(1, mtuv1alpha1.MigrationRestartingCNI)}, want: false},
		{name: "done", in: Input{Generation: 1, Previous: at(1, mtuv1alpha1.MigrationDone)}, want: false},
	}
	for _, tc := range tests {
		if got := ListCNIPods(tc.in); got != tc.want {
			t.Errorf("%s: ListCNIPods = %v, want %v", tc.name, got, tc.want)
		}
	}

	// Reaching the restarts without the pods, the step waits instead of taking "no pod" for
	// "no agent on this node".
	written := time.Unix(1000, 0)
	in := Input{Policy: "p", Generation: 1, PacedRestart: true, CNIRolledOut: true, Now: written.Add(5 * time.Second),
		Previous: &mtuv1alpha1.MigrationStatus{Generation: 1, Phase: mtuv1alpha1.MigrationRestartingCNI, ConfigWrittenAt: &metav1.Time{Time: written}}}
	in.Nodes = []Node{{Name: "a", State: &mtuv1alpha1.NodeMTUState{Status: mtuv1alpha1.NodeMTUStateStatus{UnderlayMTU: 9000}}}}
	step := Decide(in)
	if step.Migration.Phase != mtuv1alpha1.MigrationRestartingCNI || step.Requeue == 0 {
		t.Errorf("without the pods: phase %s, requeue %s; want RestartingCNI, waiting", step.Migration.Phase, step.Requeue)
	}
	in.CNIPodsListed = true
	in.Nodes[0].CNIPod = &CNIPod{Name: "kube-flannel/a", Created: written.Add(-time.Hour), Ready: true}
	if step := Decide(in); fmt.Sprint(step.RestartCNI) != "[a]" {
		t.Errorf("with the pods: restarts %v, want [a]", step.RestartCNI)
	}
}

// TestRaisePinsAtEachTurn: a raise pins each node in its own turn, not in a phase of its own,
// and no CNI agent restarts (no pod gets the new size) until every node confirmed its pin.
func TestRaisePinsAtEachTurn(t *testing.T) {
	// NICs raised by hand to 9000; tunnels, bridges and pods still at 1450.
	s := newSim(t, vxlan, 1500, 1500, 1500)
	for _, n := range s.nodes {
		n.underlay = 9000
	}
	s.generation = 1
	s.node("node-b").unpinnable = true
	input := func() Input { return s.input(vxlan, 9000, false, false, one()) }
	step := s.run(input, 30)
	if s.config != 1450 || step.Migration.Phase != mtuv1alpha1.MigrationRaisingDevices {
		t.Fatalf("config %d, phase %s: went on with node-b unpinned\n%s", s.config, step.Migration.Phase, strings.Join(s.log, "\n"))
	}
	if p := step.Verdict.Progressing; p == nil || !strings.Contains(p.Message, "node-b") {
		t.Errorf("verdict %+v, want waiting for node-b", step.Verdict)
	}
	s.node("node-b").unpinnable = false
	s.node("node-b").state.Generation++ // the agent looks again (a link event)
	s.checkDone(s.run(input, 30), vxlan.target(9000))
	for _, line := range s.log {
		if strings.Contains(line, "Pinning") {
			t.Errorf("a raise went through a Pinning phase: %s", line)
		}
	}
}

// TestWritesPerNode: a raise of the overlay (NICs already carry the new size) writes each
// node's spec once after creating it (its turn, pin included), and its agent reports twice,
// whatever maxUnavailable: the
// pins are released by the policy's status, and nothing a node is not told to do rewrites its
// spec (docs/design/scale.md).
func TestWritesPerNode(t *testing.T) {
	for _, maxUnavailable := range []intstr.IntOrString{intstr.FromInt32(1), intstr.FromString("50%"), intstr.FromString("100%")} {
		s := newSim(t, vxlan, 1500, 1500, 1500, 1500)
		for _, n := range s.nodes {
			n.underlay = 9000
		}
		s.generation = 1
		input := func() Input { return s.input(vxlan, 9000, false, false, maxUnavailable) }
		s.checkDone(s.run(input, 100), vxlan.target(9000))
		for _, n := range s.nodes {
			if g := n.state.Generation; g > 2 {
				t.Errorf("maxUnavailable %s: %s's spec written %d times after its creation, want 1 (its turn)", maxUnavailable.String(), n.name, g-1)
			}
			if n.reports > 2 {
				t.Errorf("maxUnavailable %s: %s's agent reported %d times, want 2 (its interfaces, its turn)", maxUnavailable.String(), n.name, n.reports)
			}
		}
	}
}
