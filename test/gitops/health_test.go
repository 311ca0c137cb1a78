// Package gitops tests how GitOps tools read a NetworkMTUPolicy's health: Argo CD through
// config/argocd/health.lua, and kstatus (Flux, kpt, Config Sync, cli-utils) through
// status.Compute.
package gitops

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	lua "github.com/yuin/gopher-lua"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/yaml"

	mtuv1alpha1 "github.com/mtu-operator/mtu-operator/api/v1alpha1"
	"github.com/mtu-operator/mtu-operator/internal/plan"
	"github.com/mtu-operator/mtu-operator/internal/testenv"
)

// health is what Argo CD's health script returned.
type health struct {
	Status  string
	Message string
}

// argoStatuses are the health statuses Argo CD accepts from a script.
var argoStatuses = map[string]bool{"Healthy": true, "Progressing": true, "Degraded": true, "Suspended": true, "Missing": true}

// repoFile reads a file of the repository.
func repoFile(t *testing.T, path string) []byte {
	t.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(path)))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// argoHealth runs config/argocd/health.lua on obj the way Argo CD runs a health
// customization: a fresh gopher-lua VM with only the base, table, string and math libraries,
// the object as the global table `obj`, and the table the script returns as the result.
func argoHealth(t *testing.T, obj map[string]any) health {
	t.Helper()
	vm := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer vm.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{{lua.BaseLibName, lua.OpenBase}, {lua.TabLibName, lua.OpenTable}, {lua.StringLibName, lua.OpenString}, {lua.MathLibName, lua.OpenMath}} {
		vm.Push(vm.NewFunction(lib.open))
		vm.Push(lua.LString(lib.name))
		vm.Call(1, 0)
	}
	value, err := toLua(vm, obj)
	if err != nil {
		t.Fatalf("converting the object for Lua: %v", err)
	}
	vm.SetGlobal("obj", value)
	if err := vm.DoString(string(repoFile(t, "config/argocd/health.lua"))); err != nil {
		t.Fatalf("health.lua failed: %v", err)
	}
	hs, ok := vm.Get(-1).(*lua.LTable)
	if !ok {
		t.Fatalf("health.lua returned %s, not a table", vm.Get(-1).Type())
	}
	st, ok := hs.RawGetString("status").(lua.LString)
	if !ok || !argoStatuses[string(st)] {
		t.Fatalf("health.lua returned status %v, which Argo CD does not accept", hs.RawGetString("status"))
	}
	msg, ok := hs.RawGetString("message").(lua.LString)
	if !ok {
		t.Fatalf("health.lua returned message %v, not a string", hs.RawGetString("message"))
	}
	return health{Status: string(st), Message: string(msg)}
}

// toLua converts a JSON-shaped value as Argo CD hands it to Lua: objects become tables,
// arrays 1-based tables, numbers Lua numbers.
func toLua(vm *lua.LState, v any) (lua.LValue, error) {
	switch v := v.(type) {
	case nil:
		return lua.LNil, nil
	case string:
		return lua.LString(v), nil
	case bool:
		return lua.LBool(v), nil
	case int64:
		return lua.LNumber(v), nil
	case int32:
		return lua.LNumber(v), nil
	case int:
		return lua.LNumber(v), nil
	case float64:
		return lua.LNumber(v), nil
	case map[string]any:
		t := vm.NewTable()
		for k, e := range v {
			lv, err := toLua(vm, e)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			t.RawSetString(k, lv)
		}
		return t, nil
	case []any:
		t := vm.NewTable()
		for i, e := range v {
			lv, err := toLua(vm, e)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			t.RawSetInt(i+1, lv)
		}
		return t, nil
	default:
		return nil, fmt.Errorf("unexpected %T in the object", v)
	}
}

// kstatusOf is what kstatus computes for obj.
func kstatusOf(t *testing.T, obj map[string]any) *status.Result {
	t.Helper()
	res, err := status.Compute(&unstructured.Unstructured{Object: obj})
	if err != nil {
		t.Fatalf("kstatus: %v", err)
	}
	return res
}

// policyObject is a NetworkMTUPolicy as the API server returns it (integers as int64), with
// status st (none when nil).
func policyObject(generation int64, mode mtuv1alpha1.PolicyMode, st map[string]any) map[string]any {
	obj := map[string]any{
		"apiVersion": mtuv1alpha1.GroupVersion.String(),
		"kind":       "NetworkMTUPolicy",
		"metadata": map[string]any{
			"name":              "jumbo-vxlan",
			"generation":        generation,
			"uid":               "0b4a0c5e-6b0f-4d6e-9d55-0d6f3f3c1a11",
			"resourceVersion":   "4711",
			"creationTimestamp": "2026-01-02T03:04:05Z",
		},
		"spec": map[string]any{
			"underlay":      map[string]any{"source": "Declared", "mtu": int64(9000), "management": "Observe"},
			"encapsulation": map[string]any{"type": "VXLAN", "encryption": "None"},
			"mode":          string(mode),
		},
	}
	if st != nil {
		obj["status"] = st
	}
	return obj
}

// statusAt is a status describing observedGeneration (omitted when 0, as the API omits it)
// with the given conditions.
func statusAt(observedGeneration int64, conditions ...map[string]any) map[string]any {
	st := map[string]any{"underlayMTU": int64(9000), "podMTU": int64(8950), "ipFamilies": []any{"IPv4"}}
	if observedGeneration != 0 {
		st["observedGeneration"] = observedGeneration
	}
	if len(conditions) > 0 {
		list := make([]any, 0, len(conditions))
		for _, c := range conditions {
			list = append(list, c)
		}
		st["conditions"] = list
	}
	return st
}

// condition is one metav1.Condition as JSON; observedGeneration is omitted when 0.
func condition(typ, st, reason, message string, observedGeneration int64) map[string]any {
	c := map[string]any{
		"type":               typ,
		"status":             st,
		"reason":             reason,
		"message":            message,
		"lastTransitionTime": "2026-01-02T03:04:06Z",
	}
	if observedGeneration != 0 {
		c["observedGeneration"] = observedGeneration
	}
	return c
}

// verdict is Ready, Reconciling and Stalled exactly as the controller writes them for v.
func verdict(v plan.Verdict, generation int64) []map[string]any {
	var out []map[string]any
	for _, c := range v.Conditions(generation) {
		out = append(out, condition(c.Type, string(c.Status), c.Reason, c.Message, c.ObservedGeneration))
	}
	return out
}

// The three verdicts the controller reports, with messages as it words them.
var (
	readyVerdict       = plan.Verdict{Ready: "pod MTU 8950 from underlay 9000 with VXLAN"}
	progressingVerdict = plan.Verdict{Progressing: &plan.Problem{Reason: mtuv1alpha1.ReasonProgressing, Message: "waiting for node agents to report the underlay MTU"}}
	stalledVerdict     = plan.Verdict{Stalled: &plan.Problem{Reason: mtuv1alpha1.ReasonPodMTUBelowFloor, Message: "pod MTU 1230 is below the IPv6 minimum of 1280 (IP families [IPv4 IPv6])"}}
)

const mismatch = "node worker-3 has underlay MTU 1500 on ens5, the other 4 nodes 9000"

func underlayInconsistent(generation int64) map[string]any {
	return condition(mtuv1alpha1.ConditionUnderlayConsistent, "False", mtuv1alpha1.ReasonUnderlayMismatch, mismatch, generation)
}

func with(conds []map[string]any, more ...map[string]any) []map[string]any {
	return append(append([]map[string]any{}, conds...), more...)
}

// healthCase is an object and what Argo CD and kstatus make of it.
type healthCase struct {
	name    string
	obj     map[string]any
	argo    string // Argo CD health status
	message string // part of Argo CD's message
	kstatus status.Status
}

func healthCases() []healthCase {
	const g = int64(2) // metadata.generation of most cases
	return []healthCase{
		{
			// kstatus skips its generation check when status.observedGeneration is absent and
			// treats a custom resource without Reconciling, Stalled or Ready as Current: it
			// cannot tell "not reconciled yet" from "has no status". Argo CD waits.
			name: "no status", obj: policyObject(1, mtuv1alpha1.ModeApply, nil),
			argo: "Progressing", message: "Waiting for the operator to observe generation 1",
			kstatus: status.CurrentStatus,
		},
		{
			// Not what this operator writes; the script insists on observedGeneration, kstatus
			// then trusts Ready.
			name: "conditions without status.observedGeneration", obj: policyObject(g, mtuv1alpha1.ModeApply, statusAt(0, verdict(readyVerdict, g)...)),
			argo: "Progressing", message: "Waiting for the operator to observe generation 2",
			kstatus: status.CurrentStatus,
		},
		{
			name: "stale observedGeneration, Ready for the old spec", obj: policyObject(g, mtuv1alpha1.ModeApply, statusAt(g-1, verdict(readyVerdict, g-1)...)),
			argo: "Progressing", message: "Waiting for the operator to observe generation 2",
			kstatus: status.InProgressStatus,
		},
		{
			// The user fixed the spec; the old Stalled must not keep the app Degraded.
			name: "stale observedGeneration, Stalled for the old spec", obj: policyObject(g, mtuv1alpha1.ModeApply, statusAt(g-1, verdict(stalledVerdict, g-1)...)),
			argo: "Progressing", message: "Waiting for the operator to observe generation 2",
			kstatus: status.InProgressStatus,
		},
		{
			name: "Stalled", obj: policyObject(g, mtuv1alpha1.ModeApply, statusAt(g, verdict(stalledVerdict, g)...)),
			argo: "Degraded", message: "PodMTUBelowFloor: pod MTU 1230 is below the IPv6 minimum of 1280",
			kstatus: status.FailedStatus,
		},
		{
			name: "Reconciling", obj: policyObject(g, mtuv1alpha1.ModeApply, statusAt(g, verdict(progressingVerdict, g)...)),
			argo: "Progressing", message: "waiting for node agents to report the underlay MTU",
			kstatus: status.InProgressStatus,
		},
		{
			name: "Ready", obj: policyObject(g, mtuv1alpha1.ModeApply, statusAt(g, with(verdict(readyVerdict, g),
				condition(mtuv1alpha1.ConditionUnderlayConsistent, "True", mtuv1alpha1.ReasonUnderlayMatches, "all 5 nodes 9000", g))...)),
			argo: "Healthy", message: "pod MTU 8950 from underlay 9000 with VXLAN",
			kstatus: status.CurrentStatus,
		},
		{
			name: "Ready in DryRun", obj: policyObject(g, mtuv1alpha1.ModeDryRun, statusAt(g, verdict(readyVerdict, g)...)),
			argo: "Healthy", message: "DryRun: pod MTU 8950 from underlay 9000 with VXLAN",
			kstatus: status.CurrentStatus,
		},
		{
			name: "Ready False alone", obj: policyObject(g, mtuv1alpha1.ModeApply, statusAt(g,
				condition(mtuv1alpha1.ConditionReady, "False", mtuv1alpha1.ReasonRollingOut, "2 of 5 nodes converged", g))),
			argo: "Progressing", message: "2 of 5 nodes converged",
			kstatus: status.InProgressStatus,
		},
		{
			name: "Ready False, Reconciling and Stalled False", obj: policyObject(g, mtuv1alpha1.ModeApply, statusAt(g,
				condition(mtuv1alpha1.ConditionReady, "False", mtuv1alpha1.ReasonRollingOut, "2 of 5 nodes converged", g),
				condition(mtuv1alpha1.ConditionReconciling, "False", mtuv1alpha1.ReasonRollingOut, "", g),
				condition(mtuv1alpha1.ConditionStalled, "False", mtuv1alpha1.ReasonRollingOut, "", g))),
			argo: "Progressing", message: "2 of 5 nodes converged",
			kstatus: status.InProgressStatus,
		},
		{
			name: "Ready Unknown alone", obj: policyObject(g, mtuv1alpha1.ModeApply, statusAt(g,
				condition(mtuv1alpha1.ConditionReady, "Unknown", mtuv1alpha1.ReasonProgressing, "detecting the CNI", g))),
			argo: "Progressing", message: "detecting the CNI",
			kstatus: status.InProgressStatus,
		},
		{
			// kstatus ignores detail conditions: the policy is Current for it, while Argo CD
			// flags the node a platform team has to fix.
			name: "UnderlayConsistent False, otherwise Ready", obj: policyObject(g, mtuv1alpha1.ModeApply, statusAt(g, with(verdict(readyVerdict, g), underlayInconsistent(g))...)),
			argo: "Degraded", message: mismatch,
			kstatus: status.CurrentStatus,
		},
		{
			// Same disagreement while the operator works: Degraded against InProgress.
			name: "UnderlayConsistent False while Reconciling", obj: policyObject(g, mtuv1alpha1.ModeApply, statusAt(g, with(verdict(progressingVerdict, g), underlayInconsistent(g))...)),
			argo: "Degraded", message: mismatch,
			kstatus: status.InProgressStatus,
		},
		{
			name: "UnderlayConsistent False while Stalled: Stalled wins", obj: policyObject(g, mtuv1alpha1.ModeApply, statusAt(g, with(verdict(stalledVerdict, g), underlayInconsistent(g))...)),
			argo: "Degraded", message: "PodMTUBelowFloor: ",
			kstatus: status.FailedStatus,
		},
		{
			// kstatus reads only the top-level observedGeneration; conditions left from an
			// older generation still count for it.
			name: "current observedGeneration, Ready from an older generation", obj: policyObject(g, mtuv1alpha1.ModeApply, statusAt(g, verdict(readyVerdict, g-1)...)),
			argo: "Progressing", message: "Waiting for the operator to report Ready for generation 2",
			kstatus: status.CurrentStatus,
		},
		{
			// As above: a stale Stalled is Failed for kstatus, not yet known for Argo CD.
			name: "current observedGeneration, Stalled from an older generation", obj: policyObject(g, mtuv1alpha1.ModeApply, statusAt(g, verdict(stalledVerdict, g-1)...)),
			argo: "Progressing", message: "Waiting for the operator to report Ready for generation 2",
			kstatus: status.FailedStatus,
		},
		{
			name: "current Ready, UnderlayConsistent False from an older generation", obj: policyObject(g, mtuv1alpha1.ModeApply, statusAt(g, with(verdict(readyVerdict, g), underlayInconsistent(g-1))...)),
			argo: "Healthy", message: "pod MTU 8950",
			kstatus: status.CurrentStatus,
		},
		{
			// A condition that does not say which generation it describes is not stale.
			name: "conditions without observedGeneration", obj: policyObject(g, mtuv1alpha1.ModeApply, statusAt(g, verdict(readyVerdict, 0)...)),
			argo: "Healthy", message: "pod MTU 8950",
			kstatus: status.CurrentStatus,
		},
		{
			// Observed, but no conditions yet: kstatus again has nothing to go on.
			name: "observedGeneration current, no conditions", obj: policyObject(g, mtuv1alpha1.ModeApply, statusAt(g)),
			argo: "Progressing", message: "Waiting for the operator to report Ready for generation 2",
			kstatus: status.CurrentStatus,
		},
	}
}

// TestHealth: every condition state, read by Argo CD's script and by kstatus.
func TestHealth(t *testing.T) {
	for _, tc := range healthCases() {
		t.Run(tc.name, func(t *testing.T) {
			checkHealth(t, tc.obj, tc.argo, tc.message, tc.kstatus)
		})
	}
}

func checkHealth(t *testing.T, obj map[string]any, argo, message string, kstatus status.Status) {
	t.Helper()
	got := argoHealth(t, obj)
	if got.Status != argo || !strings.Contains(got.Message, message) {
		t.Errorf("Argo CD health %s %q; want %s with %q", got.Status, got.Message, argo, message)
	}
	if res := kstatusOf(t, obj); res.Status != kstatus {
		t.Errorf("kstatus %s (%s); want %s", res.Status, res.Message, kstatus)
	}
}

// TestHealthFloatNumbers: Argo CD may hand numbers over as floats (they pass through JSON);
// the script compares generations the same way.
func TestHealthFloatNumbers(t *testing.T) {
	obj := policyObject(2, mtuv1alpha1.ModeApply, statusAt(2, verdict(readyVerdict, 2)...))
	obj["metadata"].(map[string]any)["generation"] = float64(3)
	if got := argoHealth(t, obj); got.Status != "Progressing" || got.Message != "Waiting for the operator to observe generation 3" {
		t.Errorf("got %s %q; want Progressing, waiting for generation 3", got.Status, got.Message)
	}
}

// TestArgoCDConfigMapSnippet: the argocd-cm snippet carries health.lua byte for byte, under
// the key Argo CD reads for this group and kind.
func TestArgoCDConfigMapSnippet(t *testing.T) {
	var cm corev1.ConfigMap
	if err := yaml.UnmarshalStrict(repoFile(t, "config/argocd/argocd-cm-patch.yaml"), &cm); err != nil {
		t.Fatal(err)
	}
	if cm.Kind != "ConfigMap" || cm.Name != "argocd-cm" || cm.Namespace != "argocd" {
		t.Errorf("snippet is %s %s/%s; want ConfigMap argocd/argocd-cm", cm.Kind, cm.Namespace, cm.Name)
	}
	key := "resource.customizations.health." + mtuv1alpha1.GroupVersion.Group + "_NetworkMTUPolicy"
	embedded, ok := cm.Data[key]
	if !ok {
		t.Fatalf("snippet has no data key %q; keys: %v", key, cm.Data)
	}
	if want := string(repoFile(t, "config/argocd/health.lua")); embedded != want {
		t.Errorf("the script in argocd-cm-patch.yaml differs from health.lua; re-indent health.lua into it")
	}
}
