// Command manager is the mtu-operator cluster controller: it computes the pod and tunnel MTU
// of each NetworkMTUPolicy, configures the CNI, paces the rollout over nodes and reports.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/mtu-operator/mtu-operator/controllers"
	"github.com/mtu-operator/mtu-operator/internal/kubescheme"
)

func main() {
	if err := run(ctrl.SetupSignalHandler(), nil, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "manager:", err)
		os.Exit(1)
	}
}

// run parses flags and runs the manager until ctx ends. A nil cfg is read from the usual
// places (--kubeconfig, $KUBECONFIG, in-cluster).
func run(ctx context.Context, cfg *rest.Config, args []string) error {
	fs := flag.NewFlagSet("manager", flag.ContinueOnError)
	metricsAddr := fs.String("metrics-bind-address", ":8080", "Address the Prometheus metrics endpoint binds to; 0 disables it.")
	metricsSecure := fs.Bool("metrics-secure", true, "Serve metrics over HTTPS to callers whose bearer token the API server authenticates and authorizes for GET /metrics (the metrics-reader ClusterRole); false serves plain HTTP to anyone.")
	probeAddr := fs.String("health-probe-bind-address", ":8081", "Address the /healthz and /readyz probes bind to.")
	pprofAddr := fs.String("pprof-bind-address", "", "Address Go's /debug/pprof profiles are served on, for finding where a large cluster's reconciles spend their time; empty disables it. Bind it to localhost: it is not authenticated.")
	leaderElect := fs.Bool("leader-elect", false, "Take a leader-election Lease so that only one manager replica acts at a time.")
	leaderNamespace := fs.String("leader-election-namespace", "", "Namespace of the leader-election Lease; defaults to the pod's namespace.")
	zapOpts := zap.Options{}
	zapOpts.BindFlags(fs)
	if cfg == nil {
		ctrl.RegisterFlags(fs)
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	log := ctrl.Log.WithName("setup")

	scheme, err := kubescheme.New()
	if err != nil {
		return err
	}

	if cfg == nil {
		var err error
		if cfg, err = ctrl.GetConfig(); err != nil {
			return fmt.Errorf("reading the kubeconfig: %w", err)
		}
	}
	opts := controllers.ManagerOptions(scheme)
	opts.Metrics = metricsserver.Options{BindAddress: *metricsAddr}
	if *metricsSecure {
		opts.Metrics.SecureServing, opts.Metrics.FilterProvider = true, filters.WithAuthenticationAndAuthorization
	}
	opts.HealthProbeBindAddress = *probeAddr
	opts.PprofBindAddress = *pprofAddr
	opts.LeaderElection = *leaderElect
	opts.LeaderElectionID = "mtu-operator-manager.networking.mtu-operator.io"
	opts.LeaderElectionNamespace = *leaderNamespace
	opts.LeaderElectionReleaseOnCancel = true
	mgr, err := ctrl.NewManager(cfg, opts)
	if err != nil {
		return fmt.Errorf("creating the manager: %w", err)
	}
	if err := controllers.Register(mgr); err != nil {
		return err
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return err
	}

	log.Info("starting manager", "metrics", *metricsAddr, "probes", *probeAddr, "leaderElection", *leaderElect)
	return mgr.Start(ctx)
}
