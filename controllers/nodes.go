package controllers

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/log"

	mtuv1alpha1 "github.com/mtu-operator/mtu-operator/api/v1alpha1"
	"github.com/mtu-operator/mtu-operator/internal/plan"
	"github.com/mtu-operator/mtu-operator/internal/plan/migration"
)

// +kubebuilder:rbac:groups=networking.mtu-operator.io,resources=nodemtustates,verbs=get;list;watch;create;update;patch;delete

// probeTimeoutSeconds is how long an agent's probe may take before it rolls a change back.
const probeTimeoutSeconds = 10

// The policy's pathProbing defaults, for a policy stored before the field had them.
const (
	defaultPeersPerRound = 3
	defaultRoundSeconds  = 30
)

// gatheredNodes are the selected nodes with their state objects. A node without one yet has a
// nil State and is in missing: the migration creates its state with the spec its first step
// gives it (the interfaces to report included, so the agent reports once), or createMissing
// creates a bare one when the reconcile stops before (auto-detection needs the agents to report
// the underlay before anything else can be computed).
type gatheredNodes struct {
	nodes []migration.Node // by name
	// metas are the selected Nodes, and underlays the underlay MTUs their states report (0:
	// none), in the order of nodes: a reconcile reads them in sequence.
	metas     []*metav1.PartialObjectMetadata
	underlays []int32
	missing   map[string]*metav1.PartialObjectMetadata
	// unselected are the policy's states of nodes it no longer selects.
	unselected []*mtuv1alpha1.NodeMTUState
}

// gatherNodes returns the selected nodes, by name, with their state objects, and the policy's
// states of nodes no longer selected (forgetUnselected deletes them). It writes nothing. With
// the manager's cache it reads only the nodes whose state changed since the policy's last
// reconcile (cachedNodes.gather); the result is shared with the next: read it, do not change it.
func (r *NetworkMTUPolicyReconciler) gatherNodes(ctx context.Context, policy *mtuv1alpha1.NetworkMTUPolicy) (*gatheredNodes, error) {
	selection, err := selectionOf(policy)
	if err != nil {
		return nil, err
	}
	selector := selection.Selector
	if selector == nil {
		selector = labels.Everything()
	}
	if r.cached != nil {
		return r.cached.gather(policy, selector), nil
	}
	nodes := &metav1.PartialObjectMetadataList{}
	nodes.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("NodeList"))
	if err := r.List(ctx, nodes, client.MatchingLabelsSelector{Selector: selector}, client.UnsafeDisableDeepCopy); err != nil {
		return nil, err
	}
	metas := make([]*metav1.PartialObjectMetadata, 0, len(nodes.Items))
	for i := range nodes.Items {
		metas = append(metas, &nodes.Items[i])
	}
	var states mtuv1alpha1.NodeMTUStateList
	if err := r.List(ctx, &states, client.UnsafeDisableDeepCopy); err != nil {
		return nil, err
	}
	byName := make(map[string]*mtuv1alpha1.NodeMTUState, len(states.Items))
	all := make([]*mtuv1alpha1.NodeMTUState, 0, len(states.Items))
	for i := range states.Items {
		s := &states.Items[i]
		byName[s.Name], all = s, append(all, s)
	}
	return assemble(policy.Name, selector, metas, func(name string) *mtuv1alpha1.NodeMTUState { return byName[name] }, all), nil
}

// assemble gathers the Nodes selector selects (not being deleted), with their states, found by
// stateOf, and the states policy wrote, among states, for nodes not among them.
func assemble(policy string, selector labels.Selector, nodes []*metav1.PartialObjectMetadata, stateOf func(string) *mtuv1alpha1.NodeMTUState, states []*mtuv1alpha1.NodeMTUState) *gatheredNodes {
	selected := make([]*metav1.PartialObjectMetadata, 0, len(nodes))
	for _, n := range nodes {
		if n.DeletionTimestamp == nil && selector.Matches(labels.Set(n.Labels)) {
			selected = append(selected, n)
		}
	}
	var policyStates []*mtuv1alpha1.NodeMTUState
	for _, s := range states {
		if s.Spec.Policy == policy {
			policyStates = append(policyStates, s)
		}
	}
	slices.SortFunc(selected, func(a, b *metav1.PartialObjectMetadata) int { return strings.Compare(a.Name, b.Name) })
	g := &gatheredNodes{nodes: make([]migration.Node, len(selected)), metas: selected, underlays: make([]int32, len(selected)), missing: map[string]*metav1.PartialObjectMetadata{}}
	own := 0 // selected nodes with a state of the policy's
	for i, n := range selected {
		if g.set(i, policy, stateOf(n.Name)) {
			own++
		}
	}
	if len(policyStates) == own {
		return g // every state of the policy's is of a selected node
	}
	for _, s := range policyStates {
		if g.index(s.Name) < 0 {
			g.unselected = append(g.unselected, s)
		}
	}
	slices.SortFunc(g.unselected, func(a, b *mtuv1alpha1.NodeMTUState) int { return strings.Compare(a.Name, b.Name) })
	return g
}

// set makes state the i-th node's, and says whether it is the policy's.
func (g *gatheredNodes) set(i int, policy string, state *mtuv1alpha1.NodeMTUState) (own bool) {
	meta := g.metas[i]
	delete(g.missing, meta.Name)
	g.underlays[i] = 0
	if state != nil {
		g.underlays[i] = state.Status.UnderlayMTU
	}
	switch {
	case state == nil:
		if g.missing == nil {
			g.missing = map[string]*metav1.PartialObjectMetadata{}
		}
		g.missing[meta.Name] = meta
		g.nodes[i] = migration.Node{Name: meta.Name}
		return false
	case state.Spec.Policy != policy:
		// Left by a policy that no longer exists (overlap was checked first): taken over.
		state = state.DeepCopy()
		state.Spec = mtuv1alpha1.NodeMTUStateSpec{}
	default:
		own = true
	}
	_, retry := state.Annotations[mtuv1alpha1.RetryAnnotation]
	g.nodes[i] = migration.Node{Name: meta.Name, State: state, RetryRequested: retry}
	return own
}

// smallestUnderlay is the smallest underlay MTU the nodes reported; nil when none did.
func (g *gatheredNodes) smallestUnderlay() *int32 {
	smallest := int32(0)
	for _, u := range g.underlays {
		if u > 0 && (smallest == 0 || u < smallest) {
			smallest = u
		}
	}
	if smallest == 0 {
		return nil
	}
	return &smallest
}

// index is the place of the node named name; -1 when it is not selected.
func (g *gatheredNodes) index(name string) int {
	i, found := slices.BinarySearchFunc(g.metas, name, func(n *metav1.PartialObjectMetadata, name string) int { return strings.Compare(n.Name, name) })
	if !found {
		return -1
	}
	return i
}

// forgetUnselected deletes the policy's states of nodes it no longer selects.
func (r *NetworkMTUPolicyReconciler) forgetUnselected(ctx context.Context, g *gatheredNodes) error {
	for _, s := range g.unselected {
		if err := r.Delete(ctx, s); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("deleting NodeMTUState %s of a node no longer selected: %w", s.Name, err)
		}
	}
	return nil
}

// createMissing creates, watching only, the states the reconcile did not create with a spec
// of their first step, so that their agents report.
func (r *NetworkMTUPolicyReconciler) createMissing(ctx context.Context, policy *mtuv1alpha1.NetworkMTUPolicy, g *gatheredNodes) error {
	if g == nil || len(g.missing) == 0 {
		return nil
	}
	bare := mtuv1alpha1.NodeMTUStateSpec{
		Policy:                   policy.Name,
		Phase:                    mtuv1alpha1.PhaseObserve,
		UnderlayInterfacePattern: policy.Spec.Underlay.InterfacePattern,
		PodAction:                policy.Spec.StalePods.Action,
		Probe:                    mtuv1alpha1.NodeProbe{TimeoutSeconds: probeTimeoutSeconds},
	}
	specs := make(map[string]mtuv1alpha1.NodeMTUStateSpec, len(g.missing))
	for name := range g.missing {
		specs[name] = bare
	}
	return r.createNodeStates(ctx, g, specs)
}

// createNodeStates creates the missing states with their specs, specWriters at a time, and
// takes them off g.missing.
func (r *NetworkMTUPolicyReconciler) createNodeStates(ctx context.Context, g *gatheredNodes, specs map[string]mtuv1alpha1.NodeMTUStateSpec) error {
	nodes := slices.Collect(maps.Values(g.missing))
	err := eachBounded(nodes, specWriters, func(node *metav1.PartialObjectMetadata) error {
		s := &mtuv1alpha1.NodeMTUState{}
		s.Name = node.Name
		s.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: node.Name, UID: node.UID}}
		s.Spec = specs[node.Name]
		if err := r.Create(ctx, s, client.FieldOwner(FieldManager)); err != nil {
			if apierrors.IsAlreadyExists(err) {
				return fmt.Errorf("NodeMTUState %s appeared meanwhile: %w", node.Name, err)
			}
			return fmt.Errorf("creating NodeMTUState %s: %w", node.Name, err)
		}
		return nil
	})
	if err == nil {
		g.missing = nil
	}
	return err
}

// nodeInputs are the nodes as the plan package reads them.
func nodeInputs(nodes []migration.Node) []plan.NodeInput {
	out := make([]plan.NodeInput, 0, len(nodes))
	for _, n := range nodes {
		out = append(out, plan.NodeInput{Name: n.Name, State: n.State})
	}
	return out
}

// migrate takes the next step of the migration: it gathers the CNI's agent pods, decides with
// the migration package, then writes what the step says: node specs, the CNI's documents,
// the agent pods to restart, and the policy's status.
// cniOwner, when set, is the policy that writes the CNI configuration this one agrees with: this
// one then manages its nodes only.
func (r *NetworkMTUPolicyReconciler) migrate(ctx context.Context, policy *mtuv1alpha1.NetworkMTUPolicy, det detected, target plan.CNITarget, p cniPlan, g *gatheredNodes, cniOwner string, persist func(context.Context) error) (phaseResult, error) {
	nodes := g.nodes
	now := time.Now()
	// The transition exists before any node's state does: an agent reads its pins' release
	// there.
	transition, err := r.ensureTransition(ctx, policy)
	if err != nil {
		return phaseResult{}, err
	}
	changes := p.changes()
	pending, drift, driftWait := configPending(policy, changes, now)
	if cniOwner != "" {
		pending, drift, driftWait = false, false, 0
	}
	if p.ownStep {
		drift, driftWait = false, 0
	}
	// Who changed the documents since the operator wrote them, and when: named in the
	// messages, and only agents started since then restart after the correction.
	var reverters []plan.Writer
	if drift {
		reverters = p.writersSince(policy.Status.Migration.ConfigWrittenAt.Time)
	}
	in := migration.Input{
		Policy: policy.Name, Generation: policy.Generation, DryRun: policy.Spec.Mode == mtuv1alpha1.ModeDryRun,
		Target: plan.NodeTarget{
			PodMTU: target.PodMTU, Interfaces: target.Interfaces,
			InterfacePattern: policy.Spec.Underlay.InterfacePattern, PodAction: policy.Spec.StalePods.Action,
		},
		Enforce:        policy.Spec.Underlay.Management == mtuv1alpha1.UnderlayEnforce,
		AllowLowering:  policy.Spec.Underlay.AllowLowering,
		UnderlayByNode: target.UnderlayByNode,
		MaxUnavailable: policy.Spec.Rollout.MaxUnavailable,
		Nodes:          nodes, ConfigPending: pending, Previous: policy.Status.Migration, Now: now,
		PinsReleased: transition.Spec.PinsReleasedGeneration, ProbeTimeoutSeconds: probeTimeoutSeconds,
	}
	in.CNIPodsListed = migration.ListCNIPods(in)
	agents, err := r.findCNIAgents(ctx, policy, p, in.CNIPodsListed)
	if err != nil {
		return phaseResult{}, err
	}
	if len(agents.byNode) > 0 {
		// A copy: the gathered nodes are shared with the next reconcile, which may not list.
		nodes = slices.Clone(nodes)
		for i := range nodes {
			nodes[i].CNIPod = agents.byNode[nodes[i].Name]
		}
		in.Nodes = nodes
	}
	in.PacedRestart, in.CNIRolledOut = agents.paced, agents.rolledOut
	if len(reverters) > 0 {
		in.RevertedAt = &reverters[0].Time
	}
	if policy.Spec.Underlay.Source == mtuv1alpha1.UnderlayDeclared {
		in.DeclaredUnderlay = policy.Spec.Underlay.MTU
	}
	if r.cached != nil {
		in.Memo = r.cached.memoOf(policy)
	}
	step := migration.Decide(in)

	// Only the specs the step changed (comparing every node's spec is the decision's job), and
	// those of nodes whose retry was asked for, which say so.
	writes := make([]specWrite, 0, len(step.Specs))
	created := map[string]mtuv1alpha1.NodeMTUStateSpec{}
	write := func(n migration.Node, spec mtuv1alpha1.NodeMTUStateSpec) {
		if n.State == nil {
			created[n.Name] = spec
			return
		}
		writes = append(writes, specWrite{state: n.State, spec: spec, retried: n.RetryRequested})
	}
	for name, spec := range step.Specs {
		if i := g.index(name); i >= 0 {
			write(nodes[i], spec) // nodes are g's, in its order
		}
	}
	for _, n := range nodes {
		if _, changed := step.Specs[n.Name]; n.RetryRequested && !changed {
			write(n, n.State.Spec)
		}
	}
	writeStart, creating := time.Now(), len(g.missing)
	if err := r.createNodeStates(ctx, g, created); err != nil {
		return phaseResult{}, err
	}
	if err := r.writeNodeSpecs(ctx, writes); err != nil {
		return phaseResult{}, err
	}
	log.FromContext(ctx).V(1).Info("node specs written", "created", creating, "patched", len(writes), "gatheredAndDecided", writeStart.Sub(now), "wrote", time.Since(writeStart))
	// While nothing changes (before a rollout, in a DryRun, once settled) the agents probe the
	// paths between the nodes on the schedule the transition gives them; while nodes change,
	// the turns' checks do, and a probe of a node changing would fail for nothing.
	// The schedule lists every node, and every agent receives it: it is written once every
	// node has reported (not as each report comes in), and after a rollout only from the
	// reconcile after the one that reached Done, so that sending it to every agent does not
	// hold back the status that says Ready.
	var probing *mtuv1alpha1.PathProbingSchedule
	probingRequeue := time.Duration(0)
	settled := step.Migration.Phase == mtuv1alpha1.MigrationDone && step.Nodes.Status == metav1.ConditionTrue
	if settled || step.Migration.Phase == mtuv1alpha1.MigrationPlanned || step.Verdict.Stalled != nil && step.Verdict.Stalled.Reason == mtuv1alpha1.ReasonPathMTUBlackHole {
		pp := policy.Spec.PathProbing
		probing = plan.ProbeSchedule(nodeInputs(nodes), ptr.Deref(pp.PeersPerRound, defaultPeersPerRound), cmp.Or(pp.RoundSeconds, defaultRoundSeconds))
		prev := policy.Status.Migration // this reconcile's is recorded below
		doneBefore := prev != nil && prev.Generation == policy.Generation && prev.Phase == mtuv1alpha1.MigrationDone
		if settled && !doneBefore && transition.Spec.Probing == nil {
			probing, probingRequeue = nil, time.Second
		}
	}
	if err := r.updateTransition(ctx, transition, step.PinsReleased, probing); err != nil {
		return phaseResult{}, err
	}
	policy.Status.Migration = step.Migration.DeepCopy()
	policy.Status.Nodes = step.Counts
	configApplied := r.reportConfig(policy, step, p, driftWait, reverters)
	if cniOwner != "" && policy.Spec.Mode == mtuv1alpha1.ModeApply {
		configApplied = detail(mtuv1alpha1.ConditionConfigApplied, metav1.ConditionTrue, mtuv1alpha1.ReasonCNIConfigOwned,
			fmt.Sprintf("NetworkMTUPolicy %s owns the CNI configuration and sets the same values; this policy manages its nodes only", cniOwner))
		if len(changes) > 0 {
			configApplied.Status, configApplied.Message = metav1.ConditionFalse, fmt.Sprintf("NetworkMTUPolicy %s owns the CNI configuration and has not written the values both policies want yet", cniOwner)
		}
	}
	if step.WriteConfig {
		// The record goes first: if it cannot land (a conflict), nothing is written.
		if err := persist(ctx); err != nil {
			return phaseResult{}, err
		}
		written, err := r.writeCNIConfig(ctx, policy, det, p, !agents.paced && policy.Spec.CNI.AgentRestart != mtuv1alpha1.AgentRestartNever, drift, reverters)
		if err != nil {
			// Still pending next time, when it is written (and recorded) again.
			return phaseResult{}, err
		}
		configApplied = written
	}
	for _, name := range step.RestartCNI {
		if err := r.restartAgentOn(ctx, policy, agents, name); err != nil {
			return phaseResult{}, err
		}
	}
	nodesConverged, verdict := r.reportNodes(policy, det, step, configApplied)
	res := phaseResult{conditions: []metav1.Condition{r.reportUnderlay(policy, step.Underlay), r.reportPaths(policy, step.ShortPaths), configApplied, nodesConverged}, verdict: &verdict, requeue: resyncPeriod}
	return res.then(phaseResult{requeue: step.Requeue}).then(phaseResult{requeue: driftWait}).then(phaseResult{requeue: probingRequeue}), nil
}

// cniAgents are the CNI's agent pods as the migration needs them.
type cniAgents struct {
	// byNode is each node's agent pod; pods names the one to delete when its turn comes.
	byNode map[string]*migration.CNIPod
	pods   map[string]*corev1.Pod
	// paced: the operator restarts the agents itself, one node's pod at a time; rolledOut then
	// says no pod of the DaemonSet is unavailable. Otherwise rolledOut says whether their own
	// rollout (the DaemonSet's, or the Tigera operator's) has finished, as far as the operator
	// can see.
	paced, rolledOut bool
}

// findCNIAgents reads the CNI's agent DaemonSet and, with listPods, lists its pods.
func (r *NetworkMTUPolicyReconciler) findCNIAgents(ctx context.Context, policy *mtuv1alpha1.NetworkMTUPolicy, p cniPlan, listPods bool) (cniAgents, error) {
	daemonSets := p.daemonSets()
	if policy.Spec.CNI.AgentRestart == mtuv1alpha1.AgentRestartNever || len(daemonSets) == 0 {
		// Nobody restarts the agents (Never), or the Tigera operator does it on its own.
		return cniAgents{rolledOut: true}, nil
	}
	ds := &appsv1.DaemonSet{}
	if err := r.Get(ctx, daemonSets[0], ds); err != nil {
		if apierrors.IsNotFound(err) {
			return cniAgents{rolledOut: true}, nil
		}
		return cniAgents{}, err
	}
	a := cniAgents{byNode: map[string]*migration.CNIPod{}, pods: map[string]*corev1.Pod{}, paced: true, rolledOut: ds.Status.NumberUnavailable == 0}
	if ds.Spec.Selector == nil || len(ds.Spec.Selector.MatchLabels) == 0 {
		a.paced, a.rolledOut = false, daemonSetRolledOut(ds)
		return a, nil
	}
	if !listPods {
		return a, nil
	}
	var pods corev1.PodList
	if err := r.APIReader.List(ctx, &pods, client.InNamespace(ds.Namespace), client.MatchingLabels(ds.Spec.Selector.MatchLabels)); err != nil {
		return cniAgents{}, fmt.Errorf("listing the pods of DaemonSet %s/%s: %w", ds.Namespace, ds.Name, err)
	}
	for i := range pods.Items {
		pod := &pods.Items[i]
		node := pod.Spec.NodeName
		if node == "" {
			continue
		}
		seen := &migration.CNIPod{Name: pod.Namespace + "/" + pod.Name, Created: pod.CreationTimestamp.Time, Ready: podReady(pod), Deleting: pod.DeletionTimestamp != nil}
		// A node may briefly have the pod being deleted and its replacement: the replacement counts.
		if have := a.byNode[node]; have == nil || (have.Deleting && !seen.Deleting) || (have.Deleting == seen.Deleting && seen.Created.After(have.Created)) {
			a.byNode[node], a.pods[node] = seen, pod
		}
	}
	return a, nil
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// daemonSetRolledOut: the DaemonSet's controller reports every pod updated and available, as
// `kubectl rollout status` checks.
func daemonSetRolledOut(ds *appsv1.DaemonSet) bool {
	st := ds.Status
	return st.ObservedGeneration >= ds.Generation && st.UpdatedNumberScheduled >= st.DesiredNumberScheduled && st.NumberAvailable >= st.DesiredNumberScheduled
}

// restartAgentOn deletes the node's CNI agent pod, so its DaemonSet starts a new one that reads
// the configuration as written now. The UID precondition never deletes a replacement.
func (r *NetworkMTUPolicyReconciler) restartAgentOn(ctx context.Context, policy *mtuv1alpha1.NetworkMTUPolicy, agents cniAgents, node string) error {
	pod := agents.pods[node]
	if pod == nil {
		return nil
	}
	err := r.Delete(ctx, pod, client.Preconditions{UID: &pod.UID})
	if client.IgnoreNotFound(err) != nil && !apierrors.IsConflict(err) {
		return fmt.Errorf("restarting the CNI agent on %s (deleting pod %s/%s): %w", node, pod.Namespace, pod.Name, err)
	}
	r.event(policy, corev1.EventTypeNormal, "AgentRestarted", "Restart", fmt.Sprintf("deleted %s/%s so that %s's CNI agent restarts with the new configuration", pod.Namespace, pod.Name, node))
	return nil
}

// specWriters bounds the spec writes in flight: a wave of a 5,000-node rollout is written
// concurrently, without crowding out the agents' reports at the API server.
const specWriters = 16

// specWrite is a node's spec as a step decided it.
type specWrite struct {
	state   *mtuv1alpha1.NodeMTUState
	spec    mtuv1alpha1.NodeMTUStateSpec
	retried bool
}

// writeNodeSpecs writes the specs that differ from what the nodes have, specWriters at a time.
func (r *NetworkMTUPolicyReconciler) writeNodeSpecs(ctx context.Context, writes []specWrite) error {
	writes = slices.DeleteFunc(slices.Clone(writes), func(w specWrite) bool {
		return migration.SpecEqual(w.state.Spec, w.spec) && !w.retried
	})
	return eachBounded(writes, specWriters, func(w specWrite) error {
		return r.writeNodeSpec(ctx, w.state, w.spec, w.retried)
	})
}

// eachBounded calls do for every item, limit at a time, and returns the first error that is
// not a conflict (else the first), saying how many more there were. One node's failure, a
// conflict most often, must not cancel the writes to the others: the API server would finish
// them anyway, answer 504, and the next reconcile would have to make them again.
func eachBounded[T any](items []T, limit int, do func(T) error) error {
	var g errgroup.Group
	g.SetLimit(limit)
	var mu sync.Mutex
	var errs []error
	for _, item := range items {
		g.Go(func() error {
			if err := do(item); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
			return nil
		})
	}
	_ = g.Wait()
	if len(errs) == 0 {
		return nil
	}
	first := errs[0]
	if i := slices.IndexFunc(errs, func(err error) bool { return !apierrors.IsConflict(err) }); i >= 0 {
		first = errs[i]
	}
	if len(errs) == 1 {
		return first
	}
	return fmt.Errorf("%w (and %d more)", first, len(errs)-1)
}

// writeNodeSpec patches a node's spec, and removes a retry request it has acted on; only the
// controller writes specs.
func (r *NetworkMTUPolicyReconciler) writeNodeSpec(ctx context.Context, state *mtuv1alpha1.NodeMTUState, spec mtuv1alpha1.NodeMTUStateSpec, retried bool) error {
	var current *mtuv1alpha1.NodeMTUState // read, never changed
	if r.cached != nil {
		current = r.cached.state(state.Name) // the cache's, or this manager's newer write
	}
	if current == nil {
		current = &mtuv1alpha1.NodeMTUState{}
		if err := r.Get(ctx, client.ObjectKeyFromObject(state), current); err != nil {
			return err
		}
	}
	_, retryLeft := current.Annotations[mtuv1alpha1.RetryAnnotation]
	if migration.SpecEqual(current.Spec, spec) && (!retried || !retryLeft) {
		// The cache caught up with an earlier write of this spec since the step was decided.
		return nil
	}
	patched := current.DeepCopy()
	patched.Spec = spec
	if retried {
		delete(patched.Annotations, mtuv1alpha1.RetryAnnotation)
	}
	if err := r.Patch(ctx, patched, client.MergeFromWithOptions(current, client.MergeFromWithOptimisticLock{}), client.FieldOwner(FieldManager)); err != nil {
		return fmt.Errorf("updating NodeMTUState %s: %w", state.Name, err)
	}
	if r.cached != nil {
		r.cached.wrote(patched)
	}
	return nil
}

// reportConfig is ConfigApplied, with plannedChanges, for what the step decided about the
// CNI's documents (a write replaces it once done).
func (r *NetworkMTUPolicyReconciler) reportConfig(policy *mtuv1alpha1.NetworkMTUPolicy, step migration.Step, p cniPlan, driftWait time.Duration, reverters []plan.Writer) metav1.Condition {
	changes := p.changes()
	policy.Status.PlannedChanges = nil
	switch {
	case policy.Spec.Mode == mtuv1alpha1.ModeDryRun:
		policy.Status.PlannedChanges = capChanges(append(slices.Clone(changes), step.Planned...))
		policy.Status.AgentRestarts = namesOf(p.restarts())
		msg := fmt.Sprintf("DryRun: %d field(s) would change and %d node interface(s), nothing was written", len(changes), len(step.Planned))
		if len(changes) == 0 && len(step.Planned) == 0 {
			msg = "DryRun: the CNI configuration and the nodes already match, nothing would change"
		}
		return detail(mtuv1alpha1.ConditionConfigApplied, metav1.ConditionFalse, mtuv1alpha1.ReasonDryRun, msg)
	case driftWait > 0:
		msg := fmt.Sprintf("changed back by %s: %s; re-applying in %s", plan.DescribeWriters(reverters), describeChanges(changes), driftWait.Round(time.Second))
		return detail(mtuv1alpha1.ConditionConfigApplied, metav1.ConditionTrue, mtuv1alpha1.ReasonDriftCorrected, msg)
	case len(changes) == 0:
		if isTrueFor(policy, mtuv1alpha1.ConditionConfigApplied) {
			// Keep saying what was last written.
			c := meta.FindStatusCondition(policy.Status.Conditions, mtuv1alpha1.ConditionConfigApplied)
			return detail(c.Type, c.Status, c.Reason, c.Message)
		}
		return detail(mtuv1alpha1.ConditionConfigApplied, metav1.ConditionTrue, mtuv1alpha1.ReasonConfigUpToDate, "the CNI configuration holds the computed values")
	case step.Verdict.Stalled != nil && !step.WriteConfig:
		policy.Status.PlannedChanges = capChanges(changes)
		msg := fmt.Sprintf("not written while %s: %d field(s) wait in status.plannedChanges", step.Verdict.Stalled.Message, len(changes))
		return detail(mtuv1alpha1.ConditionConfigApplied, metav1.ConditionFalse, step.Verdict.Stalled.Reason, msg)
	default:
		// When the step writes them, writeCNIConfig's condition replaces this one.
		policy.Status.PlannedChanges = capChanges(changes)
		msg := fmt.Sprintf("%d field(s) wait in status.plannedChanges until every node's devices carry pod MTU %d (migration phase %s)", len(changes), policy.Status.PodMTU, step.Migration.Phase)
		return detail(mtuv1alpha1.ConditionConfigApplied, metav1.ConditionFalse, mtuv1alpha1.ReasonRollingOut, msg)
	}
}

// reportNodes is NodesConverged for the step, and the policy's verdict, with the Ready message
// when nothing is left to do.
func (r *NetworkMTUPolicyReconciler) reportNodes(policy *mtuv1alpha1.NetworkMTUPolicy, det detected, step migration.Step, configApplied metav1.Condition) (metav1.Condition, plan.Verdict) {
	rep := step.Nodes
	previous := meta.FindStatusCondition(policy.Status.Conditions, mtuv1alpha1.ConditionNodesConverged)
	if step.Verdict.Stalled != nil && (previous == nil || previous.Message != rep.Message) {
		r.event(policy, corev1.EventTypeWarning, rep.Reason, "Rollout", rep.Message)
	}
	verdict := step.Verdict
	if verdict.Stalled == nil && verdict.Progressing == nil {
		c := step.Counts
		verdict.Ready = fmt.Sprintf("%s pod MTU %d on %d node(s) (underlay %d, %s)", det.Provider, policy.Status.PodMTU, c.Selected, policy.Status.UnderlayMTU, policy.Spec.Encapsulation.Type)
		if policy.Spec.Mode == mtuv1alpha1.ModeDryRun {
			verdict.Ready = configApplied.Message + "; " + verdict.Ready
		}
	}
	return detail(mtuv1alpha1.ConditionNodesConverged, rep.Status, rep.Reason, rep.Message), verdict
}

// reportUnderlay is UnderlayConsistent; it emits an Event when the set of outliers changes.
func (r *NetworkMTUPolicyReconciler) reportUnderlay(policy *mtuv1alpha1.NetworkMTUPolicy, u plan.UnderlayReport) metav1.Condition {
	switch {
	case u.Reported == 0:
		return detail(mtuv1alpha1.ConditionUnderlayConsistent, metav1.ConditionUnknown, mtuv1alpha1.ReasonProgressing, "no node has reported its underlay MTU yet")
	case len(u.Outliers) > 0:
		msg := fmt.Sprintf("%d of %d nodes have an underlay MTU other than %d: %s", len(u.Outliers), u.Reported, u.Expected, plan.Bounded(u.Outliers))
		if policy.Spec.Underlay.Management == mtuv1alpha1.UnderlayEnforce {
			msg += fmt.Sprintf("; setting them to %d (underlay.management Enforce)", u.Expected)
		}
		previous := meta.FindStatusCondition(policy.Status.Conditions, mtuv1alpha1.ConditionUnderlayConsistent)
		if previous == nil || previous.Message != msg {
			r.event(policy, corev1.EventTypeWarning, mtuv1alpha1.ReasonUnderlayMismatch, "Compare", msg)
		}
		return detail(mtuv1alpha1.ConditionUnderlayConsistent, metav1.ConditionFalse, mtuv1alpha1.ReasonUnderlayMismatch, msg)
	default:
		return detail(mtuv1alpha1.ConditionUnderlayConsistent, metav1.ConditionTrue, mtuv1alpha1.ReasonUnderlayMatches, fmt.Sprintf("all %d reporting nodes have underlay MTU %d", u.Reported, u.Expected))
	}
}

// reportPaths is PathMTUVerified: the paths between nodes the agents measured short, worst
// first; it emits an Event when they change.
func (r *NetworkMTUPolicyReconciler) reportPaths(policy *mtuv1alpha1.NetworkMTUPolicy, short []plan.ShortPath) metav1.Condition {
	if len(short) == 0 {
		return detail(mtuv1alpha1.ConditionPathMTUVerified, metav1.ConditionTrue, mtuv1alpha1.ReasonNoShortPathFound,
			"no path between nodes checked so far carries less than both ends' NICs, or through the tunnels less than both pod networks")
	}
	msg := fmt.Sprintf("%d path(s) between nodes carry less than both ends do, so larger packets vanish there: %s", len(short), plan.PathsMessage(short))
	previous := meta.FindStatusCondition(policy.Status.Conditions, mtuv1alpha1.ConditionPathMTUVerified)
	if previous == nil || previous.Message != msg {
		r.event(policy, corev1.EventTypeWarning, mtuv1alpha1.ReasonPathMTUBlackHole, "Measure", msg)
	}
	return detail(mtuv1alpha1.ConditionPathMTUVerified, metav1.ConditionFalse, mtuv1alpha1.ReasonPathMTUBlackHole, msg)
}

// ensureTransition reads the policy's NetworkMTUTransition, creating it (owned by the policy,
// so that it goes with it) when it does not exist. One left by an earlier policy of the same
// name (deleted where no garbage collector ran) is replaced: its releases are not this one's.
func (r *NetworkMTUPolicyReconciler) ensureTransition(ctx context.Context, policy *mtuv1alpha1.NetworkMTUPolicy) (*mtuv1alpha1.NetworkMTUTransition, error) {
	t := &mtuv1alpha1.NetworkMTUTransition{}
	err := r.Get(ctx, client.ObjectKey{Name: policy.Name}, t)
	switch {
	case err == nil && metav1.IsControlledBy(t, policy):
		return t, nil
	case err == nil:
		uid := t.UID
		if err := r.Delete(ctx, t, client.Preconditions{UID: &uid}); client.IgnoreNotFound(err) != nil {
			return nil, fmt.Errorf("replacing the NetworkMTUTransition %s an earlier policy left: %w", policy.Name, err)
		}
	case !apierrors.IsNotFound(err):
		return nil, err
	}
	t = &mtuv1alpha1.NetworkMTUTransition{}
	t.Name, t.Spec.Policy = policy.Name, policy.Name
	if err := controllerutil.SetControllerReference(policy, t, r.Scheme()); err != nil {
		return nil, err
	}
	if err := r.Create(ctx, t, client.FieldOwner(FieldManager)); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("creating NetworkMTUTransition %s: %w", policy.Name, err)
	}
	return t, nil
}

// updateTransition writes what every agent acts on at once, in one patch when anything
// changed: the release of the route pins up to generation released (it only grows), and the
// schedule of path probing (nil stops it).
func (r *NetworkMTUPolicyReconciler) updateTransition(ctx context.Context, t *mtuv1alpha1.NetworkMTUTransition, released int64, probing *mtuv1alpha1.PathProbingSchedule) error {
	if released <= t.Spec.PinsReleasedGeneration && equality.Semantic.DeepEqual(probing, t.Spec.Probing) {
		return nil
	}
	patched := t.DeepCopy()
	patched.Spec.PinsReleasedGeneration = max(released, t.Spec.PinsReleasedGeneration)
	patched.Spec.Probing = probing
	if err := r.Patch(ctx, patched, client.MergeFromWithOptions(t, client.MergeFromWithOptimisticLock{}), client.FieldOwner(FieldManager)); err != nil {
		return fmt.Errorf("updating NetworkMTUTransition %s: %w", t.Name, err)
	}
	return nil
}
