package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// InterfaceRole says what a host interface is for, which orders changes: a device is never
// larger than the one that carries it.
// +kubebuilder:validation:Enum=Underlay;Tunnel;Bridge;Gateway
// +kubebuilder:validation:MaxLength=16
type InterfaceRole string

// The interface roles, from the wire up.
const (
	RoleUnderlay InterfaceRole = "Underlay"
	RoleTunnel   InterfaceRole = "Tunnel"
	RoleBridge   InterfaceRole = "Bridge"
	RoleGateway  InterfaceRole = "Gateway"
)

// ManagedInterface is a host interface the agent brings to an MTU.
type ManagedInterface struct {
	// name of the interface (at most 15 characters, the kernel's limit).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=15
	// +required
	Name string `json:"name"`
	// role of the interface.
	// +required
	Role InterfaceRole `json:"role"`
	// mtu the interface should have.
	// +kubebuilder:validation:Minimum=68
	// +kubebuilder:validation:Maximum=65535
	// +required
	MTU int32 `json:"mtu"`
}

// NodeProbe says how the agent checks the node still works after a change.
type NodeProbe struct {
	// apiServer is host:port of the API server, reached over TCP.
	// +kubebuilder:validation:MaxLength=261
	// +optional
	APIServer string `json:"apiServer,omitempty"`
	// peers are other selected nodes, each pinged with a don't-fragment packet of the size
	// that must reach it now, so a path that cannot carry it fails instead of fragmenting.
	// +listType=map
	// +listMapKey=address
	// +kubebuilder:validation:MaxItems=3
	// +optional
	Peers []ProbePeer `json:"peers,omitempty"`
	// timeoutSeconds bounds the probe; the change is rolled back when it expires.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=300
	// +kubebuilder:default=10
	// +optional
	TimeoutSeconds int32 `json:"timeoutSeconds,omitempty"`
}

// ProbePeer is a node to probe and the largest packet that must reach it now.
type ProbePeer struct {
	// address of the peer on its underlay.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=45
	// +required
	Address string `json:"address"`
	// size of the don't-fragment packet, IP header included: the full underlay MTU when the
	// peer already carries it, what the peer's NIC carries now otherwise.
	// +kubebuilder:validation:Minimum=68
	// +kubebuilder:validation:Maximum=65535
	// +required
	Size int32 `json:"size"`
}

// NodePhase says whether the agent may change the node.
// +kubebuilder:validation:Enum=Observe;Converge
// +kubebuilder:validation:MaxLength=16
type NodePhase string

const (
	// PhaseObserve means: report the interfaces, change nothing (the node waits for its turn).
	PhaseObserve NodePhase = "Observe"
	// PhaseConverge means: bring the interfaces to their target MTUs.
	PhaseConverge NodePhase = "Converge"
)

// NodeMTUStateSpec is what the node must do. The cluster controller writes it; nobody else.
type NodeMTUStateSpec struct {
	// policy is the NetworkMTUPolicy that manages this node.
	// +kubebuilder:validation:MaxLength=253
	// +required
	Policy string `json:"policy"`
	// phase is Observe (report only, while the node waits for its turn in the rollout) or
	// Converge (bring the interfaces to their targets).
	// +kubebuilder:default=Observe
	// +optional
	Phase NodePhase `json:"phase,omitempty"`
	// policyGeneration is the policy generation the targets come from.
	// +kubebuilder:validation:Minimum=0
	// +optional
	PolicyGeneration int64 `json:"policyGeneration,omitempty"`
	// underlayInterfacePattern names the underlay interfaces (RE2).
	// +kubebuilder:validation:MaxLength=256
	// +optional
	UnderlayInterfacePattern string `json:"underlayInterfacePattern,omitempty"`
	// underlayMTU, when set, is the MTU the agent gives the underlay interfaces (the policy
	// enforces the underlay).
	// +kubebuilder:validation:Minimum=576
	// +kubebuilder:validation:Maximum=65535
	// +optional
	UnderlayMTU *int32 `json:"underlayMTU,omitempty"`
	// podMTU is the MTU pod interfaces should have.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=65535
	// +optional
	PodMTU int32 `json:"podMTU,omitempty"`
	// interfaces are the CNI's host interfaces and their target MTUs. Interfaces absent on
	// the node are reported, not created.
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=16
	// +optional
	Interfaces []ManagedInterface `json:"interfaces,omitempty"`
	// routeMTU, while set, pins the MTU of routes via the managed interfaces to this value,
	// so traffic between nodes that have and have not changed yet never exceeds what both
	// carry. Once every selected node has converged, it is released for the whole cluster at
	// once (the policy's NetworkMTUTransition: pinsReleasedGeneration reaches policyGeneration):
	// the spec keeps the value, and the agent holds no pin.
	// +kubebuilder:validation:Minimum=68
	// +kubebuilder:validation:Maximum=65535
	// +optional
	RouteMTU *int32 `json:"routeMTU,omitempty"`
	// probe says how to check the node after a change.
	// +optional
	Probe NodeProbe `json:"probe,omitempty"`
	// podAction is what to do with pods whose MTU is stale.
	// +optional
	PodAction StalePodAction `json:"podAction,omitempty"`
	// verify, when set, asks the agent to check, changing nothing, that a don't-fragment packet
	// of each probe peer's size crosses to that peer, and to report it in status.verification
	// for this policy generation and attempt. The controller asks once every node has reached
	// its target, before it releases the route pins.
	// +optional
	Verify bool `json:"verify,omitempty"`
	// attempt counts the retries of this policy generation on this node. The agent never
	// retries a change that failed on its own; the controller raises attempt when a person
	// asks for a retry (the networking.mtu-operator.io/retry annotation).
	// +kubebuilder:validation:Minimum=0
	// +optional
	Attempt int32 `json:"attempt,omitempty"`
}

// RetryAnnotation on a NodeMTUState asks the controller to retry the node's failed change
// once; the controller removes it when it hands the change out again.
const RetryAnnotation = "networking.mtu-operator.io/retry"

// UnderlayInterface is an interface the agent takes for the underlay.
type UnderlayInterface struct {
	// +kubebuilder:validation:MaxLength=15
	// +required
	Name string `json:"name"`
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=65535
	// +required
	MTU int32 `json:"mtu"`
	// defaultRoute says whether it carries a default route.
	// +optional
	DefaultRoute bool `json:"defaultRoute,omitempty"`
}

// InterfaceState is what the agent saw of a managed interface.
type InterfaceState struct {
	// +kubebuilder:validation:MaxLength=15
	// +required
	Name string `json:"name"`
	// mtu observed; 0 when the interface is absent.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=65535
	// +optional
	MTU int32 `json:"mtu,omitempty"`
	// present says whether the interface exists on the node.
	// +optional
	Present bool `json:"present,omitempty"`
}

// TransactionOutcome is how a change on the node ended.
// +kubebuilder:validation:Enum=Committed;RolledBack;Failed
// +kubebuilder:validation:MaxLength=16
type TransactionOutcome string

// The transaction outcomes.
const (
	// TransactionCommitted means change was applied and the probes passed.
	TransactionCommitted TransactionOutcome = "Committed"
	// TransactionRolledBack means a probe failed and every interface was put back.
	TransactionRolledBack TransactionOutcome = "RolledBack"
	// TransactionFailed means putting an interface back failed too; the node needs a person.
	TransactionFailed TransactionOutcome = "Failed"
)

// InterfaceChange is one MTU change of a transaction.
type InterfaceChange struct {
	// +kubebuilder:validation:MaxLength=15
	// +required
	Name string `json:"name"`
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=65535
	// +required
	From int32 `json:"from"`
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=65535
	// +required
	To int32 `json:"to"`
}

// OriginalMTU is an interface's MTU before the operator first changed it.
type OriginalMTU struct {
	// name of the interface.
	// +kubebuilder:validation:MaxLength=15
	// +required
	Name string `json:"name"`
	// mtu it had.
	// +kubebuilder:validation:Minimum=68
	// +kubebuilder:validation:Maximum=65535
	// +required
	MTU int32 `json:"mtu"`
}

// Transaction is the last change the agent made.
type Transaction struct {
	// policyGeneration the change worked towards.
	// +kubebuilder:validation:Minimum=0
	// +required
	PolicyGeneration int64 `json:"policyGeneration"`
	// attempt of that generation (spec.attempt) the change was.
	// +kubebuilder:validation:Minimum=0
	// +optional
	Attempt int32 `json:"attempt,omitempty"`
	// outcome of the change.
	// +required
	Outcome TransactionOutcome `json:"outcome"`
	// reason says why, in a word (CamelCase).
	// +kubebuilder:validation:MaxLength=64
	// +optional
	Reason string `json:"reason,omitempty"`
	// message says why, for people.
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	Message string `json:"message,omitempty"`
	// changes made (and, when rolled back, undone), in the order they were applied.
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=24
	// +optional
	Changes []InterfaceChange `json:"changes,omitempty"`
	// time the transaction ended.
	// +required
	Time metav1.Time `json:"time"`
}

// Verification is a check of the paths to the probe peers, which changes nothing.
type Verification struct {
	// policyGeneration and attempt of the spec that asked for it.
	// +kubebuilder:validation:Minimum=0
	// +required
	PolicyGeneration int64 `json:"policyGeneration"`
	// +kubebuilder:validation:Minimum=0
	// +optional
	Attempt int32 `json:"attempt,omitempty"`
	// passed says whether every peer answered at its size.
	// +required
	Passed bool `json:"passed"`
	// message says what was checked, and what failed.
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	Message string `json:"message,omitempty"`
	// time the check ended.
	// +required
	Time metav1.Time `json:"time"`
}

// PathLayer is the layer a path is probed on.
// +kubebuilder:validation:Enum=Underlay;Overlay
type PathLayer string

// The path layers.
const (
	// PathLayerUnderlay is the path to the peer's node address, at the size both NICs carry.
	PathLayerUnderlay PathLayer = "Underlay"
	// PathLayerOverlay is the path through the tunnel to the peer's tunnel (or gateway)
	// address, at the size both nodes' pod networks carry: what a pod's packet crosses.
	PathLayerOverlay PathLayer = "Overlay"
)

// PathMTU is a path to a peer that did not carry what it must, as measured.
type PathMTU struct {
	// peer is the peer's address.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=45
	// +required
	Peer string `json:"peer"`
	// +required
	Layer PathLayer `json:"layer"`
	// expected is the packet that must cross: the smaller of the two NICs' MTUs (Underlay),
	// or of the two nodes' pod network devices (Overlay).
	// +kubebuilder:validation:Minimum=68
	// +kubebuilder:validation:Maximum=65535
	// +required
	Expected int32 `json:"expected"`
	// measured is the largest packet seen to cross with fragmentation forbidden; 0 when not
	// even 1280 bytes did (or nothing answered).
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=65535
	// +optional
	Measured int32 `json:"measured,omitempty"`
	// since is when the path was first measured at this size.
	// +required
	Since metav1.Time `json:"since"`
}

// StalePod is a pod on the node whose interface MTU differs from the expected pod MTU.
type StalePod struct {
	// +kubebuilder:validation:MaxLength=63
	// +required
	Namespace string `json:"namespace"`
	// +kubebuilder:validation:MaxLength=253
	// +required
	Name string `json:"name"`
	// interface is the pod's interface, as named inside the pod.
	// +kubebuilder:validation:MaxLength=15
	// +optional
	Interface string `json:"interface,omitempty"`
	// mtu observed on the pod's interface.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=65535
	// +required
	MTU int32 `json:"mtu"`
	// message says what the agent did or could not do (for InPlace).
	// +kubebuilder:validation:MaxLength=256
	// +optional
	Message string `json:"message,omitempty"`
}

// NodeMTUStateStatus is what the node's agent saw. Only that agent writes it.
type NodeMTUStateStatus struct {
	// observedGeneration is the metadata.generation of the spec the agent acted on.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// conditions: Converged (every managed interface at its target MTU for the observed
	// generation).
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// underlay are the interfaces taken for the underlay.
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=8
	// +optional
	Underlay []UnderlayInterface `json:"underlay,omitempty"`
	// underlayAddresses are the node's addresses on its underlay interfaces; other nodes'
	// agents probe them.
	// +listType=set
	// +kubebuilder:validation:MaxItems=4
	// +kubebuilder:validation:items:MaxLength=45
	// +optional
	UnderlayAddresses []string `json:"underlayAddresses,omitempty"`
	// underlayMTU is the smallest MTU among the underlay interfaces; 0 when none was found.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=65535
	// +optional
	UnderlayMTU int32 `json:"underlayMTU,omitempty"`
	// overlayAddresses are the node's addresses on its pod network device (the tunnel's, or
	// the gateway's when the tunnel has none), at most one per IP family: other nodes' agents
	// probe them through their tunnels.
	// +listType=set
	// +kubebuilder:validation:MaxItems=2
	// +kubebuilder:validation:items:MaxLength=45
	// +optional
	OverlayAddresses []string `json:"overlayAddresses,omitempty"`
	// overlayMTU is the MTU of the device overlayAddresses are on; 0 when there is none.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=65535
	// +optional
	OverlayMTU int32 `json:"overlayMTU,omitempty"`
	// originalUnderlay are the MTUs the underlay interfaces had before the operator first
	// changed them, from the agent's record on the node, which outlives the policy (a Restore
	// puts them back).
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=8
	// +optional
	OriginalUnderlay []OriginalMTU `json:"originalUnderlay,omitempty"`
	// interfaces are the managed interfaces as observed.
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=16
	// +optional
	Interfaces []InterfaceState `json:"interfaces,omitempty"`
	// routeMTU is the MTU the agent pinned on routes via the managed interfaces for this
	// spec; unset when the spec asks for no pin. A release for the whole cluster (the policy's
	// NetworkMTUTransition) is acted on without a report, so the node holds the pin now only
	// while spec.policyGeneration is above its pinsReleasedGeneration; the agent's
	// mtu_operator_agent_route_pin_bytes metric says what it holds.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=65535
	// +optional
	RouteMTU *int32 `json:"routeMTU,omitempty"`
	// lastTransaction is the last change the agent made.
	// +optional
	LastTransaction *Transaction `json:"lastTransaction,omitempty"`
	// verification is the agent's last check of the paths to its peers (spec.verify).
	// +optional
	Verification *Verification `json:"verification,omitempty"`
	// paths are the paths to probe peers that did not carry the size they must at the last
	// check (a change's probe, or a verification), each measured: the largest packet that
	// crosses with fragmentation forbidden. Empty once a check passes.
	// +listType=map
	// +listMapKey=peer
	// +listMapKey=layer
	// +kubebuilder:validation:MaxItems=8
	// +optional
	Paths []PathMTU `json:"paths,omitempty"`
	// actualPodMTU is the MTU most of the node's pods have, as inventoried; 0 when none was.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=65535
	// +optional
	ActualPodMTU int32 `json:"actualPodMTU,omitempty"`
	// pods is the number of pod network namespaces the agent inventoried.
	// +kubebuilder:validation:Minimum=0
	// +optional
	Pods int32 `json:"pods,omitempty"`
	// stalePods are pods whose interface MTU differs from spec.podMTU, at most 50;
	// stalePodCount counts them all.
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=50
	// +optional
	StalePods []StalePod `json:"stalePods,omitempty"`
	// +kubebuilder:validation:Minimum=0
	// +optional
	StalePodCount int32 `json:"stalePodCount,omitempty"`
	// podScanErrors counts pod network namespaces the agent could not read: their pods' MTU is
	// unknown, not fine. podScanError says why for the first of them.
	// +kubebuilder:validation:Minimum=0
	// +optional
	PodScanErrors int32 `json:"podScanErrors,omitempty"`
	// +kubebuilder:validation:MaxLength=256
	// +optional
	PodScanError string `json:"podScanError,omitempty"`
	// podsCorrected counts pods whose MTU the agent set in place (pod action InPlace).
	// +kubebuilder:validation:Minimum=0
	// +optional
	PodsCorrected int32 `json:"podsCorrected,omitempty"`
}

// ConditionConverged is the NodeMTUState condition that says the node matches its spec.
const ConditionConverged = "Converged"

// NodeMTUState is one node's part of a NetworkMTUPolicy: what it must do (spec, written by the
// cluster controller) and what it saw (status, written by the node's agent). Named after the
// node and owned by it.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=nodemtu,categories=mtu
// +kubebuilder:printcolumn:name="Policy",type=string,JSONPath=`.spec.policy`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.spec.phase`
// +kubebuilder:printcolumn:name="Underlay",type=integer,JSONPath=`.status.underlayMTU`
// +kubebuilder:printcolumn:name="Pod MTU",type=integer,JSONPath=`.spec.podMTU`
// +kubebuilder:printcolumn:name="Pods At",type=integer,JSONPath=`.status.actualPodMTU`
// +kubebuilder:printcolumn:name="Stale Pods",type=integer,JSONPath=`.status.stalePodCount`
// +kubebuilder:printcolumn:name="Converged",type=string,JSONPath=`.status.conditions[?(@.type=="Converged")].status`
// +kubebuilder:printcolumn:name="Last Change",type=string,JSONPath=`.status.lastTransaction.outcome`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type NodeMTUState struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`
	// +required
	Spec NodeMTUStateSpec `json:"spec"`
	// +optional
	Status NodeMTUStateStatus `json:"status,omitempty"`
}

// NodeMTUStateList is a list of NodeMTUState.
// +kubebuilder:object:root=true
type NodeMTUStateList struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []NodeMTUState `json:"items"`
}
