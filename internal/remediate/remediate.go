// Package remediate carries out the cluster controller's actions on pods whose interface MTU
// predates an MTU change: Report annotates such a pod and emits an Event naming the fix;
// Evict evicts pods that a controller recreates, through the Eviction API so that
// PodDisruptionBudgets apply, a few at a time.
//
// The client passed in should read pods from the API server rather than from a cache: the
// decisions rest on each pod's current deletionTimestamp and annotation, and the role grants
// no watch on pods.
package remediate

import (
	"cmp"
	"fmt"
	"slices"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;patch
// +kubebuilder:rbac:groups="",resources=pods/eviction,verbs=create
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

const (
	// StaleMTUAnnotation on a pod says that its interface MTU is stale and what to do.
	StaleMTUAnnotation = "networking.mtu-operator.io/stale-mtu"

	// ReasonStaleMTU is the reason of the Warning Event on a reported pod.
	ReasonStaleMTU = "StaleMTU"
	// ReasonStaleMTUEvicted is the reason of the Normal Event on an evicted pod.
	ReasonStaleMTUEvicted = "StaleMTUEvicted"
	// ReasonEvictionBlocked is the reason of the Warning Event on a pod whose eviction a
	// PodDisruptionBudget refused for now.
	ReasonEvictionBlocked = "EvictionBlocked"

	// ActionReport is the action of the Event on a reported pod.
	ActionReport = "Report"
	// ActionEvict is the action of the Events on an evicted pod and a blocked one.
	ActionEvict = "Evict"

	// fieldManager is the cluster controller's field manager (controllers.FieldManager).
	fieldManager = "mtu-operator-manager"

	// maxReasonBytes bounds the reason quoted in annotations and Events (an Event's note
	// may hold at most 1 KiB).
	maxReasonBytes = 512
)

// StalePod is a pod whose interface MTU differs from what the policy expects.
type StalePod struct {
	Namespace, Name          string
	ObservedMTU, ExpectedMTU int32
	// Reason is a sentence a person understands, e.g. "1450 predates the switch from VXLAN
	// to None".
	Reason string
}

func (p StalePod) String() string { return p.Namespace + "/" + p.Name }

// The fixes named in the annotation and Event, by whether a controller owns the pod.
const (
	fixOwned = "delete the pod so its controller recreates it with the new MTU"
	fixBare  = "no controller owns the pod: delete and recreate it yourself"
)

// fixFor names what a person should do about pod.
func fixFor(pod *corev1.Pod) string {
	if metav1.GetControllerOf(pod) != nil {
		return fixOwned
	}
	return fixBare
}

// staleText is the annotation's value, e.g. "1450 (expected 1500): 1450 predates the switch
// from VXLAN to None; delete the pod so its controller recreates it with the new MTU".
func staleText(p StalePod, fix string) string {
	return mtuText(p) + "; " + fix
}

// mtuText says what the MTU is, should be and why, e.g. "1450 (expected 1500): 1450 predates
// the switch from VXLAN to None".
func mtuText(p StalePod) string {
	text := fmt.Sprintf("%d (expected %d)", p.ObservedMTU, p.ExpectedMTU)
	if r := truncate(p.Reason, maxReasonBytes); r != "" {
		text += ": " + r
	}
	return text
}

// truncate cuts s to at most n bytes without splitting a character.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// inOrder returns the pods sorted by namespace and name, each pod once (the first entry for
// a pod wins), so that repeated calls act on the same pods first.
func inOrder(pods []StalePod) []StalePod {
	out := slices.Clone(pods)
	slices.SortStableFunc(out, func(a, b StalePod) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	return slices.CompactFunc(out, func(a, b StalePod) bool {
		return a.Namespace == b.Namespace && a.Name == b.Name
	})
}
