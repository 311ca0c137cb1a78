package controllers

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mtuv1alpha1 "github.com/mtu-operator/mtu-operator/api/v1alpha1"
	"github.com/mtu-operator/mtu-operator/internal/plan"
	"github.com/mtu-operator/mtu-operator/internal/remediate"
)

// defaultMaxConcurrentEvictions is used when stalePods.maxConcurrentEvictions is unset.
const defaultMaxConcurrentEvictions = 5

// ClientOptions keeps pods out of the manager's cache: the controller reads the few stale
// pods it acts on directly, and never holds the cluster's pods in memory.
func ClientOptions() client.Options {
	return client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Pod{}}}}
}

// remediatePods acts on the stale pods the nodes reported, as the policy's pod action says,
// and reports them in PodsCurrent, with a verdict while remediation is under way and how soon
// to look again.
func (r *NetworkMTUPolicyReconciler) remediatePods(ctx context.Context, policy *mtuv1alpha1.NetworkMTUPolicy, nodes []plan.NodeInput) (phaseResult, error) {
	stale, total, corrected := plan.StalePods(nodes)
	policy.Status.StalePods = total
	counts := mtuv1alpha1.PodCounts{Stale: total}
	var retry time.Duration

	pods := make([]remediate.StalePod, 0, len(stale))
	for _, s := range stale {
		reason := plan.StaleReason(s.MTU, policy.Status.PodMTUHistory)
		if s.Message != "" {
			reason += "; " + s.Message
		}
		pods = append(pods, remediate.StalePod{Namespace: s.Namespace, Name: s.Name, ObservedMTU: s.MTU, ExpectedMTU: policy.Status.PodMTU, Reason: reason})
	}
	dryRun := policy.Spec.Mode == mtuv1alpha1.ModeDryRun
	switch action := policy.Spec.StalePods.Action; {
	case dryRun || len(pods) == 0:
	case action == mtuv1alpha1.StalePodEvict:
		limit := defaultMaxConcurrentEvictions
		if policy.Spec.StalePods.MaxConcurrentEvictions != nil {
			limit = int(*policy.Spec.StalePods.MaxConcurrentEvictions)
		}
		res, err := remediate.Evict(ctx, r.Client, r.Recorder, pods, limit)
		if err != nil {
			return phaseResult{}, err
		}
		counts.Remediated = int32(res.Evicted + res.InFlight)
		counts.Waiting = int32(res.Blocked + res.Bare)
		counts.Failed = int32(len(res.Failed))
		retry = res.RetryAfter
	case action == mtuv1alpha1.StalePodInPlace:
		counts.Remediated = corrected
		for _, s := range stale {
			if s.Message != "" {
				counts.Waiting++
			}
		}
		retry = time.Minute
	default:
		res, err := remediate.Report(ctx, r.Client, r.Recorder, pods)
		if err != nil {
			return phaseResult{}, err
		}
		counts.Remediated = int32(res.Reported + res.AlreadyReported)
	}
	policy.Status.Pods = counts

	if total == 0 {
		return phaseResult{conditions: []metav1.Condition{detail(mtuv1alpha1.ConditionPodsCurrent, metav1.ConditionTrue, mtuv1alpha1.ReasonNoStalePods, "every inventoried pod has the expected MTU")}}, nil
	}
	example := ""
	if len(pods) > 0 {
		example = fmt.Sprintf(" (for example %s/%s: %s)", pods[0].Namespace, pods[0].Name, pods[0].Reason)
	}
	msg := fmt.Sprintf("%d pod(s) have a stale MTU%s; action %s: %d %s, %d waiting, %d failed",
		total, example, policy.Spec.StalePods.Action, counts.Remediated, remediatedVerb(policy.Spec.StalePods.Action), counts.Waiting, counts.Failed)
	res := phaseResult{conditions: []metav1.Condition{detail(mtuv1alpha1.ConditionPodsCurrent, metav1.ConditionFalse, mtuv1alpha1.ReasonStalePodsFound, msg)}, requeue: retry}
	// Report leaves the fix to people; Evict and InPlace are still working while pods remain
	// that they can fix.
	if !dryRun && policy.Spec.StalePods.Action != mtuv1alpha1.StalePodReport && total > counts.Waiting {
		res.verdict = &plan.Verdict{Progressing: &plan.Problem{Reason: mtuv1alpha1.ReasonPodsRemediating, Message: msg}}
	}
	return res, nil
}

// remediatedVerb says what the action did to the pods counted as remediated.
func remediatedVerb(action mtuv1alpha1.StalePodAction) string {
	switch action {
	case mtuv1alpha1.StalePodEvict:
		return "evicted"
	case mtuv1alpha1.StalePodInPlace:
		return "corrected in place"
	default:
		return "reported"
	}
}
