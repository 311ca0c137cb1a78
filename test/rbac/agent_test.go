// Package rbac checks what the operator's service accounts may do, against a real API server
// with config/default applied as users apply it (rendered by kustomize), with requests made as
// each service account (the agent's on a given node).
package rbac

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mtuv1alpha1 "github.com/mtu-operator/mtu-operator/api/v1alpha1"
	"github.com/mtu-operator/mtu-operator/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	os.Exit(testenv.Main(m, testenv.Options{}, func(e *testenv.Env) func() { env = e; return nil }))
}

const (
	namespace      = "mtu-operator-system"
	prefix         = "mtu-operator-"
	serviceAccount = "system:serviceaccount:" + namespace + ":" + prefix + "agent"
)

// installDefault server-side applies everything config/default renders, as
// `kubectl apply --server-side -k config/default` does: the names, namespace and bindings
// users get, not a copy of them. It runs once per test binary.
var installDefault = sync.OnceValue(func() error {
	objects, err := testenv.Render("config/default")
	if err != nil {
		return err
	}
	// Namespaces first; then the rest in the rendered order.
	slices.SortStableFunc(objects, func(a, b *unstructured.Unstructured) int {
		return boolRank(a.GetKind() != "Namespace") - boolRank(b.GetKind() != "Namespace")
	})
	for _, o := range objects {
		if err := env.Client.Patch(context.Background(), o, client.Apply, client.FieldOwner("kubectl"), client.ForceOwnership); err != nil { //nolint:staticcheck // unstructured objects have no typed apply configuration
			return fmt.Errorf("applying %s %s: %w", o.GetKind(), o.GetName(), err)
		}
	}
	return nil
})

func boolRank(b bool) int {
	if b {
		return 1
	}
	return 0
}

// agentOn is a client acting as the agent's service account on node, as its bound token does.
func agentOn(t *testing.T, node string) client.Client {
	t.Helper()
	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{
		UserName: serviceAccount,
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + namespace, "system:authenticated"},
		Extra:    map[string][]string{"authentication.kubernetes.io/node-name": {node}},
	}
	c, err := client.New(cfg, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestAgentWritesOnlyItsOwnNodeStatus(t *testing.T) {
	ctx := context.Background()
	if err := installDefault(); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"node-a", "node-b"} {
		s := &mtuv1alpha1.NodeMTUState{}
		s.Name = name
		s.Spec.Policy = "jumbo"
		if err := env.Client.Create(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	agentA := agentOn(t, "node-a")

	report := func(name string) error {
		s := &mtuv1alpha1.NodeMTUState{}
		if err := agentA.Get(ctx, client.ObjectKey{Name: name}, s); err != nil {
			return err
		}
		s.Status.UnderlayMTU = 9000
		return agentA.Status().Update(ctx, s)
	}
	// The admission policy becomes active shortly after it is created.
	testenv.Eventually(t, "node-a's agent denied writing node-b's status by the admission policy", 30*time.Second, func() error {
		err := report("node-b")
		if err != nil && strings.Contains(err.Error(), "a node agent may write only the NodeMTUState of the node it runs on") {
			return nil
		}
		if err == nil {
			return errors.New("writing node-b's status succeeded; want the admission policy's denial")
		}
		return fmt.Errorf("writing node-b's status: %w; want the admission policy's denial", err)
	})
	if err := report("node-a"); err != nil {
		t.Errorf("node-a's agent writing its own status: %v", err)
	}

	s := &mtuv1alpha1.NodeMTUState{}
	if err := agentA.Get(ctx, client.ObjectKey{Name: "node-a"}, s); err != nil {
		t.Fatal(err)
	}
	s.Spec.PodMTU = 1
	if err := agentA.Update(ctx, s); !apierrors.IsForbidden(err) {
		t.Errorf("the agent changing its spec: %v; want Forbidden (only the controller writes specs)", err)
	}
	if err := agentA.Delete(ctx, s); !apierrors.IsForbidden(err) {
		t.Errorf("the agent deleting its state: %v; want Forbidden", err)
	}
	// Reading pods is granted: the agent maps pod addresses to pods, and RBAC cannot narrow a
	// list to its node's pods (it asks with a spec.nodeName field selector). Anything else on
	// pods, and other kinds, is denied.
	if err := agentA.List(ctx, &corev1.PodList{}); err != nil {
		t.Errorf("the agent listing pods: %v; it needs to", err)
	}
	// It watches the transitions (the release of route pins for the whole cluster) and reads
	// its policy, when its transition is not found, without watching the policies.
	if err := agentA.List(ctx, &mtuv1alpha1.NetworkMTUTransitionList{}); err != nil {
		t.Errorf("the agent listing NetworkMTUTransitions: %v; it needs to", err)
	}
	if err := agentA.Get(ctx, client.ObjectKey{Name: "jumbo"}, &mtuv1alpha1.NetworkMTUPolicy{}); !apierrors.IsNotFound(err) {
		t.Errorf("the agent reading its policy: %v; want NotFound (there is none)", err)
	}
	pod := &corev1.Pod{}
	pod.Namespace, pod.Name = "default", "web"
	for what, err := range map[string]error{
		"deleting a pod":   agentA.Delete(ctx, pod),
		"listing Secrets":  agentA.List(ctx, &corev1.SecretList{}),
		"patching a Node":  agentA.Patch(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-a"}}, client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"labels":{"x":"y"}}}`))),
		"creating a state": agentA.Create(ctx, &mtuv1alpha1.NodeMTUState{ObjectMeta: metav1.ObjectMeta{Name: "node-z"}}),
		"releasing pins":   agentA.Create(ctx, &mtuv1alpha1.NetworkMTUTransition{ObjectMeta: metav1.ObjectMeta{Name: "jumbo"}, Spec: mtuv1alpha1.NetworkMTUTransitionSpec{Policy: "jumbo", PinsReleasedGeneration: 9}}),
		"listing policies": agentA.List(ctx, &mtuv1alpha1.NetworkMTUPolicyList{}),
	} {
		if !apierrors.IsForbidden(err) {
			t.Errorf("the agent %s: %v; want Forbidden", what, err)
			continue
		}
		t.Logf("the agent %s: %v", what, err)
	}
}

// TestDeployRunsTheImagesItIsGiven: `make deploy IMG=… AGENT_IMG=…` applies an overlay of
// config/default whose manager and agent run those images.
func TestDeployRunsTheImagesItIsGiven(t *testing.T) {
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cmd := exec.Command("make", "-s", "deploy-overlay", "IMG=registry.example:5000/mtu-manager:v0.1.0", "AGENT_IMG=registry.example/mtu-agent:v0.2.0", "DEPLOY_DIR="+dir)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make deploy-overlay: %v\n%s", err, b)
	}
	objects, err := testenv.Render(dir)
	if err != nil {
		t.Fatal(err)
	}
	images := map[string]string{}
	for _, o := range objects {
		containers, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
		for _, c := range containers {
			images[o.GetKind()] = c.(map[string]any)["image"].(string)
		}
	}
	if want := "map[DaemonSet:registry.example/mtu-agent:v0.2.0 Deployment:registry.example:5000/mtu-manager:v0.1.0]"; fmt.Sprint(images) != want {
		t.Errorf("images %v, want %s", images, want)
	}
}

// TestAnOverlayCannotUnbindTheAdmissionPolicy: an overlay that renames the agent's objects (a
// namePrefix other than config/default's) renames the binding's policyName with the policy, so
// the agents stay confined.
func TestAnOverlayCannotUnbindTheAdmissionPolicy(t *testing.T) {
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	base, err := filepath.Rel(dir, filepath.Join(root, "config", "agent"))
	if err != nil {
		t.Fatal(err)
	}
	overlay := fmt.Sprintf("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamePrefix: team-\nresources: [%s]\n", base)
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(overlay), 0o600); err != nil {
		t.Fatal(err)
	}
	objects, err := testenv.Render(dir)
	if err != nil {
		t.Fatal(err)
	}
	policies, bound := map[string]bool{}, map[string]bool{}
	for _, o := range objects {
		switch o.GetKind() {
		case "ValidatingAdmissionPolicy":
			policies[o.GetName()] = true
		case "ValidatingAdmissionPolicyBinding":
			name, _, _ := unstructured.NestedString(o.Object, "spec", "policyName")
			bound[name] = true
		}
	}
	if len(policies) == 0 || fmt.Sprint(policies) != fmt.Sprint(bound) {
		t.Errorf("policies %v, bindings name %v: every policy must stay bound", policies, bound)
	}
}
