// Package scale measures a whole-cluster rollout at scale: the real manager, as its own
// process, against a real API server with N Nodes and N simulated agents (internal/agent's
// Simulated, which follows the NodeMTUState contract and holds one field-selector watch per
// node, as each real agent does). The floors, measured in the same run, are the same API
// server taking writes from 16 concurrent writers: the (N creates and N status writes
// of the smallest objects), the same with the rollout's objects, and the protocol's own
// writes (2 + 2 per node) without its waits, with and without the agents' watches open.
//
// `make test` runs it with 50 nodes as a smoke check; `make bench-scale` with 1,000 and 5,000
// (SCALE_NODES, SCALE_MAX_UNAVAILABLE: comma-separated lists) and prints the table.
package scale

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mtuv1alpha1 "github.com/mtu-operator/mtu-operator/api/v1alpha1"
	"github.com/mtu-operator/mtu-operator/controllers"
	"github.com/mtu-operator/mtu-operator/internal/agent"
	"github.com/mtu-operator/mtu-operator/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	testenv.SetLogger()
	os.Exit(testenv.Main(m, testenv.Options{}, func(e *testenv.Env) func() {
		env = e
		return nil
	}))
}

// writers is the floor's concurrency, and the test's own when it sets the cluster up.
const writers = 16

// agentsPerConnection: simulated agents share client connections this many at a time; each
// holds two watches (its NodeMTUState, the policies), and the API server's HTTP/2 stream
// limit is 250 per connection.
const agentsPerConnection = 100

// result is one rollout's row of the table.
type result struct {
	nodes          int
	maxUnavailable string
	ready, floor   time.Duration
	// floorWatched is floorOfProtocol again, with the N agents' watches open: what the
	// rollout's writes cost the API server as it runs them, waits aside.
	floorWatched time.Duration
	// floorOfObjects is the floor with the rollout's own objects: each state created with a
	// node's turn spec, and its status as an agent reports the committed turn.
	floorOfObjects time.Duration
	// floorOfProtocol is the protocol's own writes without its waits: each state created as a
	// rollout creates it, reported on, given its turn, reported on again (2 + 2 writes).
	floorOfProtocol time.Duration
	peakRSS         int64
	cpu             time.Duration
	managerWrites   float64 // per node: writes to NodeMTUState specs (create, patch)
	agentWrites     float64 // per node: writes to NodeMTUState status
	policyWrites    float64 // in all: the policy's status
	reconciles      float64
	reconcileTime   time.Duration
	requests        requests
	watchRSS        int64 // the API server's resident memory grown by N idle watches
	apiServerCPU    time.Duration
	agentsCPU       time.Duration // the test process: N simulated agents and the test's polling
	idleRequests    float64
	resync          requests // one reconcile of the settled policy
	resyncTime      time.Duration
}

func TestRollout(t *testing.T) {
	sizes := intList(t, envOr("SCALE_NODES", "50"))
	variants := strings.Split(envOr("SCALE_MAX_UNAVAILABLE", "10%,10"), ",")
	manager := buildManager(t)
	var results []result
	for _, n := range sizes {
		for _, mu := range variants {
			t.Run(fmt.Sprintf("nodes=%d,maxUnavailable=%s", n, mu), func(t *testing.T) {
				results = append(results, rollout(t, manager, n, mu))
			})
		}
	}
	t.Log("\n" + table(results))
	for _, r := range results {
		// The protocol's bounds on writes are exact counts, not timings: they hold on any
		// machine. A raise of the overlay costs each node its state's creation and its turn;
		// the agent reports on each; the pins are released by the policy's transition, one write
		// for the cluster (docs/design/scale.md).
		const budget = 2
		if r.managerWrites > budget || r.agentWrites > budget {
			t.Errorf("%d nodes, maxUnavailable %s: %.2f manager and %.2f agent writes per node; the protocol allows %d each", r.nodes, r.maxUnavailable, r.managerWrites, r.agentWrites, budget)
		}
	}
}

func table(results []result) string {
	var b strings.Builder
	fmt.Fprintln(&b, "| N | maxUnavailable | time to Ready | floor | ratio | floor with the rollout's objects | ratio to it | floor, the protocol's writes | ratio to it | same, N watches open | ratio to it | manager peak RSS | manager CPU | manager writes/node | agent writes/node | policy status writes | reconciles | reconcile time | API server CPU | agents' CPU | API server RSS for N watches | requests while settled (3 s) | one resync |")
	fmt.Fprintln(&b, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range results {
		fmt.Fprintf(&b, "| %d | %s | %.1f s | %.1f s | %.2f× | %.1f s | %.2f× | %.1f s | %.2f× | %.1f s | %.2f× | %d MiB | %.1f s | %.2f | %.2f | %.0f | %.0f | %.1f s | %.1f s | %.1f s | %d MiB | %.0f | %.0f requests, %d ms |\n",
			r.nodes, r.maxUnavailable, r.ready.Seconds(), r.floor.Seconds(), r.ready.Seconds()/r.floor.Seconds(),
			r.floorOfObjects.Seconds(), r.ready.Seconds()/r.floorOfObjects.Seconds(),
			r.floorOfProtocol.Seconds(), r.ready.Seconds()/r.floorOfProtocol.Seconds(), r.floorWatched.Seconds(), r.ready.Seconds()/r.floorWatched.Seconds(), r.peakRSS>>20, r.cpu.Seconds(),
			r.managerWrites, r.agentWrites, r.policyWrites, r.reconciles, r.reconcileTime.Seconds(), r.apiServerCPU.Seconds(), r.agentsCPU.Seconds(), r.watchRSS>>20, r.idleRequests,
			r.resync.sum(func(string, string) bool { return true }), r.resyncTime.Milliseconds())
	}
	fmt.Fprintln(&b, "\nRequests per node during the rollout, by verb (API server metrics):")
	for _, r := range results {
		fmt.Fprintf(&b, "- %d nodes, %s: %s\n", r.nodes, r.maxUnavailable, r.requests.top(12, r.nodes))
	}
	return b.String()
}

// rollout creates n Nodes, measures the floor, starts n simulated agents and the manager, and
// times a policy from creation to Ready.
func rollout(t *testing.T, managerBinary string, n int, maxUnavailable string) result {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	res := result{nodes: n, maxUnavailable: maxUnavailable}
	label := fmt.Sprintf("n%d-%s", n, strings.TrimSuffix(maxUnavailable, "%"))
	nodeNames := make([]string, n)
	for i := range nodeNames {
		nodeNames[i] = fmt.Sprintf("%s-node-%05d", label, i)
	}
	t.Cleanup(func() { cleanUp(t, label) })
	if err := parallel(ctx, n, func(ctx context.Context, i int) error {
		node := &corev1.Node{}
		node.Name, node.Labels = nodeNames[i], map[string]string{"scale": label}
		return env.Client.Create(ctx, node)
	}); err != nil {
		t.Fatalf("creating nodes: %v", err)
	}
	var err error
	if res.floor, err = floor(ctx, label, n); err != nil {
		t.Fatalf("measuring the floor: %v", err)
	}
	if res.floorOfObjects, err = floorOfObjects(ctx, label, n); err != nil {
		t.Fatalf("measuring the floor with the rollout's objects: %v", err)
	}
	if res.floorOfProtocol, err = floorOfProtocol(ctx, label, n); err != nil {
		t.Fatalf("measuring the floor of the protocol's writes: %v", err)
	}
	flannelWorld(t)

	apiserver, err := env.APIServerPID()
	if err != nil {
		t.Fatal(err)
	}
	idle, err := usageOf(apiserver)
	if err != nil {
		t.Fatal(err)
	}
	var agents sync.WaitGroup
	defer agents.Wait()
	defer cancel()
	var watchClient client.WithWatch
	for i, name := range nodeNames {
		if i%agentsPerConnection == 0 {
			if watchClient, err = ownConnection(env.Config); err != nil {
				t.Fatal(err)
			}
		}
		a := &agent.Simulated{Client: watchClient, Node: name, Underlay: 9000, Address: fmt.Sprintf("10.%d.%d.%d", i>>16, (i>>8)&255, i&255),
			Devices: map[string]int32{"flannel.1": 1450, "cni0": 1450}}
		agents.Go(func() { _ = a.Watch(ctx, watchClient) })
	}
	testenv.Eventually(t, fmt.Sprintf("%d agents watching", n), 5*time.Minute, func() error {
		w, err := watchers(ctx, env.Config)
		if err != nil {
			return err
		}
		if w < n {
			return fmt.Errorf("%d of %d watches open", w, n)
		}
		return nil
	})
	watched, err := usageOf(apiserver)
	if err != nil {
		t.Fatal(err)
	}
	res.watchRSS = watched.rss - idle.rss
	// The protocol's writes again, with the agents' watches open: what they cost the API
	// server with N watchers to hold and to match each event against (by name, an index).
	if res.floorWatched, err = floorOfProtocol(ctx, label+"-watched", n); err != nil {
		t.Fatalf("measuring the floor with watches open: %v", err)
	}

	metricsAddr := freeAddress(t)
	mgr := startManager(t, managerBinary, metricsAddr)
	before := measure(t, apiserver)

	policy := &mtuv1alpha1.NetworkMTUPolicy{}
	policy.Name = label
	mtu := int32(9000)
	policy.Spec.Underlay.MTU = &mtu
	policy.Spec.Encapsulation.Type = mtuv1alpha1.EncapsulationVXLAN
	mu := intstr.Parse(maxUnavailable)
	policy.Spec.Rollout.MaxUnavailable = &mu
	start := time.Now()
	if err := env.Client.Create(ctx, policy); err != nil {
		t.Fatal(err)
	}
	if path := os.Getenv("SCALE_APISERVER_PROFILE"); path != "" {
		// Where the API server's CPU goes while the rollout runs: `go tool pprof -top $path`.
		go profileAPIServer(ctx, path, 15*time.Second)
	}
	defer removePolicy(t, label)
	last := ""
	testenv.Eventually(t, "the policy Ready", 60*time.Minute, func() error {
		time.Sleep(200 * time.Millisecond) // polling is the test's own load on the API server
		got := &mtuv1alpha1.NetworkMTUPolicy{}
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(policy), got); err != nil {
			return err
		}
		c := meta.FindStatusCondition(got.Status.Conditions, "Ready")
		if c == nil || c.Status != metav1.ConditionTrue || c.ObservedGeneration != got.Generation {
			if s := meta.FindStatusCondition(got.Status.Conditions, "Stalled"); s != nil && s.Status == metav1.ConditionTrue {
				t.Fatalf("Stalled: %s", s.Message)
			}
			if nc := meta.FindStatusCondition(got.Status.Conditions, mtuv1alpha1.ConditionNodesConverged); nc != nil && nc.Message != last && testing.Verbose() {
				last = nc.Message
				t.Logf("%5.1fs %s", time.Since(start).Seconds(), truncate(last, 160))
			}
			return errors.New("not Ready yet")
		}
		return nil
	})
	res.ready = time.Since(start)
	after := measure(t, apiserver)
	res.apiServerCPU, res.agentsCPU = after.apiServer.cpu-before.apiServer.cpu, after.self.cpu-before.self.cpu
	res.requests = after.requests.since(before.requests)
	res.managerWrites = res.requests.sum(func(verb, resource string) bool { return isWrite(verb) && resource == "nodemtustates" }) / float64(n)
	res.agentWrites = res.requests.sum(func(verb, resource string) bool { return isWrite(verb) && resource == "nodemtustates/status" }) / float64(n)
	res.policyWrites = res.requests.sum(func(verb, resource string) bool {
		return isWrite(verb) && strings.HasPrefix(resource, "networkmtupolicies")
	})
	families, err := managerMetrics(ctx, metricsAddr)
	if err != nil {
		t.Fatal(err)
	}
	res.reconciles, res.reconcileTime = reconciles(families)

	// The rollout's last reconciles (the release of the pins, the last status) may end after
	// Ready; then nothing happens until something changes or the periodic resync comes.
	time.Sleep(2 * time.Second)
	settled, err := apiRequests(ctx, env.Config)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	quiet, err := apiRequests(ctx, env.Config)
	if err != nil {
		t.Fatal(err)
	}
	settledRequests := quiet.since(settled)
	if res.idleRequests = settledRequests.sum(operatorRequest); res.idleRequests > 0 {
		t.Logf("requests while settled: %s", settledRequests.only(operatorRequest).top(6, 1))
	}
	res.resync, res.resyncTime = resync(t, ctx, metricsAddr, nodeNames[0], quiet)

	u, err := mgr.stop()
	if err != nil {
		t.Fatal(err)
	}
	res.peakRSS, res.cpu = u.peakRSS, u.cpu
	return res
}

// point is what the API server and this process (the agents) have used so far.
type point struct {
	requests        requests
	apiServer, self usage
}

func measure(t *testing.T, apiserver int) point {
	t.Helper()
	var p point
	var err error
	if p.requests, err = apiRequests(t.Context(), env.Config); err != nil {
		t.Fatal(err)
	}
	if p.apiServer, err = usageOf(apiserver); err != nil {
		t.Fatal(err)
	}
	if p.self, err = usageOf(os.Getpid()); err != nil {
		t.Fatal(err)
	}
	return p
}

// resync measures one reconcile of the settled policy, as the periodic resync runs it: a
// node's label change enqueues it at once.
func resync(t *testing.T, ctx context.Context, metricsAddr, node string, before requests) (requests, time.Duration) {
	t.Helper()
	families, err := managerMetrics(ctx, metricsAddr)
	if err != nil {
		t.Fatal(err)
	}
	count, took := reconciles(families)
	patch := client.RawPatch("application/merge-patch+json", []byte(`{"metadata":{"labels":{"scale-resync":"1"}}}`))
	n := &corev1.Node{}
	n.Name = node
	if err := env.Client.Patch(ctx, n, patch); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, "one more reconcile", time.Minute, func() error {
		families, err = managerMetrics(ctx, metricsAddr)
		if err != nil {
			return err
		}
		if c, _ := reconciles(families); c <= count {
			return errors.New("not yet")
		}
		return nil
	})
	_, tookAfter := reconciles(families)
	after, err := apiRequests(ctx, env.Config)
	if err != nil {
		t.Fatal(err)
	}
	// The label patch is the test's own request.
	got := after.since(before)
	got["PATCH nodes"]--
	return got, tookAfter - took
}

// operatorRequest: a request the operator or its agents make, not the API server's own
// housekeeping (its leases, the kubernetes Service's endpoints, discovery), nor a watch.
func operatorRequest(verb, resource string) bool {
	switch {
	case verb == "WATCH", strings.HasPrefix(resource, "/"):
		return false
	case resource == "leases", resource == "endpoints", resource == "endpointslices":
		return false
	}
	return true
}

// floor times n creates and n status writes of NodeMTUStates by 16 concurrent writers: what the
// API server itself needs for the least a rollout must write.
func floor(ctx context.Context, label string, n int) (time.Duration, error) {
	return timeWrites(ctx, label, n, func(ctx context.Context, i int, s *mtuv1alpha1.NodeMTUState) error {
		s.Name = fmt.Sprintf("%s-floor-%05d", label, i)
		s.Spec = mtuv1alpha1.NodeMTUStateSpec{Policy: "floor", Phase: mtuv1alpha1.PhaseObserve}
		if err := env.Client.Create(ctx, s); err != nil {
			return err
		}
		base := s.DeepCopy()
		s.Status.UnderlayMTU, s.Status.ObservedGeneration = 9000, s.Generation
		return env.Client.Status().Patch(ctx, s, client.MergeFrom(base))
	})
}

// floorOfObjects is floor with the objects a rollout writes: each state created with a turn's
// spec as the manager writes it, and its status patched with what an agent reports after
// committing that turn (the simulated agent's own report). It shows how much of the rollout's
// cost is the size of its objects (statuses, specs and their managedFields), not its writes.
func floorOfObjects(ctx context.Context, label string, n int) (time.Duration, error) {
	return timeWrites(ctx, label, n, func(ctx context.Context, i int, s *mtuv1alpha1.NodeMTUState) error {
		s.Name = fmt.Sprintf("%s-objects-%05d", label, i)
		s.Spec = turnSpec(label)
		if err := env.Client.Create(ctx, s, client.FieldOwner(controllers.FieldManager)); err != nil {
			return err
		}
		return floorAgent(i, s.Name).Act(ctx, s)
	})
}

// floorOfProtocol is what the API server needs for the writes of a rollout, made as fast as
// 16 writers can, without its waits: each state created with the interfaces to report, the
// agent's report, the node's turn, the agent's report of it (docs/design/scale.md, "Write
// budget per node"). What a rollout takes beyond it is the price of its order (a wave starts
// when the previous one reported, a turn only once every node reported) and of its watches.
func floorOfProtocol(ctx context.Context, label string, n int) (time.Duration, error) {
	return timeWrites(ctx, label, n, func(ctx context.Context, i int, s *mtuv1alpha1.NodeMTUState) error {
		s.Name = fmt.Sprintf("%s-protocol-%05d", label, i)
		s.Spec = turnSpec(label)
		s.Spec.Phase, s.Spec.RouteMTU, s.Spec.Probe.Peers = mtuv1alpha1.PhaseObserve, nil, nil
		if err := env.Client.Create(ctx, s, client.FieldOwner(controllers.FieldManager)); err != nil {
			return err
		}
		a := floorAgent(i, s.Name)
		if err := a.Act(ctx, s); err != nil {
			return err
		}
		base := s.DeepCopy()
		s.Spec = turnSpec(label)
		if err := env.Client.Patch(ctx, s, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{}), client.FieldOwner(controllers.FieldManager)); err != nil {
			return err
		}
		return a.Act(ctx, s)
	})
}

// turnSpec is a node's spec in its turn of a raise of the overlay to 8950, as the manager
// writes it.
func turnSpec(policy string) mtuv1alpha1.NodeMTUStateSpec {
	pin := int32(1450)
	return mtuv1alpha1.NodeMTUStateSpec{
		Policy: policy, Phase: mtuv1alpha1.PhaseConverge, PolicyGeneration: 1,
		UnderlayInterfacePattern: mtuv1alpha1.DefaultInterfacePattern, PodMTU: 8950, PodAction: mtuv1alpha1.StalePodReport,
		Interfaces: []mtuv1alpha1.ManagedInterface{{Name: "flannel.1", Role: mtuv1alpha1.RoleTunnel, MTU: 8950}, {Name: "cni0", Role: mtuv1alpha1.RoleBridge, MTU: 8950}},
		RouteMTU:   &pin,
		Probe: mtuv1alpha1.NodeProbe{TimeoutSeconds: 10, Peers: []mtuv1alpha1.ProbePeer{
			{Address: "10.0.0.1", Size: 9000}, {Address: "10.0.0.2", Size: 9000}, {Address: "10.0.0.3", Size: 9000}}},
	}
}

// floorAgent is the i-th simulated agent of a floor, reporting on the state named node.
func floorAgent(i int, node string) *agent.Simulated {
	return &agent.Simulated{Client: env.Client, Node: node, Underlay: 9000, Address: fmt.Sprintf("10.1.%d.%d", (i>>8)&255, i&255),
		Devices: map[string]int32{"flannel.1": 1450, "cni0": 1450}}
}

// timeWrites times write for 0..n-1 on 16 workers, each given a state labeled for this floor,
// and deletes the states it wrote.
func timeWrites(ctx context.Context, label string, n int, write func(context.Context, int, *mtuv1alpha1.NodeMTUState) error) (time.Duration, error) {
	start := time.Now()
	err := parallel(ctx, n, func(ctx context.Context, i int) error {
		s := &mtuv1alpha1.NodeMTUState{}
		s.Labels = map[string]string{"scale-floor": label}
		return write(ctx, i, s)
	})
	took := time.Since(start)
	if err != nil {
		return 0, err
	}
	return took, env.Client.DeleteAllOf(ctx, &mtuv1alpha1.NodeMTUState{}, client.MatchingLabels{"scale-floor": label})
}

// parallel runs do for 0..n-1 on 16 workers.
func parallel(ctx context.Context, n int, do func(context.Context, int) error) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(writers)
	for i := range n {
		g.Go(func() error { return do(ctx, i) })
	}
	return g.Wait()
}

// flannelWorld is flannel's ConfigMap and DaemonSet as installed, at the default MTU.
func flannelWorld(t *testing.T) {
	t.Helper()
	ctx := t.Context()
	ns := &corev1.Namespace{}
	ns.Name = "kube-flannel"
	if err := env.Client.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	cm := &corev1.ConfigMap{}
	cm.Namespace, cm.Name = "kube-flannel", "kube-flannel-cfg"
	cm.Data = map[string]string{
		"net-conf.json": `{"Network": "10.244.0.0/16", "Backend": {"Type": "vxlan"}}`,
		"cni-conf.json": `{"name": "cbr0", "cniVersion": "0.3.1", "plugins": [{"type": "flannel", "delegate": {"hairpinMode": true, "isDefaultGateway": true}}]}`,
	}
	err := env.Client.Create(ctx, cm)
	if apierrors.IsAlreadyExists(err) {
		// An earlier rollout's values and its record of the originals: back to as installed.
		_ = env.Client.Delete(ctx, cm)
		err = env.Client.Create(ctx, cm)
	}
	if err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{"app": "flannel"}
	ds := &appsv1.DaemonSet{}
	ds.Namespace, ds.Name = "kube-flannel", "kube-flannel-ds"
	ds.Spec.Selector = &metav1.LabelSelector{MatchLabels: labels}
	ds.Spec.Template.Labels = labels
	ds.Spec.Template.Spec.Containers = []corev1.Container{{Name: "kube-flannel", Image: "registry.example/flannel:v0.28.10"}}
	if err := env.Client.Create(ctx, ds); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

// ownConnection is a client with connections of its own: client-go shares one transport
// between clients of one config unless the config asks for a custom dialer.
func ownConnection(cfg *rest.Config) (client.WithWatch, error) {
	c := rest.CopyConfig(cfg)
	dialer := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	c.Dial = dialer.DialContext
	c.QPS, c.Burst = -1, 0 // each real agent has its own rate limit; a shared one would throttle them all
	return client.NewWithWatch(c, client.Options{Scheme: env.Scheme})
}

// managerProcess is the manager binary running against the test's API server.
type managerProcess struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when it has exited
}

func buildManager(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "manager")
	build := exec.CommandContext(t.Context(), "go", "build", "-o", out, "github.com/mtu-operator/mtu-operator/cmd/manager")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the manager: %v\n%s", err, b)
	}
	return out
}

func startManager(t *testing.T, binary, metricsAddr string) *managerProcess {
	t.Helper()
	kubeconfig, err := env.AdminKubeconfig("scale-manager")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, kubeconfig, 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"--kubeconfig", path, "--metrics-bind-address", metricsAddr, "--metrics-secure=false", "--health-probe-bind-address=0"}
	logPath := filepath.Join(t.TempDir(), "manager.log")
	if p := os.Getenv("SCALE_MANAGER_LOG"); p != "" {
		logPath = p // kept after the test, to read the manager's own account of a rollout
		args = append(args, "--zap-log-level=debug")
	}
	logs, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	if addr := os.Getenv("SCALE_PPROF"); addr != "" {
		// `go tool pprof http://$SCALE_PPROF/debug/pprof/profile` while a rollout runs.
		args = append(args, "--pprof-bind-address", addr)
	}
	cmd := exec.Command(binary, args...)
	cmd.Stdout, cmd.Stderr = logs, logs
	// The manager dies with the test binary, whatever ends it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	m := &managerProcess{cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(m.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-m.done
		if t.Failed() {
			b, _ := os.ReadFile(logs.Name())
			t.Logf("manager log (last 4 KiB):\n%s", b[max(0, len(b)-4096):])
		}
		_ = logs.Close()
	})
	testenv.Eventually(t, "the manager serving metrics", time.Minute, func() error {
		_, err := managerMetrics(t.Context(), metricsAddr)
		return err
	})
	return m
}

// stop reads what the manager used, then stops it.
func (m *managerProcess) stop() (usage, error) {
	u, err := usageOf(m.cmd.Process.Pid)
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.done:
	case <-time.After(30 * time.Second):
		_ = m.cmd.Process.Kill()
	}
	return u, err
}

// removePolicy lets the policy go without its manager: the finalizer is the manager's.
func removePolicy(t *testing.T, name string) {
	ctx := context.Background()
	p := &mtuv1alpha1.NetworkMTUPolicy{}
	if err := env.Client.Get(ctx, client.ObjectKey{Name: name}, p); err != nil {
		return
	}
	base := p.DeepCopy()
	p.Finalizers = nil
	if err := env.Client.Patch(ctx, p, client.MergeFrom(base)); err != nil {
		t.Errorf("removing the finalizer: %v", err)
	}
	if err := client.IgnoreNotFound(env.Client.Delete(ctx, p)); err != nil {
		t.Errorf("deleting the policy: %v", err)
	}
	// Owned by the policy, it would go with it where a garbage collector runs.
	if err := client.IgnoreNotFound(env.Client.Delete(ctx, &mtuv1alpha1.NetworkMTUTransition{ObjectMeta: metav1.ObjectMeta{Name: name}})); err != nil {
		t.Errorf("deleting the policy's transition: %v", err)
	}
}

// cleanUp removes the rollout's nodes and their states (envtest has no garbage collector).
func cleanUp(t *testing.T, label string) {
	ctx := context.Background()
	if err := env.Client.DeleteAllOf(ctx, &corev1.Node{}, client.MatchingLabels{"scale": label}); err != nil {
		t.Errorf("deleting nodes: %v", err)
	}
	if err := env.Client.DeleteAllOf(ctx, &mtuv1alpha1.NodeMTUState{}); err != nil {
		t.Errorf("deleting node states: %v", err)
	}
}

func freeAddress(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().String()
}

func envOr(key, fallback string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return fallback
}

func intList(t *testing.T, s string) []int {
	t.Helper()
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 2 {
			t.Fatalf("SCALE_NODES: %q is not a node count of at least 2", f)
		}
		out = append(out, n)
	}
	return out
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
