package controllers

import (
	"context"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mtuv1alpha1 "github.com/mtu-operator/mtu-operator/api/v1alpha1"
)

// Preview is what applying a policy would do now, decided by the reconciler's own phases: they
// run once, on a copy in DryRun mode, through a client whose every write is a server-side dry
// run, so nothing changes. The copy's status says it: the computed MTUs, plannedChanges (the
// CNI's fields and each node's interfaces), agentRestarts and the conditions. selected are
// the nodes the policy selects. Nodes whose agents have not reported yet are planned as the
// migration plans them: waiting for their reports.
func Preview(ctx context.Context, c client.Client, policy *mtuv1alpha1.NetworkMTUPolicy) (preview *mtuv1alpha1.NetworkMTUPolicy, selected []string, err error) {
	p := policy.DeepCopy()
	p.Spec.Mode = mtuv1alpha1.ModeDryRun
	if p.UID == "" {
		// A policy not created yet: the objects it would own name it, in dry runs only.
		p.UID = types.UID("00000000-0000-0000-0000-000000000000")
	}
	r := &NetworkMTUPolicyReconciler{Client: client.NewDryRunClient(c), APIReader: c}
	nodes, err := r.gatherNodes(ctx, p)
	if err != nil {
		return nil, nil, err
	}
	for _, n := range nodes.nodes {
		selected = append(selected, n.Name)
	}
	res, err := r.reconcilePhases(ctx, p, func(context.Context) error { return nil })
	if err != nil {
		return nil, nil, err
	}
	assembleConditions(p, res.conditions, deref(res.verdict))
	return p, selected, nil
}
