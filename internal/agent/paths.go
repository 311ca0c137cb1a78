package agent

import (
	"cmp"
	"context"
	"iter"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/vishvananda/netns"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/log"

	mtuv1alpha1 "github.com/mtu-operator/mtu-operator/api/v1alpha1"
	"github.com/mtu-operator/mtu-operator/internal/node/netdev"
	"github.com/mtu-operator/mtu-operator/internal/node/probe"
	"github.com/mtu-operator/mtu-operator/internal/plan"
	"github.com/mtu-operator/mtu-operator/internal/plan/pathmtu"
)

// PathMeasurer measures the path to peer, expected to carry expected bytes.
type PathMeasurer func(ctx context.Context, peer netip.Addr, expected int) (probe.PathMeasurement, error)

// Path measurements: no smaller than IPv6's minimum MTU is looked for, and each probe that
// vanishes costs pathProbeTimeout, one packet (a measurement sends about two a second).
const (
	pathFloor        = 1280
	pathProbeTimeout = 500 * time.Millisecond
)

// DefaultPathMeasurer measures with don't-fragment ICMP echoes (probe.PathMTU), in ns when set.
func DefaultPathMeasurer(ns *netns.NsHandle) PathMeasurer {
	return func(ctx context.Context, peer netip.Addr, expected int) (m probe.PathMeasurement, err error) {
		measure := func() error {
			m, err = probe.PathMTU(ctx, peer, expected, pathFloor, pathProbeTimeout)
			return err
		}
		if ns == nil {
			return m, measure()
		}
		return m, netdev.InNamespace(*ns, measure)
	}
}

// pathBook is what the agent last measured on each path it found short, from the checks of
// a rollout and from the rounds between rollouts alike; status.paths is its copy.
type pathBook struct {
	mu     sync.Mutex
	seeded bool
	short  map[pathKey]mtuv1alpha1.PathMTU
}

// pathKey names a path: a peer's address on one layer.
type pathKey struct {
	layer mtuv1alpha1.PathLayer
	peer  string
}

// seed takes what the status said, once, so an agent that restarts keeps reporting (and
// re-probing) the short paths it had found, since when it found them.
func (b *pathBook) seed(reported []mtuv1alpha1.PathMTU) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.seeded {
		return
	}
	b.seeded = true
	b.short = map[pathKey]mtuv1alpha1.PathMTU{}
	for _, p := range reported {
		b.short[pathKey{p.Layer, p.Peer}] = p
	}
}

// record notes what a measurement of a path found; it says whether the book changed.
func (b *pathBook) record(path pathKey, expected, measured int32) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.short == nil {
		b.short = map[pathKey]mtuv1alpha1.PathMTU{}
	}
	had, known := b.short[path]
	if measured >= expected {
		delete(b.short, path)
		return known
	}
	if known && had.Expected == expected && had.Measured == measured {
		return false
	}
	b.short[path] = mtuv1alpha1.PathMTU{Peer: path.peer, Layer: path.layer, Expected: expected, Measured: measured, Since: metav1.Now()}
	return true
}

// paths are the paths found short.
func (b *pathBook) paths() []pathKey {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]pathKey, 0, len(b.short))
	for path := range b.short {
		out = append(out, path)
	}
	slices.SortFunc(out, comparePaths)
	return out
}

// list is the short paths as status.paths says them, worst first, at most maxReportedPaths.
func (b *pathBook) list() []mtuv1alpha1.PathMTU {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []mtuv1alpha1.PathMTU
	for _, p := range b.short {
		out = append(out, p)
	}
	slices.SortFunc(out, func(x, y mtuv1alpha1.PathMTU) int {
		return cmp.Or(cmp.Compare(x.Measured, y.Measured), strings.Compare(x.Peer, y.Peer), strings.Compare(string(x.Layer), string(y.Layer)))
	})
	return out[:min(len(out), maxReportedPaths)]
}

func comparePaths(x, y pathKey) int {
	return cmp.Or(strings.Compare(string(x.layer), string(y.layer)), strings.Compare(x.peer, y.peer))
}

// pathsBetween are the paths from a node to a peer (pathmtu.Target.PathsTo), by key.
func pathsBetween(self, peer pathmtu.Target) iter.Seq2[pathKey, int32] {
	return func(yield func(pathKey, int32) bool) {
		for _, p := range self.PathsTo(peer) {
			layer := mtuv1alpha1.PathLayerUnderlay
			if p.Overlay {
				layer = mtuv1alpha1.PathLayerOverlay
			}
			if !yield(pathKey{layer, p.Peer.String()}, int32(p.Expected)) {
				return
			}
		}
	}
}

// maxReportedPaths is status.paths' bound.
const maxReportedPaths = 8

// pathChecks sums up the checks of the paths to the probe peers run in one reconcile.
type pathChecks struct{ probed, failed bool }

func (c *pathChecks) add(probed, passed bool) {
	c.probed = c.probed || probed
	c.failed = c.failed || (probed && !passed)
}

// measurePaths keeps status.paths: when a check ran in this reconcile (a change's probe, or a
// verification) and failed, each probe peer's path is measured; when it passed, its peers'
// paths are known to carry their size. Only peers whose size the node's own NIC carries now
// are measured: after a rollback of a raised NIC the path is not what failed.
func (r *Reconciler) measurePaths(ctx context.Context, checks pathChecks, state *mtuv1alpha1.NodeMTUState, u detectedUnderlay) {
	r.paths.seed(state.Status.Paths)
	defer func() {
		state.Status.Paths = r.paths.list()
		pathMTU.DeletePartialMatch(prometheus.Labels{"node": r.NodeName})
		for _, p := range state.Status.Paths {
			pathMTU.WithLabelValues(r.NodeName, p.Peer, string(p.Layer)).Set(float64(p.Measured))
		}
	}()
	if !checks.probed {
		return
	}
	for _, p := range state.Spec.Probe.Peers {
		addr, err := netip.ParseAddr(p.Address)
		if err != nil || p.Size <= 0 || (u.mtu > 0 && u.mtu < p.Size) {
			continue
		}
		if !checks.failed {
			r.paths.record(pathKey{mtuv1alpha1.PathLayerUnderlay, addr.String()}, p.Size, p.Size)
			continue
		}
		if r.MeasurePath == nil {
			continue
		}
		r.measure(ctx, mtuv1alpha1.PathLayerUnderlay, addr, p.Size)
	}
}

// measure measures the path to peer on a layer, which must carry expected bytes, and notes in
// the book what it found; it says whether the book changed.
func (r *Reconciler) measure(ctx context.Context, layer mtuv1alpha1.PathLayer, peer netip.Addr, expected int32) bool {
	m, err := r.MeasurePath(ctx, peer, int(expected))
	if err != nil {
		log.FromContext(ctx).Error(err, "measuring the path", "peer", peer, "layer", layer)
		return false
	}
	if m.MTU < int(expected) {
		log.FromContext(ctx).Info("path measured", "peer", peer, "layer", layer, "expected", expected, "measured", m.MTU, "probes", m.Probes)
	}
	return r.paths.record(pathKey{layer, peer.String()}, expected, int32(m.MTU))
}

// pathRounds probes, between rollouts, the peers the policy's NetworkMTUTransition schedules for
// each round (pathmtu.Peers), and the paths found short before, until they carry their size
// again. A round that changes what is short wakes the reconciler, which reports it: a healthy
// cluster's rounds write nothing.
type pathRounds struct {
	r *Reconciler
	// found wakes the reconciler.
	found chan<- event.GenericEvent
}

// idleRound is how long to wait for a schedule when there is none: a read of the cache.
const idleRound = 5 * time.Second

func (p *pathRounds) Start(ctx context.Context) error {
	for {
		wait := p.round(ctx, time.Now())
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

// round runs the round under way at now and returns how long to wait for the next.
func (p *pathRounds) round(ctx context.Context, now time.Time) time.Duration {
	r := p.r
	if r.MeasurePath == nil {
		return idleRound
	}
	state := &mtuv1alpha1.NodeMTUState{}
	if err := r.Get(ctx, types.NamespacedName{Name: r.NodeName}, state); err != nil || state.Spec.Policy == "" {
		return idleRound
	}
	t := &mtuv1alpha1.NetworkMTUTransition{}
	if err := r.Get(ctx, types.NamespacedName{Name: state.Spec.Policy}, t); err != nil || t.Spec.Probing == nil || len(state.Status.UnderlayAddresses) == 0 {
		return idleRound
	}
	schedule := t.Spec.Probing
	number := now.Unix() / int64(schedule.RoundSeconds)
	next := time.Unix((number+1)*int64(schedule.RoundSeconds), 0).Sub(now)

	self, ok := plan.ProbeTarget(state.Status)
	if !ok {
		return next
	}
	index, targets := -1, make([]pathmtu.Target, len(schedule.Targets))
	for i, s := range schedule.Targets {
		t, err := pathmtu.ParseTarget(s)
		if err != nil {
			continue
		}
		targets[i] = t
		if slices.Contains(t.Underlay.Addresses, self.Underlay.Addresses[0]) {
			index = i
		}
	}
	if index < 0 {
		return next
	}
	// Every path of the round, and every path found short before, with what it must carry.
	due := map[pathKey]int32{}
	for _, i := range pathmtu.Peers(index, len(targets), int(number), int(schedule.PeersPerRound)) {
		for path, expected := range pathsBetween(self, targets[i]) {
			due[path] = expected
		}
	}
	r.paths.seed(state.Status.Paths)
	if short := r.paths.paths(); len(short) > 0 {
		// A short path is measured again whether or not its peer is of this round; one to a
		// node no longer scheduled (or no longer on that layer) is due with 0, and cleared.
		scheduled := map[pathKey]int32{}
		for _, t := range targets {
			maps.Insert(scheduled, pathsBetween(self, t))
		}
		for _, path := range short {
			due[path] = scheduled[path]
		}
	}
	changed := false
	for _, path := range slices.SortedFunc(maps.Keys(due), comparePaths) {
		expected := due[path]
		if expected == 0 {
			// No longer a node of the policy (or no longer on that layer): its path is
			// nobody's business.
			changed = r.paths.record(path, 1, 1) || changed
			continue
		}
		// A measurement is bounded by its own probes (pathmtu.MaxProbes), not by the round: a
		// round that runs over starts the next one late.
		changed = r.measure(ctx, path.layer, netip.MustParseAddr(path.peer), expected) || changed
	}
	if changed {
		select {
		case p.found <- event.GenericEvent{Object: &mtuv1alpha1.NodeMTUState{}}:
		case <-ctx.Done():
		}
	}
	return time.Until(now.Add(next))
}
