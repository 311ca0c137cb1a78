package controllers

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	mtuv1alpha1 "github.com/mtu-operator/mtu-operator/api/v1alpha1"
)

var (
	policyCondition = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "mtu_operator_policy_condition",
		Help: "1 when the policy's condition of this type has this status, 0 otherwise.",
	}, []string{"policy", "type", "status"})
	computedMTU = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "mtu_operator_computed_mtu_bytes",
		Help: "MTU the policy computed: underlay, pod, and tunnel per IP family.",
	}, []string{"policy", "kind"})
	configWrites = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mtu_operator_config_writes_total",
		Help: "Writes to CNI configuration resources.",
	}, []string{"policy", "cni"})
	driftCorrections = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mtu_operator_drift_corrections_total",
		Help: "Times the operator re-applied a CNI field someone reverted.",
	}, []string{"policy", "cni"})
	policyNodes = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "mtu_operator_policy_nodes",
		Help: "The policy's nodes: selected, converged (at their target), failed (a change or a check failed).",
	}, []string{"policy", "state"})
	migrationPhase = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "mtu_operator_policy_migration_phase",
		Help: "1 for the phase the policy's migration is in, 0 for the others.",
	}, []string{"policy", "phase"})
)

// migrationPhases are the phases in the order a migration passes them.
var migrationPhases = []mtuv1alpha1.MigrationPhase{
	mtuv1alpha1.MigrationGathering, mtuv1alpha1.MigrationPlanned, mtuv1alpha1.MigrationPinning, mtuv1alpha1.MigrationRaisingDevices,
	mtuv1alpha1.MigrationConfiguring, mtuv1alpha1.MigrationRestartingCNI, mtuv1alpha1.MigrationLoweringDevices, mtuv1alpha1.MigrationVerifying,
	mtuv1alpha1.MigrationReleasing, mtuv1alpha1.MigrationDone,
}

func init() {
	metrics.Registry.MustRegister(policyCondition, computedMTU, configWrites, driftCorrections, policyNodes, migrationPhase)
}

// recordMetrics publishes a policy's conditions and computed MTUs.
func recordMetrics(p *mtuv1alpha1.NetworkMTUPolicy) {
	for _, c := range p.Status.Conditions {
		for _, s := range []metav1.ConditionStatus{metav1.ConditionTrue, metav1.ConditionFalse, metav1.ConditionUnknown} {
			v := 0.0
			if c.Status == s {
				v = 1
			}
			policyCondition.WithLabelValues(p.Name, c.Type, string(s)).Set(v)
		}
	}
	computedMTU.WithLabelValues(p.Name, "underlay").Set(float64(p.Status.UnderlayMTU))
	computedMTU.WithLabelValues(p.Name, "pod").Set(float64(p.Status.PodMTU))
	for _, t := range p.Status.Tunnels {
		computedMTU.WithLabelValues(p.Name, "tunnel_"+strings.ToLower(string(t.Family))).Set(float64(t.MTU))
	}
	policyNodes.WithLabelValues(p.Name, "selected").Set(float64(p.Status.Nodes.Selected))
	policyNodes.WithLabelValues(p.Name, "converged").Set(float64(p.Status.Nodes.Converged))
	policyNodes.WithLabelValues(p.Name, "failed").Set(float64(p.Status.Nodes.Failed))
	var phase mtuv1alpha1.MigrationPhase
	if m := p.Status.Migration; m != nil {
		phase = m.Phase
	}
	for _, ph := range migrationPhases {
		v := 0.0
		if ph == phase {
			v = 1
		}
		migrationPhase.WithLabelValues(p.Name, string(ph)).Set(v)
	}
}

// startCounters creates a policy's counters for its CNI at 0: an alert's increase() over a
// counter that first appears at 1 sees no increase.
func startCounters(policy string, cni mtuv1alpha1.CNIProvider) {
	configWrites.WithLabelValues(policy, string(cni))
	driftCorrections.WithLabelValues(policy, string(cni))
}

// forgetMetrics drops a deleted policy's series.
func forgetMetrics(policy string) {
	for _, v := range []*prometheus.GaugeVec{policyCondition, computedMTU, policyNodes, migrationPhase} {
		v.DeletePartialMatch(prometheus.Labels{"policy": policy})
	}
	for _, v := range []*prometheus.CounterVec{configWrites, driftCorrections} {
		v.DeletePartialMatch(prometheus.Labels{"policy": policy})
	}
}
