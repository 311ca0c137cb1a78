// Package lab runs the whole operator on one machine: an embedded API server and etcd, nodes
// made of network namespaces on a shared switch, a CNI install, workloads, the real manager and
// the real agent binary on every node. With flannel, every node runs the real flanneld and pods
// get their interfaces from the real CNI plugins; Calico and Antrea, whose daemons cannot run
// here, are played by stand-ins that follow their documented behaviour. `make demo` tells its
// story on it and the end-to-end test asserts it. It needs root (network namespaces) and the
// assets of `make envtest-assets flannel-assets`.
//
// Whatever happens to the process that runs it, even SIGKILL, the lab's processes, mounts and
// directories go with it: a reaper process (see package reaper) removes them. Binaries that
// start a lab call reaper.Serve first thing.
package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/mtu-operator/mtu-operator/controllers"
	"github.com/mtu-operator/mtu-operator/internal/testenv"
	"github.com/mtu-operator/mtu-operator/test/e2e/lab/reaper"
	"github.com/mtu-operator/mtu-operator/test/e2e/lab/traffic"
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
	// Logs receives the manager's and the CNI plugins' logs; default: discarded. The node
	// programs write theirs in Lab.LogDir.
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
	// LogDir holds the logs of the node programs (flanneld, the agents), one file each. The
	// lab leaves it when it closes.
	LogDir          string
	adminKubeconfig []byte
	Nodes           []*Node
	// workloads are the ReplicaSets whose pods Pods lists.
	workloads []*appsv1.ReplicaSet

	env    *testenv.Env
	reaper *reaper.Reaper
	logs   io.Writer
	// agentBinary is the agent the nodes run.
	agentBinary string
	network     *network
	cancel      context.CancelFunc
	// runCtx ends when the lab closes; stopManager stops the running manager.
	runCtx      context.Context
	stopManager func()
	// stopAPIServer stops an API server the lab restarted (envtest stops only its own).
	stopAPIServer func() error
	running       sync.WaitGroup
	mu            sync.Mutex
	errs          []error
	dirs          []string
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
	l := &Lab{CNI: o.CNI, LogDir: filepath.Join(o.Dir, "logs")}
	if o.NetnsDir == "" {
		o.NetnsDir = filepath.Join(o.Dir, "netns")
		l.dirs = append(l.dirs, o.NetnsDir)
	}
	l.logs = &syncWriter{w: o.Logs}
	ctrl.SetLogger(zap.New(zap.WriteTo(l.logs)))

	if l.reaper, err = reaper.Start(); err != nil {
		return nil, fmt.Errorf("starting the lab's reaper: %w", err)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, l.Close())
		}
	}()
	l.dirs = append(l.dirs, filepath.Join(o.Dir, "pods"), filepath.Join(o.Dir, "nodes"), filepath.Join(o.Dir, "bin"))
	for _, d := range append(l.dirs, filepath.Join(o.Dir, "kubeconfig")) {
		if err := l.reaper.Dir(d); err != nil {
			return nil, err
		}
	}
	if l.agentBinary, err = buildAgent(filepath.Join(o.Dir, "bin")); err != nil {
		return nil, err
	}
	if err := l.startControlPlane(o); err != nil {
		return nil, err
	}
	if err := l.buildNodes(ctx, o); err != nil {
		return nil, err
	}
	for _, n := range l.Nodes {
		if o.CNI == Flannel {
			err = n.startFlanneld(ctx, l.Client)
		} else {
			err = n.wireStandIn(l.Nodes)
		}
		if err != nil {
			return nil, err
		}
	}

	runCtx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	k := &kubelet{client: l.Client, cni: o.CNI, nodes: l.Nodes, say: o.Say, agentRestarts: map[string]string{}}
	if err := k.reportCNIAgents(ctx); err != nil {
		return nil, err
	}
	if err := k.createWorkloads(ctx, o.Workloads); err != nil {
		return nil, err
	}
	l.workloads = k.workloads
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
	l.env = env
	// envtest does not say which processes it started: its children, so far, are etcd and
	// the API server.
	if err := l.reaper.Children(); err != nil {
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
	l.adminKubeconfig = kubeconfig
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
	flannelAssets, err := flannelAssetsFor(o.CNI)
	if err != nil {
		return err
	}
	kubeconfig, err := nodeKubeconfig(l.adminKubeconfig, "https://"+l.network.apiServerAddress())
	if err != nil {
		return err
	}
	for i, spec := range o.Nodes {
		files := nodeFiles{
			netns: filepath.Join(o.NetnsDir, o.NetnsPrefix+spec.Name),
			pods:  filepath.Join(o.Dir, "pods", spec.Name),
			logs:  l.LogDir,
			dir:   filepath.Join(o.Dir, "nodes", spec.Name),
		}
		if err := l.reaper.Mount(files.netns); err != nil {
			return err
		}
		n, err := newNode(spec, i+1, o.CNI, files, l.logs, l.track)
		if err != nil {
			return err
		}
		n.flannel.assets = flannelAssets
		l.Nodes = append(l.Nodes, n)
		if err := n.build(l.network); err != nil {
			return err
		}
		if err := os.WriteFile(n.kubeconfig, kubeconfig, 0o600); err != nil {
			return err
		}
		if err := l.createNodeObject(ctx, n); err != nil {
			return err
		}
	}
	return nil
}

// track hands a process the lab started to its reaper, which kills it if the lab dies first.
func (l *Lab) track(p *process) error { return l.reaper.Process(p.pid()) }

func (l *Lab) createNodeObject(ctx context.Context, n *Node) error {
	obj := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name: n.Name,
			Labels: map[string]string{
				"kubernetes.io/hostname": n.Name, "kubernetes.io/os": "linux", "node-role.kubernetes.io/worker": "",
			},
			// What a kubelet sets; flanneld assumes a Node has annotations.
			Annotations: map[string]string{"node.alpha.kubernetes.io/ttl": "0"},
		},
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

// startOperator runs the manager, in this process, and the agent binary on every node.
func (l *Lab) startOperator(ctx context.Context) error {
	l.runCtx = ctx
	if err := l.StartManager(); err != nil {
		return err
	}
	for _, n := range l.Nodes {
		if err := n.startAgent(l.agentBinary); err != nil {
			return err
		}
	}
	return nil
}

// StartManager starts a new manager, in this process, with nothing in memory: what it knows it
// reads from the API server.
func (l *Lab) StartManager() error {
	opts := controllers.ManagerOptions(l.env.Scheme)
	opts.Metrics = metricsserver.Options{BindAddress: "0"}
	// One manager at a time per lab, but a test may run several labs in one process.
	opts.Controller.SkipNameValidation = new(true)
	mgr, err := ctrl.NewManager(l.Config, opts)
	if err != nil {
		return err
	}
	if err := controllers.Register(mgr); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(l.runCtx)
	done := make(chan struct{})
	l.mu.Lock()
	l.stopManager = func() { cancel(); <-done }
	l.mu.Unlock()
	l.goRecord("manager", func() error {
		defer close(done)
		return mgr.Start(ctx)
	})
	return nil
}

// StopManager stops the manager mid-whatever it does: its reconciles are cut off where they
// are, and everything it held in memory is lost, as when its pod is killed.
func (l *Lab) StopManager() {
	l.mu.Lock()
	stop := l.stopManager
	l.stopManager = nil
	l.mu.Unlock()
	if stop != nil {
		stop()
	}
}

// RestartAPIServer kills the API server, keeps it down for down, and starts it again with
// its etcd and certificates, as a control plane node's restart does. Everything else (the
// manager, the agents, flanneld) sees its connections drop and must recover by itself.
func (l *Lab) RestartAPIServer(ctx context.Context, down time.Duration) error {
	if l.stopAPIServer != nil {
		return errors.New("the lab restarts its API server once")
	}
	pid, stop, err := l.env.RestartAPIServer(ctx, down)
	if err != nil {
		return err
	}
	l.stopAPIServer = stop
	return l.reaper.Process(pid)
}

// SetSwitchPortMTU sets the MTU of the switch's port towards a node: a port smaller than the
// NICs on both sides drops every larger frame without a word, as a misconfigured switch does.
func (l *Lab) SetSwitchPortMTU(node string, mtu int) error {
	return l.network.setPortMTU("port-"+node, mtu)
}

// AgentBinary is the agent binary the nodes run, for a test that restarts one.
func (l *Lab) AgentBinary() string { return l.agentBinary }

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
		errs = append(errs, n.stopDaemons())
	}
	for _, n := range l.Nodes {
		errs = append(errs, n.close())
	}
	if l.network != nil {
		errs = append(errs, l.network.close())
	}
	for _, d := range l.dirs {
		errs = append(errs, removeAll(d))
	}
	if l.stopAPIServer != nil {
		errs = append(errs, l.stopAPIServer())
	}
	if l.env != nil {
		errs = append(errs, l.env.Stop())
	}
	if l.Kubeconfig != "" {
		errs = append(errs, os.Remove(l.Kubeconfig))
	}
	if l.reaper != nil {
		errs = append(errs, l.reaper.Close())
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

// Pods lists the workloads' pods, those being deleted included; not the CNI agent's (see
// CNIPods).
func (l *Lab) Pods(ctx context.Context) ([]corev1.Pod, error) {
	var all []corev1.Pod
	for _, rs := range l.workloads {
		pods, err := replicaSetPods(ctx, l.Client, rs)
		if err != nil {
			return nil, err
		}
		all = append(all, pods...)
	}
	return all, nil
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

// PodMTUs returns the MTU of eth0 in each running workload pod's namespace, by namespace/name.
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

// buildAgent builds the agent binary into dir, as `make build` does, unless $LAB_AGENT_BINARY
// names one already built.
func buildAgent(dir string) (string, error) {
	if b := os.Getenv("LAB_AGENT_BINARY"); b != "" {
		return b, nil
	}
	root, err := testenv.RepoRoot()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	out := filepath.Join(dir, "agent")
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, "./cmd/agent")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the agent: %w\n%s", err, b)
	}
	return out, nil
}

// nodeKubeconfig is the admin kubeconfig pointed at server: the address a node reaches the
// API server at across its underlay. The serving certificate names localhost, so that is
// the name TLS checks.
func nodeKubeconfig(admin []byte, server string) ([]byte, error) {
	cfg, err := clientcmd.Load(admin)
	if err != nil {
		return nil, err
	}
	for _, c := range cfg.Clusters {
		c.Server, c.TLSServerName = server, "localhost"
	}
	return clientcmd.Write(*cfg)
}

// syncWriter serializes writes to Options.Logs from the manager and the CNI plugins, so a
// caller can hand the lab a plain buffer.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(b)
}

// PodOn returns a running workload pod on the node, the first by name, as a traffic endpoint.
func (l *Lab) PodOn(ctx context.Context, node string) (traffic.Endpoint, error) {
	n := l.Node(node)
	if n == nil {
		return traffic.Endpoint{}, fmt.Errorf("no node %s", node)
	}
	pods, err := l.Pods(ctx)
	if err != nil {
		return traffic.Endpoint{}, err
	}
	slices.SortFunc(pods, func(a, b corev1.Pod) int { return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name) })
	for _, p := range pods {
		if p.Spec.NodeName != node || p.DeletionTimestamp != nil || p.Status.PodIP == "" {
			continue
		}
		if e, ok := n.endpoint(p.UID); ok {
			return e, nil
		}
	}
	return traffic.Endpoint{}, fmt.Errorf("no running pod on %s", node)
}
