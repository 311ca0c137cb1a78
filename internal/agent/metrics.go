package agent

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	mtuv1alpha1 "github.com/mtu-operator/mtu-operator/api/v1alpha1"
)

// The agent's metrics, each labeled with its node: what it sees and what it did. Only the short
// paths carry per-peer labels, so the series stay as few as the nodes and their black holes.

// podScanErrors is the agent's count of pod network namespaces it could not read.
var podScanErrors = prometheus.NewGaugeVec(prometheus.GaugeOpts{
	Name: "mtu_operator_agent_pod_scan_errors",
	Help: "Pod network namespaces on the node that the agent could not read at its last inventory; their pods' MTU is unknown.",
}, []string{"node"})

// routePin is the MTU the agent holds the node's routes at now: a release by the policy's
// transition is acted on without a report, so this, not the NodeMTUState's status, says what a node holds.
var routePin = prometheus.NewGaugeVec(prometheus.GaugeOpts{
	Name: "mtu_operator_agent_route_pin_bytes",
	Help: "The MTU the agent pins the node's routes via the CNI's devices to now; 0 when it pins none.",
}, []string{"node"})

// pathMTU is what crosses on each path to a peer the agent measured short; a path that carries
// what it must has no series, so the labels stay few.
var pathMTU = prometheus.NewGaugeVec(prometheus.GaugeOpts{
	Name: "mtu_operator_agent_path_mtu_bytes",
	Help: "The largest packet that crossed, with fragmentation forbidden, on a path to a peer (layer Underlay or Overlay) that carries less than both ends (0: not even 1280 bytes); only short paths have a series.",
}, []string{"node", "peer", "layer"})

// transactions counts the changes the agent made, by how they ended.
var transactions = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "mtu_operator_agent_transactions_total",
	Help: "Changes of the node's interfaces the agent made, by outcome: Committed, RolledBack (a probe failed and everything was put back, or the agent gave up after interruptions), Failed (putting back failed too; the node needs a person).",
}, []string{"node", "outcome"})

// probeFailures counts the checks of a change or of the paths that failed, by what failed.
var probeFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "mtu_operator_agent_probe_failures_total",
	Help: "Checks that failed, by kind: change (the probe after a change of the node's interfaces, which rolled it back) or paths (a check of the paths to the probe peers that changed nothing).",
}, []string{"node", "kind"})

// stalePods is how many of the node's pods have an MTU other than the target.
var stalePods = prometheus.NewGaugeVec(prometheus.GaugeOpts{
	Name: "mtu_operator_agent_stale_pods",
	Help: "Pods on the node whose interface MTU differs from the pod MTU the policy computed, at the agent's last inventory.",
}, []string{"node"})

// observedMTU is what the agent sees on the node's underlay and pod network device.
var observedMTU = prometheus.NewGaugeVec(prometheus.GaugeOpts{
	Name: "mtu_operator_agent_observed_mtu_bytes",
	Help: "The MTU the agent sees on the node: kind underlay (the smallest of the underlay interfaces) and overlay (the pod network device: the tunnel, or the gateway or bridge without one); 0 when there is none.",
}, []string{"node", "kind"})

// Label values of the agent's metrics.
const (
	probeKindChange = "change"
	probeKindPaths  = "paths"
)

func init() {
	metrics.Registry.MustRegister(podScanErrors, routePin, pathMTU, transactions, probeFailures, stalePods, observedMTU)
}

// startCounters creates the node's counters at 0: an alert's increase() over a counter that
// first appears at 1 sees no increase, and the first rollback would go unseen.
func startCounters(node string) {
	for _, o := range []mtuv1alpha1.TransactionOutcome{mtuv1alpha1.TransactionCommitted, mtuv1alpha1.TransactionRolledBack, mtuv1alpha1.TransactionFailed} {
		transactions.WithLabelValues(node, string(o))
	}
	for _, kind := range []string{probeKindChange, probeKindPaths} {
		probeFailures.WithLabelValues(node, kind)
	}
}
