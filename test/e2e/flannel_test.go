package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
	appsv1 "k8s.io/api/apps/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mtu-operator/mtu-operator/internal/testenv"
	"github.com/mtu-operator/mtu-operator/test/e2e/lab"
)

// TestFlanneldRestartKeepsTheTunnelMTU pins down the flanneld behaviour the operator relies
// on, as the lab's real flanneld shows it: restarted (`kubectl rollout restart`), flanneld
// reuses an existing flannel.1 whatever its MTU and writes subnet.env from its configuration
// and the NIC, so pods and tunnel can disagree until someone else sets the tunnel.
func TestFlanneldRestartKeepsTheTunnelMTU(t *testing.T) {
	ctx := context.Background()
	l := startLab(t, lab.Flannel)
	node := l.Node("node-a")
	setLinkMTU(t, node.NetnsFile, "flannel.1", 1400)

	ds := &appsv1.DaemonSet{}
	if err := l.Client.Get(ctx, lab.Flannel.AgentDaemonSet(), ds); err != nil {
		t.Fatal(err)
	}
	patch := client.RawPatch("application/merge-patch+json", []byte(`{"spec":{"template":{"metadata":{"annotations":{"kubectl.kubernetes.io/restartedAt":"`+time.Now().Format(time.RFC3339Nano)+`"}}}}}`))
	if err := l.Client.Patch(ctx, ds, patch); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, "the kube-flannel-ds rollout", time.Minute, func() error { return l.CNIRolledOut(ctx) })
	mtus, err := node.LinkMTUs()
	if err != nil {
		t.Fatal(err)
	}
	if mtus["flannel.1"] != 1400 {
		t.Errorf("after flanneld's restart flannel.1 has MTU %d, want the 1400 it had", mtus["flannel.1"])
	}
	env, err := node.SubnetEnv()
	if err != nil {
		t.Fatal(err)
	}
	if env["FLANNEL_MTU"] != "8950" {
		t.Errorf("subnet.env FLANNEL_MTU=%s, want 8950 (the NIC's 9000 less VXLAN's 50)", env["FLANNEL_MTU"])
	}
}

// setLinkMTU sets a link's MTU in the namespace mounted at file, as an administrator would.
func setLinkMTU(t *testing.T, file, name string, mtu int) {
	t.Helper()
	ns, err := netns.GetFromPath(file)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	link, err := h.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.LinkSetMTU(link, mtu); err != nil {
		t.Fatal(err)
	}
}
