package migration

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	mtuv1alpha1 "github.com/mtu-operator/mtu-operator/api/v1alpha1"
)

// BenchmarkDecide is one reconcile's decision in the middle of a raise (half the nodes at
// their target, a wave changing, the rest waiting), by cluster size: its cost must grow with
// N, not N², so that a rollout of N/k waves stays within N²/k.
func BenchmarkDecide(b *testing.B) {
	for _, n := range []int{1000, 5000} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			in := midRaise(n)
			b.ReportAllocs()
			for b.Loop() {
				Decide(in)
			}
		})
	}
}

// BenchmarkDecideWave is the same decision with the memo a controller keeps between its
// reconciles, when only a wave of 10 nodes reported since the last: what a rollout with an
// absolute maxUnavailable pays N/k times. Its cost must barely grow with N.
func BenchmarkDecideWave(b *testing.B) {
	for _, n := range []int{1000, 5000} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			in := midRaise(n)
			in.MaxUnavailable = ptr.To(intstr.FromInt32(10))
			for i, node := range in.Nodes {
				node.State.ResourceVersion = fmt.Sprint(i)
			}
			// Two versions of a wave's states, decided in turn: each decision finds 10 new.
			wave := in.Nodes[n/2 : n/2+10]
			versions := [2][]*mtuv1alpha1.NodeMTUState{}
			for v := range versions {
				for _, node := range wave {
					s := node.State.DeepCopy()
					s.ResourceVersion += fmt.Sprintf("-%d", v)
					versions[v] = append(versions[v], s)
				}
			}
			in.Memo = NewMemo()
			Decide(in)
			b.ReportAllocs()
			v := 0
			for b.Loop() {
				for i := range wave {
					wave[i].State = versions[v][i]
				}
				v = 1 - v
				Decide(in)
			}
		})
	}
}

// midRaise is a 9000/VXLAN raise of n nodes with NICs at 9000, half of them done.
func midRaise(n int) Input {
	target := vxlan.target(9000)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	in := Input{
		Policy: policy, Generation: 1, Target: target, DeclaredUnderlay: ptr.To[int32](9000),
		MaxUnavailable: ptr.To(intstr.FromString("10%")), ConfigPending: true, Now: now,
		Previous: &mtuv1alpha1.MigrationStatus{Generation: 1, Phase: mtuv1alpha1.MigrationRaisingDevices, RoutableMTU: 1450, StartedAt: metav1.Time{Time: now}},
	}
	for i := range n {
		s := &mtuv1alpha1.NodeMTUState{}
		s.Name, s.Generation = fmt.Sprintf("node-%05d", i), 2
		s.Spec = mtuv1alpha1.NodeMTUStateSpec{Policy: policy, PolicyGeneration: 1, Phase: mtuv1alpha1.PhaseObserve, Interfaces: target.Interfaces, PodMTU: target.PodMTU}
		s.Status = mtuv1alpha1.NodeMTUStateStatus{
			ObservedGeneration: 2, UnderlayMTU: 9000, UnderlayAddresses: []string{fmt.Sprintf("10.0.%d.%d", i>>8, i&255)},
			Underlay:   []mtuv1alpha1.UnderlayInterface{{Name: "eth0", MTU: 9000, DefaultRoute: true}},
			Interfaces: []mtuv1alpha1.InterfaceState{{Name: tunnel, MTU: 1450, Present: true}, {Name: bridge, MTU: 1450, Present: true}},
		}
		if i < n/2 {
			pin := int32(1450)
			s.Spec.Phase, s.Spec.RouteMTU = mtuv1alpha1.PhaseConverge, &pin
			s.Status.RouteMTU = &pin
			s.Status.Interfaces = []mtuv1alpha1.InterfaceState{{Name: tunnel, MTU: 8950, Present: true}, {Name: bridge, MTU: 8950, Present: true}}
			s.Status.LastTransaction = &mtuv1alpha1.Transaction{PolicyGeneration: 1, Outcome: mtuv1alpha1.TransactionCommitted}
		}
		in.Nodes = append(in.Nodes, Node{Name: s.Name, State: s})
	}
	// As a controller leaves it: every spec written as a decision wants it.
	for name, spec := range Decide(in).Specs {
		i, _ := strconv.Atoi(strings.TrimPrefix(name, "node-"))
		s := in.Nodes[i].State
		s.Spec, s.Generation, s.Status.ObservedGeneration = spec, s.Generation+1, s.Generation+1
	}
	return in
}
