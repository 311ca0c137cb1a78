package e2e

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mtuv1alpha1 "github.com/mtu-operator/mtu-operator/api/v1alpha1"
	"github.com/mtu-operator/mtu-operator/test/e2e/lab"
	"github.com/mtu-operator/mtu-operator/test/e2e/story"
)

// TestDeletingAPolicyMidMigration deletes a policy while its migration has every route pinned:
// the policy goes, no NodeMTUState is left, no route in any node's kernel keeps a pinned MTU,
// and traffic of the routable size loses nothing throughout.
func TestDeletingAPolicyMidMigration(t *testing.T) {
	ctx := context.Background()
	l := startLabWith(t, lab.Options{CNI: lab.Flannel, Nodes: []lab.NodeSpec{{Name: "node-a", UnderlayMTU: 1500}, {Name: "node-b", UnderlayMTU: 1500}, {Name: "node-c", UnderlayMTU: 1500}}})
	w, err := story.NewWorld(ctx, l)
	if err != nil {
		t.Fatal(err)
	}
	traffic, err := w.StartTraffic(ctx, matrixPaths)
	if err != nil {
		t.Fatal(err)
	}
	defer traffic.Stop()
	up := migration{mtu: 9000, encap: mtuv1alpha1.EncapsulationVXLAN, maxUnavailable: "1"}
	if err := w.Apply(ctx, story.Step{Policy: up.policy()}); err != nil {
		t.Fatal(err)
	}
	if err := l.WaitFor(ctx, "routes pinned on every node while the CNI's agents restart", time.Minute, func(ctx context.Context) error {
		p, err := story.Policy(ctx, l)
		if err != nil {
			return err
		}
		if m := p.Status.Migration; m == nil || m.Phase != mtuv1alpha1.MigrationRestartingCNI {
			return fmt.Errorf("migration %v", m)
		}
		for _, n := range l.Nodes {
			pinned, err := n.PinnedRoutes()
			if err != nil {
				return err
			}
			if len(pinned) == 0 {
				return fmt.Errorf("%s has no pinned route yet", n.Name)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	p, err := story.Policy(ctx, l)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("deleting the policy in phase %v", p.Status.Migration)
	if err := l.Client.Delete(ctx, p); err != nil {
		t.Fatal(err)
	}
	if err := l.WaitFor(ctx, "the policy gone", time.Minute, func(ctx context.Context) error {
		err := l.Client.Get(ctx, types.NamespacedName{Name: story.PolicyName}, &mtuv1alpha1.NetworkMTUPolicy{})
		if err == nil {
			return errors.New("still there")
		}
		return client.IgnoreNotFound(err)
	}); err != nil {
		t.Fatal(err)
	}
	var states mtuv1alpha1.NodeMTUStateList
	if err := l.Client.List(ctx, &states); err != nil {
		t.Fatal(err)
	}
	if len(states.Items) > 0 {
		t.Errorf("%d NodeMTUStates left after the policy went", len(states.Items))
	}
	for _, n := range l.Nodes {
		pinned, err := n.PinnedRoutes()
		if err != nil {
			t.Fatal(err)
		}
		if len(pinned) > 0 {
			t.Errorf("%s still pins %v after the policy went", n.Name, pinned)
		}
	}
	for _, r := range traffic.Stop() {
		s := r.Report.Size(story.RoutableSize)
		t.Logf("%s while the policy was applied and deleted: %s", r.Path, s)
		if s.Lost > 0 {
			t.Errorf("%s lost %d datagrams of %d B:\n%s", r.Path, s.Lost, story.RoutableSize, r.Report)
		}
	}
}
