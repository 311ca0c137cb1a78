package agent_test

import (
	"cmp"
	"context"
	"fmt"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	mtuv1alpha1 "github.com/mtu-operator/mtu-operator/api/v1alpha1"
	"github.com/mtu-operator/mtu-operator/controllers"
	"github.com/mtu-operator/mtu-operator/internal/agent"
	"github.com/mtu-operator/mtu-operator/internal/mtu"
	"github.com/mtu-operator/mtu-operator/internal/node/journal"
	"github.com/mtu-operator/mtu-operator/internal/node/netdev"
	"github.com/mtu-operator/mtu-operator/internal/node/netdev/fake"
	"github.com/mtu-operator/mtu-operator/internal/node/probe"
	"github.com/mtu-operator/mtu-operator/internal/testenv"
)

var env *testenv.Env

// TestMain runs the cluster controller as cmd/manager does, on a real API server; each test
// adds its nodes and their agents.
func TestMain(m *testing.M) {
	testenv.SetLogger()
	os.Exit(testenv.Main(m, testenv.Options{}, func(e *testenv.Env) func() {
		env = e
		mgr, err := ctrl.NewManager(e.Config, ctrl.Options{Scheme: e.Scheme, Cache: controllers.CacheOptions(), Client: controllers.ClientOptions(), Metrics: metricsserver.Options{BindAddress: "0"}})
		if err != nil {
			panic(err)
		}
		r := &controllers.NetworkMTUPolicyReconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Recorder: mgr.GetEventRecorder(controllers.FieldManager)}
		if err := r.SetupWithManager(mgr); err != nil {
			panic(err)
		}
		stop := testenv.StartManager(mgr)
		return func() {
			if err := stop(); err != nil {
				fmt.Fprintln(os.Stderr, "manager:", err)
			}
		}
	}))
}

// testNode is a node of the test cluster: a Node object and the fake kernel its agent sees.
type testNode struct {
	name  string
	links *fake.Netdev
	// failProbe makes every probe on this node fail, as a node that loses its peers would.
	failProbe bool
	// pathCarries, when set, is what every path from this node carries when measured.
	pathCarries int
	// fixed: whatever failed is fixed now (a person corrected the switch port).
	fixed atomic.Bool
	// journal, when set, is the agent's journal: its agent starts by recovering from it.
	journal *journal.Journal
}

// newNode builds a node whose underlay eth0 has the given MTU and whose flannel devices are
// at 1450, as flannel leaves them on a 1500 network.
func newNode(name string, underlay int) *testNode {
	links := fake.New(
		netdev.Link{Name: "lo", MTU: 65536, Up: true, Kind: netdev.KindLoopback},
		netdev.Link{Name: "eth0", MTU: underlay, Up: true, Kind: netdev.KindDevice},
		netdev.Link{Name: "flannel.1", MTU: 1450, Up: true, Kind: "vxlan"},
		netdev.Link{Name: "cni0", MTU: 1450, Up: true, Kind: "bridge"},
	)
	eth0, _ := links.Link("eth0")
	links.AddRoute(netdev.Route{Family: mtu.IPv4, LinkIndex: eth0.Index, Dst: mustPrefix("0.0.0.0/0"), Gateway: mustAddr("192.0.2.254")})
	flannel1, _ := links.Link("flannel.1")
	links.AddRoute(netdev.Route{Family: mtu.IPv4, LinkIndex: flannel1.Index, Dst: mustPrefix("10.244.1.0/24"), Gateway: mustAddr("10.244.1.0")})
	return &testNode{name: name, links: links}
}

// nodeAddress is the InternalIP of the cluster's i-th node.
func nodeAddress(i int) string { return fmt.Sprintf("192.0.2.%d", i+1) }

// nodeAddress6 is the cluster's i-th node's IPv6 InternalIP: every test cluster is dual-stack.
func nodeAddress6(i int) string { return fmt.Sprintf("2001:db8::%d", i+1) }

// tunnelAddress is the address of the cluster's i-th node's flannel.1.
func tunnelAddress(i int) string { return fmt.Sprintf("10.244.%d.0", i) }

// vxlanOverhead is what flannel's VXLAN adds to a pod's packet on the wire.
const vxlanOverhead = 50

// switchPorts are the MTUs of the switch ports towards the nodes' addresses that carry less
// than the NICs, as the agents' measurements see them.
var switchPorts sync.Map

// portsCarry is what the switch carries between two nodes' addresses: the smaller of their
// ports, or as much as asked.
func portsCarry(asked int, ends ...string) int {
	for _, end := range ends {
		if port, ok := switchPorts.Load(end); ok {
			asked = min(asked, port.(int))
		}
	}
	return asked
}

// cluster creates the nodes' Node objects and runs one agent per node until the test ends.
func cluster(t *testing.T, probeDelay time.Duration, nodes ...*testNode) {
	t.Helper()
	ctx := context.Background()
	for i, n := range nodes {
		node := &corev1.Node{}
		node.Name = n.name
		node.Labels = map[string]string{"pool": "jumbo"}
		if err := env.Client.Create(ctx, node); err != nil {
			t.Fatal(err)
		}
		node.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: nodeAddress(i)}, {Type: corev1.NodeInternalIP, Address: nodeAddress6(i)}}
		if err := env.Client.Status().Update(ctx, node); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = env.Client.Delete(ctx, node)
			// envtest runs no garbage collector: delete what the Node would take with it.
			state := &mtuv1alpha1.NodeMTUState{}
			state.Name = n.name
			_ = env.Client.Delete(ctx, state)
			eventually(t, "NodeMTUState "+n.name+" gone", func() error {
				err := env.Client.Get(ctx, client.ObjectKeyFromObject(state), state)
				switch {
				case apierrors.IsNotFound(err):
					return nil
				case err != nil:
					return err
				}
				return fmt.Errorf("still there")
			})
		})
	}

	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{Scheme: env.Scheme, Metrics: metricsserver.Options{BindAddress: "0"}, Controller: config.Controller{SkipNameValidation: new(true)}})
	if err != nil {
		t.Fatal(err)
	}
	agentCtx, cancel := context.WithCancel(ctx)
	// Which node's switch port a probe to an address crosses (switchPorts is by IPv4 node
	// address), and whether through the tunnel.
	type end struct {
		port     string
		tunneled bool
	}
	ends := map[string]end{}
	for i, n := range nodes {
		n.links.SetAddresses("flannel.1", netip.MustParseAddr(tunnelAddress(i)))
		ends[nodeAddress(i)], ends[nodeAddress6(i)], ends[tunnelAddress(i)] = end{nodeAddress(i), false}, end{nodeAddress(i), false}, end{nodeAddress(i), true}
	}
	for i, n := range nodes {
		own := nodeAddress(i)
		recovered, err := agent.Recover(ctx, n.links, n.journal)
		if err != nil {
			t.Fatal(err)
		}
		r := &agent.Reconciler{
			Client: mgr.GetClient(), NodeName: n.name, Links: n.links, Pinner: recovered.Pinner, Journal: n.journal, Recorder: mgr.GetEventRecorder(agent.FieldManager),
			Probes: func(mtuv1alpha1.NodeProbe) probe.Prober {
				return probe.Func(func(ctx context.Context) error {
					select {
					case <-time.After(probeDelay):
					case <-ctx.Done():
						return ctx.Err()
					}
					if n.failProbe && !n.fixed.Load() {
						return fmt.Errorf("no reply from 192.0.2.9 to a 9000-byte don't-fragment ping")
					}
					return nil
				})
			},
		}
		r.MeasurePath = func(_ context.Context, peer netip.Addr, expected int) (probe.PathMeasurement, error) {
			carries := expected
			if n.pathCarries != 0 && !n.fixed.Load() {
				carries = min(carries, n.pathCarries)
			}
			to := cmp.Or(ends[peer.String()], end{port: peer.String()})
			if to.tunneled {
				carries = min(carries, portsCarry(carries+vxlanOverhead, own, to.port)-vxlanOverhead)
			} else {
				carries = portsCarry(carries, own, to.port)
			}
			return probe.PathMeasurement{MTU: carries, Exact: true, Probes: 1}, nil
		}
		if err := r.SetupWithManager(mgr, "agent-"+n.name, agent.LinkEvents(agentCtx, n.links)); err != nil {
			t.Fatal(err)
		}
	}
	stop := testenv.StartManager(mgr)
	t.Cleanup(func() {
		cancel()
		if err := stop(); err != nil {
			t.Errorf("agents' manager: %v", err)
		}
	})
}

func flannelFixture(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	ns := &corev1.Namespace{}
	ns.Name = "kube-flannel"
	if err := env.Client.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	cm := &corev1.ConfigMap{Data: map[string]string{"net-conf.json": `{"Network": "10.244.0.0/16", "Backend": {"Type": "vxlan"}}`}}
	cm.Namespace, cm.Name = "kube-flannel", "kube-flannel-cfg"
	ds := &appsv1.DaemonSet{}
	ds.Namespace, ds.Name = "kube-flannel", "kube-flannel-ds"
	ds.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "flannel"}}
	ds.Spec.Template.Labels = map[string]string{"app": "flannel"}
	ds.Spec.Template.Spec.Containers = []corev1.Container{{Name: "flannel", Image: "registry.example/flannel:v1"}}
	for _, o := range []client.Object{cm, ds} {
		if err := env.Client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = env.Client.Delete(ctx, o) })
	}
}

func createPolicy(t *testing.T, p *mtuv1alpha1.NetworkMTUPolicy) {
	t.Helper()
	ctx := context.Background()
	if err := env.Client.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(ctx, p) })
}

func mustPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func mustAddr(s string) netip.Addr     { return netip.MustParseAddr(s) }

func eventually(t *testing.T, what string, check func() error) {
	t.Helper()
	testenv.Eventually(t, what, 45*time.Second, check)
}
