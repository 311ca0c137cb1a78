package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mtuv1alpha1 "github.com/mtu-operator/mtu-operator/api/v1alpha1"
	"github.com/mtu-operator/mtu-operator/internal/node/netdev"
	"github.com/mtu-operator/mtu-operator/internal/node/nettest"
	"github.com/mtu-operator/mtu-operator/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	if os.Getenv(helperExec) != "" {
		err := runCapabilityHelper()
		fmt.Fprintln(os.Stderr, "capability helper:", err)
		os.Exit(1)
	}
	os.Exit(testenv.Main(m, testenv.Options{}, func(e *testenv.Env) func() { env = e; return nil }))
}

// node is a network namespace set up as a flannel node on a 1500 network: eth0 to a peer
// node (whose address answers probes), flannel.1 (VXLAN over eth0) and cni0 at 1450, and a
// route to another node's pod subnet through flannel.1.
func node(t *testing.T) (ns, peer *nettest.Namespace) {
	ns, peer = nettest.NewNamespace(t), nettest.NewNamespace(t)
	ns.AddVeth(t, "eth0", "eth0", peer, 1500)
	ns.AddAddr(t, "eth0", "192.0.2.1/24")
	peer.AddAddr(t, "eth0", "192.0.2.2/24")
	ns.SetUp(t, "lo", "eth0")
	peer.SetUp(t, "lo", "eth0")
	ns.WaitRunning(t, "eth0")
	eth0 := ns.Link(t, "eth0")
	if err := ns.NL.RouteAdd(&netlink.Route{LinkIndex: eth0.Attrs().Index, Gw: net.ParseIP("192.0.2.2")}); err != nil {
		t.Fatalf("adding the default route: %v", err)
	}
	ns.AddLink(t, &netlink.Vxlan{LinkAttrs: netlink.LinkAttrs{Name: "flannel.1", MTU: 1450}, VxlanId: 1, VtepDevIndex: eth0.Attrs().Index, Port: 8472})
	ns.AddLink(t, &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "cni0", MTU: 1450}})
	ns.SetUp(t, "flannel.1", "cni0")
	_, podNet, _ := net.ParseCIDR("10.244.2.0/24")
	flannel1 := ns.Link(t, "flannel.1")
	if err := ns.NL.RouteAdd(&netlink.Route{LinkIndex: flannel1.Attrs().Index, Dst: podNet, Gw: net.ParseIP("10.244.2.0"), Flags: int(netlink.FLAG_ONLINK)}); err != nil {
		t.Fatalf("adding the pod route: %v", err)
	}
	return ns, peer
}

// listenIn opens a TCP listener in a namespace: the API server as the node's probe sees it.
func listenIn(t *testing.T, ns *nettest.Namespace, addr string) string {
	var l net.Listener
	err := netdev.InNamespace(ns.NS, func() error {
		var err error
		l, err = net.Listen("tcp", addr)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return l.Addr().String()
}

func podRouteMTU(t *testing.T, ns *nettest.Namespace) int {
	t.Helper()
	routes, err := ns.NL.RouteList(ns.Link(t, "flannel.1"), netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range routes {
		if r.Dst != nil && r.Dst.String() == "10.244.2.0/24" {
			return r.MTU
		}
	}
	t.Fatalf("the pod route through flannel.1 is gone")
	return 0
}

// startAgent runs the agent's run() for node, managing the namespace ns, until the test ends.
func startAgent(t *testing.T, node string, ns *nettest.Namespace, args ...string) {
	t.Helper()
	args = append([]string{
		"--node-name", node, "--netns", fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), int(ns.NS)),
		"--metrics-bind-address", "0", "--health-probe-bind-address", "0", "--state-dir", t.TempDir(),
	}, args...)
	stop := testenv.Go(func(ctx context.Context) error { return run(ctx, env.Config, args) })
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("agent: %v", err)
		}
	})
}

func getState(t *testing.T, name string) *mtuv1alpha1.NodeMTUState {
	t.Helper()
	s := &mtuv1alpha1.NodeMTUState{}
	if err := env.Client.Get(context.Background(), client.ObjectKey{Name: name}, s); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestAgentInANamespace runs the agent binary's code against a real API server and a real
// network namespace: it reports the underlay and notices a change without polling, converges
// flannel's devices as a probed transaction, pins and releases route MTUs, and rolls back a
// change whose don't-fragment probe cannot cross the path.
func TestAgentInANamespace(t *testing.T) {
	ns, peer := node(t)
	apiServer := listenIn(t, peer, "192.0.2.2:0")
	ctx := context.Background()

	k8sNode := &corev1.Node{}
	k8sNode.Name = "node-1"
	if err := env.Client.Create(ctx, k8sNode); err != nil {
		t.Fatal(err)
	}
	k8sNode.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "192.0.2.1"}}
	if err := env.Client.Status().Update(ctx, k8sNode); err != nil {
		t.Fatal(err)
	}
	livePolicy(t, "jumbo")
	state := &mtuv1alpha1.NodeMTUState{}
	state.Name = "node-1"
	state.Spec = mtuv1alpha1.NodeMTUStateSpec{
		Policy: "jumbo", Phase: mtuv1alpha1.PhaseObserve, UnderlayInterfacePattern: "^eth",
		Interfaces: []mtuv1alpha1.ManagedInterface{{Name: "flannel.1", Role: mtuv1alpha1.RoleTunnel, MTU: 8950}, {Name: "cni0", Role: mtuv1alpha1.RoleBridge, MTU: 8950}},
		// The peer must carry the full 9000 once the NICs are raised (step 2).
		Probe: mtuv1alpha1.NodeProbe{APIServer: apiServer, Peers: []mtuv1alpha1.ProbePeer{{Address: "192.0.2.2", Size: 9000}}, TimeoutSeconds: 3},
	}
	if err := env.Client.Create(ctx, state); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = env.Client.Delete(ctx, state)
		_ = env.Client.Delete(ctx, k8sNode)
	})

	startAgent(t, "node-1", ns)
	get := func() *mtuv1alpha1.NodeMTUState { return getState(t, "node-1") }
	wait := func(what string, within time.Duration, check func(*mtuv1alpha1.NodeMTUState) error) {
		t.Helper()
		testenv.Eventually(t, what, within, func() error { return check(get()) })
	}

	// 1. Observe: the underlay and the interfaces are reported, nothing changes.
	wait("the first report", 30*time.Second, func(s *mtuv1alpha1.NodeMTUState) error {
		if s.Status.UnderlayMTU != 1500 || len(s.Status.Underlay) != 1 || !s.Status.Underlay[0].DefaultRoute || fmt.Sprint(s.Status.UnderlayAddresses) != "[192.0.2.1]" {
			return fmt.Errorf("underlay %d %+v addresses %v", s.Status.UnderlayMTU, s.Status.Underlay, s.Status.UnderlayAddresses)
		}
		if fmt.Sprint(s.Status.Interfaces) != "[{flannel.1 1450 true} {cni0 1450 true}]" {
			return fmt.Errorf("interfaces %v", s.Status.Interfaces)
		}
		return nil
	})

	// 2. Someone raises the NICs to 9000: noticed from the link event, long before any resync.
	peer.SetMTU(t, "eth0", 9000)
	ns.SetMTU(t, "eth0", 9000)
	wait("the underlay change reported (the resync is 5 minutes away)", 15*time.Second, func(s *mtuv1alpha1.NodeMTUState) error {
		if s.Status.UnderlayMTU != 9000 {
			return fmt.Errorf("underlay %d", s.Status.UnderlayMTU)
		}
		return nil
	})

	// 3. Converge, with routes pinned to the old MTU: flannel.1 and cni0 go to 8950 after the
	// probes (API server over TCP, a 9000-byte don't-fragment echo to the peer) pass.
	s := get()
	pin := int32(1450)
	s.Spec.Phase, s.Spec.RouteMTU, s.Spec.PolicyGeneration = mtuv1alpha1.PhaseConverge, &pin, 1
	if err := env.Client.Update(ctx, s); err != nil {
		t.Fatal(err)
	}
	wait("converged with routes pinned", 30*time.Second, func(s *mtuv1alpha1.NodeMTUState) error {
		c := meta.FindStatusCondition(s.Status.Conditions, mtuv1alpha1.ConditionConverged)
		if c == nil || c.Status != "True" || s.Status.RouteMTU == nil || *s.Status.RouteMTU != 1450 {
			return fmt.Errorf("converged %v route pin %v last %+v", c, s.Status.RouteMTU, s.Status.LastTransaction)
		}
		return nil
	})
	if last := get().Status.LastTransaction; last == nil || last.Outcome != mtuv1alpha1.TransactionCommitted || len(last.Changes) != 2 {
		t.Errorf("last transaction %+v; want a committed change of flannel.1 and cni0", last)
	}
	if m := ns.MTU(t, "flannel.1"); m != 8950 {
		t.Errorf("flannel.1 MTU %d; want 8950", m)
	}
	if m := podRouteMTU(t, ns); m != 1450 {
		t.Errorf("pod route MTU %d; want it pinned to 1450", m)
	}

	// 4. The policy's transition releases the pins of generation 1 for the whole cluster: the
	// route takes the device's MTU again, with no spec written and no report made.
	reported := get().ResourceVersion
	transition := &mtuv1alpha1.NetworkMTUTransition{}
	transition.Name, transition.Spec = "jumbo", mtuv1alpha1.NetworkMTUTransitionSpec{Policy: "jumbo", PinsReleasedGeneration: 1}
	if err := env.Client.Create(ctx, transition); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(ctx, transition) })
	testenv.Eventually(t, "the pin released", 30*time.Second, func() error {
		if m := podRouteMTU(t, ns); m != 0 {
			return fmt.Errorf("pod route MTU %d after the release; want no MTU metric, as before", m)
		}
		return nil
	})
	if s := get(); s.ResourceVersion != reported {
		t.Errorf("the release was reported (status %+v); a release by the policy costs no write", s.Status)
	}

	// 5. The peer's NIC drops back to 1500: a change now fails its 9000-byte probe and is
	// rolled back.
	peer.SetMTU(t, "eth0", 1500)
	s = get()
	s.Spec.Interfaces[0].MTU = 8900
	if err := env.Client.Update(ctx, s); err != nil {
		t.Fatal(err)
	}
	wait("the change rolled back", 30*time.Second, func(s *mtuv1alpha1.NodeMTUState) error {
		if last := s.Status.LastTransaction; last == nil || last.Outcome != mtuv1alpha1.TransactionRolledBack {
			return fmt.Errorf("last transaction %+v", last)
		}
		return nil
	})
	if m := ns.MTU(t, "flannel.1"); m != 8950 {
		t.Errorf("flannel.1 MTU %d after the rollback; want 8950 again", m)
	}
	t.Logf("rolled back: %s", get().Status.LastTransaction.Message)

	// 6. The controller asks for a check of the paths, changing nothing: the peer's 1500 NIC
	// fails the 9000-byte check; fixed, a new attempt passes.
	s = get()
	s.Spec.Verify = true
	if err := env.Client.Update(ctx, s); err != nil {
		t.Fatal(err)
	}
	wait("the path check failed", 30*time.Second, func(s *mtuv1alpha1.NodeMTUState) error {
		if v := s.Status.Verification; v == nil || v.Passed || !strings.Contains(v.Message, "9000 bytes to 192.0.2.2") {
			return fmt.Errorf("verification %+v", v)
		}
		return nil
	})
	if m := ns.MTU(t, "flannel.1"); m != 8950 {
		t.Errorf("flannel.1 MTU %d after a check; want it untouched at 8950", m)
	}
	peer.SetMTU(t, "eth0", 9000)
	s = get()
	s.Spec.Attempt++
	if err := env.Client.Update(ctx, s); err != nil {
		t.Fatal(err)
	}
	wait("the path check passed", 30*time.Second, func(s *mtuv1alpha1.NodeMTUState) error {
		if v := s.Status.Verification; v == nil || !v.Passed || v.Attempt != 1 {
			return fmt.Errorf("verification %+v", v)
		}
		return nil
	})
}

// podNamespace adds a pod to the node: a namespace with eth0 at mtu joined by a veth to
// hostVeth in the node namespace, mounted as a file in dir as the container runtime does.
func podNamespace(t *testing.T, node *nettest.Namespace, dir, name, hostVeth, cidr string, mtu int) *nettest.Namespace {
	pod := nettest.NewNamespace(t)
	pod.AddVeth(t, "eth0", hostVeth, node, mtu)
	pod.AddAddr(t, "eth0", cidr)
	pod.SetUp(t, "lo", "eth0")
	node.SetUp(t, hostVeth)
	nettest.BindMount(t, fmt.Sprintf("/proc/self/fd/%d", int(pod.NS)), filepath.Join(dir, name))
	return pod
}

// TestAgentCorrectsStalePodsInPlace: after a switch from VXLAN (pods at 1450) to no
// encapsulation (1500), the agent finds the old pods from their network namespaces and
// reports them; with the InPlace action it sets both ends of each pod's veth to 1500 and the
// report clears.
func TestAgentCorrectsStalePodsInPlace(t *testing.T) {
	ns, peer := node(t)
	apiServer := listenIn(t, peer, "192.0.2.2:0")
	dir := t.TempDir()
	podA := podNamespace(t, ns, dir, "cni-aaaa", "veth-a", "10.244.1.2/24", 1450)
	podB := podNamespace(t, ns, dir, "cni-bbbb", "veth-b", "10.244.1.3/24", 1450)
	ctx := context.Background()

	k8sNode := &corev1.Node{}
	k8sNode.Name = "node-2"
	if err := env.Client.Create(ctx, k8sNode); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(ctx, k8sNode) })
	for name, ip := range map[string]string{"web-a": "10.244.1.2", "web-b": "10.244.1.3"} {
		p := &corev1.Pod{}
		p.Namespace, p.Name = "default", name
		p.Spec.NodeName = "node-2"
		p.Spec.Containers = []corev1.Container{{Name: "web", Image: "registry.example/web:v1"}}
		if err := env.Client.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = env.Client.Delete(ctx, p, client.GracePeriodSeconds(0)) })
		p.Status.PodIPs = []corev1.PodIP{{IP: ip}}
		p.Status.PodIP = ip
		if err := env.Client.Status().Update(ctx, p); err != nil {
			t.Fatal(err)
		}
	}

	// noEncap at 1500: the bridge goes from 1450 to 1500; pods are only reported at first.
	livePolicy(t, "noencap")
	state := &mtuv1alpha1.NodeMTUState{}
	state.Name = "node-2"
	state.Spec = mtuv1alpha1.NodeMTUStateSpec{
		Policy: "noencap", Phase: mtuv1alpha1.PhaseConverge, UnderlayInterfacePattern: "^eth", PodMTU: 1500,
		Interfaces: []mtuv1alpha1.ManagedInterface{{Name: "cni0", Role: mtuv1alpha1.RoleBridge, MTU: 1500}},
		Probe:      mtuv1alpha1.NodeProbe{APIServer: apiServer, Peers: []mtuv1alpha1.ProbePeer{{Address: "192.0.2.2", Size: 1500}}, TimeoutSeconds: 3},
		PodAction:  mtuv1alpha1.StalePodReport,
	}
	if err := env.Client.Create(ctx, state); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(ctx, state) })

	startAgent(t, "node-2", ns, "--pod-netns-dir", dir)
	get := func() *mtuv1alpha1.NodeMTUState { return getState(t, "node-2") }
	testenv.Eventually(t, "the stale pods reported", 30*time.Second, func() error {
		s := get()
		if s.Status.Pods != 2 || s.Status.StalePodCount != 2 || fmt.Sprint(s.Status.StalePods) != "[{default web-a eth0 1450 } {default web-b eth0 1450 }]" || s.Status.ActualPodMTU != 1450 {
			return fmt.Errorf("pods %d at %d, stale %d %v", s.Status.Pods, s.Status.ActualPodMTU, s.Status.StalePodCount, s.Status.StalePods)
		}
		return nil
	})
	if m := podA.MTU(t, "eth0"); m != 1450 {
		t.Fatalf("Report changed web-a's MTU to %d", m)
	}

	s := get()
	s.Spec.PodAction = mtuv1alpha1.StalePodInPlace
	if err := env.Client.Update(ctx, s); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, "the pods corrected in place", 30*time.Second, func() error {
		s := get()
		if s.Status.StalePodCount != 0 || s.Status.PodsCorrected != 2 || s.Status.ActualPodMTU != 1500 {
			return fmt.Errorf("stale %d %v corrected %d, pods at %d", s.Status.StalePodCount, s.Status.StalePods, s.Status.PodsCorrected, s.Status.ActualPodMTU)
		}
		return nil
	})
	for _, c := range []struct {
		ns   *nettest.Namespace
		link string
	}{{podA, "eth0"}, {podB, "eth0"}, {ns, "veth-a"}, {ns, "veth-b"}} {
		if m := c.ns.MTU(t, c.link); m != 1500 {
			t.Errorf("%s MTU %d; want 1500 on both ends", c.link, m)
		}
	}
}

// livePolicy creates the policy a test's NodeMTUState names: an agent enforces only the states
// of a policy that exists. No controller runs here, so nothing else acts on it.
func livePolicy(t *testing.T, name string) {
	t.Helper()
	ctx := context.Background()
	mtu := int32(9000)
	p := &mtuv1alpha1.NetworkMTUPolicy{}
	p.Name = name
	p.Spec.Underlay.MTU = &mtu
	p.Spec.Encapsulation.Type = mtuv1alpha1.EncapsulationVXLAN
	if err := env.Client.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(ctx, p) })
}
