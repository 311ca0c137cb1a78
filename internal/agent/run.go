package agent

import (
	"cmp"
	"context"
	"fmt"
	"net"
	"net/url"
	"path/filepath"

	"github.com/vishvananda/netns"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	mtuv1alpha1 "github.com/mtu-operator/mtu-operator/api/v1alpha1"
	"github.com/mtu-operator/mtu-operator/internal/kubescheme"
	"github.com/mtu-operator/mtu-operator/internal/node/journal"
	"github.com/mtu-operator/mtu-operator/internal/node/netdev"
	"github.com/mtu-operator/mtu-operator/internal/node/probe"
)

// Options configure an agent.
type Options struct {
	// NodeName is the node the agent runs on.
	NodeName string
	// NetnsPath is the network namespace to manage; empty is the agent's own.
	NetnsPath string
	// PodNetnsDir is where pod network namespaces are mounted; empty turns the inventory off.
	PodNetnsDir string
	// MetricsAddr and ProbeAddr are the metrics and health endpoints; "0" disables them.
	MetricsAddr, ProbeAddr string
	// MetricsSecure serves metrics over HTTPS to callers the API server authenticates and
	// authorizes for GET /metrics: the agent listens on the node's addresses.
	MetricsSecure bool
	// StateDir holds the node's journal (the transaction under way, the route pins), which
	// must outlive the process: a hostPath in the DaemonSet. Empty keeps no journal.
	StateDir string
	// APIServerProbeAddress is the host:port probed over TCP after a change; empty is the API
	// server of cfg. It differs when the agent reaches the API server through a node-local
	// proxy, whose address proves nothing about the node's network.
	APIServerProbeAddress string
}

// Run runs an agent until ctx ends: the DaemonSet's process, or one of several in a demo.
func Run(ctx context.Context, cfg *rest.Config, o Options) error {
	if o.NodeName == "" {
		return fmt.Errorf("the node name is required")
	}
	links, ns, err := openNamespace(o.NetnsPath)
	if err != nil {
		return err
	}
	defer links.Close()
	if ns != nil {
		defer ns.Close()
	}

	// Before anything else, and without the API server: finish what a previous process left.
	var j *journal.Journal
	if o.StateDir != "" {
		if j, err = openJournal(ctx, o.StateDir, o.NodeName); err != nil {
			return err
		}
	}
	recovered, err := Recover(ctx, links, j)
	if err != nil {
		return err
	}

	scheme, err := kubescheme.New()
	if err != nil {
		return err
	}
	// The agent caches its own node's objects only: 5,000 agents must not each watch every node.
	ownName := fields.OneTermEqualSelector("metadata.name", o.NodeName)
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Logger:                 ctrl.Log.WithValues("node", o.NodeName),
		Scheme:                 scheme,
		Metrics:                metricsOptions(o),
		HealthProbeBindAddress: o.ProbeAddr,
		// One agent, one controller per process; the process-wide name check only gets in the
		// way of running several agents in one test binary.
		Controller: config.Controller{SkipNameValidation: new(true)},
		Cache: cache.Options{ByObject: map[client.Object]cache.ByObject{
			&mtuv1alpha1.NodeMTUState{}: {Field: ownName},
			&corev1.Node{}:              {Field: ownName},
			&corev1.Pod{}:               {Field: fields.OneTermEqualSelector("spec.nodeName", o.NodeName)},
		}},
	})
	if err != nil {
		return fmt.Errorf("creating the manager: %w", err)
	}

	probes := DefaultProbes(cmp.Or(o.APIServerProbeAddress, apiServerAddress(cfg)))
	if ns != nil {
		inner := probes
		probes = func(spec mtuv1alpha1.NodeProbe) probe.Prober {
			return probe.InNamespace(*ns, inner(spec))
		}
	}
	r := &Reconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), NodeName: o.NodeName, Links: links, Pinner: recovered.Pinner, Probes: probes, MeasurePath: DefaultPathMeasurer(ns), PodNetnsDir: o.PodNetnsDir, Journal: j,
		Recorder: mgr.GetEventRecorder(FieldManager)}
	if err := r.SetupWithManager(mgr, "nodemtustate-agent", LinkEvents(ctx, links)); err != nil {
		return err
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return err
	}
	ctrl.Log.WithName("setup").Info("starting agent", "netns", o.NetnsPath)
	return mgr.Start(ctx)
}

// openJournal opens the node's journal in dir, one file per node (several agents of a lab share
// a directory).
func openJournal(ctx context.Context, dir, nodeName string) (*journal.Journal, error) {
	boot, err := journal.BootID()
	if err != nil {
		return nil, err
	}
	j, _, dropped, err := journal.Open(filepath.Join(dir, nodeName+".json"), boot)
	if err != nil {
		return nil, err
	}
	if dropped {
		log.FromContext(ctx).Info("dropped the journal of an earlier boot: the kernel state it described is gone")
	}
	return j, nil
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

func metricsOptions(o Options) metricsserver.Options {
	opts := metricsserver.Options{BindAddress: o.MetricsAddr}
	if o.MetricsSecure {
		opts.SecureServing, opts.FilterProvider = true, filters.WithAuthenticationAndAuthorization
	}
	return opts
}
