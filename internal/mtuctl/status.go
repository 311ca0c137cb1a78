// Package mtuctl is what `kubectl mtu` shows and decides, apart from reading and writing the
// cluster: a rollout at a glance, and which nodes a retry is for.
package mtuctl

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	mtuv1alpha1 "github.com/mtu-operator/mtu-operator/api/v1alpha1"
	"github.com/mtu-operator/mtu-operator/internal/plan"
)

// NeedsRetry says whether a node's change or check of its paths failed for its current spec:
// what a Stalled condition asks a person to retry once the cause is fixed.
func NeedsRetry(s mtuv1alpha1.NodeMTUState) bool {
	tx, v := s.Status.LastTransaction, s.Status.Verification
	return tx != nil && tx.Outcome != mtuv1alpha1.TransactionCommitted || v != nil && !v.Passed
}

// detailConditions are the policy's detail conditions, in the order the status lists them.
var detailConditions = []string{
	mtuv1alpha1.ConditionCNIDetected, mtuv1alpha1.ConditionUnderlayConsistent, mtuv1alpha1.ConditionConfigApplied,
	mtuv1alpha1.ConditionNodesConverged, mtuv1alpha1.ConditionPathMTUVerified, mtuv1alpha1.ConditionPodsCurrent,
}

// WriteStatus writes a policy's rollout at a glance: what it computed, where its migration
// is, its conditions, then each of its nodes (states, any order), its short paths and stale
// pods.
func WriteStatus(w io.Writer, p *mtuv1alpha1.NetworkMTUPolicy, states []mtuv1alpha1.NodeMTUState) error {
	var b strings.Builder
	st := p.Status
	fmt.Fprintf(&b, "NetworkMTUPolicy %s (%s", p.Name, cmp.Or(string(p.Spec.Mode), string(mtuv1alpha1.ModeApply)))
	if st.CNI != "" {
		fmt.Fprintf(&b, ", %s", st.CNI)
	}
	fmt.Fprintf(&b, ", %s)\n", p.Spec.Encapsulation.Type)
	fmt.Fprintf(&b, "  MTUs:       %s\n", sizes(st))
	phase := "none"
	if m := st.Migration; m != nil {
		phase = string(m.Phase)
		if m.RoutableMTU > 0 {
			phase += fmt.Sprintf(" (routes pinned to %d)", m.RoutableMTU)
		}
	}
	fmt.Fprintf(&b, "  Migration:  %s; nodes %d selected, %d converged, %d failed\n", phase, st.Nodes.Selected, st.Nodes.Converged, st.Nodes.Failed)
	writeConditions(&b, st.Conditions)

	mine := slices.DeleteFunc(slices.Clone(states), func(s mtuv1alpha1.NodeMTUState) bool { return s.Spec.Policy != p.Name })
	slices.SortFunc(mine, func(a, b mtuv1alpha1.NodeMTUState) int { return strings.Compare(a.Name, b.Name) })
	b.WriteString("\n")
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tPHASE\tUNDERLAY\tTUNNEL\tPODS AT\tTARGET\tPIN\tLAST CHANGE\tSHORT PATHS\tSTALE PODS")
	var inputs []plan.NodeInput
	var stale []string
	for i := range mine {
		s := &mine[i]
		inputs = append(inputs, plan.NodeInput{Name: s.Name, State: s})
		var last []string
		if tx := s.Status.LastTransaction; tx != nil {
			last = append(last, string(tx.Outcome))
		}
		if v := s.Status.Verification; v != nil && !v.Passed {
			last = append(last, "check failed")
		}
		lastChange := cmp.Or(strings.Join(last, ", "), "-")
		if NeedsRetry(*s) {
			lastChange += " (retry)"
		}
		pin := "-"
		if r := s.Status.RouteMTU; r != nil && *r > 0 {
			pin = strconv.Itoa(int(*r))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\n", s.Name, s.Spec.Phase, orUnknown(s.Status.UnderlayMTU), orUnknown(s.Status.OverlayMTU),
			orUnknown(s.Status.ActualPodMTU), orUnknown(s.Spec.PodMTU), pin, lastChange, len(s.Status.Paths), s.Status.StalePodCount)
		for _, sp := range s.Status.StalePods {
			stale = append(stale, fmt.Sprintf("%s/%s on %s: %s at %d", sp.Namespace, sp.Name, s.Name, sp.Interface, sp.MTU))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(mine) == 0 {
		b.WriteString("(no NodeMTUState names this policy yet)\n")
	}
	if short := plan.ShortPaths(inputs); len(short) > 0 {
		b.WriteString("\nShort paths (worst first):\n")
		for _, sp := range short {
			fmt.Fprintf(&b, "  %s\n", sp)
		}
	}
	if len(stale) > 0 {
		b.WriteString("\nStale pods:\n")
		for _, s := range stale {
			fmt.Fprintf(&b, "  %s\n", s)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writeConditions writes Ready, what stops or drives the rollout, then each detail condition
// that is not True with its own message (unless it repeats the stall's), and the True ones
// by name.
func writeConditions(b *strings.Builder, conditions []metav1.Condition) {
	if c := meta.FindStatusCondition(conditions, mtuv1alpha1.ConditionReady); c != nil {
		fmt.Fprintf(b, "  Ready:      %s %s\n", c.Status, c.Reason)
	}
	stall := ""
	for _, t := range []string{mtuv1alpha1.ConditionStalled, mtuv1alpha1.ConditionReconciling} {
		if c := meta.FindStatusCondition(conditions, t); c != nil && c.Status == metav1.ConditionTrue {
			fmt.Fprintf(b, "  %-11s %s: %s\n", t+":", c.Reason, c.Message)
			stall = cmp.Or(stall, c.Message)
		}
	}
	var ok []string
	for _, t := range detailConditions {
		c := meta.FindStatusCondition(conditions, t)
		switch {
		case c == nil:
		case c.Status == metav1.ConditionTrue:
			ok = append(ok, t)
		case stall != "" && strings.Contains(c.Message, stall):
			fmt.Fprintf(b, "  %s: %s %s (as the stall says)\n", t, c.Status, c.Reason)
		default:
			fmt.Fprintf(b, "  %s: %s %s: %s\n", t, c.Status, c.Reason, c.Message)
		}
	}
	if len(ok) > 0 {
		fmt.Fprintf(b, "  True:       %s\n", strings.Join(ok, ", "))
	}
}

// sizes are the MTUs a policy computed: "underlay 9000, pods 8950, tunnel IPv4 8950".
func sizes(st mtuv1alpha1.NetworkMTUPolicyStatus) string {
	s := fmt.Sprintf("underlay %s, pods %s", orUnknown(st.UnderlayMTU), orUnknown(st.PodMTU))
	for _, t := range st.Tunnels {
		s += fmt.Sprintf(", tunnel %s %d", t.Family, t.MTU)
	}
	return s
}

func orUnknown(v int32) string {
	if v == 0 {
		return "?"
	}
	return strconv.Itoa(int(v))
}
