package agent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	mtuv1alpha1 "github.com/mtu-operator/mtu-operator/api/v1alpha1"
	"github.com/mtu-operator/mtu-operator/internal/node/pods"
	"github.com/mtu-operator/mtu-operator/internal/plan"
)

// maxStalePodsListed bounds the stale pods a node lists; the count has them all.
const maxStalePodsListed = 50

// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch

// inventoryPods reads the MTU of every pod network namespace on the node, maps the pods'
// addresses to this node's pods, and reports those whose MTU differs from the expected pod
// MTU. With the InPlace pod action it corrects them: lowering always, raising only once the
// node has converged, so the path has been probed at the new size.
func (r *Reconciler) inventoryPods(ctx context.Context, state *mtuv1alpha1.NodeMTUState) error {
	status, spec := &state.Status, state.Spec
	status.Pods, status.StalePods, status.StalePodCount, status.ActualPodMTU = 0, nil, 0, 0
	status.PodScanErrors, status.PodScanError = 0, ""
	defer func() { podScanErrors.WithLabelValues(r.NodeName).Set(float64(status.PodScanErrors)) }()
	if r.PodNetnsDir == "" || spec.PodMTU == 0 {
		return nil
	}
	byAddress, err := r.podsByAddress(ctx)
	if err != nil {
		return err
	}
	namespaces, err := pods.Scan(r.PodNetnsDir, r.Links)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // the runtime has not created the directory: no pod namespaces yet
	}
	if err != nil {
		return fmt.Errorf("scanning pod network namespaces in %s: %w", r.PodNetnsDir, err)
	}
	pathVerified := nodeConverged(state)
	byMTU := map[int32]int32{}
	defer func() { status.ActualPodMTU = plan.PrevailingMTU(byMTU) }()
	for _, ns := range namespaces {
		if ns.Err != nil {
			// Not entered (CAP_SYS_ADMIN missing, a namespace going away): unknown, said so.
			status.PodScanErrors++
			if status.PodScanError == "" {
				status.PodScanError = truncate(fmt.Sprintf("%s: %v", ns.Path, ns.Err), 256)
			}
			continue
		}
		for _, iface := range ns.Interfaces {
			pod := podOf(iface.Addresses, byAddress)
			if pod == nil {
				continue // not a pod of this node (or its IP is not reported yet)
			}
			status.Pods++
			byMTU[int32(iface.MTU)]++
			if iface.MTU == int(spec.PodMTU) {
				continue
			}
			stale := mtuv1alpha1.StalePod{Namespace: pod.Namespace, Name: pod.Name, Interface: iface.Name, MTU: int32(iface.MTU)}
			if spec.PodAction == mtuv1alpha1.StalePodInPlace {
				raising := int(spec.PodMTU) > iface.MTU
				switch {
				case raising && !pathVerified:
					stale.Message = "raising waits until this node has converged and its path is verified at the new size"
				default:
					err := pods.SetMTU(ns.Path, iface.Name, r.Links, iface.HostPeerName, int(spec.PodMTU))
					if err == nil && raising {
						// What the pod learnt at its old size would hold it back for ten minutes.
						err = pods.FlushPathMTU(ns.Path)
					}
					if err == nil {
						status.PodsCorrected++
						byMTU[int32(iface.MTU)]--
						byMTU[spec.PodMTU]++
						continue
					}
					stale.Message = truncate(err.Error(), 256)
				}
			}
			status.StalePodCount++
			if len(status.StalePods) < maxStalePodsListed {
				status.StalePods = append(status.StalePods, stale)
			}
		}
	}
	return nil
}

// podsByAddress indexes this node's pods (not host-network ones) by IP.
func (r *Reconciler) podsByAddress(ctx context.Context) (map[netip.Addr]*corev1.Pod, error) {
	var list corev1.PodList
	if err := r.List(ctx, &list); err != nil {
		return nil, fmt.Errorf("listing this node's pods: %w", err)
	}
	out := map[netip.Addr]*corev1.Pod{}
	for i := range list.Items {
		p := &list.Items[i]
		if p.Spec.NodeName != r.NodeName || p.Spec.HostNetwork {
			continue
		}
		for _, ip := range p.Status.PodIPs {
			if a, err := netip.ParseAddr(ip.IP); err == nil {
				out[a] = p
			}
		}
	}
	return out, nil
}

func podOf(addresses []netip.Addr, byAddress map[netip.Addr]*corev1.Pod) *corev1.Pod {
	for _, a := range addresses {
		if p := byAddress[a]; p != nil {
			return p
		}
	}
	return nil
}

// nodeConverged: the node's interfaces are at their targets and its last change committed.
func nodeConverged(state *mtuv1alpha1.NodeMTUState) bool {
	c := meta.FindStatusCondition(state.Status.Conditions, mtuv1alpha1.ConditionConverged)
	last := state.Status.LastTransaction
	return c != nil && c.Status == metav1.ConditionTrue && (last == nil || last.Outcome == mtuv1alpha1.TransactionCommitted)
}
