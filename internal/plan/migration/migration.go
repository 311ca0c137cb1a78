// Package migration decides, one step at a time, how a policy's MTUs reach the nodes without
// losing packets: the protocol of docs/design/migrations.md. It is pure: the controller
// gathers the nodes' reports, the CNI's documents and its agents' pods, calls Decide, and
// writes what the returned Step says, nothing else.
package migration

import (
	"fmt"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	mtuv1alpha1 "github.com/mtu-operator/mtu-operator/api/v1alpha1"
	"github.com/mtu-operator/mtu-operator/internal/plan"
)

// ReportTimeout is how long a migration waits for every selected node to report before the
// policy is Stalled naming the silent ones (it keeps waiting after that).
const ReportTimeout = 2 * time.Minute

// maxPeers bounds the peers each node probes after a change.
const maxPeers = 3

// cniPollInterval is how often a CNI restart is checked: the manager does not watch pods.
const cniPollInterval = 2 * time.Second

// CNIAgentTimeout is how long a restarted CNI agent pod may stay not Ready before the policy
// is Stalled naming it (the migration goes on once it is Ready).
const CNIAgentTimeout = 5 * time.Minute

// CNIPod is a node's CNI agent pod as the controller saw it.
type CNIPod struct {
	Name     string
	Created  time.Time
	Ready    bool
	Deleting bool
}

// Node is a selected node.
type Node struct {
	Name string
	// State is its NodeMTUState; nil until the controller created it.
	State *mtuv1alpha1.NodeMTUState
	// CNIPod is its CNI agent pod; nil when there is none.
	CNIPod *CNIPod
	// RetryRequested: a person asked to retry the node's failed change.
	RetryRequested bool
}

// Input is what the controller gathered.
type Input struct {
	Policy     string
	Generation int64
	DryRun     bool
	Target     plan.NodeTarget
	// DeclaredUnderlay is the policy's underlay MTU when it declares one; Enforce says the
	// agents may change NICs to it, AllowLowering that they may also lower them.
	DeclaredUnderlay *int32
	Enforce          bool
	AllowLowering    bool
	// UnderlayByNode, under Enforce, gives some nodes a NIC target of their own instead of
	// DeclaredUnderlay (a restore puts each NIC back to its own original).
	UnderlayByNode map[string]int32
	MaxUnavailable *intstr.IntOrString
	Nodes          []Node
	// ConfigPending: the CNI's documents do not hold the target values.
	ConfigPending bool
	// RevertedAt is, when the documents were written for this generation and someone changed
	// them since, the time of the earliest such change: only CNI agents started since then can
	// have read the reverted values. Nil when unknown.
	RevertedAt *time.Time
	// PacedRestart: the operator restarts the CNI's agents itself, deleting one node's agent
	// pod at a time; CNIRolledOut then says the DaemonSet has no pod unavailable (so a node
	// without an agent pod has none to restart, rather than one on its way). Otherwise
	// CNIRolledOut says whether the CNI's own rollout has finished.
	PacedRestart bool
	CNIRolledOut bool
	// CNIPodsListed: the nodes' CNIPod were gathered. The controller lists the CNI's agent pods
	// (thousands, uncached) only while a restart may be near: when the recorded phase is
	// Configuring or RestartingCNI, or the documents need writing (ListCNIPods says so).
	CNIPodsListed bool
	// Previous is the migration as the policy's status recorded it.
	Previous *mtuv1alpha1.MigrationStatus
	// PinsReleased is the policy's NetworkMTUTransition's pinsReleasedGeneration: pins that
	// specs carry for generations up to it are released, whatever the specs say.
	PinsReleased int64
	// ProbeTimeoutSeconds bounds each node's probe (spec.probe.timeoutSeconds).
	ProbeTimeoutSeconds int32
	Now                 time.Time
	// Memo, when set, keeps what each node's state decided for the policy's next decision,
	// which then costs the nodes that changed since (see Memo). Nodes should come sorted by
	// name, as a decision reads them: then it sorts nothing either.
	Memo *Memo
}

// Step is what to do now.
type Step struct {
	Migration mtuv1alpha1.MigrationStatus
	// Specs are the NodeMTUState specs to write: of the nodes whose spec differs from the one
	// they have, or that have no state yet. Every other node keeps its own.
	Specs map[string]mtuv1alpha1.NodeMTUStateSpec
	// WriteConfig: write the CNI's documents now; the controller then records
	// Migration.ConfigWrittenAt.
	WriteConfig bool
	// RestartCNI are the nodes whose CNI agent pod to delete now.
	RestartCNI []string
	// Planned lists every node interface change the migration makes (DryRun's plan).
	Planned []mtuv1alpha1.ConfigChange
	Counts  mtuv1alpha1.NodeCounts
	// Nodes is the NodesConverged condition's status, reason and message.
	Nodes Report
	// Verdict is the policy's top-level state as far as the nodes decide it.
	Verdict plan.Verdict
	// Underlay compares the nodes' underlay MTUs.
	Underlay plan.UnderlayReport
	// ShortPaths are the paths between nodes the agents measured short, worst first.
	ShortPaths []plan.ShortPath
	// PinsReleased is the transition's pinsReleasedGeneration after the step: the release of
	// every node's pin at once, which agents act on without a spec written or a report.
	PinsReleased int64
	Requeue      time.Duration
}

// Report is a condition's status, reason and message.
type Report struct {
	Status  metav1.ConditionStatus
	Reason  string
	Message string
}

// Decide returns the next step of the migration.
func Decide(in Input) Step {
	d := newDecision(in)
	d.run()
	return d.step
}

type decision struct {
	in    Input
	nodes []Node // by name
	step  Step
	memo  *Memo
	// entries are the nodes' memo entries, in order; nil without a memo.
	entries []memoEntry
}

// nodeWant is what a node's devices must reach in a phase.
type nodeWant struct {
	interfaces []mtuv1alpha1.ManagedInterface
	underlay   *int32
}

func newDecision(in Input) *decision {
	nodes := in.Nodes
	if !slices.IsSortedFunc(nodes, byName) {
		nodes = slices.Clone(nodes)
		slices.SortFunc(nodes, byName)
	}
	d := &decision{in: in, nodes: nodes, memo: in.Memo}
	if d.memo != nil {
		d.entries = d.memo.entriesFor(in, nodes)
	}
	d.step.Specs = map[string]mtuv1alpha1.NodeMTUStateSpec{}
	d.step.PinsReleased = in.PinsReleased
	d.step.Counts.Selected = int32(len(nodes))
	source := mtuv1alpha1.UnderlayAutoDetect
	if in.DeclaredUnderlay != nil {
		source = mtuv1alpha1.UnderlayDeclared
	}
	underlays := func(yield func(string, int32) bool) {
		for i, n := range nodes {
			if !yield(n.Name, d.underlayMTU(i)) {
				return
			}
		}
	}
	d.step.Underlay = plan.CompareUnderlay(source, in.DeclaredUnderlay, underlays)
	if d.pathsReported() {
		inputs := make([]plan.NodeInput, 0, len(nodes))
		for _, n := range nodes {
			inputs = append(inputs, plan.NodeInput{Name: n.Name, State: n.State})
		}
		d.step.ShortPaths = plan.ShortPaths(inputs)
	}
	switch p := in.Previous; {
	case p != nil && p.Generation == in.Generation:
		d.step.Migration = *p.DeepCopy()
	default:
		d.step.Migration = mtuv1alpha1.MigrationStatus{Generation: in.Generation, Phase: mtuv1alpha1.MigrationGathering, StartedAt: metaTime(in.Now)}
		if p != nil && p.Phase != mtuv1alpha1.MigrationDone && p.ConfigWrittenAt != nil {
			// Edited mid-rollout: agents started before the last write still need a restart.
			d.step.Migration.ConfigWrittenAt = p.ConfigWrittenAt.DeepCopy()
		}
	}
	for i := range nodes {
		if d.underlayMTU(i) == 0 {
			// A node that never reported (new, or its agent never ran): gather again first.
			d.step.Migration.Phase = mtuv1alpha1.MigrationGathering
		}
	}
	for i := range nodes {
		d.step.Counts.Converged += b2i(d.converged(i))
	}
	return d
}

func byName(a, b Node) int { return strings.Compare(a.Name, b.Name) }

// underlayMTU is the underlay MTU the i-th node reported; 0 when none.
func (d *decision) underlayMTU(i int) int32 {
	if e := d.entry(i); e != nil {
		return e.underlayMTU
	}
	return underlayOf(d.nodes[i])
}

// pathsReported: some node reports the paths its agent measured (a healthy cluster, none).
func (d *decision) pathsReported() bool {
	for i, n := range d.nodes {
		if e := d.entry(i); e != nil && e.hasPaths || e == nil && n.State != nil && len(n.State.Status.Paths) > 0 {
			return true
		}
	}
	return false
}

// converged: the i-th node is at its final target.
func (d *decision) converged(i int) bool {
	e := d.entry(i)
	if e != nil && e.convergedKnown {
		return e.converged
	}
	at := d.atWant(d.nodes[i], d.finalWant(d.nodes[i]))
	if e != nil {
		e.converged, e.convergedKnown = at, true
	}
	return at
}

// run walks the phases from the recorded one as far as the nodes' reports allow.
func (d *decision) run() {
	m := &d.step.Migration
	// Each phase either waits or moves on, and a migration passes each phase once (a
	// reverted configuration once more); the bound is a guard.
	for range 16 {
		next, wait := d.phase(m.Phase)
		if next != "" {
			m.Phase = next
		}
		if wait || next == "" {
			return
		}
	}
}

// phase acts out one phase; it returns the next phase, or done when the migration must wait.
func (d *decision) phase(p mtuv1alpha1.MigrationPhase) (next mtuv1alpha1.MigrationPhase, done bool) {
	switch p {
	case mtuv1alpha1.MigrationGathering, mtuv1alpha1.MigrationPlanned:
		return d.gather()
	case mtuv1alpha1.MigrationPinning:
		return d.pin()
	case mtuv1alpha1.MigrationRaisingDevices:
		return d.devices(p, d.raiseWant, mtuv1alpha1.MigrationConfiguring)
	case mtuv1alpha1.MigrationConfiguring:
		return d.configure()
	case mtuv1alpha1.MigrationRestartingCNI:
		return d.restartCNI()
	case mtuv1alpha1.MigrationLoweringDevices:
		return d.devices(p, d.finalWant, mtuv1alpha1.MigrationVerifying)
	case mtuv1alpha1.MigrationVerifying:
		return d.verify()
	case mtuv1alpha1.MigrationReleasing:
		return d.release()
	default:
		return d.done()
	}
}

// gather waits until every node has reported on a spec that names the target interfaces,
// then decides whether the migration can and must pin.
func (d *decision) gather() (mtuv1alpha1.MigrationPhase, bool) {
	var silent []string
	for _, n := range d.nodes {
		// Report the target interfaces, change nothing, keep any pin an earlier generation left.
		d.setSpec(n, mtuv1alpha1.PhaseObserve, d.finalWant(n), d.currentPin(n))
		if !reported(n, d.in.Target) {
			silent = append(silent, n.Name)
		}
	}
	if len(silent) > 0 {
		waited := d.in.Now.Sub(d.step.Migration.StartedAt.Time)
		msg := fmt.Sprintf("waiting for %d of %d nodes to report their interfaces: %s", len(silent), len(d.nodes), plan.Bounded(silent))
		if waited >= ReportTimeout {
			msg = fmt.Sprintf("%s have not reported for %s: is the agent running there? Nothing is changed until every selected node reports", plan.Bounded(silent), waited.Round(time.Second))
			d.stall(mtuv1alpha1.ReasonNodesSilent, msg)
		} else {
			d.progress(mtuv1alpha1.ReasonNodesSilent, msg)
			d.step.Requeue = ReportTimeout - waited
		}
		return "", true
	}
	d.step.Planned = d.plannedChanges()
	if blocked := d.blocked(); len(blocked) > 0 {
		d.releaseAll()
		d.stall(mtuv1alpha1.ReasonUnderlayMismatch, fmt.Sprintf("%s cannot carry the declared %d: pods sized for it would lose large packets there: fix those NICs or set underlay.management Enforce; nothing is changed",
			plan.Bounded(blocked), ptr.Deref(d.in.DeclaredUnderlay, 0)))
		return "", true
	}
	if lowered := d.loweredNICs(); len(lowered) > 0 && !d.in.AllowLowering {
		d.releaseAll()
		d.stall(mtuv1alpha1.ReasonLoweringRefused, fmt.Sprintf("underlay.mtu %d is below the NICs of %s: lowering NICs needs underlay.allowLowering: true (is %d a typo?); nothing is changed",
			ptr.Deref(d.in.DeclaredUnderlay, 0), plan.Bounded(lowered), ptr.Deref(d.in.DeclaredUnderlay, 0)))
		return "", true
	}
	short := d.shortPaths()
	if d.in.DryRun {
		d.releaseAll()
		msg := fmt.Sprintf("DryRun: nodes report, nothing changes; %d node interface change(s) planned", len(d.step.Planned))
		if len(short) > 0 {
			msg += fmt.Sprintf("; Apply would stop here: %d path(s) carry less than the pods would be sized for (underlay %d, pods %d): %s", len(short), d.step.Underlay.Expected, d.in.Target.PodMTU, plan.PathsMessage(short))
		}
		d.step.Nodes = Report{Status: metav1.ConditionUnknown, Reason: mtuv1alpha1.ReasonDryRun, Message: msg}
		return mtuv1alpha1.MigrationPlanned, true
	}
	if len(short) > 0 {
		d.releaseAll()
		d.stall(mtuv1alpha1.ReasonPathMTUBlackHole, fmt.Sprintf("%d path(s) between nodes carry less than the pods would be sized for (underlay %d, pods %d), so their larger packets would vanish: %s; fix those paths (the agents keep probing them, and the rollout starts once they carry it); nothing is changed",
			len(short), d.step.Underlay.Expected, d.in.Target.PodMTU, plan.PathsMessage(short)))
		return "", true
	}
	d.step.Migration.RoutableMTU = 0
	d.step.Migration.VerifyPaths = d.nicsChange()
	if d.podPathsChange() {
		d.step.Migration.RoutableMTU = d.routable()
		if d.onlyRaises(d.step.Migration.RoutableMTU) {
			// Nothing shrinks: a node pins when its turn comes, in the same change, and the
			// CNI restarts (the first pod of the new size) only once every node confirmed it.
			return mtuv1alpha1.MigrationRaisingDevices, false
		}
		return mtuv1alpha1.MigrationPinning, false
	}
	return mtuv1alpha1.MigrationRaisingDevices, false
}

// pin pins every node's routes at the routable MTU and waits until all report it.
func (d *decision) pin() (mtuv1alpha1.MigrationPhase, bool) {
	r := d.step.Migration.RoutableMTU
	var waiting []string
	for _, n := range d.nodes {
		d.setSpec(n, mtuv1alpha1.PhaseObserve, d.finalWant(n), &r)
		if n.State.Status.RouteMTU == nil || *n.State.Status.RouteMTU != r || !d.seenSpec(n) {
			waiting = append(waiting, n.Name)
		}
	}
	if len(waiting) > 0 {
		d.progress(mtuv1alpha1.ReasonRollingOut, fmt.Sprintf("pinning routes to MTU %d before anything changes; waiting for %s", r, plan.Bounded(waiting)))
		return "", true
	}
	return mtuv1alpha1.MigrationRaisingDevices, false
}

// devices hands each node its turn for the phase, maxUnavailable nodes changing at a time,
// and moves on once every node reached its target and confirmed its turn: the pin, and the
// check of its paths when it changes nothing (confirmed). A failed node halts the phase.
func (d *decision) devices(phase mtuv1alpha1.MigrationPhase, wantOf func(Node) nodeWant, next mtuv1alpha1.MigrationPhase) (mtuv1alpha1.MigrationPhase, bool) {
	pin := d.pinPtr()
	key := turnKey{phase: phase, pin: ptr.Deref(pin, 0), verifyPaths: d.step.Migration.VerifyPaths, pinsReleased: d.step.PinsReleased}
	var changing, confirming, failed, pathsFailed []string
	// The nodes waiting for their turn are counted; only as many as may be handed one now are
	// kept, in order.
	maxUnavailable := d.maxUnavailable()
	pending, firstPending := 0, make([]int, 0, min(maxUnavailable, len(d.nodes)))
	turns := d.turns()
	for i, n := range d.nodes {
		t := &turns[i]
		t.entry = d.entry(i)
		if e := t.entry; e != nil && e.hasTurn && e.turn == key {
			t.class, t.atWant, t.want = e.class, e.atWant, e.want
		} else {
			t.want = wantOf(n)
			t.atWant = d.atWant(n, t.want)
			t.class = d.classify(n, t.want, t.atWant, pin)
			if e != nil {
				e.turn, e.hasTurn, e.class, e.atWant, e.want, e.kept = key, true, t.class, t.atWant, t.want, branchNone
			}
		}
		switch t.class {
		case classFailed:
			failed = append(failed, fmt.Sprintf("%s: %s", n.Name, n.State.Status.LastTransaction.Message))
		case classPathsFailed:
			pathsFailed = append(pathsFailed, fmt.Sprintf("%s: %s", n.Name, n.State.Status.Verification.Message))
		case classConfirming:
			confirming = append(confirming, n.Name)
		case classChanging:
			changing = append(changing, n.Name)
		case classPending:
			if pending++; len(firstPending) < cap(firstPending) {
				firstPending = append(firstPending, i)
			}
		}
	}
	d.step.Counts.Failed = int32(len(failed) + len(pathsFailed))
	budget := 0
	if len(failed)+len(pathsFailed) == 0 {
		budget = max(maxUnavailable-len(changing), 0)
	}
	handedNow := firstPending[:min(budget, len(firstPending))]
	for _, i := range handedNow {
		changing = append(changing, d.nodes[i].Name)
	}
	handed := 0 // the next of handedNow, which follow the nodes' order
	for i, n := range d.nodes {
		t := &turns[i]
		branch := branchWait
		switch {
		case t.class == classFailed:
			// Back to what it committed last (the agent rolled back): report only.
			branch = branchObserve
		case handed < len(handedNow) && handedNow[handed] == i:
			handed++
			branch = branchConverge
		case t.class == classConfirming || t.class == classChanging || t.atWant:
			branch = branchConverge
		}
		if t.entry != nil && t.entry.kept == branch {
			// Its spec stays as it is, whatever an earlier phase of this decision said.
			delete(d.step.Specs, n.Name)
			continue
		}
		var kept bool
		switch branch {
		case branchObserve:
			kept = d.setSpec(n, mtuv1alpha1.PhaseObserve, t.want, pin)
		case branchConverge:
			kept = d.setSpec(n, mtuv1alpha1.PhaseConverge, t.want, pin)
		default:
			// Waiting for its turn: as it was, pin included.
			kept = d.setSpec(n, d.keepPhase(n), d.previousWant(n, t.want), d.currentPin(n))
		}
		if t.entry != nil && kept {
			t.entry.kept = branch
		}
	}
	if len(failed) > 0 {
		d.stall(mtuv1alpha1.ReasonNodeFailed, fmt.Sprintf("%s stopped: %s; the node was put back as it was; fix it, then annotate its NodeMTUState with %s=true (or edit the policy) to retry",
			phase, strings.Join(failed, "; "), mtuv1alpha1.RetryAnnotation))
		return "", true
	}
	if len(pathsFailed) > 0 {
		d.stall(mtuv1alpha1.ReasonPathCheckFailed, fmt.Sprintf("%s stopped: %s; fix the path, then annotate the node's NodeMTUState with %s=true to check again",
			phase, strings.Join(pathsFailed, "; "), mtuv1alpha1.RetryAnnotation))
		return "", true
	}
	if len(changing)+len(confirming) > 0 {
		msg := fmt.Sprintf("%s: changing %s; %d waiting%s", phase, plan.Bounded(changing), pending-len(handedNow), d.pinNote())
		if len(changing) == 0 {
			msg = fmt.Sprintf("%s: waiting for %s to confirm their turn%s", phase, plan.Bounded(confirming), d.pinNote())
		}
		d.progress(mtuv1alpha1.ReasonRollingOut, msg)
		return "", true
	}
	return next, false
}

// turn is where a node stands in a devices phase, and what it wants there.
type turn struct {
	class  nodeClass
	atWant bool
	want   nodeWant
	entry  *memoEntry
}

// turns is a scratch of a turn per node: the memo's, kept between decisions, when there is one.
func (d *decision) turns() []turn {
	if d.memo == nil {
		return make([]turn, len(d.nodes))
	}
	if cap(d.memo.turns) < len(d.nodes) {
		d.memo.turns = make([]turn, len(d.nodes))
	}
	d.memo.turns = d.memo.turns[:len(d.nodes)]
	return d.memo.turns
}

// classify says where a node stands in a devices phase that wants w of it.
func (d *decision) classify(n Node, w nodeWant, atWant bool, pin *int32) nodeClass {
	switch {
	case d.failed(n):
		return classFailed
	case d.verificationFailed(n):
		return classPathsFailed
	case atWant && d.confirmed(n, pin):
		return classDone
	case atWant:
		// Nothing to change: its turn pins (and checks) only, outside maxUnavailable.
		return classConfirming
	case d.handed(n, w, pin):
		return classChanging
	default:
		return classPending
	}
}

// confirmed: the node holds the phase's pin, and checked its paths if its turn asked it to.
func (d *decision) confirmed(n Node, pin *int32) bool {
	if pin != nil && (n.State.Status.RouteMTU == nil || *n.State.Status.RouteMTU != *pin || !d.seenSpec(n)) {
		return false
	}
	if d.verifyAtTurn(n) {
		v := d.verification(n)
		return v != nil && v.Passed
	}
	return true
}

// verifyAtTurn: the node changes nothing in this migration, so no transaction probes its
// paths; without NIC changes its peers are at full size already, and it checks them at its
// turn instead of in a Verifying phase of its own.
func (d *decision) verifyAtTurn(n Node) bool {
	if d.step.Migration.VerifyPaths || !d.atWant(n, d.finalWant(n)) {
		return false
	}
	t := n.State.Status.LastTransaction
	return t == nil || t.Outcome != mtuv1alpha1.TransactionCommitted || t.PolicyGeneration != d.in.Generation
}

// configure writes the CNI's documents once every device carries what they will hand out.
func (d *decision) configure() (mtuv1alpha1.MigrationPhase, bool) {
	d.convergeAll(d.raiseWant)
	if d.in.ConfigPending {
		d.step.WriteConfig = true
		d.step.Migration.ConfigWrittenAt = metaTimePtr(d.in.Now)
	}
	if d.step.Migration.ConfigWrittenAt == nil {
		// Nothing to write and never written: no agent needs a restart.
		return mtuv1alpha1.MigrationLoweringDevices, false
	}
	return mtuv1alpha1.MigrationRestartingCNI, false
}

// restartCNI restarts the CNI's agents maxUnavailable nodes at a time, each from the
// configuration just written, and waits until every node runs one started after it.
func (d *decision) restartCNI() (mtuv1alpha1.MigrationPhase, bool) {
	d.convergeAll(d.raiseWant)
	if d.in.ConfigPending {
		// Reverted meanwhile: write again; every agent started before must restart again.
		d.step.WriteConfig = true
		d.step.Migration.ConfigWrittenAt = metaTimePtr(d.in.Now)
	}
	written := d.step.Migration.ConfigWrittenAt.Time
	if !d.in.PacedRestart {
		if d.step.WriteConfig || !d.in.CNIRolledOut {
			d.progress(mtuv1alpha1.ReasonRollingOut, "waiting for the CNI's own rollout of its agents (not paced by the operator)"+d.pinNote())
			d.step.Requeue = cniPollInterval
			return "", true
		}
		return mtuv1alpha1.MigrationLoweringDevices, false
	}
	if d.in.Now.Before(written.Add(time.Second)) || !d.in.CNIPodsListed {
		// Creation times have seconds only: an agent started in the second of the write could
		// not be told from one started before it. Restart only from the next second on, so
		// every replacement is visibly newer than the write; and only knowing the agent pods.
		d.progress(mtuv1alpha1.ReasonRollingOut, fmt.Sprintf("%s: configuration written; restarting the CNI's agents node by node%s", mtuv1alpha1.MigrationRestartingCNI, d.pinNote()))
		d.step.Requeue = time.Second
		return "", true
	}
	var stale, restarting, down []string
	for _, n := range d.nodes {
		p := n.CNIPod
		switch {
		case p == nil && d.in.CNIRolledOut:
			// No agent runs on this node (the DaemonSet does not schedule one there).
		case p == nil || p.Deleting || !p.Ready:
			restarting = append(restarting, n.Name)
			if p != nil && !p.Deleting && d.in.Now.Sub(p.Created) > CNIAgentTimeout {
				down = append(down, fmt.Sprintf("%s (pod %s, not Ready for %s)", n.Name, p.Name, d.in.Now.Sub(p.Created).Round(time.Second)))
			}
		case !p.Created.After(written) && d.mayHaveReadRevert(p):
			// Started before the configuration was written (or in its second).
			stale = append(stale, n.Name)
		}
	}
	if len(stale) == 0 && len(restarting) == 0 {
		return mtuv1alpha1.MigrationLoweringDevices, false
	}
	if len(down) > 0 {
		d.stall(mtuv1alpha1.ReasonCNIAgentDown, fmt.Sprintf("%s: the CNI agent did not come back on %s after it restarted with the new configuration; no other node restarts meanwhile, routes stay pinned to MTU %d",
			mtuv1alpha1.MigrationRestartingCNI, plan.Bounded(down), d.step.Migration.RoutableMTU))
		d.step.Requeue = cniPollInterval
		return "", true
	}
	budget := max(d.maxUnavailable()-len(restarting), 0)
	d.step.RestartCNI = stale[:min(budget, len(stale))]
	d.step.Requeue = cniPollInterval
	d.progress(mtuv1alpha1.ReasonRollingOut, fmt.Sprintf("%s: restarting the CNI agent on %s; %d to go%s",
		mtuv1alpha1.MigrationRestartingCNI, plan.Bounded(append(restarting, d.step.RestartCNI...)), len(stale)-len(d.step.RestartCNI), d.pinNote()))
	return "", true
}

// ListCNIPods says whether Decide may restart CNI agents with in, so the controller must
// gather the CNI's agent pods first: the recorded phase is Configuring or RestartingCNI, or a
// later one with the documents changed back (a drift correction restarts agents). A step that
// reaches the restarts from an earlier phase waits for the next one, which has the pods.
func ListCNIPods(in Input) bool {
	p := in.Previous
	if p == nil || p.Generation != in.Generation {
		return false
	}
	switch p.Phase {
	case mtuv1alpha1.MigrationConfiguring, mtuv1alpha1.MigrationRestartingCNI:
		return true
	case mtuv1alpha1.MigrationLoweringDevices, mtuv1alpha1.MigrationVerifying, mtuv1alpha1.MigrationReleasing, mtuv1alpha1.MigrationDone:
		return in.ConfigPending
	}
	return false
}

// mayHaveReadRevert: the agent may run with values other than the operator's. After a drift
// correction that is only an agent started since the revert (creation times have seconds
// only, so one started in the revert's second counts); otherwise any agent started before
// the write.
func (d *decision) mayHaveReadRevert(p *CNIPod) bool {
	r := d.step.Migration.RevertedAt
	return r == nil || !p.Created.Before(r.Truncate(time.Second))
}

// verify has every node check, at full size and changing nothing, the paths to its probe
// peers, before the pins go: a path that cannot carry what the nodes now send is found while
// routes still keep packets to the routable size.
func (d *decision) verify() (mtuv1alpha1.MigrationPhase, bool) {
	if !d.step.Migration.VerifyPaths {
		// No NIC changed: every node probed at full size at its turn.
		return mtuv1alpha1.MigrationReleasing, false
	}
	var waiting, failed []string
	for _, n := range d.nodes {
		d.setSpec(n, mtuv1alpha1.PhaseConverge, d.finalWant(n), d.pinPtr())
		switch v := d.verification(n); {
		case v == nil:
			waiting = append(waiting, n.Name)
		case !v.Passed:
			failed = append(failed, fmt.Sprintf("%s: %s", n.Name, v.Message))
		}
	}
	if len(failed) > 0 {
		d.stall(mtuv1alpha1.ReasonPathCheckFailed, fmt.Sprintf("%s: every node is at its target, but %s; routes stay pinned to MTU %d; fix the path, then annotate the node's NodeMTUState with %s=true to check again",
			mtuv1alpha1.MigrationVerifying, strings.Join(failed, "; "), d.step.Migration.RoutableMTU, mtuv1alpha1.RetryAnnotation))
		return "", true
	}
	if len(waiting) > 0 {
		d.progress(mtuv1alpha1.ReasonRollingOut, fmt.Sprintf("%s: every node is at its target; checking the paths between nodes at full size on %s%s", mtuv1alpha1.MigrationVerifying, plan.Bounded(waiting), d.pinNote()))
		return "", true
	}
	return mtuv1alpha1.MigrationReleasing, false
}

// verification is the node's check for this generation and attempt; nil until it reports one.
func (d *decision) verification(n Node) *mtuv1alpha1.Verification {
	if n.State == nil || !n.State.Spec.Verify {
		return nil
	}
	v := n.State.Status.Verification
	if v == nil || v.PolicyGeneration != d.in.Generation || v.Attempt != n.State.Spec.Attempt {
		return nil
	}
	return v
}

// release releases every node's pin at once, once every node is at its target: through the
// policy's NetworkMTUTransition, which every agent watches, not by rewriting N specs (the specs keep their
// pins, released). A release is not confirmed: an agent that cannot drop a pin keeps routes at
// the routable MTU, which every path carries.
func (d *decision) release() (mtuv1alpha1.MigrationPhase, bool) {
	d.convergeAll(d.finalWant)
	d.step.PinsReleased = max(d.step.PinsReleased, d.in.Generation)
	return mtuv1alpha1.MigrationDone, false
}

// done keeps every node at its target; a configuration reverted by hand is written again.
func (d *decision) done() (mtuv1alpha1.MigrationPhase, bool) {
	if d.in.ConfigPending && !d.step.WriteConfig {
		// A drift correction: after the write, only agents that started since the revert
		// (and so may have read it) restart.
		d.step.Migration.RevertedAt = nil
		if t := d.in.RevertedAt; t != nil {
			d.step.Migration.RevertedAt = metaTimePtr(*t)
		}
		return mtuv1alpha1.MigrationConfiguring, false
	}
	d.convergeAll(d.finalWant)
	var off []string
	for _, n := range d.nodes {
		if !d.atWant(n, d.finalWant(n)) {
			off = append(off, n.Name)
		}
	}
	if len(off) > 0 {
		// Something changed a device behind the operator's back; the agent puts it back.
		d.progress(mtuv1alpha1.ReasonRollingOut, fmt.Sprintf("%d/%d nodes at target; %s correcting", len(d.nodes)-len(off), len(d.nodes), plan.Bounded(off)))
		return "", true
	}
	msg := fmt.Sprintf("all %d nodes converged", len(d.nodes))
	if !d.in.PacedRestart && d.step.Migration.ConfigWrittenAt != nil {
		msg += "; the CNI's agents were not restarted node by node by the operator (cni.agentRestart Never, or the Tigera operator rolls calico-node itself), so maxUnavailable did not pace them"
	}
	d.step.Nodes = Report{Status: metav1.ConditionTrue, Reason: mtuv1alpha1.ReasonAllNodesConverged, Message: msg}
	return "", true
}

func (d *decision) convergeAll(wantOf func(Node) nodeWant) {
	for _, n := range d.nodes {
		d.setSpec(n, mtuv1alpha1.PhaseConverge, wantOf(n), d.pinPtr())
	}
}

func (d *decision) releaseAll() {
	for _, n := range d.nodes {
		d.setSpec(n, mtuv1alpha1.PhaseObserve, d.finalWant(n), nil)
	}
}

func (d *decision) stall(reason, msg string) {
	d.step.Nodes = Report{Status: metav1.ConditionFalse, Reason: reason, Message: msg}
	d.step.Verdict = plan.Verdict{Stalled: &plan.Problem{Reason: reason, Message: msg}}
}

func (d *decision) progress(reason, msg string) {
	d.step.Nodes = Report{Status: metav1.ConditionFalse, Reason: reason, Message: msg}
	d.step.Verdict = plan.Verdict{Progressing: &plan.Problem{Reason: reason, Message: msg}}
}

// pinPtr is the pin every node's spec carries in the current phase: the routable MTU from
// pinning on, none before. Releasing and Done keep it in the specs: the release is the
// transition's (released), so the specs need no write.
func (d *decision) pinPtr() *int32 {
	switch d.step.Migration.Phase {
	case mtuv1alpha1.MigrationGathering, mtuv1alpha1.MigrationPlanned:
		return nil
	}
	if r := d.step.Migration.RoutableMTU; r > 0 {
		return &r
	}
	return nil
}

// released: this generation's pins are released.
func (d *decision) released() bool {
	return mtuv1alpha1.PinReleased(d.step.PinsReleased, d.in.Generation)
}

// currentPin is the pin the node holds now: its spec's, unless the transition released it.
func (d *decision) currentPin(n Node) *int32 {
	if n.State == nil || mtuv1alpha1.PinReleased(d.step.PinsReleased, n.State.Spec.PolicyGeneration) {
		return nil
	}
	return n.State.Spec.RouteMTU
}

func (d *decision) pinNote() string {
	if r := d.step.Migration.RoutableMTU; r > 0 && !d.released() {
		return fmt.Sprintf("; routes pinned to MTU %d until every node has changed", r)
	}
	return ""
}

func (d *decision) maxUnavailable() int {
	v := d.in.MaxUnavailable
	if v == nil {
		return 1
	}
	n, err := intstr.GetScaledValueFromIntOrPercent(v, len(d.nodes), true)
	if err != nil || n < 1 {
		return 1
	}
	return n
}

// setSpec decides a node's spec for this step, and adds it to the step's when it changes. It
// says whether the spec stays as it is for a reason of the node's own: one whose probe peers
// were chosen again (from the other nodes) does not count.
func (d *decision) setSpec(n Node, phase mtuv1alpha1.NodePhase, w nodeWant, pin *int32) (kept bool) {
	t := d.in.Target
	spec := mtuv1alpha1.NodeMTUStateSpec{}
	if n.State != nil && n.State.Spec.Policy == d.in.Policy {
		// A shallow copy: what it points to is replaced below or kept as it is, and nothing
		// writes through a step's specs. A decision runs for every node of every reconcile.
		spec = n.State.Spec
	}
	if spec.PolicyGeneration != d.in.Generation {
		spec.Attempt = 0
	}
	if n.RetryRequested && (d.failed(n) || d.verificationFailed(n)) {
		spec.Attempt++
		phase = mtuv1alpha1.PhaseObserve // handed out again by the next step, within the budget
	}
	spec.Policy = d.in.Policy
	spec.Phase = phase
	spec.PolicyGeneration = d.in.Generation
	spec.PodMTU = t.PodMTU
	spec.UnderlayInterfacePattern = t.InterfacePattern
	spec.PodAction = t.PodAction
	spec.Probe.TimeoutSeconds = d.in.ProbeTimeoutSeconds
	spec.Interfaces = w.interfaces
	had := spec
	spec.UnderlayMTU = nil
	if phase == mtuv1alpha1.PhaseConverge && w.underlay != nil {
		spec.UnderlayMTU = sameOrCopy(had.UnderlayMTU, w.underlay)
	}
	spec.RouteMTU = nil
	if pin != nil {
		spec.RouteMTU = sameOrCopy(had.RouteMTU, pin)
	}
	// Peers are chosen when the node is handed its turn (and for the final check); a node
	// waiting, or past its turn, keeps them, so a peer's change does not rewrite its spec.
	sameGeneration := d.specOfThisGeneration(n)
	handedNow := phase == mtuv1alpha1.PhaseConverge && (!sameGeneration || n.State.Spec.Phase != mtuv1alpha1.PhaseConverge ||
		!ptr.Equal(n.State.Spec.UnderlayMTU, spec.UnderlayMTU) || !sameInterfaces(n.State.Spec.Interfaces, spec.Interfaces))
	// A node that only reports (Observe) probes nothing: it gets peers with its turn.
	peersChosen := false
	switch {
	case phase == mtuv1alpha1.PhaseObserve && (!sameGeneration || n.State.Spec.Phase != mtuv1alpha1.PhaseConverge):
		spec.Probe.Peers = nil
	case handedNow || d.step.Migration.Phase == mtuv1alpha1.MigrationVerifying || len(spec.Probe.Peers) == 0:
		spec.Probe.Peers, peersChosen = d.peersOf(n, w), true
	}
	// Once asked in a generation, the check stays asked: the agent answers it once per attempt.
	spec.Verify = sameGeneration && n.State.Spec.Verify ||
		d.step.Migration.Phase == mtuv1alpha1.MigrationVerifying && d.step.Migration.VerifyPaths ||
		phase == mtuv1alpha1.PhaseConverge && d.verifyAtTurn(n)
	if n.State != nil && SpecEqual(n.State.Spec, spec) {
		// An earlier phase of this decision may have decided otherwise.
		delete(d.step.Specs, n.Name)
		return !peersChosen
	}
	d.step.Specs[n.Name] = spec
	return false
}

// sameOrCopy is had when it holds want's value, a copy of want otherwise: a spec decided again
// shares what did not change with the node's own, and never points into the decision.
func sameOrCopy(had, want *int32) *int32 {
	if had != nil && *had == *want {
		return had
	}
	v := *want
	return &v
}

// SpecEqual says whether two node specs are equal, as equality.Semantic.DeepEqual does (nil
// and empty lists alike), without reflection: a reconcile compares every node's spec.
func SpecEqual(a, b mtuv1alpha1.NodeMTUStateSpec) bool {
	return a.Policy == b.Policy && a.Phase == b.Phase && a.PolicyGeneration == b.PolicyGeneration &&
		a.UnderlayInterfacePattern == b.UnderlayInterfacePattern && ptr.Equal(a.UnderlayMTU, b.UnderlayMTU) &&
		a.PodMTU == b.PodMTU && slices.Equal(a.Interfaces, b.Interfaces) && ptr.Equal(a.RouteMTU, b.RouteMTU) &&
		a.Probe.APIServer == b.Probe.APIServer && slices.Equal(a.Probe.Peers, b.Probe.Peers) && a.Probe.TimeoutSeconds == b.Probe.TimeoutSeconds &&
		a.PodAction == b.PodAction && a.Verify == b.Verify && a.Attempt == b.Attempt
}

// peersOf picks up to maxPeers other nodes, following n in name order, each with the largest
// don't-fragment packet that must reach it once n has changed: the smaller of n's underlay
// after the change and the peer's underlay now.
func (d *decision) peersOf(n Node, w nodeWant) []mtuv1alpha1.ProbePeer {
	i, _ := slices.BinarySearchFunc(d.nodes, n.Name, func(n Node, name string) int { return strings.Compare(n.Name, name) })
	mine := underlayOf(n)
	if w.underlay != nil {
		mine = *w.underlay
	}
	var peers []mtuv1alpha1.ProbePeer
	for k := 1; k < len(d.nodes) && len(peers) < maxPeers; k++ {
		p := d.nodes[(i+k)%len(d.nodes)]
		if p.State == nil || len(p.State.Status.UnderlayAddresses) == 0 {
			continue
		}
		size := min(mine, underlayOf(p))
		if size < 68 {
			continue
		}
		peers = append(peers, mtuv1alpha1.ProbePeer{Address: p.State.Status.UnderlayAddresses[0], Size: size})
	}
	return peers
}

// finalWant is the node's target at the end of the migration.
func (d *decision) finalWant(n Node) nodeWant {
	// The target's own list, shared: a want is read, never written (raiseWant copies first).
	w := nodeWant{interfaces: d.in.Target.Interfaces}
	if u, ok := d.in.UnderlayByNode[n.Name]; ok && d.in.Enforce {
		w.underlay = &u
	} else if d.in.Enforce && d.in.DeclaredUnderlay != nil {
		w.underlay = d.in.DeclaredUnderlay
	}
	return w
}

// raiseWant is the node's target while devices may only grow: every device at the larger of
// what it has and its target, so nothing shrinks before the configuration did.
func (d *decision) raiseWant(n Node) nodeWant {
	w := d.finalWant(n)
	copied := false
	for i, want := range w.interfaces {
		if have, ok := interfaceMTU(n, want.Name); ok && have > want.MTU {
			if !copied {
				w.interfaces, copied = slices.Clone(w.interfaces), true
			}
			w.interfaces[i].MTU = have
		}
	}
	if w.underlay != nil && underlayOf(n) > *w.underlay {
		w.underlay = nil
	}
	return w
}

// previousWant keeps what a waiting node was last told, so that it changes nothing; a node
// never told anything reports the phase's interfaces.
func (d *decision) previousWant(n Node, w nodeWant) nodeWant {
	if !d.specOfThisGeneration(n) || len(n.State.Spec.Interfaces) == 0 {
		return w
	}
	prev := nodeWant{interfaces: n.State.Spec.Interfaces, underlay: n.State.Spec.UnderlayMTU}
	if n.State.Spec.Phase != mtuv1alpha1.PhaseConverge {
		prev.underlay = w.underlay
	}
	return prev
}

// keepPhase: a node waiting for its turn keeps Converge if it had it (on its earlier target,
// which it reached), Observe otherwise.
func (d *decision) keepPhase(n Node) mtuv1alpha1.NodePhase {
	if d.specOfThisGeneration(n) && n.State.Spec.Phase == mtuv1alpha1.PhaseConverge {
		return mtuv1alpha1.PhaseConverge
	}
	return mtuv1alpha1.PhaseObserve
}

// specOfThisGeneration: the node's spec was written by this policy for this generation.
func (d *decision) specOfThisGeneration(n Node) bool {
	return n.State != nil && n.State.Spec.Policy == d.in.Policy && n.State.Spec.PolicyGeneration == d.in.Generation
}

// handed: the node's spec already asks it to converge on w with the pin.
func (d *decision) handed(n Node, w nodeWant, pin *int32) bool {
	if !d.specOfThisGeneration(n) || n.State.Spec.Phase != mtuv1alpha1.PhaseConverge {
		return false
	}
	s := n.State
	return ptr.Equal(s.Spec.UnderlayMTU, w.underlay) && sameInterfaces(s.Spec.Interfaces, w.interfaces) && ptr.Equal(s.Spec.RouteMTU, pin)
}

// atWant: the agent reports every present interface, and the underlay when w sets it, at w.
func (d *decision) atWant(n Node, w nodeWant) bool {
	if n.State == nil {
		return false
	}
	for _, want := range w.interfaces {
		if have, ok := interfaceMTU(n, want.Name); ok && have != want.MTU {
			return false
		}
	}
	if w.underlay != nil {
		if len(n.State.Status.Underlay) == 0 {
			return false
		}
		for _, u := range n.State.Status.Underlay {
			if u.MTU != *w.underlay {
				return false
			}
		}
	}
	return true
}

// failed: the node's last change for this generation and attempt did not commit.
func (d *decision) failed(n Node) bool {
	if n.State == nil {
		return false
	}
	t := n.State.Status.LastTransaction
	return t != nil && t.Outcome != mtuv1alpha1.TransactionCommitted && t.PolicyGeneration == d.in.Generation && t.Attempt == n.State.Spec.Attempt
}

// verificationFailed: the node's check of its paths for this generation and attempt failed.
func (d *decision) verificationFailed(n Node) bool {
	v := d.verification(n)
	return v != nil && !v.Passed
}

// seenSpec: the agent has reported on the spec as last written.
func (d *decision) seenSpec(n Node) bool {
	return n.State != nil && n.State.Status.ObservedGeneration >= n.State.Generation
}

// onlyRaises: no pod-facing device shrinks, every node's NIC stays or grows, and the routable
// MTU r is no smaller than the smallest pod-facing device now (no earlier pin below it).
func (d *decision) onlyRaises(r int32) bool {
	smallest := int32(0)
	for _, n := range d.nodes {
		for _, want := range d.in.Target.Interfaces {
			have, ok := interfaceMTU(n, want.Name)
			if ok && have > want.MTU {
				return false
			}
			if ok && have > 0 && (smallest == 0 || have < smallest) {
				smallest = have
			}
		}
		if w := d.finalWant(n); w.underlay != nil && underlayOf(n) > *w.underlay {
			return false
		}
	}
	return r >= smallest
}

// nicsChange: some node's NIC gets a new MTU in this migration.
func (d *decision) nicsChange() bool {
	return slices.ContainsFunc(d.nodes, func(n Node) bool { return len(d.nicChanges(n)) > 0 })
}

// nicChanges are the node's NICs whose MTU differs from the NIC target it gets, if any.
func (d *decision) nicChanges(n Node) []mtuv1alpha1.UnderlayInterface {
	w := d.finalWant(n)
	if w.underlay == nil || n.State == nil {
		return nil
	}
	var out []mtuv1alpha1.UnderlayInterface
	for _, u := range n.State.Status.Underlay {
		if u.MTU != *w.underlay {
			out = append(out, u)
		}
	}
	return out
}

// podPathsChange: some pod-facing device changes, or the CNI hands out a new pod MTU: packets
// between pods may meet paths of two sizes, so routes are pinned.
func (d *decision) podPathsChange() bool {
	if d.in.ConfigPending {
		return true
	}
	for _, n := range d.nodes {
		for _, want := range d.in.Target.Interfaces {
			if have, ok := interfaceMTU(n, want.Name); ok && have != want.MTU {
				return true
			}
		}
	}
	return false
}

// routable is the largest packet every path carries throughout: the smallest pod-facing
// device MTU in play now or at the end, and any pin still in place.
func (d *decision) routable() int32 {
	r := d.in.Target.PodMTU
	for _, n := range d.nodes {
		for _, want := range d.in.Target.Interfaces {
			if have, ok := interfaceMTU(n, want.Name); ok && have > 0 {
				r = min(r, have)
			}
		}
		if p := n.State.Status.RouteMTU; p != nil && *p > 0 {
			r = min(r, *p)
		}
	}
	return r
}

// shortPaths are the paths the agents measured short of what the pods are sized for: between
// nodes, of the underlay MTU they are sized from; through the tunnels, of the pod MTU itself.
// A black hole for their larger packets, which a rollout must not start across.
func (d *decision) shortPaths() []plan.ShortPath {
	var out []plan.ShortPath
	for _, p := range d.step.ShortPaths {
		need := d.step.Underlay.Expected
		if p.Layer == mtuv1alpha1.PathLayerOverlay {
			need = d.in.Target.PodMTU
		}
		if p.Measured < need {
			out = append(out, p)
		}
	}
	return out
}

// blocked are the nodes whose NIC is below the declared MTU when the policy may not raise it.
func (d *decision) blocked() []string {
	if d.in.Enforce || d.in.DeclaredUnderlay == nil {
		return nil
	}
	var out []string
	for _, n := range d.nodes {
		if u := underlayOf(n); u > 0 && u < *d.in.DeclaredUnderlay {
			out = append(out, fmt.Sprintf("%s (%d)", n.Name, u))
		}
	}
	return out
}

// loweredNICs are the nodes whose NIC Enforce would lower.
func (d *decision) loweredNICs() []string {
	if !d.in.Enforce || d.in.DeclaredUnderlay == nil {
		return nil
	}
	var out []string
	for _, n := range d.nodes {
		if u := underlayOf(n); u > *d.in.DeclaredUnderlay {
			out = append(out, fmt.Sprintf("%s (%d)", n.Name, u))
		}
	}
	return out
}

// plannedChanges lists each node interface the migration changes, as DryRun shows them.
func (d *decision) plannedChanges() []mtuv1alpha1.ConfigChange {
	var out []mtuv1alpha1.ConfigChange
	for _, n := range d.nodes {
		resource := "Node " + n.Name
		w := d.finalWant(n)
		for _, u := range d.nicChanges(n) {
			out = append(out, change(resource, u.Name, u.MTU, *w.underlay))
		}
		for _, want := range w.interfaces {
			if have, ok := interfaceMTU(n, want.Name); ok && have != want.MTU {
				out = append(out, change(resource, want.Name, have, want.MTU))
			}
		}
	}
	return out
}

func change(resource, iface string, from, to int32) mtuv1alpha1.ConfigChange {
	return mtuv1alpha1.ConfigChange{Resource: resource, Path: iface + " mtu", From: fmt.Sprint(from), To: fmt.Sprint(to)}
}

// reported: the agent has reported its underlay and every target interface on the spec as
// last written.
func reported(n Node, t plan.NodeTarget) bool {
	s := n.State
	if s == nil || s.Status.UnderlayMTU == 0 || s.Status.ObservedGeneration < s.Generation {
		return false
	}
	for _, want := range t.Interfaces {
		if !slices.ContainsFunc(s.Status.Interfaces, func(i mtuv1alpha1.InterfaceState) bool { return i.Name == want.Name }) {
			return false
		}
	}
	return true
}

func interfaceMTU(n Node, name string) (int32, bool) {
	if n.State == nil {
		return 0, false
	}
	for _, i := range n.State.Status.Interfaces {
		if i.Name == name && i.Present {
			return i.MTU, true
		}
	}
	return 0, false
}

func underlayOf(n Node) int32 {
	if n.State == nil {
		return 0
	}
	return n.State.Status.UnderlayMTU
}

func sameInterfaces(a, b []mtuv1alpha1.ManagedInterface) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range b {
		if !slices.Contains(a, x) {
			return false
		}
	}
	return true
}

func b2i(b bool) int32 {
	if b {
		return 1
	}
	return 0
}
