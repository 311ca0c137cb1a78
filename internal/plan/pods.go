package plan

import (
	"fmt"
	"sort"

	mtuv1alpha1 "github.com/mtu-operator/mtu-operator/api/v1alpha1"
)

// maxEras bounds the pod MTU history a policy keeps.
const maxEras = 4

// RecordEra puts the current pod MTU at the head of the history when it changed; the
// history's head is always the current era.
func RecordEra(history []mtuv1alpha1.PodMTUEra, now mtuv1alpha1.PodMTUEra) []mtuv1alpha1.PodMTUEra {
	if now.PodMTU == 0 || (len(history) > 0 && history[0] == now) {
		return history
	}
	out := append([]mtuv1alpha1.PodMTUEra{now}, history...)
	return out[:min(len(out), maxEras)]
}

// StaleReason explains a pod MTU that differs from the current one, naming the earlier
// configuration it comes from when the history knows it.
func StaleReason(observed int32, history []mtuv1alpha1.PodMTUEra) string {
	if len(history) == 0 {
		return fmt.Sprintf("%d differs from the expected pod MTU", observed)
	}
	now := history[0]
	for _, then := range history[1:] {
		if then.PodMTU != observed {
			continue
		}
		if then.Encapsulation != now.Encapsulation {
			return fmt.Sprintf("%d predates the switch from %s to %s", observed, then.Encapsulation, now.Encapsulation)
		}
		return fmt.Sprintf("%d predates the change of the underlay MTU from %d to %d", observed, then.UnderlayMTU, now.UnderlayMTU)
	}
	return fmt.Sprintf("%d differs from the expected %d", observed, now.PodMTU)
}

// NodeStalePod is a stale pod with the node that reported it.
type NodeStalePod struct {
	Node string
	mtuv1alpha1.StalePod
}

// StalePods gathers the stale pods the nodes reported, in a stable order, with the total
// count (which can exceed the listed pods: each node lists at most 50).
func StalePods(nodes []NodeInput) ([]NodeStalePod, int32, int32) {
	var out []NodeStalePod
	var total, corrected int32
	for _, n := range nodes {
		if n.State == nil {
			continue
		}
		total += n.State.Status.StalePodCount
		corrected += n.State.Status.PodsCorrected
		for _, p := range n.State.Status.StalePods {
			out = append(out, NodeStalePod{Node: n.Name, StalePod: p})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Namespace != out[j].Namespace {
			return out[i].Namespace < out[j].Namespace
		}
		return out[i].Name < out[j].Name
	})
	return out, total, corrected
}

// PrevailingMTU is the MTU most pods have, from a count of pods by MTU; among as many, the
// smaller. 0 when there are none.
func PrevailingMTU(pods map[int32]int32) int32 {
	var best, most int32
	for mtu, n := range pods {
		if n > most || n == most && mtu < best {
			best, most = mtu, n
		}
	}
	return best
}
