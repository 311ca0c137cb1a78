// Package rbac checks what the node agent may do, against a real API server: the generated
// ClusterRole and the admission policy from config/agent, applied as config/default names
// them, with requests made as the agent's service account on a given node.
package rbac

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/yaml"
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

// applyConfig creates the objects of a config/agent file as config/default would: names
// prefixed, the service account in the operator's namespace.
func applyConfig(t *testing.T, file string) {
	t.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(root, "config", "agent", file))
	if err != nil {
		t.Fatal(err)
	}
	decoder := yaml.NewYAMLOrJSONDecoder(strings.NewReader(string(data)), 4096)
	for {
		u := &unstructured.Unstructured{}
		if err := decoder.Decode(&u.Object); err != nil {
			break
		}
		if len(u.Object) == 0 {
			continue
		}
		u.SetName(prefix + u.GetName())
		switch u.GetKind() {
		case "ClusterRoleBinding":
			_ = unstructured.SetNestedField(u.Object, prefix+"agent-role", "roleRef", "name")
			_ = unstructured.SetNestedSlice(u.Object, []any{map[string]any{"kind": "ServiceAccount", "name": prefix + "agent", "namespace": namespace}}, "subjects")
		case "ValidatingAdmissionPolicyBinding":
			policy, _, _ := unstructured.NestedString(u.Object, "spec", "policyName")
			if !strings.HasPrefix(policy, prefix) {
				t.Fatalf("the binding names policy %q, not the prefixed name config/default gives it", policy)
			}
		}
		if err := env.Client.Create(context.Background(), u); err != nil {
			t.Fatalf("creating %s %s: %v", u.GetKind(), u.GetName(), err)
		}
	}
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
	applyConfig(t, "role.yaml")
	applyConfig(t, "role_binding.yaml")
	applyConfig(t, "own_node_policy.yaml")
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
	pod := &corev1.Pod{}
	pod.Namespace, pod.Name = "default", "web"
	for what, err := range map[string]error{
		"deleting a pod":   agentA.Delete(ctx, pod),
		"listing Secrets":  agentA.List(ctx, &corev1.SecretList{}),
		"patching a Node":  agentA.Patch(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-a"}}, client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"labels":{"x":"y"}}}`))),
		"creating a state": agentA.Create(ctx, &mtuv1alpha1.NodeMTUState{ObjectMeta: metav1.ObjectMeta{Name: "node-z"}}),
	} {
		if !apierrors.IsForbidden(err) {
			t.Errorf("the agent %s: %v; want Forbidden", what, err)
			continue
		}
		t.Logf("the agent %s: %v", what, err)
	}
}
