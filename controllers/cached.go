package controllers

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mtuv1alpha1 "github.com/mtu-operator/mtu-operator/api/v1alpha1"
	"github.com/mtu-operator/mtu-operator/internal/plan/migration"
)

// cachedNodes reads the manager's cached Nodes and NodeMTUStates in place, and keeps for each
// policy what its last reconcile gathered (a nodeView): a reconcile then reads only the nodes
// whose state changed since, which the NodeMTUState watch marks before it queues the policy.
// With an absolute maxUnavailable a rollout is N/k reconciles, and N/k full reads (5,000
// objects copied into a list each) were N²/k. Nothing read here is changed: a state to change
// is copied first.
type cachedNodes struct {
	nodes, states toolscache.Store

	mu sync.Mutex
	// epoch counts the changes to the Nodes a selection depends on (one joins or leaves, its
	// labels change, its deletion begins): a view read at another epoch is read again.
	epoch uint64
	views map[string]*nodeView // by policy name
	// written are the states this manager patched, by name, until the cache holds that
	// version or a newer one. A reconcile that starts before the cache caught up with the last
	// one's writes decides on them, not on the versions they replaced: those would hand a node
	// its turn again, and count its slot of maxUnavailable free.
	written map[string]*mtuv1alpha1.NodeMTUState
}

// nodeView is what a policy's last reconcile gathered, and what changed since.
type nodeView struct {
	uid        types.UID
	generation int64
	selector   string
	epoch      uint64
	read       time.Time
	gathered   *gatheredNodes
	// dirty are the nodes whose state changed since the view was read.
	dirty map[string]bool
	// memo keeps the policy's decisions between reconciles.
	memo *migration.Memo
}

// storeOf is the store behind the cache's informer of obj's kind.
func storeOf(ctx context.Context, c cache.Cache, obj client.Object) (toolscache.Store, error) {
	informer, err := c.GetInformer(ctx, obj)
	if err != nil {
		return nil, err
	}
	withStore, ok := informer.(interface{ GetStore() toolscache.Store })
	if !ok {
		return nil, fmt.Errorf("the cache's informer of %T has no store", obj)
	}
	return withStore.GetStore(), nil
}

// newCachedNodes finds the stores of the cache's Node (metadata only) and NodeMTUState
// informers.
func newCachedNodes(ctx context.Context, c cache.Cache) (*cachedNodes, error) {
	node := &metav1.PartialObjectMetadata{}
	node.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Node"))
	nodes, err := storeOf(ctx, c, node)
	if err != nil {
		return nil, err
	}
	states, err := storeOf(ctx, c, &mtuv1alpha1.NodeMTUState{})
	if err != nil {
		return nil, err
	}
	return &cachedNodes{nodes: nodes, states: states}, nil
}

// stateChanged marks the node's state changed for every policy's view: the NodeMTUState
// watch calls it, after the cache holds the new object and before the policy is queued.
func (c *cachedNodes) stateChanged(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, v := range c.views {
		v.dirty[name] = true
	}
}

// wrote records a state as this manager's patch left it (the API server's answer), and marks
// it changed for every view.
func (c *cachedNodes) wrote(state *mtuv1alpha1.NodeMTUState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.written == nil {
		c.written = map[string]*mtuv1alpha1.NodeMTUState{}
	}
	c.written[state.Name] = state
	for _, v := range c.views {
		v.dirty[state.Name] = true
	}
}

// nodesChanged says a Node joined, left, or changed what selects it.
func (c *cachedNodes) nodesChanged() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch++
}

// viewLocked is the policy's view; c.mu is held.
func (c *cachedNodes) viewLocked(policy *mtuv1alpha1.NetworkMTUPolicy) *nodeView {
	if c.views == nil {
		c.views = map[string]*nodeView{}
	}
	v := c.views[policy.Name]
	if v == nil || v.uid != policy.UID {
		// A policy deleted and created again under its name starts afresh.
		v = &nodeView{uid: policy.UID, dirty: map[string]bool{}, memo: migration.NewMemo()}
		c.views[policy.Name] = v
	}
	return v
}

// memoOf is the policy's migration.Memo.
func (c *cachedNodes) memoOf(policy *mtuv1alpha1.NetworkMTUPolicy) *migration.Memo {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.viewLocked(policy).memo
}

// keepOnly drops the views of policies deleted since.
func (c *cachedNodes) keepOnly(policies []mtuv1alpha1.NetworkMTUPolicy) {
	c.mu.Lock()
	defer c.mu.Unlock()
	maps.DeleteFunc(c.views, func(name string, v *nodeView) bool {
		return !slices.ContainsFunc(policies, func(p mtuv1alpha1.NetworkMTUPolicy) bool { return p.UID == v.uid })
	})
}

// gather returns the policy's selected nodes with their states. It reads again only the nodes
// whose state changed since the policy's last reconcile, unless what selects them changed: the
// policy's generation, the Nodes, or a state of the policy's appeared or went for a node it
// does not select. A resync reads everything again, whatever happened.
func (c *cachedNodes) gather(policy *mtuv1alpha1.NetworkMTUPolicy, selector labels.Selector) *gatheredNodes {
	c.mu.Lock()
	v := c.viewLocked(policy)
	dirty, epoch := v.dirty, c.epoch
	v.dirty = map[string]bool{}
	c.mu.Unlock()
	key := selector.String()
	if v.gathered != nil && v.generation == policy.Generation && v.selector == key && v.epoch == epoch &&
		time.Since(v.read) < resyncPeriod && v.refresh(c, policy.Name, dirty) {
		return v.gathered
	}
	var nodes []*metav1.PartialObjectMetadata
	for _, o := range c.nodes.List() {
		if n, ok := o.(*metav1.PartialObjectMetadata); ok {
			nodes = append(nodes, n)
		}
	}
	var states []*mtuv1alpha1.NodeMTUState
	for _, o := range c.states.List() {
		if s, ok := o.(*mtuv1alpha1.NodeMTUState); ok {
			states = append(states, s)
		}
	}
	v.gathered = assemble(policy.Name, selector, nodes, c.state, states)
	v.generation, v.selector, v.epoch, v.read = policy.Generation, key, epoch, time.Now()
	return v.gathered
}

// refresh reads again the states of the dirty nodes; false when one of them needs the whole
// selection read again (a state of the policy's for a node it does not select, or gone).
func (v *nodeView) refresh(c *cachedNodes, policy string, dirty map[string]bool) bool {
	g := v.gathered
	for name := range dirty {
		state := c.state(name)
		i := g.index(name)
		if i >= 0 {
			g.set(i, policy, state)
			continue
		}
		ours := state != nil && state.Spec.Policy == policy
		if ours || slices.ContainsFunc(g.unselected, func(s *mtuv1alpha1.NodeMTUState) bool { return s.Name == name }) {
			return false
		}
	}
	return true
}

// state is the node's state, nil when it has none: the cache's, or this manager's last write
// of it while the cache holds an older version.
func (c *cachedNodes) state(name string) *mtuv1alpha1.NodeMTUState {
	var cached *mtuv1alpha1.NodeMTUState
	if o, found, err := c.states.GetByKey(name); err == nil && found {
		cached, _ = o.(*mtuv1alpha1.NodeMTUState)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	w := c.written[name]
	switch {
	case w == nil:
		return cached
	case cached != nil && cached.UID == w.UID && cached.Generation < w.Generation:
		return w // a spec write bumps the generation; the cache has not seen this one yet
	}
	// The cache caught up, or the state is gone (or another object took its name).
	delete(c.written, name)
	return cached
}
