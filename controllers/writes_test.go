package controllers

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	mtuv1alpha1 "github.com/mtu-operator/mtu-operator/api/v1alpha1"
)

// One node's conflict must not cancel the spec writes to the other nodes of its wave: a
// canceled request is still processed by the API server, and would be made again. What was
// written is what the next reconcile decides on.
func TestOneConflictLeavesTheOtherWritesDone(t *testing.T) {
	const n = 200
	var objects []client.Object
	var writes []specWrite
	for i := range n {
		s := &mtuv1alpha1.NodeMTUState{}
		s.Name = fmt.Sprintf("node-%03d", i)
		s.Spec.Policy = "p"
		objects = append(objects, s)
		want := s.Spec
		want.PodMTU = 8950
		writes = append(writes, specWrite{state: s.DeepCopy(), spec: want})
	}
	var patched atomic.Int32
	c := fake.NewClientBuilder().WithScheme(env.Scheme).WithObjects(objects...).WithInterceptorFuncs(interceptor.Funcs{
		Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
			if obj.GetName() == "node-000" {
				return apierrors.NewConflict(schema.GroupResource{Group: mtuv1alpha1.GroupVersion.Group, Resource: "nodemtustates"}, obj.GetName(), fmt.Errorf("the object has been modified"))
			}
			time.Sleep(time.Millisecond)
			if err := ctx.Err(); err != nil {
				return err // as a real request ends when its context does
			}
			if err := c.Patch(ctx, obj, patch, opts...); err != nil {
				return err
			}
			// The API server counts a spec change in the generation; the fake client does not.
			obj.SetGeneration(obj.GetGeneration() + 1)
			if err := c.Update(ctx, obj); err != nil {
				return err
			}
			patched.Add(1)
			return nil
		},
	}).Build()
	// The manager's cache, which has not seen the writes yet.
	states := toolscache.NewStore(toolscache.MetaNamespaceKeyFunc)
	for _, o := range objects {
		_ = states.Add(o.DeepCopyObject())
	}
	r := &NetworkMTUPolicyReconciler{Client: c, cached: &cachedNodes{nodes: toolscache.NewStore(toolscache.MetaNamespaceKeyFunc), states: states}}

	err := r.writeNodeSpecs(t.Context(), writes)
	if !apierrors.IsConflict(err) {
		t.Fatalf("writeNodeSpecs: %v, want the conflict", err)
	}
	if got := patched.Load(); got != n-1 {
		t.Fatalf("%d of the %d other nodes' specs written", got, n-1)
	}
	got := &mtuv1alpha1.NodeMTUState{}
	if err := c.Get(t.Context(), client.ObjectKey{Name: "node-199"}, got); err != nil || got.Spec.PodMTU != 8950 {
		t.Fatalf("node-199: %v, spec %+v", err, got.Spec)
	}
	// The next reconcile decides on the writes, though the cache has not seen them.
	if s := r.cached.state("node-199"); s.Spec.PodMTU != 8950 {
		t.Fatalf("the next reconcile reads node-199's spec as %+v, not as written", s.Spec)
	}
}
