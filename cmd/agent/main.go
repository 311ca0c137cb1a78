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
	"net"
	"net/url"
	"os"

	"github.com/vishvananda/netns"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	mtuv1alpha1 "github.com/mtu-operator/mtu-operator/api/v1alpha1"
	"github.com/mtu-operator/mtu-operator/internal/agent"
	"github.com/mtu-operator/mtu-operator/internal/kubescheme"
	"github.com/mtu-operator/mtu-operator/internal/node/netdev"
	"github.com/mtu-operator/mtu-operator/internal/node/probe"
	"github.com/mtu-operator/mtu-operator/internal/node/routepin"
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
	probeAddr := fs.String("health-probe-bind-address", ":8083", "Address the /healthz and /readyz probes bind to; 0 disables them.")
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
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)).WithValues("node", *nodeName))

	links, ns, err := openNamespace(*netnsPath)
	if err != nil {
		return err
	}
	defer links.Close()
	if ns != nil {
		defer ns.Close()
	}

	if cfg == nil {
		if cfg, err = ctrl.GetConfig(); err != nil {
			return fmt.Errorf("reading the kubeconfig: %w", err)
		}
	}
	scheme, err := kubescheme.New()
	if err != nil {
		return err
	}
	// The agent caches its own node's objects only: 5,000 agents must not each watch every node.
	ownName := fields.OneTermEqualSelector("metadata.name", *nodeName)
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: *metricsAddr},
		HealthProbeBindAddress: *probeAddr,
		// One agent, one controller per process; the process-wide name check only gets in the
		// way of running several agents in one test binary.
		Controller: config.Controller{SkipNameValidation: new(true)},
		Cache: cache.Options{ByObject: map[client.Object]cache.ByObject{
			&mtuv1alpha1.NodeMTUState{}: {Field: ownName},
			&corev1.Node{}:              {Field: ownName},
			&corev1.Pod{}:               {Field: fields.OneTermEqualSelector("spec.nodeName", *nodeName)},
		}},
	})
	if err != nil {
		return fmt.Errorf("creating the manager: %w", err)
	}

	probes := agent.DefaultProbes(apiServerAddress(cfg))
	if ns != nil {
		inner := probes
		probes = func(spec mtuv1alpha1.NodeProbe, size int) probe.Prober {
			return probe.InNamespace(*ns, inner(spec, size))
		}
	}
	r := &agent.Reconciler{Client: mgr.GetClient(), NodeName: *nodeName, Links: links, Pinner: routepin.New(links), Probes: probes, PodNetnsDir: *podNetnsDir}
	if err := r.SetupWithManager(mgr, "nodemtustate-agent", agent.LinkEvents(ctx, links)); err != nil {
		return err
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return err
	}
	ctrl.Log.WithName("setup").Info("starting agent", "netns", *netnsPath)
	return mgr.Start(ctx)
}

// openNamespace opens the netlink handle of the namespace to manage.
func openNamespace(path string) (*netdev.Handle, *netns.NsHandle, error) {
	if path == "" {
		h, err := netdev.New()
		return h, nil, err
	}
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return nil, nil, fmt.Errorf("opening network namespace %s: %w", path, err)
	}
	h, err := netdev.NewAt(ns)
	if err != nil {
		ns.Close()
		return nil, nil, err
	}
	return h, &ns, nil
}

// apiServerAddress is host:port of the API server the agent talks to: the first thing a node
// must still reach after a change.
func apiServerAddress(cfg *rest.Config) string {
	u, err := url.Parse(cfg.Host)
	if err != nil || u.Host == "" {
		return ""
	}
	if u.Port() != "" {
		return u.Host
	}
	port := "443"
	if u.Scheme == "http" {
		port = "80"
	}
	return net.JoinHostPort(u.Hostname(), port)
}
