package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mtuv1alpha1 "github.com/mtu-operator/mtu-operator/api/v1alpha1"
	"github.com/mtu-operator/mtu-operator/internal/node/netdev"
	"github.com/mtu-operator/mtu-operator/internal/node/nettest"
	"github.com/mtu-operator/mtu-operator/internal/testenv"
)

// The capability helper: the test binary run with these set enters the network namespace,
// keeps only the capabilities named, sets no_new_privs, and executes the agent, as a container
// runtime starts the DaemonSet's container (root, everything else dropped, no privilege
// escalation).
const (
	helperNetns = "AGENT_CAPS_NETNS"
	helperCaps  = "AGENT_CAPS_KEEP"
	helperExec  = "AGENT_CAPS_EXEC"
)

// capabilityNumbers are Linux's capability numbers by the names Kubernetes uses.
var capabilityNumbers = map[string]int{
	"CHOWN": unix.CAP_CHOWN, "DAC_OVERRIDE": unix.CAP_DAC_OVERRIDE, "DAC_READ_SEARCH": unix.CAP_DAC_READ_SEARCH, "FOWNER": unix.CAP_FOWNER,
	"FSETID": unix.CAP_FSETID, "KILL": unix.CAP_KILL, "SETGID": unix.CAP_SETGID, "SETUID": unix.CAP_SETUID, "SETPCAP": unix.CAP_SETPCAP,
	"LINUX_IMMUTABLE": unix.CAP_LINUX_IMMUTABLE, "NET_BIND_SERVICE": unix.CAP_NET_BIND_SERVICE, "NET_BROADCAST": unix.CAP_NET_BROADCAST,
	"NET_ADMIN": unix.CAP_NET_ADMIN, "NET_RAW": unix.CAP_NET_RAW, "IPC_LOCK": unix.CAP_IPC_LOCK, "IPC_OWNER": unix.CAP_IPC_OWNER,
	"SYS_MODULE": unix.CAP_SYS_MODULE, "SYS_RAWIO": unix.CAP_SYS_RAWIO, "SYS_CHROOT": unix.CAP_SYS_CHROOT, "SYS_PTRACE": unix.CAP_SYS_PTRACE,
	"SYS_PACCT": unix.CAP_SYS_PACCT, "SYS_ADMIN": unix.CAP_SYS_ADMIN, "SYS_BOOT": unix.CAP_SYS_BOOT, "SYS_NICE": unix.CAP_SYS_NICE,
	"SYS_RESOURCE": unix.CAP_SYS_RESOURCE, "SYS_TIME": unix.CAP_SYS_TIME, "SYS_TTY_CONFIG": unix.CAP_SYS_TTY_CONFIG, "MKNOD": unix.CAP_MKNOD,
	"LEASE": unix.CAP_LEASE, "AUDIT_WRITE": unix.CAP_AUDIT_WRITE, "AUDIT_CONTROL": unix.CAP_AUDIT_CONTROL, "SETFCAP": unix.CAP_SETFCAP,
	"MAC_OVERRIDE": unix.CAP_MAC_OVERRIDE, "MAC_ADMIN": unix.CAP_MAC_ADMIN, "SYSLOG": unix.CAP_SYSLOG, "WAKE_ALARM": unix.CAP_WAKE_ALARM,
	"BLOCK_SUSPEND": unix.CAP_BLOCK_SUSPEND, "AUDIT_READ": unix.CAP_AUDIT_READ, "PERFMON": unix.CAP_PERFMON, "BPF": unix.CAP_BPF,
	"CHECKPOINT_RESTORE": unix.CAP_CHECKPOINT_RESTORE,
}

// runCapabilityHelper is the helper's body; it returns only on failure.
func runCapabilityHelper() error {
	runtime.LockOSThread() // setns and the exec must happen on this thread
	ns, err := netns.GetFromPath(os.Getenv(helperNetns))
	if err != nil {
		return err
	}
	if err := netns.Set(ns); err != nil {
		return fmt.Errorf("entering the node's namespace: %w", err)
	}
	keep := map[int]bool{}
	for _, name := range strings.Split(os.Getenv(helperCaps), ",") {
		if name == "" {
			continue
		}
		n, ok := capabilityNumbers[name]
		if !ok {
			return fmt.Errorf("unknown capability %q", name)
		}
		keep[n] = true
	}
	last, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		return err
	}
	lastCap, err := strconv.Atoi(strings.TrimSpace(string(last)))
	if err != nil {
		return err
	}
	for c := 0; c <= lastCap; c++ {
		if !keep[c] {
			if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil {
				return fmt.Errorf("dropping capability %d: %w", c, err)
			}
		}
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return err
	}
	binary := os.Getenv(helperExec)
	var env []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "AGENT_CAPS_") {
			env = append(env, e)
		}
	}
	return unix.Exec(binary, append([]string{binary}, os.Args[1:]...), env)
}

// daemonSetCapabilities reads the agent container's capabilities from config/default as
// kustomize renders it: what a cluster gives the agent.
func daemonSetCapabilities(t *testing.T) []string {
	t.Helper()
	objects, err := testenv.Render("config/default")
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objects {
		if o.GetKind() != "DaemonSet" {
			continue
		}
		containers, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
		for _, c := range containers {
			c := c.(map[string]any)
			if c["name"] != "agent" {
				continue
			}
			drop, _, _ := unstructured.NestedStringSlice(c, "securityContext", "capabilities", "drop")
			add, _, _ := unstructured.NestedStringSlice(c, "securityContext", "capabilities", "add")
			escalation, _, _ := unstructured.NestedBool(c, "securityContext", "allowPrivilegeEscalation")
			if !slices.Equal(drop, []string{"ALL"}) || escalation {
				t.Fatalf("the agent container drops %v and allows privilege escalation %v: this test runs it with ALL dropped and no_new_privs", drop, escalation)
			}
			return add
		}
	}
	t.Fatal("no agent DaemonSet in config/default")
	return nil
}

// buildAgent builds the agent binary as `make build` does.
func buildAgent(t *testing.T) string {
	t.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "agent")
	cmd := exec.Command("go", "build", "-o", out, "./cmd/agent")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the agent: %v\n%s", err, b)
	}
	return out
}

// relayAPIServer makes the test's API server reachable from inside ns at 127.0.0.1, as a
// node reaches its control plane, and returns a kubeconfig for it.
func relayAPIServer(t *testing.T, ns *nettest.Namespace) string {
	t.Helper()
	target, err := url.Parse(env.Config.Host)
	if err != nil {
		t.Fatal(err)
	}
	var l net.Listener
	if err := netdev.InNamespace(ns.NS, func() (err error) {
		l, err = net.Listen("tcp", "127.0.0.1:0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer in.Close()
				out, err := net.Dial("tcp", target.Host)
				if err != nil {
					return
				}
				defer out.Close()
				go func() { _, _ = io.Copy(out, in) }()
				_, _ = io.Copy(in, out)
			}()
		}
	}()
	admin, err := env.AdminKubeconfig("agent-capabilities")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.Load(admin)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cfg.Clusters {
		c.Server = "https://" + l.Addr().String()
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestAgentUnderTheDaemonSetsCapabilities runs the agent binary as the rendered DaemonSet runs
// it: root with every capability dropped but the ones the manifest adds, and no privilege
// escalation, in the node's network namespace as its own. It must start, detect the underlay,
// make a change as a transaction with its probe, and inventory and correct a pod through the
// pod's network namespace.
func TestAgentUnderTheDaemonSetsCapabilities(t *testing.T) {
	nettest.RequirePrivileged(t)
	caps := daemonSetCapabilities(t)
	t.Logf("the rendered DaemonSet gives the agent %v", caps)
	binary := buildAgent(t)
	ns, peer := node(t)
	apiServer := listenIn(t, peer, "192.0.2.2:0")
	kubeconfig := relayAPIServer(t, ns)
	dir := t.TempDir()
	pod := podNamespace(t, ns, dir, "cni-cccc", "veth-c", "10.244.1.4/24", 1450)
	ctx := context.Background()

	k8sNode := &corev1.Node{}
	k8sNode.Name = "node-3"
	if err := env.Client.Create(ctx, k8sNode); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(ctx, k8sNode) })
	p := &corev1.Pod{}
	p.Namespace, p.Name = "default", "web-c"
	p.Spec.NodeName = "node-3"
	p.Spec.Containers = []corev1.Container{{Name: "web", Image: "registry.example/web:v1"}}
	if err := env.Client.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(ctx, p, client.GracePeriodSeconds(0)) })
	p.Status.PodIPs, p.Status.PodIP = []corev1.PodIP{{IP: "10.244.1.4"}}, "10.244.1.4"
	if err := env.Client.Status().Update(ctx, p); err != nil {
		t.Fatal(err)
	}
	livePolicy(t, "capabilities")
	state := &mtuv1alpha1.NodeMTUState{}
	state.Name = "node-3"
	state.Spec = mtuv1alpha1.NodeMTUStateSpec{
		Policy: "capabilities", Phase: mtuv1alpha1.PhaseConverge, UnderlayInterfacePattern: "^eth", PodMTU: 1500,
		Interfaces: []mtuv1alpha1.ManagedInterface{{Name: "cni0", Role: mtuv1alpha1.RoleBridge, MTU: 1500}},
		Probe:      mtuv1alpha1.NodeProbe{APIServer: apiServer, Peers: []mtuv1alpha1.ProbePeer{{Address: "192.0.2.2", Size: 1500}}, TimeoutSeconds: 3},
		PodAction:  mtuv1alpha1.StalePodInPlace,
	}
	if err := env.Client.Create(ctx, state); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(ctx, state) })

	var logs strings.Builder
	cmd := exec.Command(os.Args[0], "--node-name=node-3", "--kubeconfig="+kubeconfig, "--pod-netns-dir="+dir,
		"--state-dir="+t.TempDir(), "--metrics-bind-address=0", "--health-probe-bind-address=0")
	cmd.Env = append(os.Environ(), helperNetns+"="+fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), int(ns.NS)),
		helperCaps+"="+strings.Join(caps, ","), helperExec+"="+binary)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var exitErr error
	exited := make(chan struct{})
	go func() {
		exitErr = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("agent output:\n%s", logs.String())
		}
	})

	testenv.Eventually(t, "the agent, under the DaemonSet's capabilities, detects, transacts and corrects the pod", 60*time.Second, func() error {
		select {
		case <-exited:
			return fmt.Errorf("the agent exited: %w", exitErr)
		default:
		}
		s := getState(t, "node-3")
		switch {
		case s.Status.UnderlayMTU != 1500:
			return fmt.Errorf("underlay %d", s.Status.UnderlayMTU)
		case s.Status.LastTransaction == nil || s.Status.LastTransaction.Outcome != mtuv1alpha1.TransactionCommitted:
			return fmt.Errorf("last transaction %+v", s.Status.LastTransaction)
		case s.Status.PodScanErrors != 0:
			return fmt.Errorf("pod scan errors %d: %s", s.Status.PodScanErrors, s.Status.PodScanError)
		case s.Status.PodsCorrected != 1:
			return fmt.Errorf("pods %d, corrected %d, stale %v", s.Status.Pods, s.Status.PodsCorrected, s.Status.StalePods)
		}
		return nil
	})
	if m := ns.MTU(t, "cni0"); m != 1500 {
		t.Errorf("cni0 at %d, want 1500", m)
	}
	if m := pod.MTU(t, "eth0"); m != 1500 {
		t.Errorf("the pod's eth0 at %d, want 1500", m)
	}
}
