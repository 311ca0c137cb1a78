package controllers

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"

	mtuv1alpha1 "github.com/mtu-operator/mtu-operator/api/v1alpha1"
)

// TestGatherReadsWhatChanged: whatever happens to the Nodes and states between two
// reconciles, as the watches report it, the view a policy gathers from what changed equals a
// reading of everything.
func TestGatherReadsWhatChanged(t *testing.T) {
	for seed := range uint64(40) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rnd := rand.New(rand.NewPCG(seed, 7))
			w := newStoreWorld()
			for i := range 12 {
				w.putNode(fmt.Sprintf("node-%02d", i), rnd.IntN(3) > 0)
			}
			policy := &mtuv1alpha1.NetworkMTUPolicy{}
			policy.Name, policy.UID, policy.Generation = "p", "uid-p", 1
			selector := labels.SelectorFromSet(labels.Set{"pool": "a"})
			for step := range 60 {
				got := w.cached.gather(policy, selector)
				want := assemble(policy.Name, selector, w.selected(selector), w.cached.state, w.statesOf(policy.Name))
				if !equality.Semantic.DeepEqual(got.nodes, want.nodes) || !equality.Semantic.DeepEqual(got.missing, want.missing) || !slices.Equal(got.underlays, want.underlays) ||
					!equality.Semantic.DeepEqual(got.unselected, want.unselected) {
					t.Fatalf("step %d, after %s: gathered\n %v\n missing %v, unselected %v\nwant\n %v\n missing %v, unselected %v",
						step, w.last, got.nodes, keys(got.missing), names(got.unselected), want.nodes, keys(want.missing), names(want.unselected))
				}
				w.change(rnd)
			}
		})
	}
}

// storeWorld is a manager's cache of Nodes and states, changed as the API server would, with
// the watches' calls the reconciler's handlers make.
type storeWorld struct {
	nodes, states toolscache.Store
	cached        *cachedNodes
	version       int
	last          string
}

func newStoreWorld() *storeWorld {
	w := &storeWorld{nodes: toolscache.NewStore(toolscache.MetaNamespaceKeyFunc), states: toolscache.NewStore(toolscache.MetaNamespaceKeyFunc)}
	w.cached = &cachedNodes{nodes: w.nodes, states: w.states}
	return w
}

func (w *storeWorld) putNode(name string, inPool bool) {
	n := &metav1.PartialObjectMetadata{}
	n.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Node"))
	n.Name = name
	if inPool {
		n.Labels = map[string]string{"pool": "a"}
	}
	_ = w.nodes.Update(n)
	w.cached.nodesChanged()
}

// change makes one change a cluster makes, and reports it as the watches do.
func (w *storeWorld) change(rnd *rand.Rand) {
	name := fmt.Sprintf("node-%02d", rnd.IntN(14)) // two never have a Node
	old, _ := w.stateOf(name)
	w.version++
	switch op := rnd.IntN(10); {
	case op < 5: // an agent reports, or the manager writes its spec
		s := &mtuv1alpha1.NodeMTUState{}
		if old != nil {
			s = old.DeepCopy()
		}
		s.Name, s.ResourceVersion = name, fmt.Sprint(w.version)
		s.Spec.Policy = []string{"p", "p", "p", "other"}[rnd.IntN(4)]
		s.Status.UnderlayMTU = int32(1500 + rnd.IntN(2)*7500)
		if rnd.IntN(4) == 0 {
			s.Annotations = map[string]string{mtuv1alpha1.RetryAnnotation: "true"}
		}
		_ = w.states.Update(s)
		w.last = "a write of " + name
	case op < 6:
		if old == nil {
			return
		}
		_ = w.states.Delete(old)
		w.last = "the deletion of " + name + "'s state"
	case op < 8:
		w.putNode(name, rnd.IntN(2) == 0)
		w.last = "a relabeled or new " + name
		return
	case op < 9:
		if n, ok, _ := w.nodes.GetByKey(name); ok {
			_ = w.nodes.Delete(n)
			w.cached.nodesChanged()
		}
		w.last = "the deletion of Node " + name
		return
	default: // nothing: a reconcile queued again
		w.last = "nothing"
		return
	}
	// The NodeMTUState watch's handler, with the old and the new object of the event.
	w.cached.stateChanged(name)
}

func (w *storeWorld) stateOf(name string) (*mtuv1alpha1.NodeMTUState, bool) {
	o, ok, _ := w.states.GetByKey(name)
	if !ok {
		return nil, false
	}
	return o.(*mtuv1alpha1.NodeMTUState), true
}

func (w *storeWorld) selected(selector labels.Selector) []*metav1.PartialObjectMetadata {
	var out []*metav1.PartialObjectMetadata
	for _, o := range w.nodes.List() {
		if n := o.(*metav1.PartialObjectMetadata); selector.Matches(labels.Set(n.Labels)) {
			out = append(out, n)
		}
	}
	return out
}

func (w *storeWorld) statesOf(policy string) []*mtuv1alpha1.NodeMTUState {
	var out []*mtuv1alpha1.NodeMTUState
	for _, o := range w.states.List() {
		if s := o.(*mtuv1alpha1.NodeMTUState); s.Spec.Policy == policy {
			out = append(out, s)
		}
	}
	return out
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func names(states []*mtuv1alpha1.NodeMTUState) []string {
	var out []string
	for _, s := range states {
		out = append(out, s.Name)
	}
	return out
}

// TestSmallestUnderlay: the smallest underlay MTU the nodes reported, none when none did.
func TestSmallestUnderlay(t *testing.T) {
	for _, tc := range []struct {
		underlays []int32
		want      *int32
	}{
		{underlays: nil},
		{underlays: []int32{0, 0}},
		{underlays: []int32{9000, 0, 1500, 9000}, want: ptr.To[int32](1500)},
		{underlays: []int32{0, 9000}, want: ptr.To[int32](9000)},
	} {
		g := &gatheredNodes{underlays: tc.underlays}
		if got := g.smallestUnderlay(); !ptr.Equal(got, tc.want) {
			t.Errorf("%v: %v, want %v", tc.underlays, ptr.Deref(got, 0), ptr.Deref(tc.want, 0))
		}
	}
}

// TestGatherSeesItsOwnWrites: a reconcile that starts before the cache holds the last one's
// spec write decides on that write, not on the version it replaced, until the cache holds it
// or something newer; a state deleted meanwhile is gone.
func TestGatherSeesItsOwnWrites(t *testing.T) {
	w := newStoreWorld()
	w.putNode("node-00", true)
	policy := &mtuv1alpha1.NetworkMTUPolicy{}
	policy.Name, policy.UID, policy.Generation = "p", "uid-p", 1
	selector := labels.SelectorFromSet(labels.Set{"pool": "a"})
	stateOf := func() *mtuv1alpha1.NodeMTUState { return w.cached.gather(policy, selector).nodes[0].State }
	put := func(s *mtuv1alpha1.NodeMTUState) {
		_ = w.states.Update(s)
		w.cached.stateChanged(s.Name) // the watch's handler
	}

	observed := &mtuv1alpha1.NodeMTUState{}
	observed.Name, observed.UID, observed.ResourceVersion, observed.Generation = "node-00", "uid-1", "1", 1
	observed.Spec.Policy = "p"
	put(observed)
	if got := stateOf(); got.ResourceVersion != "1" {
		t.Fatalf("read %s, want the cached version 1", got.ResourceVersion)
	}

	turn := observed.DeepCopy() // the manager's patch, as the API server answered it
	turn.ResourceVersion, turn.Generation, turn.Spec.Phase = "2", 2, mtuv1alpha1.PhaseConverge
	w.cached.wrote(turn)
	if got := stateOf(); got.ResourceVersion != "2" {
		t.Fatalf("before the cache holds the write: read version %s, want the write (2)", got.ResourceVersion)
	}
	// An event older than the write arrives: the agent's late report on the spec it replaced.
	late := observed.DeepCopy()
	late.ResourceVersion, late.Status.UnderlayMTU = "1b", 9000
	put(late)
	if got := stateOf(); got.ResourceVersion != "2" {
		t.Fatalf("after an older event: read version %s, want the write (2)", got.ResourceVersion)
	}
	// The cache holds the agent's report on the write.
	reported := turn.DeepCopy()
	reported.ResourceVersion, reported.Status.ObservedGeneration = "3", 2
	put(reported)
	if got := stateOf(); got.ResourceVersion != "3" {
		t.Fatalf("once the cache caught up: read version %s, want the cache's (3)", got.ResourceVersion)
	}
	if len(w.cached.written) != 0 {
		t.Fatalf("the write is still kept once the cache holds it: %v", keys(w.cached.written))
	}
	// A write of a state deleted before the cache held it.
	again := reported.DeepCopy()
	again.ResourceVersion, again.Generation = "4", 3
	w.cached.wrote(again)
	_ = w.states.Delete(reported)
	w.cached.stateChanged("node-00")
	if got := stateOf(); got != nil {
		t.Fatalf("a deleted state is read as version %s", got.ResourceVersion)
	}
}
