package v1alpha1

// Condition types of a NetworkMTUPolicy.
//
// Ready, Reconciling and Stalled carry their kstatus meaning
// (sigs.k8s.io/cli-utils/pkg/kstatus): Reconciling=True while the operator is working towards
// the spec, Stalled=True when it cannot progress without a change from a person, Ready=True
// when the cluster matches the spec. The others give the detail behind them.
const (
	ConditionReady       = "Ready"
	ConditionReconciling = "Reconciling"
	ConditionStalled     = "Stalled"

	// ConditionCNIDetected: the CNI named in status.cni was found (or verified to exist).
	ConditionCNIDetected = "CNIDetected"
	// ConditionConfigApplied: the CNI's configuration holds the computed values.
	ConditionConfigApplied = "ConfigApplied"
	// ConditionNodesConverged: every selected node's interfaces match the policy.
	ConditionNodesConverged = "NodesConverged"
	// ConditionUnderlayConsistent: every selected node reports the same underlay MTU.
	ConditionUnderlayConsistent = "UnderlayConsistent"
	// ConditionPodsCurrent: no running pod has a stale MTU.
	ConditionPodsCurrent = "PodsCurrent"
	// ConditionPathMTUVerified: no path the agents checked between nodes carries less than
	// both NICs (a black hole no comparison of NICs sees).
	ConditionPathMTUVerified = "PathMTUVerified"
)

// Condition reasons, CamelCase as metav1.Condition requires.
const (
	ReasonReconciled          = "Reconciled"
	ReasonProgressing         = "Progressing"
	ReasonDryRun              = "DryRun"
	ReasonInvalidPolicy       = "InvalidPolicy"
	ReasonPodMTUBelowFloor    = "PodMTUBelowFloor"
	ReasonUnsupported         = "UnsupportedCombination"
	ReasonCNINotFound         = "CNINotFound"
	ReasonMultipleCNIs        = "MultipleCNIsFound"
	ReasonCNIFound            = "CNIFound"
	ReasonUnparseableConfig   = "UnparseableConfig"
	ReasonConfigWritten       = "ConfigWritten"
	ReasonConfigUpToDate      = "ConfigUpToDate"
	ReasonDriftCorrected      = "DriftCorrected"
	ReasonNodeSelectorClash   = "NodeSelectorOverlap"
	ReasonInvalidNodeSelector = "InvalidNodeSelector"
	ReasonCNIConfigOwned      = "CNIConfigOwnedByAnotherPolicy"
	// ReasonCNIConfigShared: the policy would change the CNI configuration, which every node
	// reads, but does not select every node.
	ReasonCNIConfigShared   = "CNIConfigSharedWithUnselectedNodes"
	ReasonRollingOut        = "RollingOut"
	ReasonAllNodesConverged = "AllNodesConverged"
	ReasonNodeFailed        = "NodeChangeFailed"
	ReasonNodesSilent       = "NodesNotReporting"
	ReasonPathCheckFailed   = "PathCheckFailed"
	ReasonCNIAgentDown      = "CNIAgentNotReady"
	ReasonLoweringRefused   = "LoweringNotAllowed"
	ReasonUnderlayMatches   = "UnderlayMatches"
	ReasonUnderlayMismatch  = "UnderlayMismatch"
	ReasonNoStalePods       = "NoStalePods"
	ReasonStalePodsFound    = "StalePodsFound"
	ReasonPodsRemediating   = "RemediatingPods"
	ReasonPathMTUBlackHole  = "PathMTUBlackHole"
	ReasonNoShortPathFound  = "NoShortPathFound"
)
