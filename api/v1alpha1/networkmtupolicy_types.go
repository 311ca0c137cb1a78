package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// UnderlaySource says where the underlay MTU comes from.
// +kubebuilder:validation:Enum=Declared;AutoDetect
// +kubebuilder:validation:MaxLength=16
type UnderlaySource string

const (
	// UnderlayDeclared means spec.underlay.mtu is the MTU of the physical network.
	UnderlayDeclared UnderlaySource = "Declared"
	// UnderlayAutoDetect means each node's agent reads the MTU of its underlay interfaces and the
	// smallest value across the selected nodes is used.
	UnderlayAutoDetect UnderlaySource = "AutoDetect"
)

// UnderlayManagement says whether the operator may change the underlay interfaces themselves.
// +kubebuilder:validation:Enum=Observe;Enforce
// +kubebuilder:validation:MaxLength=16
type UnderlayManagement string

const (
	// UnderlayObserve means underlay interfaces are read and reported, never changed.
	UnderlayObserve UnderlayManagement = "Observe"
	// UnderlayEnforce means a node whose underlay interface differs from spec.underlay.mtu has it
	// set to that value (as a transaction that rolls back if the node loses connectivity).
	UnderlayEnforce UnderlayManagement = "Enforce"
)

// DefaultInterfacePattern matches the usual physical NIC names (predictable names such as
// enp3s0 or ens5, and the classic eth0, wlan0), as Calico's mtuIfacePattern does.
const DefaultInterfacePattern = `^((en|wl|ww|sl|ib)[Pcopsvx].*|(eth|wlan|wwan).*)`

// UnderlaySpec describes the physical network between nodes.
// +kubebuilder:validation:XValidation:rule="self.source != 'AutoDetect' || !has(self.mtu)",message="underlay.mtu cannot be set when underlay.source is AutoDetect: the MTU is detected on each node; set source to Declared to declare it"
// +kubebuilder:validation:XValidation:rule="self.source != 'Declared' || has(self.mtu)",message="underlay.mtu is required when underlay.source is Declared"
// +kubebuilder:validation:XValidation:rule="self.management != 'Enforce' || self.source == 'Declared'",message="underlay.management Enforce needs underlay.source Declared: the operator enforces only an MTU you declare"
type UnderlaySpec struct {
	// source says where the underlay MTU comes from: Declared (spec.underlay.mtu) or
	// AutoDetect (the smallest MTU the node agents find on their underlay interfaces).
	// +kubebuilder:default=Declared
	// +optional
	Source UnderlaySource `json:"source,omitempty"`

	// mtu is the MTU of the physical network between nodes, in bytes, as the switches and
	// NICs carry it (for example 1500, or 9000 with jumbo frames). Required when source is
	// Declared; not allowed with AutoDetect.
	// +kubebuilder:validation:Minimum=576
	// +kubebuilder:validation:Maximum=65535
	// +optional
	MTU *int32 `json:"mtu,omitempty"`

	// interfacePattern is a regular expression (RE2) naming the underlay interfaces on each
	// node. Among the matching interfaces that are up, those carrying a default route are
	// preferred. Defaults to the usual physical NIC names.
	// +kubebuilder:default="^((en|wl|ww|sl|ib)[Pcopsvx].*|(eth|wlan|wwan).*)"
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:XValidation:rule="[''.matches(self)].size() == 1",message="underlay.interfacePattern must be a valid regular expression (RE2 syntax)"
	// +optional
	InterfacePattern string `json:"interfacePattern,omitempty"`

	// management says whether the operator may change the underlay interfaces: Observe
	// (report only) or Enforce (set each node's underlay interface to mtu, the fix for a node
	// whose NIC was left at 1500 in a 9000 cluster).
	// +kubebuilder:default=Observe
	// +optional
	Management UnderlayManagement `json:"management,omitempty"`

	// allowLowering lets management Enforce lower a NIC whose MTU is above mtu. Without it the
	// operator only raises NICs: a typo in mtu (1500 on a 9000 network) would otherwise shrink
	// every node's NIC, and small probes pass either way. The DryRun plan lists every NIC it
	// would change.
	// +optional
	AllowLowering bool `json:"allowLowering,omitempty"`
}

// EncapsulationType is how pod traffic crosses the underlay between nodes.
// +kubebuilder:validation:Enum=VXLAN;Geneve;IPIP;GRE;WireGuard;None
// +kubebuilder:validation:MaxLength=16
type EncapsulationType string

// The encapsulation types.
const (
	EncapsulationVXLAN     EncapsulationType = "VXLAN"
	EncapsulationGeneve    EncapsulationType = "Geneve"
	EncapsulationIPIP      EncapsulationType = "IPIP"
	EncapsulationGRE       EncapsulationType = "GRE"
	EncapsulationWireGuard EncapsulationType = "WireGuard"
	EncapsulationNone      EncapsulationType = "None"
)

// EncryptionType is an encryption layered on the encapsulation.
// +kubebuilder:validation:Enum=None;IPsec
// +kubebuilder:validation:MaxLength=16
type EncryptionType string

// The encryption types.
const (
	EncryptionNone  EncryptionType = "None"
	EncryptionIPsec EncryptionType = "IPsec"
)

// EncapsulationSpec describes how pod traffic is carried between nodes.
// +kubebuilder:validation:XValidation:rule="self.encryption != 'IPsec' || self.type in ['VXLAN', 'Geneve', 'GRE']",message="encapsulation.encryption IPsec applies only to VXLAN, Geneve and GRE tunnels (WireGuard already encrypts)"
type EncapsulationSpec struct {
	// type is the encapsulation: VXLAN, Geneve, IPIP, GRE, WireGuard, or None for native
	// routing without a tunnel (flannel host-gw, Calico without encapsulation, Antrea
	// noEncap).
	// +required
	Type EncapsulationType `json:"type"`

	// encryption adds an encryption overhead on top of the tunnel: None or IPsec (ESP, 38
	// bytes, as Antrea budgets it). WireGuard is an encapsulation type of its own.
	// +kubebuilder:default=None
	// +optional
	Encryption EncryptionType `json:"encryption,omitempty"`
}

// CNIProvider names a CNI plugin.
// +kubebuilder:validation:Enum=Auto;Flannel;Calico;Antrea
// +kubebuilder:validation:MaxLength=16
type CNIProvider string

// The CNI providers.
const (
	CNIAuto    CNIProvider = "Auto"
	CNIFlannel CNIProvider = "Flannel"
	CNICalico  CNIProvider = "Calico"
	CNIAntrea  CNIProvider = "Antrea"
)

// AgentRestartPolicy says whether the CNI's agents are restarted after a configuration change.
// +kubebuilder:validation:Enum=OnConfigChange;Never
// +kubebuilder:validation:MaxLength=16
type AgentRestartPolicy string

const (
	// AgentRestartOnConfigChange restarts the CNI's DaemonSet (as kubectl rollout restart
	// does, honouring its update strategy) after the operator changes its configuration,
	// since flannel and Antrea read their configuration only at start.
	AgentRestartOnConfigChange AgentRestartPolicy = "OnConfigChange"
	// AgentRestartNever leaves restarts to you.
	AgentRestartNever AgentRestartPolicy = "Never"
)

// CNISpec says which CNI to configure and how.
type CNISpec struct {
	// provider is the CNI to configure: Auto detects flannel, Calico or Antrea from their
	// configuration objects. Once set to a specific CNI it cannot change, because the values
	// the operator replaced (kept in status for undo) belong to that CNI.
	// +kubebuilder:default=Auto
	// +kubebuilder:validation:XValidation:rule="oldSelf == 'Auto' || self == oldSelf",message="cni.provider cannot change once set to a specific CNI; create a new policy for another CNI"
	// +optional
	Provider CNIProvider `json:"provider,omitempty"`

	// agentRestart says whether the CNI's agents are restarted after the operator changes
	// their configuration: OnConfigChange or Never.
	// +kubebuilder:default=OnConfigChange
	// +optional
	AgentRestart AgentRestartPolicy `json:"agentRestart,omitempty"`
}

// RolloutSpec paces the change over nodes.
type RolloutSpec struct {
	// maxUnavailable is how many selected nodes may be changing at once: a number of nodes
	// or a percentage of the selected nodes (rounded up, at least one).
	// +kubebuilder:default="25%"
	// +kubebuilder:validation:XIntOrString
	// +kubebuilder:validation:MaxLength=6
	// +kubebuilder:validation:XValidation:rule="type(self) == int ? (self >= 1 && self <= 100000) : self.matches('^([1-9][0-9]?|100)%$')",message="rollout.maxUnavailable must be a number of nodes (at least 1) or a percentage from 1% to 100%"
	// +optional
	MaxUnavailable *intstr.IntOrString `json:"maxUnavailable,omitempty"`
}

// PathProbingSpec paces the agents' probes of the paths between nodes.
type PathProbingSpec struct {
	// peersPerRound is how many other nodes each node probes a round, and how many probe it;
	// 0 turns the probing between rollouts off.
	// +kubebuilder:default=3
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=16
	// +optional
	PeersPerRound *int32 `json:"peersPerRound,omitempty"`
	// roundSeconds is how long a round lasts.
	// +kubebuilder:default=30
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=3600
	// +optional
	RoundSeconds int32 `json:"roundSeconds,omitempty"`
}

// StalePodAction is what to do with a pod whose interface MTU predates a change.
// +kubebuilder:validation:Enum=Report;Evict;InPlace
// +kubebuilder:validation:MaxLength=16
type StalePodAction string

const (
	// StalePodReport annotates the pod and emits an Event naming the fix.
	StalePodReport StalePodAction = "Report"
	// StalePodEvict evicts the pod through the Eviction API (PodDisruptionBudgets apply);
	// pods without a controller owner are reported, never evicted.
	StalePodEvict StalePodAction = "Evict"
	// StalePodInPlace sets the pod's interface and its host-side peer to the expected MTU
	// without restarting the pod.
	StalePodInPlace StalePodAction = "InPlace"
)

// StalePodsSpec says what to do with pods whose MTU is stale.
// +kubebuilder:validation:XValidation:rule="!has(self.maxConcurrentEvictions) || self.action == 'Evict'",message="stalePods.maxConcurrentEvictions applies only when stalePods.action is Evict"
type StalePodsSpec struct {
	// action is Report (annotate and emit Events), Evict (evict through the Eviction API,
	// respecting PodDisruptionBudgets) or InPlace (set the pod's interface MTU in place).
	// +kubebuilder:default=Report
	// +optional
	Action StalePodAction `json:"action,omitempty"`

	// maxConcurrentEvictions bounds how many pods are being evicted at once when action is
	// Evict. Defaults to 5.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	// +optional
	MaxConcurrentEvictions *int32 `json:"maxConcurrentEvictions,omitempty"`
}

// PolicyMode says whether the operator changes anything.
// +kubebuilder:validation:Enum=Apply;DryRun
// +kubebuilder:validation:MaxLength=16
type PolicyMode string

const (
	// ModeApply changes CNI configuration and node interfaces.
	ModeApply PolicyMode = "Apply"
	// ModeDryRun computes and publishes the plan in status and changes nothing.
	ModeDryRun PolicyMode = "DryRun"
)

// IPFamily is an IP family.
// +kubebuilder:validation:Enum=IPv4;IPv6
// +kubebuilder:validation:MaxLength=16
type IPFamily string

// The IP families.
const (
	IPv4 IPFamily = "IPv4"
	IPv6 IPFamily = "IPv6"
)

// NetworkMTUPolicySpec is the desired MTU of the cluster network.
// +kubebuilder:validation:XValidation:rule="!has(self.underlay.mtu) || !has(self.ipFamilies) || !('IPv6' in self.ipFamilies) || self.underlay.mtu >= 1280",message="underlay.mtu must be at least 1280 when ipFamilies includes IPv6 (RFC 8200)"
// +kubebuilder:validation:XValidation:rule="!has(self.underlay.mtu) || (has(self.ipFamilies) && 'IPv6' in self.ipFamilies) || self.underlay.mtu - ({'VXLAN': 50, 'Geneve': 50, 'GRE': 42, 'IPIP': 20, 'WireGuard': 60, 'None': 0}[self.encapsulation.type] + ((has(self.ipFamilies) && 'IPv6' in self.ipFamilies) && self.encapsulation.type != 'None' ? 20 : 0) + (self.encapsulation.encryption == 'IPsec' ? 38 : 0)) >= 576",message="the pod MTU would fall below the IPv4 floor of 576 (the pod MTU is underlay.mtu minus the tunnel overhead: VXLAN and Geneve 50, GRE 42, IPIP 20, WireGuard 60, plus 20 with IPv6 and 38 with IPsec)"
// +kubebuilder:validation:XValidation:rule="!has(self.underlay.mtu) || !(has(self.ipFamilies) && 'IPv6' in self.ipFamilies) || self.underlay.mtu < 1280 || self.underlay.mtu - ({'VXLAN': 50, 'Geneve': 50, 'GRE': 42, 'IPIP': 20, 'WireGuard': 60, 'None': 0}[self.encapsulation.type] + ((has(self.ipFamilies) && 'IPv6' in self.ipFamilies) && self.encapsulation.type != 'None' ? 20 : 0) + (self.encapsulation.encryption == 'IPsec' ? 38 : 0)) >= 1280",message="the pod MTU would fall below the IPv6 minimum of 1280 (the pod MTU is underlay.mtu minus the tunnel overhead: VXLAN and Geneve 50, GRE 42, IPIP 20, WireGuard 60, plus 20 with IPv6 and 38 with IPsec)"
// +kubebuilder:validation:XValidation:rule="!(self.encapsulation.type == 'IPIP' && has(self.ipFamilies) && 'IPv6' in self.ipFamilies)",message="IPIP carries only IPv4: use VXLAN, WireGuard or None when ipFamilies includes IPv6"
// +kubebuilder:validation:XValidation:rule="!(self.encapsulation.type == 'GRE' && has(self.ipFamilies) && 'IPv6' in self.ipFamilies)",message="GRE tunnels (Antrea) do not support IPv6: use Geneve or VXLAN when ipFamilies includes IPv6"
// +kubebuilder:validation:XValidation:rule="!(self.cni.provider in ['Flannel', 'Calico'] && self.encapsulation.type in ['Geneve', 'GRE'])",message="Geneve and GRE tunnels need Antrea: flannel and Calico offer VXLAN, IPIP, WireGuard and None"
// +kubebuilder:validation:XValidation:rule="!(self.cni.provider == 'Antrea' && self.encapsulation.type == 'IPIP')",message="Antrea has no IPIP tunnel: use Geneve, VXLAN, GRE, WireGuard or None"
// +kubebuilder:validation:XValidation:rule="!(self.cni.provider in ['Flannel', 'Calico'] && self.encapsulation.encryption == 'IPsec')",message="IPsec encryption of the tunnel needs Antrea"
type NetworkMTUPolicySpec struct {
	// underlay describes the physical network between nodes.
	// +required
	Underlay UnderlaySpec `json:"underlay"`

	// encapsulation describes how pod traffic is carried between nodes.
	// +required
	Encapsulation EncapsulationSpec `json:"encapsulation"`

	// ipFamilies are the cluster's IP families. A dual-stack cluster lists both and pays the
	// larger (IPv6) tunnel overhead on pod interfaces. When omitted, the operator reads them
	// from the cluster (the kubernetes Service in the default namespace).
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=2
	// +optional
	IPFamilies []IPFamily `json:"ipFamilies,omitempty"`

	// cni says which CNI to configure and whether to restart its agents.
	// +kubebuilder:default={}
	// +optional
	CNI CNISpec `json:"cni,omitempty"`

	// nodeSelector selects the nodes this policy manages, as a label selector; all nodes when
	// omitted. Two policies must not select the same node.
	// +optional
	NodeSelector *NodeSelector `json:"nodeSelector,omitempty"`

	// rollout paces the change over the selected nodes.
	// +kubebuilder:default={}
	// +optional
	Rollout RolloutSpec `json:"rollout,omitempty"`

	// stalePods says what to do with running pods whose MTU predates a change: no CNI
	// updates the interfaces of running pods by itself.
	// +kubebuilder:default={}
	// +optional
	StalePods StalePodsSpec `json:"stalePods,omitempty"`

	// pathProbing says how the agents keep checking the paths between the selected nodes once
	// the policy is Ready: each round, each node probes a few others at the size both NICs
	// carry, on a schedule that reaches every pair of nodes in time.
	// +kubebuilder:default={}
	// +optional
	PathProbing PathProbingSpec `json:"pathProbing,omitempty"`

	// mode is Apply (change the cluster) or DryRun (publish the plan in status, change
	// nothing).
	// +kubebuilder:default=Apply
	// +optional
	Mode PolicyMode `json:"mode,omitempty"`

	// deletionPolicy says what deleting the policy does to the cluster. Orphan (the default)
	// stops managing and leaves the CNI configuration and the NICs as they are: deleting an
	// object, which GitOps tools do when a file moves, must not by itself change the MTU of a
	// running cluster. Restore carries the CNI configuration back to the values it had before
	// the operator first changed it, and with underlay.management Enforce each NIC back to its
	// original MTU, as a paced migration, before the policy goes. See the README for what
	// Restore supports.
	// +kubebuilder:default=Orphan
	// +optional
	DeletionPolicy DeletionPolicy `json:"deletionPolicy,omitempty"`
}

// DeletionPolicy says what deleting a policy does.
// +kubebuilder:validation:Enum=Orphan;Restore
// +kubebuilder:validation:MaxLength=16
type DeletionPolicy string

const (
	// DeletionOrphan stops managing and changes nothing.
	DeletionOrphan DeletionPolicy = "Orphan"
	// DeletionRestore migrates back to the values the operator first replaced.
	DeletionRestore DeletionPolicy = "Restore"
)

// TunnelMTU is the MTU of the tunnel devices of one IP family.
type TunnelMTU struct {
	// family of the tunnel's outer header.
	// +required
	Family IPFamily `json:"family"`
	// mtu of the tunnel devices: the underlay MTU less the encapsulation overhead.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=65535
	// +required
	MTU int32 `json:"mtu"`
}

// NodeCounts counts the selected nodes by state.
type NodeCounts struct {
	// selected is the number of nodes the policy selects.
	// +kubebuilder:validation:Minimum=0
	// +optional
	Selected int32 `json:"selected,omitempty"`
	// converged is the number of selected nodes whose interfaces match the policy.
	// +kubebuilder:validation:Minimum=0
	// +optional
	Converged int32 `json:"converged,omitempty"`
	// failed is the number of selected nodes whose last change failed and was rolled back.
	// +kubebuilder:validation:Minimum=0
	// +optional
	Failed int32 `json:"failed,omitempty"`
}

// ConfigChange is one field the operator changed, or in DryRun would change, in a CNI resource.
type ConfigChange struct {
	// resource names the object: "ConfigMap kube-flannel/kube-flannel-cfg",
	// "FelixConfiguration default".
	// +kubebuilder:validation:MaxLength=300
	// +required
	Resource string `json:"resource"`
	// path is the field inside the resource, e.g. "net-conf.json: Backend.MTU".
	// +kubebuilder:validation:MaxLength=300
	// +required
	Path string `json:"path"`
	// from is the value before the operator's first change; empty when the field was absent.
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	From string `json:"from,omitempty"`
	// to is the value the operator wrote; empty when it removed the field.
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	To string `json:"to,omitempty"`
}

// PodMTUEra is a pod MTU the policy has computed before, so a stale pod's MTU can be named.
type PodMTUEra struct {
	// podMTU computed then.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=65535
	// +required
	PodMTU int32 `json:"podMTU"`
	// encapsulation then.
	// +required
	Encapsulation EncapsulationType `json:"encapsulation"`
	// underlayMTU then.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=65535
	// +optional
	UnderlayMTU int32 `json:"underlayMTU,omitempty"`
}

// PodCounts counts stale pods and what became of them.
type PodCounts struct {
	// stale pods whose interface MTU differs from podMTU now.
	// +kubebuilder:validation:Minimum=0
	// +optional
	Stale int32 `json:"stale,omitempty"`
	// remediated pods: annotated (Report), evicted (Evict) or corrected (InPlace).
	// +kubebuilder:validation:Minimum=0
	// +optional
	Remediated int32 `json:"remediated,omitempty"`
	// failed remediations: evictions refused by other than a PodDisruptionBudget, in-place
	// changes that did not take.
	// +kubebuilder:validation:Minimum=0
	// +optional
	Failed int32 `json:"failed,omitempty"`
	// waiting are pods whose eviction a PodDisruptionBudget holds back for now, or bare pods
	// that are only reported.
	// +kubebuilder:validation:Minimum=0
	// +optional
	Waiting int32 `json:"waiting,omitempty"`
}

// NetworkMTUPolicyStatus is what the operator computed and observed.
type NetworkMTUPolicyStatus struct {
	// observedGeneration is the metadata.generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: Ready, Reconciling and Stalled (with their kstatus meaning) and the
	// detail conditions CNIDetected, ConfigApplied, NodesConverged, UnderlayConsistent and
	// PodsCurrent.
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=16
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// cni is the CNI the operator detected or verified.
	// +optional
	CNI CNIProvider `json:"cni,omitempty"`

	// ipFamilies are the IP families the computation used.
	// +listType=set
	// +kubebuilder:validation:MaxItems=2
	// +optional
	IPFamilies []IPFamily `json:"ipFamilies,omitempty"`

	// underlayMTU is the underlay MTU the computation used: the declared value, or the
	// smallest MTU detected across the selected nodes.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=65535
	// +optional
	UnderlayMTU int32 `json:"underlayMTU,omitempty"`

	// podMTU is the MTU every pod interface should have.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=65535
	// +optional
	PodMTU int32 `json:"podMTU,omitempty"`

	// tunnels are the tunnel device MTUs per IP family; empty without encapsulation.
	// +listType=map
	// +listMapKey=family
	// +kubebuilder:validation:MaxItems=2
	// +optional
	Tunnels []TunnelMTU `json:"tunnels,omitempty"`

	// nodes counts the selected nodes by state.
	// +optional
	Nodes NodeCounts `json:"nodes,omitempty"`

	// plannedChanges is, in DryRun mode, every change Apply would make to the CNI's
	// configuration; empty in Apply mode once the changes are written.
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	// +optional
	PlannedChanges []ConfigChange `json:"plannedChanges,omitempty"`

	// replacedValues are the fields the operator has changed in the CNI's configuration, each
	// with the value it had before the operator first touched it: what to put back to undo.
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	// +optional
	ReplacedValues []ConfigChange `json:"replacedValues,omitempty"`

	// agentRestarts are the CNI DaemonSets restarted after the last configuration change
	// (in DryRun: that would be restarted), as namespace/name.
	// +listType=set
	// +kubebuilder:validation:MaxItems=8
	// +kubebuilder:validation:items:MaxLength=253
	// +optional
	AgentRestarts []string `json:"agentRestarts,omitempty"`

	// driftCorrections counts how often the operator re-applied a field someone reverted.
	// +kubebuilder:validation:Minimum=0
	// +optional
	DriftCorrections int32 `json:"driftCorrections,omitempty"`

	// lastDriftCorrection is when the operator last re-applied a reverted field; repeated
	// drift is corrected with a growing delay so the operator never fights another writer in
	// a hot loop.
	// +optional
	LastDriftCorrection *metav1.Time `json:"lastDriftCorrection,omitempty"`

	// stalePods is the number of running pods whose interface MTU differs from podMTU.
	// +kubebuilder:validation:Minimum=0
	// +optional
	StalePods int32 `json:"stalePods,omitempty"`

	// pods counts stale pods and their remediation.
	// +optional
	Pods PodCounts `json:"pods,omitempty"`

	// migration is where the rollout of the current generation stands; see
	// docs/design/migrations.md for the phases.
	// +optional
	Migration *MigrationStatus `json:"migration,omitempty"`

	// podMTUHistory are the pod MTUs this policy computed before, newest first, so a pod
	// still at one of them can be explained ("1450 predates the switch from VXLAN to None").
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=4
	// +optional
	PodMTUHistory []PodMTUEra `json:"podMTUHistory,omitempty"`
}

// NodeSelector is a label selector, written as metav1.LabelSelector is, and checked at
// admission as Kubernetes checks its own: a selector that can never work is refused with a
// message, not admitted to fail later. (The schema bounds it so that the checks stay cheap.)
// +kubebuilder:validation:XValidation:rule="!has(self.matchExpressions) || self.matchExpressions.all(e, e.operator in ['In', 'NotIn'] ? (has(e.values) && size(e.values) > 0) : (!has(e.values) || size(e.values) == 0))",message="nodeSelector.matchExpressions: In and NotIn need values; Exists and DoesNotExist take none"
// +kubebuilder:validation:XValidation:rule="!has(self.matchLabels) || self.matchLabels.all(k, k.matches('^([a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$'))",message="nodeSelector.matchLabels: each key must be a label key: an optional DNS-subdomain prefix and '/', then up to 63 letters, digits, '-', '_' or '.', beginning and ending with a letter or digit"
type NodeSelector struct {
	// matchLabels selects the nodes that have every one of these labels, with these values.
	// Keys are checked when the controller reads them (a key that is not a label key stalls the
	// policy with InvalidNodeSelector); values are label values: empty, or up to 63 letters,
	// digits, '-', '_' or '.', beginning and ending with a letter or digit.
	// +kubebuilder:validation:MaxProperties=32
	// +optional
	MatchLabels map[string]NodeLabelValue `json:"matchLabels,omitempty"`
	// matchExpressions are requirements every selected node meets.
	// +kubebuilder:validation:MaxItems=32
	// +listType=atomic
	// +optional
	MatchExpressions []NodeSelectorRequirement `json:"matchExpressions,omitempty"`
}

// NodeLabelValue is a label value.
// +kubebuilder:validation:MaxLength=63
// +kubebuilder:validation:Pattern=`^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$`
type NodeLabelValue string

// NodeSelectorRequirement is a requirement on one label.
type NodeSelectorRequirement struct {
	// key is the label key: an optional DNS-subdomain prefix and '/', then up to 63 letters,
	// digits, '-', '_' or '.', beginning and ending with a letter or digit.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=317
	// +kubebuilder:validation:Pattern=`^([a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$`
	// +required
	Key string `json:"key"`
	// operator is In, NotIn, Exists or DoesNotExist.
	// +kubebuilder:validation:Enum=In;NotIn;Exists;DoesNotExist
	// +required
	Operator metav1.LabelSelectorOperator `json:"operator"`
	// values are the label values In and NotIn compare with; Exists and DoesNotExist take none.
	// +kubebuilder:validation:MaxItems=64
	// +listType=atomic
	// +optional
	Values []NodeLabelValue `json:"values,omitempty"`
}

// LabelSelector is the selector as Kubernetes' libraries take it.
func (s *NodeSelector) LabelSelector() *metav1.LabelSelector {
	if s == nil {
		return nil
	}
	out := &metav1.LabelSelector{}
	for k, v := range s.MatchLabels {
		if out.MatchLabels == nil {
			out.MatchLabels = map[string]string{}
		}
		out.MatchLabels[k] = string(v)
	}
	for _, e := range s.MatchExpressions {
		r := metav1.LabelSelectorRequirement{Key: e.Key, Operator: e.Operator}
		for _, v := range e.Values {
			r.Values = append(r.Values, string(v))
		}
		out.MatchExpressions = append(out.MatchExpressions, r)
	}
	return out
}

// MigrationPhase is a step of the migration protocol.
// +kubebuilder:validation:Enum=Gathering;Planned;Pinning;RaisingDevices;Configuring;RestartingCNI;LoweringDevices;Verifying;Releasing;Done
// +kubebuilder:validation:MaxLength=32
type MigrationPhase string

// The migration phases, in the order a migration passes them. A raise changes devices before
// the configuration, a lower after it; a migration skips the phases it does not need.
const (
	// MigrationGathering: waiting for every selected node to report its underlay and devices.
	MigrationGathering MigrationPhase = "Gathering"
	// MigrationPlanned: DryRun; the plan is in status.plannedChanges, nothing changes.
	MigrationPlanned MigrationPhase = "Planned"
	// MigrationPinning: every node pins its routes to the pod networks at the routable MTU.
	MigrationPinning MigrationPhase = "Pinning"
	// MigrationRaisingDevices: nodes raise their NIC, tunnel and bridge, a few at a time.
	MigrationRaisingDevices MigrationPhase = "RaisingDevices"
	// MigrationConfiguring: the CNI's configuration is written.
	MigrationConfiguring MigrationPhase = "Configuring"
	// MigrationRestartingCNI: the CNI's agent restarts node by node, a few at a time.
	MigrationRestartingCNI MigrationPhase = "RestartingCNI"
	// MigrationLoweringDevices: nodes lower their bridge, tunnel and NIC, a few at a time.
	MigrationLoweringDevices MigrationPhase = "LoweringDevices"
	// MigrationVerifying: every node checks, at full size, the paths to its probe peers.
	MigrationVerifying MigrationPhase = "Verifying"
	// MigrationReleasing: every node releases its route pins and flushes what pods learnt.
	MigrationReleasing MigrationPhase = "Releasing"
	// MigrationDone: every node is at the target and nothing is pinned.
	MigrationDone MigrationPhase = "Done"
)

// MigrationStatus is the cluster-wide state of a migration; each node's part is in its
// NodeMTUState.
type MigrationStatus struct {
	// generation of the policy this migration carries out.
	// +kubebuilder:validation:Minimum=0
	// +required
	Generation int64 `json:"generation"`
	// phase the migration is in.
	// +required
	Phase MigrationPhase `json:"phase"`
	// routableMTU is the largest packet every path between selected nodes carries at every
	// moment of the migration: the smaller of the pod MTU in play before and after. Routes
	// are pinned to it while devices or the CNI change.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=65535
	// +optional
	RoutableMTU int32 `json:"routableMTU,omitempty"`
	// startedAt is when the operator began this generation's migration.
	// +required
	StartedAt metav1.Time `json:"startedAt"`
	// configWrittenAt is when the CNI's configuration was last written; a node's CNI agent
	// started before it still runs the old configuration.
	// +optional
	ConfigWrittenAt *metav1.Time `json:"configWrittenAt,omitempty"`
	// revertedAt is when another writer changed the CNI configuration the operator had
	// written, as the object's managedFields record it, when the operator corrected that drift.
	// Only the CNI agents started since then can have read the reverted values, so only they
	// restart after the correction.
	// +optional
	RevertedAt *metav1.Time `json:"revertedAt,omitempty"`
	// verifyPaths: some NIC changes in this migration, so a node's probes at its turn could not
	// all be at full size (a peer's NIC was not raised yet). Every node then checks its paths at
	// full size once all are at their target, before the pins go. Without NIC changes each
	// node's turn already probed at full size, and a node with nothing to change checks at its
	// turn.
	// +optional
	VerifyPaths bool `json:"verifyPaths,omitempty"`
}

// NetworkMTUPolicy declares the MTU of the cluster network: the underlay MTU and the
// encapsulation. The operator computes the pod and tunnel MTUs, configures the CNI, rolls the
// change over the nodes and reports stale pods.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=mtupolicy;nmp,categories=mtu
// +kubebuilder:printcolumn:name="Underlay",type=integer,JSONPath=`.status.underlayMTU`
// +kubebuilder:printcolumn:name="Encap",type=string,JSONPath=`.spec.encapsulation.type`
// +kubebuilder:printcolumn:name="Pod MTU",type=integer,JSONPath=`.status.podMTU`
// +kubebuilder:printcolumn:name="Nodes",type=integer,JSONPath=`.status.nodes.selected`
// +kubebuilder:printcolumn:name="Converged",type=integer,JSONPath=`.status.nodes.converged`
// +kubebuilder:printcolumn:name="Stale Pods",type=integer,JSONPath=`.status.stalePods`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Mode",type=string,JSONPath=`.spec.mode`,priority=1
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type NetworkMTUPolicy struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the desired MTU of the cluster network.
	// +required
	Spec NetworkMTUPolicySpec `json:"spec"`

	// status is what the operator computed and observed.
	// +optional
	Status NetworkMTUPolicyStatus `json:"status,omitempty"`
}

// NetworkMTUPolicyList is a list of NetworkMTUPolicy.
// +kubebuilder:object:root=true
type NetworkMTUPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []NetworkMTUPolicy `json:"items"`
}
