package rbac

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mtuv1alpha1 "github.com/mtu-operator/mtu-operator/api/v1alpha1"
	"github.com/mtu-operator/mtu-operator/internal/testenv"
)

// asManager is a client acting as the manager's service account.
func asManager(t *testing.T) client.Client {
	t.Helper()
	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{
		UserName: "system:serviceaccount:" + namespace + ":" + prefix + "manager",
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + namespace, "system:authenticated"},
	}
	c, err := client.New(cfg, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func create(t *testing.T, objects ...client.Object) {
	t.Helper()
	for _, o := range objects {
		if err := env.Client.Create(context.Background(), o); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatalf("creating %s: %v", o.GetName(), err)
		}
	}
}

func mergePatch(s string) client.Patch { return client.RawPatch(types.MergePatchType, []byte(s)) }

// TestManagerWritesOnlyWhatItEdits: the manager may patch the CNI's ConfigMaps and agent
// DaemonSets by name, and on pods and DaemonSets only the fields it owns; every other write is
// denied, by RBAC or by its admission policy, and the denial is printed.
func TestManagerWritesOnlyWhatItEdits(t *testing.T) {
	ctx := context.Background()
	if err := installDefault(); err != nil {
		t.Fatal(err)
	}
	for _, ns := range []string{"kube-flannel", "kube-system"} {
		create(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	}
	labels := map[string]string{"app": "flannel"}
	ds := func(ns, name string) *appsv1.DaemonSet {
		return &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "registry.example/c:v1"}}}},
		}}
	}
	flannelDS, kubeProxy := ds("kube-flannel", "kube-flannel-ds"), ds("kube-system", "kube-proxy")
	flannelCfg := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-flannel", Name: "kube-flannel-cfg"}, Data: map[string]string{"net-conf.json": "{}"}}
	coredns := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "coredns"}, Data: map[string]string{"Corefile": "."}}
	lookalike := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "calico-config"}, Data: map[string]string{"veth_mtu": "0"}}
	create(t, flannelDS, kubeProxy, flannelCfg, coredns, lookalike)
	agentPod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-flannel", Name: "kube-flannel-ds-abcde",
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "DaemonSet", Name: "kube-flannel-ds", UID: flannelDS.UID}}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "registry.example/c:v1"}}}}
	workload := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "registry.example/web:v1"}}}}
	create(t, agentPod, workload)
	manager := asManager(t)

	allowed := map[string]func() error{
		"patching kube-flannel-cfg": func() error {
			return manager.Patch(ctx, flannelCfg, mergePatch(`{"data":{"net-conf.json":"{\"Backend\":{}}"}}`))
		},
		"annotating a pod stale": func() error {
			return manager.Patch(ctx, workload, mergePatch(`{"metadata":{"annotations":{"networking.mtu-operator.io/stale-mtu":"1450"}}}`))
		},
		"restarting kube-flannel-ds": func() error {
			return manager.Patch(ctx, flannelDS, mergePatch(`{"spec":{"template":{"metadata":{"annotations":{"networking.mtu-operator.io/restartedAt":"now"}}}}}`))
		},
		"releasing route pins (a transition created, patched, deleted)": func() error {
			tr := &mtuv1alpha1.NetworkMTUTransition{ObjectMeta: metav1.ObjectMeta{Name: "jumbo"}, Spec: mtuv1alpha1.NetworkMTUTransitionSpec{Policy: "jumbo"}}
			return errors.Join(manager.Create(ctx, tr), manager.Patch(ctx, tr, mergePatch(`{"spec":{"pinsReleasedGeneration":1}}`)), manager.Delete(ctx, tr))
		},
	}
	denied := map[string]struct {
		do   func() error
		says string
	}{
		"patching kube-system/coredns":   {func() error { return manager.Patch(ctx, coredns, mergePatch(`{"data":{"Corefile":"x"}}`)) }, "cannot patch resource \"configmaps\""},
		"patching default/calico-config": {func() error { return manager.Patch(ctx, lookalike, mergePatch(`{"data":{"veth_mtu":"9000"}}`)) }, "only in the CNIs' namespaces"},
		"patching kube-proxy":            {func() error { return manager.Patch(ctx, kubeProxy, mergePatch(`{"metadata":{"labels":{"x":"y"}}}`)) }, "cannot patch resource \"daemonsets\""},
		"changing a pod's image": {func() error {
			return manager.Patch(ctx, workload, mergePatch(`{"spec":{"containers":[{"name":"web","image":"evil.example/web:v1"}]}}`))
		}, "may change only its stale-MTU annotation on pods"},
		"adding a label to a pod": {func() error { return manager.Patch(ctx, workload, mergePatch(`{"metadata":{"labels":{"x":"y"}}}`)) }, "may change only its stale-MTU annotation on pods"},
		"annotating a pod else": {func() error {
			return manager.Patch(ctx, workload, mergePatch(`{"metadata":{"annotations":{"x":"y"}}}`))
		}, "may change only the annotation networking.mtu-operator.io/stale-mtu"},
		"changing the DS image": {func() error {
			return manager.Patch(ctx, flannelDS, mergePatch(`{"spec":{"template":{"spec":{"containers":[{"name":"c","image":"evil.example/c:v1"}]}}}}`))
		}, "may change only the restart annotation"},
		"deleting a workload pod": {func() error { return manager.Delete(ctx, workload) }, "may delete only the CNI's agent pods"},
	}
	// The admission policy becomes active shortly after it is created.
	testenv.Eventually(t, "the manager's admission policy in force", 30*time.Second, func() error {
		err := denied["deleting a workload pod"].do()
		if err != nil && strings.Contains(err.Error(), denied["deleting a workload pod"].says) {
			return nil
		}
		if err == nil {
			// Deleted before the policy was in force: put the pod back and try again.
			again := workload.DeepCopy()
			again.ResourceVersion, again.UID = "", ""
			create(t, again)
			*workload = *again
			return errors.New("deleted")
		}
		return err
	})
	for what, d := range denied {
		err := d.do()
		if err == nil || (!apierrors.IsForbidden(err) && !apierrors.IsInvalid(err)) || !strings.Contains(err.Error(), d.says) {
			t.Errorf("the manager %s: %v; want a denial saying %q", what, err, d.says)
			continue
		}
		t.Logf("the manager %s: %v", what, err)
	}
	for what, do := range allowed {
		if err := do(); err != nil {
			t.Errorf("the manager %s: %v; it must be allowed", what, err)
		}
	}
	if err := manager.Delete(ctx, agentPod); err != nil {
		t.Errorf("the manager deleting a CNI agent pod: %v; it restarts them so", err)
	}
	// Evicting a stale pod (stalePods.action Evict) goes through the eviction API, which
	// respects PodDisruptionBudgets; the admission policy does not stand in its way.
	eviction := &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Namespace: workload.Namespace, Name: workload.Name}}
	if err := manager.SubResource("eviction").Create(ctx, workload, eviction); err != nil {
		t.Errorf("the manager evicting a stale pod: %v; it must be allowed", err)
	}
}
