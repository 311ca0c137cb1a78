// Command agent is the mtu-operator node agent, run by a DaemonSet on every node: it reports
// the node's underlay and CNI interfaces in the node's NodeMTUState and brings those
// interfaces to the MTUs the cluster controller sets, as transactions that roll back when the
// node loses the API server or its peers.
//
// It needs the host network namespace and CAP_NET_ADMIN (to change links and routes) and
// CAP_NET_RAW (for the don't-fragment ICMP probes).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/mtu-operator/mtu-operator/internal/agent"
)

func main() {
	if err := run(ctrl.SetupSignalHandler(), nil, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "agent:", err)
		os.Exit(1)
	}
}

// run parses flags and runs the agent until ctx ends. A nil cfg is read from the usual places.
func run(ctx context.Context, cfg *rest.Config, args []string) error {
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	nodeName := fs.String("node-name", os.Getenv("NODE_NAME"), "Name of the node this agent runs on (default $NODE_NAME).")
	netnsPath := fs.String("netns", "", "Network namespace to manage, as a path such as /var/run/netns/node1; default: the agent's own (the host's, in the DaemonSet).")
	podNetnsDir := fs.String("pod-netns-dir", "/var/run/netns", "Directory where the container runtime mounts pod network namespaces; empty turns the pod MTU inventory off.")
	metricsAddr := fs.String("metrics-bind-address", ":8082", "Address the Prometheus metrics endpoint binds to; 0 disables it.")
	metricsSecure := fs.Bool("metrics-secure", true, "Serve metrics over HTTPS to callers whose bearer token the API server authenticates and authorizes for GET /metrics (the metrics-reader ClusterRole); false serves plain HTTP to anyone on the node's network.")
	probeAddr := fs.String("health-probe-bind-address", ":8083", "Address the /healthz and /readyz probes bind to; 0 disables them.")
	stateDir := fs.String("state-dir", "/var/lib/mtu-operator", "Directory on the node for the agent's journal (the change under way, the route pins and their originals), which must outlive the agent's process; empty keeps none.")
	apiServerProbe := fs.String("api-server-probe-address", "", "host:port the agent must still reach over TCP after a change; default: the API server of its kubeconfig. Set it when that address is a node-local proxy.")
	zapOpts := zap.Options{}
	zapOpts.BindFlags(fs)
	if cfg == nil {
		ctrl.RegisterFlags(fs)
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *nodeName == "" {
		return fmt.Errorf("--node-name (or $NODE_NAME) is required")
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	if cfg == nil {
		var err error
		if cfg, err = ctrl.GetConfig(); err != nil {
			return fmt.Errorf("reading the kubeconfig: %w", err)
		}
	}
	return agent.Run(ctx, cfg, agent.Options{
		NodeName: *nodeName, NetnsPath: *netnsPath, PodNetnsDir: *podNetnsDir,
		MetricsAddr: *metricsAddr, MetricsSecure: *metricsSecure, ProbeAddr: *probeAddr, APIServerProbeAddress: *apiServerProbe, StateDir: *stateDir,
	})
}
