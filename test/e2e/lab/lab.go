// Package lab runs the whole operator on one machine: an embedded API server and etcd, nodes
// made of network namespaces on a shared switch, a CNI install, workloads, the real manager and
// one real agent per node. `make demo` tells its story on it and the end-to-end test asserts
// it. It needs root (network namespaces) and the assets of `make envtest-assets`.
package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/mtu-operator/mtu-operator/controllers"
	"github.com/mtu-operator/mtu-operator/internal/agent"
	"github.com/mtu-operator/mtu-operator/internal/testenv"
)

// Options describe a lab.
type Options struct {
	// CNI to install; default flannel.
	CNI CNI
	// Nodes default to DefaultNodes, Workloads to DefaultWorkloads.
	Nodes     []NodeSpec
	Workloads []Workload
	// Dir is the lab's working directory (kubeconfig, pod namespaces); it must exist.
	Dir string
	// NetnsDir is where node namespaces are mounted, as <NetnsPrefix><node>: /run/netns makes
	// them reachable with `ip netns exec`. Default: Dir/netns.
	NetnsDir, NetnsPrefix string
	// Logs receives the manager's and agents' logs; default: discarded.
	Logs io.Writer
	// Say receives what the lab's stand-ins for kubelet and the ReplicaSet controller do; may
	// be nil.
	Say func(string)
}

// Lab is a running lab. Close it, whatever happens: it removes every namespace, mount and
// process it started.
type Lab struct {
	CNI CNI
	// Client talks to the API server as cluster-admin; it does not cache.
	Client client.Client
	Config *rest.Config
	// Kubeconfig is the path of a kubeconfig for kubectl.
	Kubeconfig string
	Nodes      []*Node

	env     *testenv.Env
	network *network
	cancel  context.CancelFunc
	running sync.WaitGroup
	mu      sync.Mutex
	errs    []error
	dirs    []string
}

// Start builds and starts a lab. On error, what was started is already stopped.
func Start(ctx context.Context, o Options) (_ *Lab, err error) {
	if o.CNI == "" {
		o.CNI = Flannel
	}
	if o.Nodes == nil {
		o.Nodes = DefaultNodes
	}
	if o.Workloads == nil {
		o.Workloads = DefaultWorkloads
	}
	if o.Logs == nil {
		o.Logs = io.Discard
	}
	if o.Say == nil {
		o.Say = func(string) {}
	}
	l := &Lab{CNI: o.CNI}
	if o.NetnsDir == "" {
		o.NetnsDir = filepath.Join(o.Dir, "netns")
		l.dirs = append(l.dirs, o.NetnsDir)
	}
	ctrl.SetLogger(zap.New(zap.WriteTo(o.Logs)))

	defer func() {
		if err != nil {
			err = errors.Join(err, l.Close())
		}
	}()
	if err := l.startControlPlane(o); err != nil {
		return nil, err
	}
	if err := l.buildNodes(ctx, o); err != nil {
		return nil, err
	}

	runCtx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	k := &kubelet{client: l.Client, cni: o.CNI, nodes: l.Nodes, say: o.Say}
	if err := k.createWorkloads(ctx, o.Workloads); err != nil {
		return nil, err
	}
	l.running.Go(func() { k.run(runCtx) })
	replicas := 0
	for _, w := range o.Workloads {
		replicas += int(w.Replicas)
	}
	if err := l.WaitFor(ctx, "the workloads to run", time.Minute, func(ctx context.Context) error { return l.allPodsRunning(ctx, replicas) }); err != nil {
		return nil, err
	}
	if err := l.startOperator(runCtx); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *Lab) startControlPlane(o Options) error {
	var extra []string
	if o.CNI == Calico {
		root, err := testenv.RepoRoot()
		if err != nil {
			return err
		}
		for _, crd := range []string{"felixconfigurations.yaml", "ippools.yaml"} {
			extra = append(extra, filepath.Join(root, "test", "fixtures", "calico-crds", crd))
		}
	}
	env, err := testenv.Start(testenv.Options{ExtraCRDPaths: extra})
	if err != nil {
		return err
	}
	// The lab's own client polls (its kubelet, the story's checks): lift client-go's default
	// 5 requests a second, which would throttle it, not the operator.
	cfg := rest.CopyConfig(env.Config)
	cfg.QPS, cfg.Burst = 200, 400
	c, err := client.New(cfg, client.Options{Scheme: env.Scheme})
	if err != nil {
		return err
	}
	l.env, l.Config, l.Client = env, env.Config, c
	kubeconfig, err := env.AdminKubeconfig("demo-admin")
	if err != nil {
		return err
	}
	l.Kubeconfig = filepath.Join(o.Dir, "kubeconfig")
	return os.WriteFile(l.Kubeconfig, kubeconfig, 0o600)
}

// buildNodes creates the switch, the CNI install, and each node: its namespace and devices,
// and its Node object.
func (l *Lab) buildNodes(ctx context.Context, o Options) error {
	u, err := url.Parse(l.Config.Host)
	if err != nil {
		return err
	}
	if l.network, err = newNetwork(u.Host); err != nil {
		return err
	}
	if err := o.CNI.install(ctx, l.Client); err != nil {
		return err
	}
	if err := os.MkdirAll(o.NetnsDir, 0o755); err != nil {
		return err
	}
	l.dirs = append(l.dirs, filepath.Join(o.Dir, "pods"))
	for i, spec := range o.Nodes {
		n, err := newNode(spec, i+1, o.CNI, filepath.Join(o.NetnsDir, o.NetnsPrefix+spec.Name), filepath.Join(o.Dir, "pods", spec.Name))
		if err != nil {
			return err
		}
		l.Nodes = append(l.Nodes, n)
		if err := n.build(l.network); err != nil {
			return err
		}
		if err := l.createNodeObject(ctx, n); err != nil {
			return err
		}
	}
	return nil
}

func (l *Lab) createNodeObject(ctx context.Context, n *Node) error {
	obj := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: n.Name, Labels: map[string]string{
			"kubernetes.io/hostname": n.Name, "kubernetes.io/os": "linux", "node-role.kubernetes.io/worker": "",
		}},
		Spec: corev1.NodeSpec{PodCIDR: n.PodCIDR, PodCIDRs: []string{n.PodCIDR}},
	}
	if err := l.Client.Create(ctx, obj); err != nil {
		return fmt.Errorf("creating Node %s: %w", n.Name, err)
	}
	obj.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: n.Address}, {Type: corev1.NodeHostName, Address: n.Name}}
	obj.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now()}}
	if err := l.Client.Status().Update(ctx, obj); err != nil {
		return fmt.Errorf("reporting Node %s: %w", n.Name, err)
	}
	return nil
}

// startOperator runs the manager and one agent per node, each agent on its node's namespace.
func (l *Lab) startOperator(ctx context.Context) error {
	opts := controllers.ManagerOptions(l.env.Scheme)
	opts.Metrics = metricsserver.Options{BindAddress: "0"}
	// One manager per lab, but a test may run several labs in one process.
	opts.Controller.SkipNameValidation = new(true)
	mgr, err := ctrl.NewManager(l.Config, opts)
	if err != nil {
		return err
	}
	if err := controllers.Register(mgr); err != nil {
		return err
	}
	l.goRecord("manager", func() error { return mgr.Start(ctx) })
	for _, n := range l.Nodes {
		o := agent.Options{
			NodeName: n.Name, NetnsPath: n.NetnsFile, PodNetnsDir: n.PodNetnsDir,
			MetricsAddr: "0", ProbeAddr: "0", APIServerProbeAddress: l.network.apiServerAddress(),
		}
		l.goRecord("agent on "+n.Name, func() error { return agent.Run(ctx, l.Config, o) })
	}
	return nil
}

// goRecord runs fn until the lab closes and keeps its error for Close.
func (l *Lab) goRecord(what string, fn func() error) {
	l.running.Go(func() {
		if err := fn(); err != nil {
			l.mu.Lock()
			l.errs = append(l.errs, fmt.Errorf("%s: %w", what, err))
			l.mu.Unlock()
		}
	})
}

// Close stops the operator and the kubelet, removes the nodes, pods and switch, and stops the
// API server. It returns what went wrong while running, too.
func (l *Lab) Close() error {
	if l.cancel != nil {
		l.cancel()
	}
	l.running.Wait()
	l.mu.Lock()
	errs := append([]error(nil), l.errs...)
	l.mu.Unlock()
	for _, n := range l.Nodes {
		errs = append(errs, n.close())
	}
	if l.network != nil {
		errs = append(errs, l.network.close())
	}
	for _, d := range l.dirs {
		errs = append(errs, removeAll(d))
	}
	if l.env != nil {
		errs = append(errs, l.env.Stop())
	}
	if l.Kubeconfig != "" {
		errs = append(errs, os.Remove(l.Kubeconfig))
	}
	return errors.Join(errs...)
}

// WaitFor polls check until it succeeds, ctx ends or timeout passes; the error names what and
// the last reason.
func (l *Lab) WaitFor(ctx context.Context, what string, timeout time.Duration, check func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	var last error
	for {
		err := check(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() == nil {
			last = err // not the deadline cutting a check short
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w (last: %w)", what, ctx.Err(), last)
		case <-t.C:
		}
	}
}

func (l *Lab) allPodsRunning(ctx context.Context, want int) error {
	pods, err := l.Pods(ctx)
	if err != nil {
		return err
	}
	if len(pods) != want {
		return fmt.Errorf("%d of %d pods", len(pods), want)
	}
	for _, p := range pods {
		if p.Status.PodIP == "" || p.DeletionTimestamp != nil {
			return fmt.Errorf("pod %s/%s is not running", p.Namespace, p.Name)
		}
	}
	return nil
}

// Pods lists the pods of the lab's nodes.
func (l *Lab) Pods(ctx context.Context) ([]corev1.Pod, error) {
	var list corev1.PodList
	if err := l.Client.List(ctx, &list); err != nil {
		return nil, err
	}
	return list.Items, nil
}

// Node returns the named node.
func (l *Lab) Node(name string) *Node { return nodeNamed(l.Nodes, name) }

func nodeNamed(nodes []*Node, name string) *Node {
	for _, n := range nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// PodMTUs returns the MTU of eth0 in each running pod's namespace, by namespace/name.
func (l *Lab) PodMTUs(ctx context.Context) (map[string]int, error) {
	pods, err := l.Pods(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	for _, p := range pods {
		n := l.Node(p.Spec.NodeName)
		if n == nil || p.DeletionTimestamp != nil || p.Status.PodIP == "" {
			continue
		}
		m, err := n.PodMTU(p.UID)
		if err != nil {
			return nil, fmt.Errorf("%s/%s: %w", p.Namespace, p.Name, err)
		}
		out[types.NamespacedName{Namespace: p.Namespace, Name: p.Name}.String()] = m
	}
	return out, nil
}
