package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
	"github.com/vishvananda/netns"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mtu-operator/mtu-operator/internal/node/netdev"
	"github.com/mtu-operator/mtu-operator/internal/plan"
	"github.com/mtu-operator/mtu-operator/internal/testenv"
)

// ErrNoFlannel means flanneld and the CNI plugins have not been built (`make flannel-assets`).
var ErrNoFlannel = errors.New("flannel assets missing")

// flannelAssetsFor finds flanneld and the CNI plugins, when the CNI is flannel:
// $LAB_FLANNEL_ASSETS, or bin/flannel.
func flannelAssetsFor(c CNI) (dir string, err error) {
	if c != Flannel {
		return "", nil
	}
	dir = os.Getenv("LAB_FLANNEL_ASSETS")
	if dir == "" {
		root, err := testenv.RepoRoot()
		if err != nil {
			return "", err
		}
		dir = filepath.Join(root, "bin", "flannel")
	}
	for _, f := range []string{"flanneld", "cni/flannel", "cni/bridge", "cni/host-local", "cni/portmap"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			return "", fmt.Errorf("%w: %s (run `make flannel-assets`)", ErrNoFlannel, filepath.Join(dir, f))
		}
	}
	return dir, nil
}

// flannelPodName is the name of the node's kube-flannel-ds pod, which flanneld is told.
func flannelPodName(node string) string { return plan.FlannelDaemonSet + "-" + node }

// flanneldStartWait bounds how long flanneld may take to take its lease and write subnet.env.
const flanneldStartWait = 30 * time.Second

// startFlanneld runs the real flanneld on the node, as the kube-flannel-ds pod does: first the
// ConfigMap's net-conf.json is written where the pod's ConfigMap volume would put it, and
// flanneld reads it once, at start. It returns once flanneld has written subnet.env.
func (n *Node) startFlanneld(ctx context.Context, cl client.Client) error {
	cm := &corev1.ConfigMap{}
	if err := cl.Get(ctx, types.NamespacedName{Namespace: plan.FlannelNamespace, Name: plan.FlannelConfigMap}, cm); err != nil {
		return err
	}
	if err := os.WriteFile(n.flannel.netConf, []byte(cm.Data[plan.FlannelConfigKey]), 0o644); err != nil {
		return err
	}
	// A stale subnet.env would let pods start before this flanneld has decided anything.
	if err := os.Remove(n.flannel.subnetEnv); err != nil && !os.IsNotExist(err) {
		return err
	}
	p, err := startProcess(n.ns.ns, filepath.Join(n.logDir, n.Name+"-flanneld.log"), "flanneld on "+n.Name, filepath.Join(n.flannel.assets, "flanneld"), []string{
		"--kube-subnet-mgr",
		"--kubeconfig-file=" + n.kubeconfig,
		"--iface=eth0",
		"--subnet-file=" + n.flannel.subnetEnv,
		"--net-config-path=" + n.flannel.netConf,
		// The lab has no iptables: no forward rules, no masquerading (pods talk to pods only).
		"--iptables-forward-rules=false",
		"--healthz-port=0",
	}, []string{
		"NODE_NAME=" + n.Name,
		"POD_NAME=" + flannelPodName(n.Name),
		"POD_NAMESPACE=" + plan.FlannelNamespace,
	})
	if err != nil {
		return err
	}
	n.mu.Lock()
	n.flannel.daemon = p
	n.mu.Unlock()
	if err := n.track(p); err != nil {
		return err
	}
	deadline := time.Now().Add(flanneldStartWait)
	for {
		if _, err := os.Stat(n.flannel.subnetEnv); err == nil {
			return nil
		}
		if !p.running() {
			return fmt.Errorf("flanneld on %s exited before writing %s: %w (its output is in %s)", n.Name, n.flannel.subnetEnv, p.err, p.logFile)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("flanneld on %s wrote no %s within %s", n.Name, n.flannel.subnetEnv, flanneldStartWait)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// restartFlanneld is the node's kube-flannel-ds pod being replaced: deleted, or by a rollout.
func (n *Node) restartFlanneld(ctx context.Context, cl client.Client) error {
	if n.flannel.daemon != nil {
		if err := n.flannel.daemon.stop(); err != nil {
			return err
		}
	}
	return n.startFlanneld(ctx, cl)
}

// FlanneldPID is the process ID of the node's flanneld, 0 before it first starts: a restart
// changes it.
func (n *Node) FlanneldPID() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.flannel.daemon == nil {
		return 0
	}
	return n.flannel.daemon.pid()
}

// SubnetEnv reads what flanneld last wrote to the node's subnet.env, by variable.
func (n *Node) SubnetEnv() (map[string]string, error) {
	b, err := os.ReadFile(n.flannel.subnetEnv)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok {
			out[k] = v
		}
	}
	return out, nil
}

// flannelNetworkList is the node's CNI network as flannel's install-cni init container leaves
// it in /etc/cni/net.d: the ConfigMap's cni-conf.json. The lab's nodes share one filesystem,
// so each node's plugin is pointed at that node's subnet.env and state directories; and the
// lab has no iptables, so the bridge is told not to masquerade.
func (n *Node) flannelNetworkList(ctx context.Context, cl client.Client) (*libcni.NetworkConfigList, error) {
	cm := &corev1.ConfigMap{}
	if err := cl.Get(ctx, types.NamespacedName{Namespace: plan.FlannelNamespace, Name: plan.FlannelConfigMap}, cm); err != nil {
		return nil, err
	}
	var conf map[string]any
	if err := json.Unmarshal([]byte(cm.Data["cni-conf.json"]), &conf); err != nil {
		return nil, fmt.Errorf("cni-conf.json: %w", err)
	}
	plugins, _ := conf["plugins"].([]any)
	for _, p := range plugins {
		plugin, _ := p.(map[string]any)
		if plugin["type"] != "flannel" {
			continue
		}
		plugin["subnetFile"] = n.flannel.subnetEnv
		plugin["dataDir"] = filepath.Join(n.flannel.dir, "flannel-data")
		plugin["ipam"] = map[string]any{"type": "host-local", "dataDir": filepath.Join(n.flannel.dir, "ipam")}
		delegate, _ := plugin["delegate"].(map[string]any)
		if delegate == nil {
			delegate = map[string]any{}
			plugin["delegate"] = delegate
		}
		delegate["ipMasq"] = false
	}
	b, err := json.Marshal(conf)
	if err != nil {
		return nil, err
	}
	return libcni.NetworkConfFromBytes(b)
}

// addFlannelPod runs the CNI plugins for a new pod exactly as a container runtime does: the
// flannel plugin reads subnet.env and hands bridge and host-local the MTU and subnet it says.
func (n *Node) addFlannelPod(ctx context.Context, cl client.Client, uid types.UID, netnsFile string) (ip string, err error) {
	list, err := n.flannelNetworkList(ctx, cl)
	if err != nil {
		return "", err
	}
	res, err := n.cniRuntime().AddNetworkList(ctx, list, n.cniPod(uid, netnsFile))
	if err != nil {
		return "", fmt.Errorf("CNI ADD: %w", err)
	}
	result, err := types100.NewResultFromResult(res)
	if err != nil {
		return "", err
	}
	for _, ipc := range result.IPs {
		if ipc.Address.IP.To4() != nil {
			return ipc.Address.IP.String(), nil
		}
	}
	return "", fmt.Errorf("CNI ADD returned no IPv4 address: %v", result)
}

// delFlannelPod runs CNI DEL, which releases the pod's address; the veth goes with the
// namespace.
func (n *Node) delFlannelPod(ctx context.Context, cl client.Client, uid types.UID, netnsFile string) error {
	list, err := n.flannelNetworkList(ctx, cl)
	if err != nil {
		return err
	}
	if err := n.cniRuntime().DelNetworkList(ctx, list, n.cniPod(uid, netnsFile)); err != nil {
		return fmt.Errorf("CNI DEL: %w", err)
	}
	return nil
}

func (n *Node) cniRuntime() *libcni.CNIConfig {
	exec := &nodeExec{ns: n.ns.ns, stderr: &linePrefixer{prefix: "cni " + n.Name + ": ", to: n.logs}}
	return libcni.NewCNIConfigWithCacheDir([]string{filepath.Join(n.flannel.assets, "cni")}, filepath.Join(n.flannel.dir, "cni-cache"), exec)
}

// nodeExec runs CNI plugins in the node's network namespace, where a container runtime runs
// them: the bridge plugin creates cni0 in the namespace it runs in.
type nodeExec struct {
	version.PluginDecoder
	ns     netns.NsHandle
	stderr io.Writer
}

func (e *nodeExec) ExecPlugin(ctx context.Context, pluginPath string, stdinData []byte, environ []string) (out []byte, err error) {
	err = netdev.InNamespace(e.ns, func() error {
		out, err = (&invoke.RawExec{Stderr: e.stderr}).ExecPlugin(ctx, pluginPath, stdinData, environ)
		return err
	})
	return out, err
}

func (e *nodeExec) FindInPath(plugin string, paths []string) (string, error) {
	return invoke.FindInPath(plugin, paths)
}

func (n *Node) cniPod(uid types.UID, netnsFile string) *libcni.RuntimeConf {
	return &libcni.RuntimeConf{ContainerID: string(uid), NetNS: netnsFile, IfName: "eth0"}
}

// describeFlannel says what flanneld left on the node: the pod MTU it hands out and its tunnel.
func (n *Node) describeFlannel() string {
	env, err := n.SubnetEnv()
	if err != nil {
		return err.Error()
	}
	say := "subnet.env FLANNEL_MTU=" + env["FLANNEL_MTU"]
	if mtus, err := n.LinkMTUs(); err == nil {
		if m, ok := mtus[Flannel.TunnelDevice()]; ok {
			say += fmt.Sprintf(", %s at %d", Flannel.TunnelDevice(), m)
		}
	}
	return say
}
