// Package agent is the node agent's reconciler: it reads its node's NodeMTUState, detects the
// underlay, brings the CNI's host interfaces to their target MTUs as transactions (apply,
// probe, commit or roll back), pins route MTUs while the cluster is mid-change, and reports
// what it saw in the NodeMTUState's status. It touches the kernel only through
// netdev.Interfaces, so the same code runs on a node, in a test namespace or on a fake.
package agent

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/source"

	mtuv1alpha1 "github.com/mtu-operator/mtu-operator/api/v1alpha1"
	"github.com/mtu-operator/mtu-operator/internal/node/journal"
	"github.com/mtu-operator/mtu-operator/internal/node/netdev"
	"github.com/mtu-operator/mtu-operator/internal/node/pods"
	"github.com/mtu-operator/mtu-operator/internal/node/probe"
	"github.com/mtu-operator/mtu-operator/internal/node/routepin"
	"github.com/mtu-operator/mtu-operator/internal/node/txn"
	"github.com/mtu-operator/mtu-operator/internal/node/underlay"
	"github.com/mtu-operator/mtu-operator/internal/plan/pathmtu"
)

// FieldManager is the agent's field manager: it writes NodeMTUState status only.
const FieldManager = "mtu-operator-agent"

// Timing of the agent's safety nets; link events drive it otherwise.
const (
	// resyncPeriod re-reads the node even without events.
	resyncPeriod = 5 * time.Minute
	// podResyncPeriod re-inventories pods; pod events on this node also trigger it.
	podResyncPeriod = time.Minute
)

// ProberFactory builds the probe for a change from the spec: what must still work once the
// node has changed (the API server; each peer at the size the spec gives for it).
type ProberFactory func(spec mtuv1alpha1.NodeProbe) probe.Prober

// Reconciler reconciles one node.
type Reconciler struct {
	client.Client
	// APIReader reads what the agent does not cache (its policy, when its transition is not
	// found); nil reads through Client.
	APIReader client.Reader
	// NodeName is the node this agent runs on; it acts on that NodeMTUState only.
	NodeName string
	// Links is the node's network namespace.
	Links netdev.Interfaces
	// Pinner pins route MTUs in that namespace.
	Pinner *routepin.Pinner
	// Probes builds the probe run after each change.
	Probes ProberFactory
	// MeasurePath measures a path to a peer that failed a check; nil measures nothing.
	MeasurePath PathMeasurer
	// Recorder, when set, gets an Event on the NodeMTUState for every change's outcome.
	Recorder events.EventRecorder
	// PodNetnsDir is where the container runtime mounts pod network namespaces
	// (/var/run/netns for containerd and CRI-O); empty turns the pod inventory off.
	PodNetnsDir string

	// Journal, when set, keeps the transaction under way and the route pins where they
	// outlive the process (see Recover).
	Journal *journal.Journal

	// paths are the paths found short, by the checks and by the rounds between rollouts.
	paths pathBook
	// written is the NodeMTUState as the agent's last status report left it.
	written *mtuv1alpha1.NodeMTUState

	// last is the agent's own record of its last transaction. The agent alone writes that status, so this record is authoritative even when the
	// cache has not caught up with the status it just wrote.
	last *mtuv1alpha1.Transaction
}

// +kubebuilder:rbac:groups=networking.mtu-operator.io,resources=nodemtustates,verbs=get;list;watch
// +kubebuilder:rbac:groups=networking.mtu-operator.io,resources=nodemtustates/status,verbs=get;update;patch
// +kubebuilder:rbac:groups="",resources=nodes,verbs=get;list;watch
// +kubebuilder:rbac:groups=networking.mtu-operator.io,resources=networkmtutransitions,verbs=get;list;watch
// +kubebuilder:rbac:groups=networking.mtu-operator.io,resources=networkmtupolicies,verbs=get
// Authenticated metrics: the metrics endpoint asks the API server who a caller is and whether
// it may GET /metrics.
// +kubebuilder:rbac:groups=authentication.k8s.io,resources=tokenreviews,verbs=create
// Events on the node's NodeMTUState for each change's outcome.
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create

// Reconcile brings the node to its NodeMTUState's spec and reports.
func (r *Reconciler) Reconcile(ctx context.Context, _ ctrl.Request) (ctrl.Result, error) {
	// Whatever the reconcile did to the pins, the metric says what the node holds after it.
	defer func() { routePin.WithLabelValues(r.NodeName).Set(float64(r.Pinner.PinnedMTU())) }()
	state := &mtuv1alpha1.NodeMTUState{}
	if err := r.Get(ctx, types.NamespacedName{Name: r.NodeName}, state); err != nil {
		if apierrors.IsNotFound(err) {
			// No policy manages this node any more: give routes their own MTU back.
			return ctrl.Result{}, r.Pinner.Release()
		}
		return ctrl.Result{}, err
	}
	if w := r.written; w != nil && w.UID == state.UID && olderThan(state.ResourceVersion, w.ResourceVersion) {
		// The cache has not caught up with the agent's own last report: a status built on it
		// and compared with it could take back what that report said (a path it cleared
		// meanwhile), and its own update does not wake the agent again.
		state = w.DeepCopy()
	}
	transition, orphaned, err := r.transitionOf(ctx, state.Spec.Policy)
	if err != nil || orphaned {
		// Its policy is gone (deleted while the manager was away, or its finalizer removed by
		// hand): nothing it asked for is enforced any more.
		if err != nil {
			return ctrl.Result{}, err
		}
		// Looked again later: a policy only just created may not be in the cache yet.
		return ctrl.Result{RequeueAfter: resyncPeriod}, r.releaseForGonePolicy(ctx, state)
	}
	base := state.DeepCopy()
	status := &state.Status
	spec := state.Spec

	u, err := r.detectUnderlay(spec)
	if err != nil {
		return ctrl.Result{}, err
	}
	status.Underlay, status.UnderlayMTU = u.interfaces, u.mtu
	status.OriginalUnderlay = r.originalUnderlay()
	if status.UnderlayAddresses, err = r.nodeAddresses(ctx); err != nil {
		return ctrl.Result{}, err
	}

	result := ctrl.Result{RequeueAfter: resyncPeriod}
	var checks pathChecks
	if spec.Phase == mtuv1alpha1.PhaseConverge {
		checks.add(r.converge(ctx, state, u))
	}
	checks.add(r.verifyPaths(ctx, state))
	r.measurePaths(ctx, checks, state, u)
	if err := r.pinRoutes(spec, status, pinReleased(transition, spec)); err != nil {
		// A CNI device that does not exist (yet) has no routes to pin; anything else is
		// worth a log line, but the report still goes out.
		if !errors.Is(err, netdev.ErrLinkNotFound) {
			log.FromContext(ctx).Error(err, "pinning route MTUs")
		}
	}
	if err := r.observeInterfaces(spec, status); err != nil {
		return ctrl.Result{}, err
	}
	setConverged(state)
	if err := r.inventoryPods(ctx, state); err != nil {
		return ctrl.Result{}, err
	}
	stalePods.WithLabelValues(r.NodeName).Set(float64(status.StalePodCount))
	observedMTU.WithLabelValues(r.NodeName, "underlay").Set(float64(status.UnderlayMTU))
	observedMTU.WithLabelValues(r.NodeName, "overlay").Set(float64(status.OverlayMTU))
	if r.PodNetnsDir != "" && spec.PodMTU > 0 {
		// New pod namespaces are not kernel link events in the node's namespace: look again soon.
		result.RequeueAfter = min(result.RequeueAfter, podResyncPeriod)
	}
	status.ObservedGeneration = state.Generation
	if equality.Semantic.DeepEqual(base.Status, state.Status) {
		// Nothing new to say (a resync, a pod, or the transition's release of the pin): no write.
		return result, nil
	}
	if err := r.Status().Patch(ctx, state, client.MergeFrom(base), client.FieldOwner(FieldManager)); err != nil {
		return ctrl.Result{}, fmt.Errorf("reporting NodeMTUState status: %w", err)
	}
	r.written = state.DeepCopy()
	return result, nil
}

// transactionEnded counts a change and says how it ended, in the log and as an Event on the
// node's NodeMTUState: what `kubectl describe` and alerts on rollbacks show.
func (r *Reconciler) transactionEnded(ctx context.Context, state *mtuv1alpha1.NodeMTUState, t *mtuv1alpha1.Transaction) {
	log.FromContext(ctx).Info("transaction", "outcome", t.Outcome, "reason", t.Reason, "message", t.Message)
	transactions.WithLabelValues(r.NodeName, string(t.Outcome)).Inc()
	if r.Recorder == nil {
		return
	}
	eventType, note := corev1.EventTypeNormal, fmt.Sprintf("%d interface change(s) committed", len(t.Changes))
	if t.Outcome != mtuv1alpha1.TransactionCommitted {
		eventType, note = corev1.EventTypeWarning, t.Message
	}
	r.Recorder.Eventf(state, nil, eventType, "Transaction"+string(t.Outcome), "ChangeInterfaces", "%s", note)
}

// olderThan says whether resource version a comes before b. Versions are opaque to clients in
// general; the API server's are etcd revisions, which only grow, and a version that does not
// parse is taken as not older.
func olderThan(a, b string) bool {
	x, errA := strconv.ParseUint(a, 10, 64)
	y, errB := strconv.ParseUint(b, 10, 64)
	return errA == nil && errB == nil && x < y
}

// transitionOf reads the NodeMTUState's policy's NetworkMTUTransition from the cache (every
// agent watches those few objects, written a few times per rollout, rather than the policies,
// whose status changes with every wave). gone says the policy no longer exists: the transition
// goes with it, and when none is found the policy itself is read to tell.
func (r *Reconciler) transitionOf(ctx context.Context, policy string) (t *mtuv1alpha1.NetworkMTUTransition, gone bool, err error) {
	if policy == "" {
		return nil, false, nil
	}
	t = &mtuv1alpha1.NetworkMTUTransition{}
	err = r.Get(ctx, types.NamespacedName{Name: policy}, t)
	if !apierrors.IsNotFound(err) {
		return t, false, err
	}
	// Not created yet, not in the cache yet, or gone with its policy.
	reader := r.APIReader
	if reader == nil {
		reader = r.Client
	}
	err = reader.Get(ctx, types.NamespacedName{Name: policy}, &mtuv1alpha1.NetworkMTUPolicy{})
	if apierrors.IsNotFound(err) {
		return nil, true, nil
	}
	return nil, false, err
}

// pinReleased: the pins of the spec's generation are released for the whole cluster.
func pinReleased(t *mtuv1alpha1.NetworkMTUTransition, spec mtuv1alpha1.NodeMTUStateSpec) bool {
	if t == nil {
		return false
	}
	return mtuv1alpha1.PinReleased(t.Spec.PinsReleasedGeneration, spec.PolicyGeneration)
}

// releaseForGonePolicy gives routes their own MTU back and reports that nothing is enforced.
func (r *Reconciler) releaseForGonePolicy(ctx context.Context, state *mtuv1alpha1.NodeMTUState) error {
	base := state.DeepCopy()
	if state.Status.RouteMTU != nil {
		r.flushPodPathMTUs()
	}
	if err := r.Pinner.Release(); err != nil && !errors.Is(err, netdev.ErrLinkNotFound) {
		return err
	}
	state.Status.RouteMTU = nil
	meta.SetStatusCondition(&state.Status.Conditions, metav1.Condition{Type: mtuv1alpha1.ConditionConverged, Status: metav1.ConditionFalse,
		Reason: "PolicyGone", Message: fmt.Sprintf("NetworkMTUPolicy %s no longer exists: nothing is enforced here, route pins are released", state.Spec.Policy), ObservedGeneration: state.Generation})
	if err := r.Status().Patch(ctx, state, client.MergeFrom(base), client.FieldOwner(FieldManager)); err != nil {
		return fmt.Errorf("reporting NodeMTUState status: %w", err)
	}
	return nil
}

type detectedUnderlay struct {
	interfaces []mtuv1alpha1.UnderlayInterface
	mtu        int32
	// links are the node's links as read for the detection; the transaction checks them
	// again before it changes anything.
	links []netdev.Link
}

func (r *Reconciler) detectUnderlay(spec mtuv1alpha1.NodeMTUStateSpec) (detectedUnderlay, error) {
	links, err := r.Links.Links()
	if err != nil {
		return detectedUnderlay{}, fmt.Errorf("listing links: %w", err)
	}
	defaults, err := r.Links.DefaultRouteLinks()
	if err != nil {
		return detectedUnderlay{}, fmt.Errorf("reading default routes: %w", err)
	}
	pattern, err := regexp.Compile(cmp.Or(spec.UnderlayInterfacePattern, mtuv1alpha1.DefaultInterfacePattern))
	if err != nil {
		return detectedUnderlay{}, fmt.Errorf("underlay interface pattern: %w", err)
	}
	found, err := underlay.Detect(links, defaults, pattern)
	if err != nil {
		// No underlay is a report, not a failure: the status says so.
		return detectedUnderlay{links: links}, nil //nolint:nilerr // reported as an empty underlay
	}
	d := detectedUnderlay{mtu: int32(found.MTU), links: links}
	for _, i := range found.Interfaces {
		d.interfaces = append(d.interfaces, mtuv1alpha1.UnderlayInterface{Name: i.Name, MTU: int32(i.MTU), DefaultRoute: i.DefaultRoute})
	}
	return d, nil
}

// nodeAddresses are the node's internal addresses, which other nodes' agents probe.
func (r *Reconciler) nodeAddresses(ctx context.Context) ([]string, error) {
	node := &corev1.Node{}
	if err := r.Get(ctx, types.NamespacedName{Name: r.NodeName}, node); err != nil {
		return nil, client.IgnoreNotFound(err)
	}
	var out []string
	for _, a := range node.Status.Addresses {
		if a.Type == corev1.NodeInternalIP && len(out) < 4 {
			out = append(out, a.Address)
		}
	}
	return out, nil
}

// converge applies the changes the spec asks for as one transaction. A change that failed is
// not tried again on its own: the node stays as the rollback left it, and the controller hands
// out a new attempt only when a person asks (or the policy changes).
func (r *Reconciler) converge(ctx context.Context, state *mtuv1alpha1.NodeMTUState, u detectedUnderlay) (probed, passed bool) {
	last := state.Status.LastTransaction
	if r.last != nil && (last == nil || r.last.Time.After(last.Time.Time)) {
		last = r.last
		state.Status.LastTransaction = r.last.DeepCopy()
	}
	if last != nil && last.Outcome != mtuv1alpha1.TransactionCommitted &&
		last.PolicyGeneration == state.Spec.PolicyGeneration && last.Attempt == state.Spec.Attempt {
		return false, false
	}
	changes := changesFor(state.Spec, u)
	if len(changes) == 0 {
		r.forgetUndone(ctx)
		return false, false
	}
	spec := state.Spec
	interruptions := r.interruptionsOf(spec)
	if interruptions >= maxInterruptions {
		r.giveUp(ctx, state, interruptions)
		return false, false
	}
	t := txn.Transaction{
		Links:        r.Links,
		Probe:        r.Probes(spec.Probe),
		ProbeTimeout: time.Duration(spec.Probe.TimeoutSeconds) * time.Second,
	}
	if r.Journal != nil {
		t.Record = func(ordered []txn.Change) error {
			return r.Journal.SetTransaction(&journal.Pending{PolicyGeneration: spec.PolicyGeneration, Attempt: spec.Attempt, Changes: ordered, Started: time.Now(), Interruptions: interruptions})
		}
	}
	res := t.Run(ctx, changes)
	if r.Journal != nil {
		if err := r.Journal.SetTransaction(nil); err != nil {
			// Harmless: a restart would undo and run again a change that had ended.
			log.FromContext(ctx).Error(err, "clearing the journal's transaction")
		}
	}
	message := res.Reason
	if interruptions > 0 {
		message = fmt.Sprintf("run again after the agent stopped during it %d time(s) and undid it when it started: %s", interruptions, message)
	}
	record := &mtuv1alpha1.Transaction{
		PolicyGeneration: spec.PolicyGeneration,
		Attempt:          spec.Attempt,
		Outcome:          mtuv1alpha1.TransactionOutcome(res.Outcome),
		Reason:           string(res.Outcome),
		Message:          truncate(message, 1024),
		Time:             metav1.Now(),
	}
	for _, c := range res.Applied {
		if len(record.Changes) < 24 {
			record.Changes = append(record.Changes, mtuv1alpha1.InterfaceChange{Name: c.Link, From: int32(c.From), To: int32(c.To)})
		}
	}
	state.Status.LastTransaction = record
	r.last = record.DeepCopy()
	r.transactionEnded(ctx, state, record)
	if res.Outcome != txn.Committed {
		probeFailures.WithLabelValues(r.NodeName, probeKindChange).Inc()
	}
	return true, res.Outcome == txn.Committed
}

// verifyPaths checks, once per policy generation and attempt and changing nothing, that each
// probe peer takes a don't-fragment packet of its size, as the controller asks before it
// releases the route pins.
func (r *Reconciler) verifyPaths(ctx context.Context, state *mtuv1alpha1.NodeMTUState) (probed, passed bool) {
	spec, v := state.Spec, state.Status.Verification
	if !spec.Verify || (v != nil && v.PolicyGeneration == spec.PolicyGeneration && v.Attempt == spec.Attempt) {
		return false, false
	}
	timeout := time.Duration(spec.Probe.TimeoutSeconds) * time.Second
	if timeout <= 0 {
		timeout = txn.DefaultProbeTimeout
	}
	probeCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	result := &mtuv1alpha1.Verification{PolicyGeneration: spec.PolicyGeneration, Attempt: spec.Attempt, Passed: true, Time: metav1.Now()}
	var sizes []string
	for _, p := range spec.Probe.Peers {
		sizes = append(sizes, fmt.Sprintf("%d bytes to %s", p.Size, p.Address))
	}
	result.Message = "crossed: " + strings.Join(sizes, ", ")
	if err := r.Probes(spec.Probe).Probe(probeCtx); err != nil {
		result.Passed, result.Message = false, truncate(err.Error(), 1024)
	}
	state.Status.Verification = result
	log.FromContext(ctx).Info("path check", "passed", result.Passed, "message", result.Message)
	if !result.Passed {
		probeFailures.WithLabelValues(r.NodeName, probeKindPaths).Inc()
	}
	return true, result.Passed
}

// changesFor lists what differs from the spec: the underlay when enforced, then every managed
// interface present on the node. Absent interfaces are reported, not created.
func changesFor(spec mtuv1alpha1.NodeMTUStateSpec, u detectedUnderlay) []txn.Change {
	mtuOf := map[string]int{}
	for _, l := range u.links {
		mtuOf[l.Name] = l.MTU
	}
	var changes []txn.Change
	if spec.UnderlayMTU != nil {
		for _, i := range u.interfaces {
			if i.MTU != *spec.UnderlayMTU {
				changes = append(changes, txn.Change{Link: i.Name, From: int(i.MTU), To: int(*spec.UnderlayMTU), Role: txn.Underlay})
			}
		}
	}
	for _, want := range spec.Interfaces {
		if have, ok := mtuOf[want.Name]; ok && have != int(want.MTU) {
			changes = append(changes, txn.Change{Link: want.Name, From: have, To: int(want.MTU), Role: txn.Role(want.Role)})
		}
	}
	return changes
}

// pinRoutes pins the MTU of routes through the managed interfaces while the spec asks, and
// releases the pin when it no longer does, or when the policy's transition released it for
// the whole cluster (released): then the status keeps the pin it reported for the spec, so the
// release costs no write.
func (r *Reconciler) pinRoutes(spec mtuv1alpha1.NodeMTUStateSpec, status *mtuv1alpha1.NodeMTUStateStatus, released bool) error {
	if spec.RouteMTU == nil || released {
		held := r.Pinner.PinnedMTU() > 0
		if err := r.Pinner.Release(); err != nil {
			return err
		}
		if held || (spec.RouteMTU == nil && status.RouteMTU != nil) {
			// Pods that sent large packets through the pin learnt its MTU and would keep it for
			// ten minutes: forget it, so the new size works at once.
			r.flushPodPathMTUs()
		}
		if spec.RouteMTU == nil {
			status.RouteMTU = nil
		}
		return nil
	}
	var devices []string
	for _, i := range spec.Interfaces {
		devices = append(devices, i.Name)
	}
	err := r.Pinner.Pin(devices, int(*spec.RouteMTU))
	if err == nil || onlyMissingLinks(err) {
		// In place: every route through the devices that exist carries the pin (a device not
		// created yet has no route to pin). Otherwise the status keeps what was in place.
		pinned := *spec.RouteMTU
		status.RouteMTU = &pinned
	}
	return err
}

// onlyMissingLinks says whether every error joined in err is a missing link.
func onlyMissingLinks(err error) bool {
	joined, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return errors.Is(err, netdev.ErrLinkNotFound)
	}
	for _, e := range joined.Unwrap() {
		if !onlyMissingLinks(e) {
			return false
		}
	}
	return true
}

// flushPodPathMTUs makes every pod on the node forget the path MTUs it learnt. A pod that
// cannot be flushed keeps its learnt MTU until it expires, which costs speed, not packets.
func (r *Reconciler) flushPodPathMTUs() {
	if r.PodNetnsDir == "" {
		return
	}
	entries, err := os.ReadDir(r.PodNetnsDir)
	if err != nil {
		return
	}
	for _, e := range entries {
		_ = pods.FlushPathMTU(filepath.Join(r.PodNetnsDir, e.Name()))
	}
}

// observeInterfaces reports every managed interface as the kernel has it now.
func (r *Reconciler) observeInterfaces(spec mtuv1alpha1.NodeMTUStateSpec, status *mtuv1alpha1.NodeMTUStateStatus) error {
	links, err := r.Links.Links()
	if err != nil {
		return fmt.Errorf("listing links: %w", err)
	}
	status.Interfaces = nil
	for _, want := range spec.Interfaces {
		i := slices.IndexFunc(links, func(l netdev.Link) bool { return l.Name == want.Name })
		s := mtuv1alpha1.InterfaceState{Name: want.Name}
		if i >= 0 {
			s.Present, s.MTU = true, int32(links[i].MTU)
		}
		status.Interfaces = append(status.Interfaces, s)
	}
	status.OverlayAddresses, status.OverlayMTU = nil, 0
	for _, role := range []mtuv1alpha1.InterfaceRole{mtuv1alpha1.RoleTunnel, mtuv1alpha1.RoleGateway, mtuv1alpha1.RoleBridge} {
		for i, want := range spec.Interfaces {
			if want.Role != role {
				continue
			}
			found, err := r.observeOverlay(want.Name, status)
			if err != nil {
				return err
			}
			if found {
				// status.Interfaces follows spec.Interfaces, one for one.
				status.OverlayMTU = status.Interfaces[i].MTU
				return nil
			}
		}
	}
	return nil
}

// observeOverlay reports the addresses of a pod network device, the first of each family, and
// says whether it has any: other nodes probe their paths through the tunnel to them. Antrea's
// tunnel has none, and its gateway is reached through it.
func (r *Reconciler) observeOverlay(name string, status *mtuv1alpha1.NodeMTUStateStatus) (bool, error) {
	addrs, err := r.Links.Addresses(name)
	if errors.Is(err, netdev.ErrLinkNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	for _, a := range pathmtu.OnePerFamily(addrs) {
		status.OverlayAddresses = append(status.OverlayAddresses, a.String())
	}
	return status.OverlayAddresses != nil, nil
}

// setConverged says whether the node matches its spec: every present managed interface, and
// the underlay when enforced, at its target.
func setConverged(state *mtuv1alpha1.NodeMTUState) {
	spec, status := state.Spec, &state.Status
	var off []string
	if spec.Phase != mtuv1alpha1.PhaseConverge {
		meta.SetStatusCondition(&status.Conditions, metav1.Condition{Type: mtuv1alpha1.ConditionConverged, Status: metav1.ConditionFalse,
			Reason: "Waiting", Message: "waiting for this node's turn in the rollout; interfaces are only reported", ObservedGeneration: state.Generation})
		return
	}
	for _, want := range spec.Interfaces {
		for _, have := range status.Interfaces {
			if have.Name == want.Name && have.Present && have.MTU != want.MTU {
				off = append(off, fmt.Sprintf("%s is %d, not %d", have.Name, have.MTU, want.MTU))
			}
		}
	}
	if spec.UnderlayMTU != nil {
		for _, u := range status.Underlay {
			if u.MTU != *spec.UnderlayMTU {
				off = append(off, fmt.Sprintf("underlay %s is %d, not %d", u.Name, u.MTU, *spec.UnderlayMTU))
			}
		}
	}
	c := metav1.Condition{Type: mtuv1alpha1.ConditionConverged, Status: metav1.ConditionTrue, Reason: "AtTarget",
		Message: "every managed interface is at its target MTU", ObservedGeneration: state.Generation}
	if len(off) > 0 {
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, "NotAtTarget", strings.Join(off, "; ")
	}
	meta.SetStatusCondition(&status.Conditions, c)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-len("…")] + "…"
}

// SetupWithManager watches this node's NodeMTUState, its Node (for its addresses), and the
// kernel's link updates, so an MTU changed behind the agent's back is noticed without polling.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager, name string, linkEvents <-chan event.GenericEvent) error {
	own := predicate.NewPredicateFuncs(func(o client.Object) bool { return o.GetName() == r.NodeName })
	enqueueOwn := handler.EnqueueRequestsFromMapFunc(func(context.Context, client.Object) []ctrl.Request {
		return []ctrl.Request{{NamespacedName: types.NamespacedName{Name: r.NodeName}}}
	})
	startCounters(r.NodeName)
	b := ctrl.NewControllerManagedBy(mgr).
		Named(name).
		For(&mtuv1alpha1.NodeMTUState{}, builder.WithPredicates(own, predicate.GenerationChangedPredicate{})).
		Watches(&corev1.Node{}, enqueueOwn, builder.WithPredicates(own)).
		// Its policy's transition releases the pins of the whole cluster at once, and goes away
		// with the policy, which ends what the node enforces.
		Watches(&mtuv1alpha1.NetworkMTUTransition{}, enqueueOwn).
		Watches(&corev1.Pod{}, enqueueOwn, builder.WithPredicates(predicate.NewPredicateFuncs(func(o client.Object) bool {
			p, ok := o.(*corev1.Pod)
			return ok && p.Spec.NodeName == r.NodeName
		})))
	if linkEvents != nil {
		b = b.WatchesRawSource(source.Channel(linkEvents, enqueueOwn))
	}
	// The rounds of path probing between rollouts wake the reconciler when what is short
	// changes.
	found := make(chan event.GenericEvent)
	b = b.WatchesRawSource(source.Channel(found, enqueueOwn))
	if err := mgr.Add(&pathRounds{r: r, found: found}); err != nil {
		return err
	}
	return b.Complete(r)
}

// LinkEvents turns the kernel's link updates into controller events, re-subscribing when the
// subscription drops (the kernel socket can overflow), until ctx ends.
func LinkEvents(ctx context.Context, links netdev.Interfaces) <-chan event.GenericEvent {
	out := make(chan event.GenericEvent)
	go func() {
		defer close(out)
		for ctx.Err() == nil {
			updates, err := links.WatchLinks(ctx)
			if err != nil {
				log.FromContext(ctx).Error(err, "watching links; retrying")
				select {
				case <-ctx.Done():
					return
				case <-time.After(time.Second):
				}
				continue
			}
			// After a (re)subscription, anything may have changed meanwhile.
			out <- event.GenericEvent{Object: &mtuv1alpha1.NodeMTUState{}}
			for range updates {
				select {
				case out <- event.GenericEvent{Object: &mtuv1alpha1.NodeMTUState{}}:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out
}

// DefaultProbes probes the API server over TCP and each peer with a don't-fragment ICMP echo
// of the size the spec gives for it (what must reach that peer now), so a path that cannot
// carry it fails the change instead of black-holing packets later.
func DefaultProbes(apiServer string) ProberFactory {
	return func(spec mtuv1alpha1.NodeProbe) probe.Prober {
		timeout := time.Duration(spec.TimeoutSeconds) * time.Second
		var probers []probe.Prober
		if target := cmp.Or(spec.APIServer, apiServer); target != "" {
			probers = append(probers, probe.TCP(target, timeout))
		}
		for _, p := range spec.Peers {
			if addr, err := netip.ParseAddr(p.Address); err == nil && p.Size > 0 {
				probers = append(probers, probe.ICMPDF(addr, int(p.Size), timeout))
			}
		}
		return probe.All(probers...)
	}
}
