package mtuctl

import (
	"cmp"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	mtuv1alpha1 "github.com/mtu-operator/mtu-operator/api/v1alpha1"
)

// WritePlan writes what applying a policy would change, from its preview (controllers.Preview):
// the MTUs, the CNI's fields, each node's interfaces, the CNI agents restarted, the pods that
// would be left at their old MTU (from the agents' inventories of the selected nodes), and what
// would stop the rollout.
func WritePlan(w io.Writer, preview *mtuv1alpha1.NetworkMTUPolicy, selected []string, states []mtuv1alpha1.NodeMTUState) error {
	var b strings.Builder
	st := preview.Status
	fmt.Fprintf(&b, "Applying NetworkMTUPolicy %s would (nothing was written):\n", preview.Name)
	fmt.Fprintf(&b, "  size:      %s", sizes(st))
	if st.CNI != "" {
		fmt.Fprintf(&b, " (%s)", st.CNI)
	}
	fmt.Fprintf(&b, "; %d node(s) selected\n", len(selected))

	var config, nodes []string
	for _, c := range st.PlannedChanges {
		line := fmt.Sprintf("%s %s: %s → %s", c.Resource, c.Path, cmp.Or(c.From, "(unset)"), c.To)
		if strings.HasPrefix(c.Resource, "Node ") {
			nodes = append(nodes, strings.TrimPrefix(line, "Node "))
		} else {
			config = append(config, line)
		}
	}
	section(&b, "CNI configuration", config, "unchanged")
	section(&b, "node interfaces", nodes, "unchanged (or not reported yet: see below)")
	section(&b, "CNI agents restarted", st.AgentRestarts, "none")

	stalePods, staleNodes, at := 0, 0, map[int32]bool{}
	for _, s := range states {
		if !slices.Contains(selected, s.Name) || s.Status.ActualPodMTU == 0 || st.PodMTU == 0 || s.Status.ActualPodMTU == st.PodMTU {
			continue
		}
		stalePods += int(s.Status.Pods)
		staleNodes++
		at[s.Status.ActualPodMTU] = true
	}
	if stalePods > 0 {
		var mtus []string
		for _, m := range slices.Sorted(maps.Keys(at)) {
			mtus = append(mtus, fmt.Sprint(m))
		}
		fmt.Fprintf(&b, "  stale pods: about %d pod(s) on %d node(s), at %s now, keep that MTU until recreated (stalePods.action: %s)\n",
			stalePods, staleNodes, strings.Join(mtus, ", "), cmp.Or(string(preview.Spec.StalePods.Action), string(mtuv1alpha1.StalePodReport)))
	} else {
		b.WriteString("  stale pods: none known\n")
	}
	if c := meta.FindStatusCondition(st.Conditions, mtuv1alpha1.ConditionStalled); c != nil && c.Status == metav1.ConditionTrue {
		fmt.Fprintf(&b, "  it would stop: %s: %s\n", c.Reason, c.Message)
	}
	if c := meta.FindStatusCondition(st.Conditions, mtuv1alpha1.ConditionNodesConverged); c != nil {
		fmt.Fprintf(&b, "  nodes: %s\n", c.Message)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func section(b *strings.Builder, title string, lines []string, none string) {
	if len(lines) == 0 {
		fmt.Fprintf(b, "  %s: %s\n", title, none)
		return
	}
	fmt.Fprintf(b, "  %s:\n", title)
	for _, l := range lines {
		fmt.Fprintf(b, "    %s\n", l)
	}
}
