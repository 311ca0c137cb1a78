package controllers

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

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

// cachedNodes reads the manager's cached Nodes and NodeMTUStates in place: a reconcile reads
// every selected node's state, and a list through the client copies each of 5,000 objects
// into a new list every time (most of a wave's cost with an absolute maxUnavailable, and of
// the garbage). Nothing read here is changed: a state to change is copied first.
type cachedNodes struct {
	nodes, states toolscache.Store
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

// selected are the Nodes selector selects and that are not being deleted, by name.
func (c *cachedNodes) selected(selector labels.Selector) []*metav1.PartialObjectMetadata {
	all := c.nodes.List()
	out := make([]*metav1.PartialObjectMetadata, 0, len(all))
	for _, o := range all {
		n, ok := o.(*metav1.PartialObjectMetadata)
		if ok && n.DeletionTimestamp == nil && selector.Matches(labels.Set(n.Labels)) {
			out = append(out, n)
		}
	}
	slices.SortFunc(out, func(a, b *metav1.PartialObjectMetadata) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// state is the node's state, nil when it has none.
func (c *cachedNodes) state(name string) *mtuv1alpha1.NodeMTUState {
	o, found, err := c.states.GetByKey(name)
	if err != nil || !found {
		return nil
	}
	s, _ := o.(*mtuv1alpha1.NodeMTUState)
	return s
}

// statesOf are the states policy wrote.
func (c *cachedNodes) statesOf(policy string) []*mtuv1alpha1.NodeMTUState {
	var out []*mtuv1alpha1.NodeMTUState
	for _, o := range c.states.List() {
		if s, ok := o.(*mtuv1alpha1.NodeMTUState); ok && s.Spec.Policy == policy {
			out = append(out, s)
		}
	}
	return out
}

// memoBook keeps each policy's migration.Memo between its reconciles, by the policy's UID: a
// policy deleted and created again under its name starts afresh.
type memoBook struct {
	mu    sync.Mutex
	memos map[types.UID]*migration.Memo
}

// of is the policy's memo. A policy is reconciled on one worker at a time, so its memo is
// used by one decision at a time.
func (b *memoBook) of(uid types.UID) *migration.Memo {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.memos == nil {
		b.memos = map[types.UID]*migration.Memo{}
	}
	m := b.memos[uid]
	if m == nil {
		m = migration.NewMemo()
		b.memos[uid] = m
	}
	return m
}

// keepOnly drops the memos of policies deleted since.
func (b *memoBook) keepOnly(policies []mtuv1alpha1.NetworkMTUPolicy) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for uid := range b.memos {
		if !slices.ContainsFunc(policies, func(p mtuv1alpha1.NetworkMTUPolicy) bool { return p.UID == uid }) {
			delete(b.memos, uid)
		}
	}
}
