// Command demo is `make demo`: it starts the lab (an embedded control plane, nodes made of
// network namespaces, a CNI install, the real manager and agents) and tells the story of
// test/e2e/story, printing what a platform engineer would look at after each step.
//
// Environment: DEMO_CNI=flannel|calico|antrea picks the CNI; DEMO_HOLD=1 keeps everything
// running at the end for kubectl until Ctrl-C. It needs root, and cleans up on every exit.
package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/mtu-operator/mtu-operator/internal/testenv"
	"github.com/mtu-operator/mtu-operator/test/e2e/lab"
	"github.com/mtu-operator/mtu-operator/test/e2e/lab/reaper"
	"github.com/mtu-operator/mtu-operator/test/e2e/story"
)

// netnsPrefix names the node namespaces in /run/netns, for `ip netns exec`.
const netnsPrefix = "mtu-demo-"

func main() {
	reaper.Serve() // this binary is also the lab's reaper
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	held, err := run(ctx)
	interrupted := ctx.Err() != nil && !held
	stop()
	if interrupted {
		fmt.Fprintln(os.Stderr, "\ndemo: interrupted; everything it started has been removed")
		if err != nil && !errors.Is(err, context.Canceled) {
			fmt.Fprintf(os.Stderr, "demo: %v\n", err)
		}
		os.Exit(130)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "\ndemo: %v\n", err)
		os.Exit(1)
	}
}

// run tells the story; held says it ended by Ctrl-C while holding, which is how DEMO_HOLD ends.
func run(ctx context.Context) (held bool, err error) {
	if os.Geteuid() != 0 {
		return false, errors.New("the demo builds network namespaces and links, which needs root: run `sudo make demo`")
	}
	cni, err := lab.ParseCNI(cmp.Or(os.Getenv("DEMO_CNI"), string(lab.Flannel)))
	if err != nil {
		return false, err
	}
	root, err := testenv.RepoRoot()
	if err != nil {
		return false, err
	}
	dir := filepath.Join(root, ".demo")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return false, err
	}
	logPath := filepath.Join(dir, "operator.log")
	logs, err := os.Create(logPath)
	if err != nil {
		return false, err
	}
	defer logs.Close()
	kubectl := filepath.Join(cmp.Or(os.Getenv("KUBEBUILDER_ASSETS"), filepath.Join(root, "bin", "k8s")), "kubectl")

	p := &printer{out: os.Stdout, cni: cni, kubectl: kubectl}
	p.banner(cni)
	if err := removeLeftovers(p.out, root, dir); err != nil {
		return false, err
	}
	if err := os.RemoveAll(filepath.Join(dir, "logs")); err != nil { // the last run's
		return false, err
	}
	started := time.Now()
	l, err := lab.Start(ctx, lab.Options{
		CNI: cni, Dir: dir, NetnsDir: "/run/netns", NetnsPrefix: netnsPrefix, Logs: logs,
		Say: func(s string) { p.aside(s) },
	})
	if err != nil {
		return false, fmt.Errorf("starting the lab: %w", err)
	}
	defer func() {
		p.section("Cleaning up")
		if cerr := l.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("cleaning up: %w", cerr))
			return
		}
		fmt.Fprintln(p.out, "  stopped the manager, the agents and the API server; removed every node and pod namespace and their links.")
		fmt.Fprintf(p.out, "  the operator's log stays in %s, flanneld's and the agents' in %s.\n", rel(root, logPath), rel(root, l.LogDir))
	}()
	p.kubeconfig = l.Kubeconfig
	fmt.Fprintf(p.out, "  ready in %s: API server at %s, kubeconfig %s\n", time.Since(started).Round(100*time.Millisecond), l.Config.Host, rel(root, l.Kubeconfig))
	p.topology(ctx, l)

	w, err := story.NewWorld(ctx, l)
	if err != nil {
		return false, err
	}
	traffic, err := w.StartTraffic(ctx, story.TrafficPaths)
	if err != nil {
		return false, err
	}
	defer traffic.Stop()
	steps := story.Steps(cni)
	previous := ""
	for i, step := range steps {
		p.section(fmt.Sprintf("Step %d of %d. %s", i+1, len(steps), step.Title))
		for _, line := range step.Why {
			fmt.Fprintln(p.out, "  "+line)
		}
		if len(step.Commands) > 0 {
			fmt.Fprintln(p.out)
		}
		for _, c := range step.Commands {
			fmt.Fprintln(p.out, "  $ "+c)
		}
		p.apply(previous, step.Policy)
		previous = step.Policy
		if err := w.Apply(ctx, step); err != nil {
			return false, fmt.Errorf("applying the policy: %w", err)
		}
		fmt.Fprintf(p.out, "\n  waiting for: %s\n", step.Expect)
		began := time.Now()
		if err := w.Await(ctx, step); err != nil {
			return false, fmt.Errorf("step %d: %w (the operator's log is in %s)", i+1, err, rel(root, logPath))
		}
		fmt.Fprintf(p.out, "  reached in %s.\n", time.Since(began).Round(100*time.Millisecond))
		if err := w.CheckCrossings(ctx, step.Crossings); err != nil {
			return false, fmt.Errorf("step %d: packets between pods:\n%w", i+1, err)
		}
		during := traffic.Mark()
		for _, s := range step.Show {
			if s == story.ShowTraffic {
				p.traffic(step.Crossings, during)
				continue
			}
			p.show(ctx, l, s)
		}
	}
	p.section("Done")
	fmt.Fprintf(p.out, "  %d steps in %s, the cluster's start included: every node at 9000, pods at 9000 without a tunnel, nothing stale.\n", len(steps), time.Since(started).Round(time.Second))
	if os.Getenv("DEMO_HOLD") == "1" {
		p.hold(ctx, l)
		return true, nil
	}
	fmt.Fprintln(p.out, "  Run `make demo DEMO_HOLD=1` to keep the cluster and nodes up and poke at them with kubectl.")
	return false, nil
}

// printer prints the story as a terminal session.
type printer struct {
	// mu keeps the stand-ins' asides out of the middle of a table.
	mu         sync.Mutex
	out        io.Writer
	cni        lab.CNI
	kubectl    string
	kubeconfig string
}

func (p *printer) banner(cni lab.CNI) {
	fmt.Fprintf(p.out, "mtu-operator demo (%s)\n\n%s\n", cni, wrap(
		"A cluster on this machine: an API server and etcd on loopback, three nodes made of network "+
			"namespaces plugged into a jumbo-frame switch, CoreDNS and a web app. "+cniBanner(cni)+
			" The real manager and the real agent binary on every node run against it. Nothing below "+
			"is staged: every table is read from the API server or the kernel after the operator "+
			"acted, and what crosses between pods is checked with packets.", 92))
	p.section("Starting the cluster")
}

func cniBanner(cni lab.CNI) string {
	if cni == lab.Flannel {
		return "Every node runs the real flanneld, and the real CNI plugins wire its pods."
	}
	name := string(cni)
	return fmt.Sprintf("%s is a stand-in (its daemons cannot run here) that does what its agent is documented to do.", strings.ToUpper(name[:1])+name[1:])
}

// wrap breaks text into lines of at most width characters, at spaces.
func wrap(text string, width int) string {
	var lines []string
	line := ""
	for _, word := range strings.Fields(text) {
		if line != "" && len(line)+1+len(word) > width {
			lines = append(lines, line)
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += word
	}
	return strings.Join(append(lines, line), "\n")
}

func (p *printer) section(title string) {
	fmt.Fprintf(p.out, "\n== %s %s\n", title, strings.Repeat("=", max(0, 86-len(title))))
}

// aside prints what the stand-ins for kubelet and the ReplicaSet controller do.
func (p *printer) aside(s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.out, "  | %s\n", s)
}

func (p *printer) topology(ctx context.Context, l *lab.Lab) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintln(p.out, "\n  The nodes (`ip -n "+netnsPrefix+"<node> link` shows the same):")
	p.links(l)
	fmt.Fprintln(p.out)
	p.pods(ctx, l)
}

// apply prints the kubectl command the step stands for, with the lines that changed.
func (p *printer) apply(previous, policy string) {
	if previous == policy {
		return // the policy as it was: the step is what happens around it
	}
	fmt.Fprintln(p.out)
	if previous == "" {
		fmt.Fprintln(p.out, "  $ kubectl apply --server-side -f - <<EOF")
		for _, line := range strings.Split(strings.TrimRight(policy, "\n"), "\n") {
			fmt.Fprintln(p.out, "    "+line)
		}
		fmt.Fprintln(p.out, "  EOF")
		return
	}
	before, after := strings.Split(previous, "\n"), strings.Split(policy, "\n")
	var changes []string
	for i := range min(len(before), len(after)) {
		if before[i] != after[i] {
			changes = append(changes, fmt.Sprintf("%s -> %s", strings.TrimSpace(before[i]), strings.TrimSpace(after[i])))
		}
	}
	fmt.Fprintf(p.out, "  $ kubectl apply --server-side -f %s.yaml    # %s\n", story.PolicyName, strings.Join(changes, ", "))
}

func (p *printer) show(ctx context.Context, l *lab.Lab, what string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintln(p.out)
	switch what {
	case story.ShowPolicy:
		p.run("get", "networkmtupolicies", "-o", "wide")
	case story.ShowConditions:
		p.run("get", "networkmtupolicy", story.PolicyName, "-o",
			`go-template={{range .status.conditions}}{{printf "%-19s %-7s %-22s %s\n" .type .status .reason .message}}{{end}}`)
	case story.ShowPlan:
		p.run("get", "networkmtupolicy", story.PolicyName, "-o",
			`go-template={{range .status.plannedChanges}}{{printf "%s  %s: %s -> %s\n" .resource .path (or .from "(absent)") (or .to "(absent)")}}{{end}}{{range .status.agentRestarts}}{{printf "would restart DaemonSet %s\n" .}}{{end}}`)
	case story.ShowNodes:
		p.run("get", "nodemtustates", "-o", "wide")
	case story.ShowLinks:
		fmt.Fprintln(p.out, "  Interfaces, read from each node's namespace:")
		p.links(l)
	case story.ShowPods:
		p.pods(ctx, l)
	case story.ShowStale:
		p.run("get", "pods", "-A", "-o", `custom-columns=NAMESPACE:.metadata.namespace,POD:.metadata.name,NODE:.spec.nodeName,STALE-MTU:.metadata.annotations.networking\.mtu-operator\.io/stale-mtu`)
	case story.ShowEvents:
		p.run("get", "events", "--sort-by=.lastTimestamp", "--field-selector", "involvedObject.kind=NetworkMTUPolicy")
	case story.ShowEvictions:
		p.run("get", "events", "-A", "--sort-by=.lastTimestamp", "--field-selector", "reason=StaleMTUEvicted")
	case story.ShowCNIConfig:
		p.cniConfig()
	}
}

func (p *printer) cniConfig() {
	switch p.cni {
	case lab.Calico:
		p.run("-n", "kube-system", "get", "configmap", "calico-config", "-o", `jsonpath={.data.veth_mtu}{"\n"}`)
		p.run("get", "ippools.crd.projectcalico.org", "-o", `custom-columns=NAME:.metadata.name,VXLAN:.spec.vxlanMode,IPIP:.spec.ipipMode`)
		p.run("get", "felixconfigurations.crd.projectcalico.org", "default", "-o", `jsonpath={.spec}{"\n"}`)
	case lab.Antrea:
		p.run("-n", "kube-system", "get", "configmap", "antrea-config", "-o", `jsonpath={.data.antrea-agent\.conf}`)
	default:
		p.run("-n", "kube-flannel", "get", "configmap", "kube-flannel-cfg", "-o", `jsonpath={.data.net-conf\.json}`)
	}
}

// run runs kubectl against the lab and prints the command and its output.
func (p *printer) run(args ...string) {
	fmt.Fprintf(p.out, "  $ kubectl %s\n", quoteArgs(args))
	cmd := exec.Command(p.kubectl, append([]string{"--kubeconfig", p.kubeconfig}, args...)...)
	out, err := cmd.CombinedOutput()
	for _, line := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		fmt.Fprintln(p.out, "  "+line)
	}
	if err != nil {
		fmt.Fprintf(p.out, "  (kubectl: %v)\n", err)
	}
}

func quoteArgs(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if strings.ContainsAny(a, " {}\"'$<>!") {
			a = "'" + a + "'"
		}
		out[i] = a
	}
	return strings.Join(out, " ")
}

func (p *printer) links(l *lab.Lab) {
	tw := tabwriter.NewWriter(p.out, 0, 0, 2, ' ', 0)
	for _, n := range l.Nodes {
		mtus, err := n.LinkMTUs()
		if err != nil {
			fmt.Fprintf(tw, "  %s\t%v\n", n.Name, err)
			continue
		}
		// The node's own devices by name; the pods' veths only counted.
		cells := []string{"  " + n.Name}
		veths := 0
		for _, name := range slices.Sorted(maps.Keys(mtus)) {
			if p.cni.IsPodVeth(name) {
				veths++
				continue
			}
			cells = append(cells, fmt.Sprintf("%s %d", name, mtus[name]))
		}
		cells = append(cells, fmt.Sprintf("(+%d pod veths)", veths))
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	_ = tw.Flush()
}

// pods prints each pod with its eth0 MTU read inside its network namespace.
func (p *printer) pods(ctx context.Context, l *lab.Lab) {
	pods, err := l.Pods(ctx)
	if err != nil {
		fmt.Fprintf(p.out, "  listing pods: %v\n", err)
		return
	}
	mtus, err := l.PodMTUs(ctx)
	if err != nil {
		fmt.Fprintf(p.out, "  reading pod MTUs: %v\n", err)
		return
	}
	fmt.Fprintln(p.out, "  Pods, with eth0's MTU read inside each pod's network namespace:")
	tw := tabwriter.NewWriter(p.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  NAMESPACE\tPOD\tNODE\tIP\tETH0 MTU")
	sort.Slice(pods, func(i, j int) bool { return pods[i].Spec.NodeName+pods[i].Name < pods[j].Spec.NodeName+pods[j].Name })
	for _, pod := range pods {
		key := pod.Namespace + "/" + pod.Name
		m, ok := mtus[key]
		if !ok {
			continue
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%d\n", pod.Namespace, pod.Name, pod.Spec.NodeName, pod.Status.PodIP, m)
	}
	_ = tw.Flush()
}

// traffic prints what crossed between pods after the step, checked with packets, and what the
// background traffic lost during it.
func (p *printer) traffic(crossings []story.Crossing, during []story.PathReport) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintln(p.out, "\n  Packets between pods, don't-fragment UDP (sizes are whole IP packets), checked just now:")
	tw := tabwriter.NewWriter(p.out, 0, 0, 2, ' ', 0)
	for _, c := range crossings {
		fmt.Fprintf(tw, "  %s → %s\t%d B cross, %d B do not\t%s\n", c.From, c.To, c.Size, c.Size+1, c.Why)
	}
	_ = tw.Flush()
	fmt.Fprintln(p.out, "  Background traffic while the step ran (one datagram of each size every 50 ms):")
	for _, r := range during {
		sizes := make([]string, len(r.Report.Sizes))
		for i, s := range r.Report.Sizes {
			sizes[i] = s.String()
		}
		fmt.Fprintf(p.out, "  %s  %s\n", r.Path, strings.Join(sizes, "; "))
	}
}

// hold keeps the lab running for kubectl until Ctrl-C.
func (p *printer) hold(ctx context.Context, l *lab.Lab) {
	fmt.Fprintf(p.out, `
  Everything keeps running until you press Ctrl-C. In another shell:

    export KUBECONFIG=%s
    %s get networkmtupolicies -o wide
    %s get nodemtustates -o wide
    %s describe networkmtupolicy %s
    %s patch networkmtupolicy %s --type merge -p '{"spec":{"encapsulation":{"type":"VXLAN"}}}'
    ip -n %snode-c link                      # the node's interfaces
    ip netns exec %snode-a ping -M do -s 8972 %s   # a full-size frame to node-c
`, l.Kubeconfig, p.kubectl, p.kubectl, p.kubectl, story.PolicyName, p.kubectl, story.PolicyName, netnsPrefix, netnsPrefix, l.Node("node-c").Address)
	<-ctx.Done()
}

func rel(root, path string) string {
	if r, err := filepath.Rel(root, path); err == nil {
		return r
	}
	return path
}
