package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	mtuv1alpha1 "github.com/mtu-operator/mtu-operator/api/v1alpha1"
	"github.com/mtu-operator/mtu-operator/internal/plan"
)

// Fixtures written for these tests, shaped like the CNIs' real manifests.
const (
	flannelNetConf = `{
  "Network": "10.244.0.0/16",
  "EnableNFTables": false,
  "Backend": {
    "Type": "vxlan",
    "VNI": 4096,
    "Port": 4789
  }
}
`
	flannelCNIConf = `{
  "name": "cbr0",
  "cniVersion": "0.3.1",
  "plugins": [{"type": "flannel", "delegate": {"hairpinMode": true, "isDefaultGateway": true}}]
}
`
	antreaAgentConf = `# FeatureGates is a map of feature names to bools that enable or disable experimental features.
featureGates:
# Enable AntreaProxy which provides ServiceLB for in-cluster Services in antrea-agent.
#  AntreaProxy: true

# Name of the OpenVSwitch bridge antrea-agent will create and use.
ovsBridge: "br-int"

# Determines how traffic is encapsulated. It has the following options:
# encap(default):    Inter-node Pod traffic is always encapsulated.
# noEncap:           Inter-node Pod traffic is not encapsulated.
trafficEncapMode: "encap"

# Tunnel protocols used for encapsulating traffic across Nodes.
tunnelType: "geneve"

# Default MTU to use for the host gateway interface and the network interface of each Pod.
# If omitted, antrea-agent will discover the MTU of the Node's primary interface.
defaultMTU: 0

# Determines how tunnel traffic is encrypted. Currently encryption only works with encap mode.
trafficEncryptionMode: "none"

multicluster:
  # Enable Antrea Multi-cluster Gateway to support cross-cluster traffic.
  enableGateway: false
  trafficEncryptionMode: "none"
`
)

func ensureNamespace(t *testing.T, name string) {
	t.Helper()
	ns := &corev1.Namespace{}
	ns.Name = name
	if err := env.Client.Create(context.Background(), ns); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

// createObject creates a fixture and deletes it when the test ends, waiting until it is gone
// so the next test's CNI detection does not see it.
func createObject(t *testing.T, obj client.Object) {
	t.Helper()
	ctx := context.Background()
	if err := env.Client.Create(ctx, obj); err != nil {
		t.Fatalf("creating %T %s: %v", obj, obj.GetName(), err)
	}
	t.Cleanup(func() {
		if err := env.Client.Delete(ctx, obj); client.IgnoreNotFound(err) != nil {
			t.Errorf("deleting %s: %v", obj.GetName(), err)
		}
		eventually(t, "fixture "+obj.GetName()+" deleted", func() error {
			err := env.Client.Get(ctx, client.ObjectKeyFromObject(obj), obj)
			switch {
			case apierrors.IsNotFound(err):
				return nil
			case err != nil:
				return err
			}
			return fmt.Errorf("still present")
		})
	})
}

func configMap(ns, name string, data map[string]string) *corev1.ConfigMap {
	cm := &corev1.ConfigMap{Data: data}
	cm.Namespace, cm.Name = ns, name
	return cm
}

func daemonSet(ns, name string) *appsv1.DaemonSet {
	labels := map[string]string{"app": name}
	ds := &appsv1.DaemonSet{}
	ds.Namespace, ds.Name = ns, name
	ds.Spec.Selector = &metav1.LabelSelector{MatchLabels: labels}
	ds.Spec.Template.Labels = labels
	ds.Spec.Template.Spec.Containers = []corev1.Container{{Name: "agent", Image: "registry.example/agent:v1"}}
	return ds
}

func fromYAML(t *testing.T, doc string) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
		t.Fatal(err)
	}
	return u
}

func getConfigMap(t *testing.T, ns, name string) *corev1.ConfigMap {
	t.Helper()
	cm := &corev1.ConfigMap{}
	if err := env.Client.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, cm); err != nil {
		t.Fatal(err)
	}
	return cm
}

func restartedAt(t *testing.T, ns, name string) string {
	t.Helper()
	ds := &appsv1.DaemonSet{}
	if err := env.Client.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, ds); err != nil {
		t.Fatal(err)
	}
	return ds.Spec.Template.Annotations[restartAnnotation]
}

// updateSpec changes a policy's spec and returns the new generation.
func updateSpec(t *testing.T, p *mtuv1alpha1.NetworkMTUPolicy, change func(*mtuv1alpha1.NetworkMTUPolicySpec)) {
	t.Helper()
	ctx := context.Background()
	eventually(t, "update "+p.Name, func() error {
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(p), p); err != nil {
			return err
		}
		change(&p.Spec)
		return env.Client.Update(ctx, p)
	})
}

func conditionIs(p *mtuv1alpha1.NetworkMTUPolicy, conditionType, status, reason string) error {
	c := condition(p, conditionType)
	if string(c.Status) != status || (reason != "" && c.Reason != reason) {
		return fmt.Errorf("%s is %s/%s (%s); want %s/%s", conditionType, c.Status, c.Reason, c.Message, status, reason)
	}
	return nil
}

func ready(p *mtuv1alpha1.NetworkMTUPolicy) error {
	return conditionIs(p, mtuv1alpha1.ConditionReady, "True", "")
}

// eventsFor lists the events regarding a policy.
func eventsFor(t *testing.T, policy string) []eventsv1.Event {
	t.Helper()
	var list eventsv1.EventList
	if err := env.Client.List(context.Background(), &list); err != nil {
		t.Fatal(err)
	}
	var out []eventsv1.Event
	for _, e := range list.Items {
		if e.Regarding.Name == policy && e.Regarding.Kind == "NetworkMTUPolicy" {
			out = append(out, e)
		}
	}
	return out
}

func hasEvent(t *testing.T, policy, reason string) error {
	for _, e := range eventsFor(t, policy) {
		if e.Reason == reason {
			return nil
		}
	}
	return fmt.Errorf("no %s event for %s", reason, policy)
}

func backend(t *testing.T, netConf string) map[string]any {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal([]byte(netConf), &doc); err != nil {
		t.Fatalf("net-conf.json no longer parses: %v\n%s", err, netConf)
	}
	b, _ := doc["Backend"].(map[string]any)
	return b
}

func flannelFixture(t *testing.T, netConf string) {
	t.Helper()
	ensureNamespace(t, "kube-flannel")
	createObject(t, configMap("kube-flannel", "kube-flannel-cfg", map[string]string{"net-conf.json": netConf, "cni-conf.json": flannelCNIConf}))
	createObject(t, daemonSet("kube-flannel", "kube-flannel-ds"))
}

func TestFlannelApplyRoundTripAndRestart(t *testing.T) {
	flannelFixture(t, flannelNetConf)
	p := newPolicy("flannel-jumbo", 9000, mtuv1alpha1.EncapsulationVXLAN)
	createPolicy(t, p)

	// 1. VXLAN at 9000: Backend.MTU is the underlay; nothing else in the document moves.
	waitForStatus(t, p, ready)
	want := strings.Replace(flannelNetConf, `"Port": 4789`+"\n", `"Port": 4789,`+"\n"+`    "MTU": 9000`+"\n", 1)
	cm := getConfigMap(t, "kube-flannel", "kube-flannel-cfg")
	if got := cm.Data["net-conf.json"]; got != want {
		t.Fatalf("net-conf.json:\n%s\nwant:\n%s", got, want)
	}
	if cm.Data["cni-conf.json"] != flannelCNIConf {
		t.Errorf("cni-conf.json changed:\n%s", cm.Data["cni-conf.json"])
	}
	if restartedAt(t, "kube-flannel", "kube-flannel-ds") != "" {
		t.Errorf("kube-flannel-ds's template was annotated: the operator restarts its pods node by node instead")
	}
	got := waitForStatus(t, p, ready)
	if got.Status.CNI != mtuv1alpha1.CNIFlannel || fmt.Sprint(got.Status.AgentRestarts) != "[kube-flannel/kube-flannel-ds]" {
		t.Errorf("status cni %q agentRestarts %v", got.Status.CNI, got.Status.AgentRestarts)
	}
	if fmt.Sprint(got.Status.ReplacedValues) != "[{ConfigMap kube-flannel/kube-flannel-cfg net-conf.json: Backend.MTU  9000}]" {
		t.Errorf("replacedValues %v", got.Status.ReplacedValues)
	}
	// The write is followed by a reconcile that finds the configuration current.
	if err := conditionIs(got, mtuv1alpha1.ConditionConfigApplied, "True", ""); err != nil {
		t.Error(err)
	}
	eventually(t, "ConfigWritten event", func() error { return hasEvent(t, p.Name, mtuv1alpha1.ReasonConfigWritten) })

	// 2. encap → noEncap: host-gw, the tunnel options are removed and remembered.
	updateSpec(t, p, func(s *mtuv1alpha1.NetworkMTUPolicySpec) { s.Encapsulation.Type = mtuv1alpha1.EncapsulationNone })
	waitForStatus(t, p, func(p *mtuv1alpha1.NetworkMTUPolicy) error {
		if p.Status.PodMTU != 9000 {
			return fmt.Errorf("pod MTU %d", p.Status.PodMTU)
		}
		return ready(p)
	})
	b := backend(t, getConfigMap(t, "kube-flannel", "kube-flannel-cfg").Data["net-conf.json"])
	if fmt.Sprint(b) != "map[Type:host-gw]" {
		t.Fatalf("Backend after noEncap = %v; want only Type host-gw", b)
	}

	// 3. back to encap: VNI and Port come back exactly as they were.
	updateSpec(t, p, func(s *mtuv1alpha1.NetworkMTUPolicySpec) { s.Encapsulation.Type = mtuv1alpha1.EncapsulationVXLAN })
	waitForStatus(t, p, func(p *mtuv1alpha1.NetworkMTUPolicy) error {
		if p.Status.PodMTU != 8950 {
			return fmt.Errorf("pod MTU %d", p.Status.PodMTU)
		}
		return ready(p)
	})
	doc := getConfigMap(t, "kube-flannel", "kube-flannel-cfg").Data["net-conf.json"]
	if b := backend(t, doc); fmt.Sprint(b) != "map[MTU:9000 Port:4789 Type:vxlan VNI:4096]" {
		t.Fatalf("Backend after the round trip = %v; want the original VNI and Port with MTU 9000", b)
	}
	if !strings.HasPrefix(doc, "{\n  \"Network\": \"10.244.0.0/16\",\n  \"EnableNFTables\": false,\n") {
		t.Errorf("unrelated keys moved:\n%s", doc)
	}
}

func TestFlannelDryRunWritesNothing(t *testing.T) {
	flannelFixture(t, flannelNetConf)
	before := getConfigMap(t, "kube-flannel", "kube-flannel-cfg").ResourceVersion
	p := newPolicy("flannel-dryrun", 1500, mtuv1alpha1.EncapsulationNone)
	p.Spec.Mode = mtuv1alpha1.ModeDryRun
	createPolicy(t, p)
	got := waitForStatus(t, p, func(p *mtuv1alpha1.NetworkMTUPolicy) error {
		if len(p.Status.PlannedChanges) == 0 {
			return fmt.Errorf("no planned changes yet")
		}
		return ready(p)
	})
	planned := fmt.Sprint(got.Status.PlannedChanges)
	for _, want := range []string{"net-conf.json: Backend.Type \"vxlan\" \"host-gw\"", "net-conf.json: Backend.VNI 4096 ", "net-conf.json: Backend.Port 4789 "} {
		if !strings.Contains(planned, want) {
			t.Errorf("plannedChanges %s\nlacks %s", planned, want)
		}
	}
	if fmt.Sprint(got.Status.AgentRestarts) != "[kube-flannel/kube-flannel-ds]" {
		t.Errorf("agentRestarts %v; want the DaemonSet that would restart", got.Status.AgentRestarts)
	}
	if err := conditionIs(got, mtuv1alpha1.ConditionConfigApplied, "False", mtuv1alpha1.ReasonDryRun); err != nil {
		t.Error(err)
	}
	if after := getConfigMap(t, "kube-flannel", "kube-flannel-cfg").ResourceVersion; after != before {
		t.Errorf("DryRun wrote the ConfigMap (resourceVersion %s → %s)", before, after)
	}
	if r := restartedAt(t, "kube-flannel", "kube-flannel-ds"); r != "" {
		t.Errorf("DryRun restarted the DaemonSet (%s)", r)
	}
}

func TestUnparseableConfigIsLeftUntouched(t *testing.T) {
	const broken = `{"Network": "10.244.0.0/16", "Backend": {"Type": "vxlan",`
	flannelFixture(t, broken)
	before := getConfigMap(t, "kube-flannel", "kube-flannel-cfg").ResourceVersion
	p := newPolicy("flannel-broken", 9000, mtuv1alpha1.EncapsulationVXLAN)
	createPolicy(t, p)
	got := waitForStatus(t, p, func(p *mtuv1alpha1.NetworkMTUPolicy) error {
		return conditionIs(p, mtuv1alpha1.ConditionStalled, "True", mtuv1alpha1.ReasonUnparseableConfig)
	})
	if msg := condition(got, mtuv1alpha1.ConditionStalled).Message; !strings.Contains(msg, "ConfigMap kube-flannel/kube-flannel-cfg key net-conf.json was left untouched") {
		t.Errorf("Stalled message %q does not say which document and that it was left alone", msg)
	}
	cm := getConfigMap(t, "kube-flannel", "kube-flannel-cfg")
	if cm.ResourceVersion != before || cm.Data["net-conf.json"] != broken {
		t.Errorf("the unparseable document was rewritten")
	}
}

func TestRevertedFieldIsReapplied(t *testing.T) {
	flannelFixture(t, flannelNetConf)
	p := newPolicy("flannel-drift", 9000, mtuv1alpha1.EncapsulationVXLAN)
	createPolicy(t, p)
	waitForStatus(t, p, ready)
	// A GitOps tool reverts later, once the controller has settled and knows it applied.
	eventually(t, "the controller settles with ConfigApplied in its cache", func() error {
		cached := &mtuv1alpha1.NetworkMTUPolicy{}
		if err := managerClient.Get(context.Background(), client.ObjectKeyFromObject(p), cached); err != nil {
			return err
		}
		if err := conditionIs(cached, mtuv1alpha1.ConditionConfigApplied, "True", ""); err != nil {
			return err
		}
		return controllerIdle()
	})

	// A GitOps tool puts the original document back.
	ctx := context.Background()
	cm := getConfigMap(t, "kube-flannel", "kube-flannel-cfg")
	cm.Data["net-conf.json"] = flannelNetConf
	revertedAt := time.Now().Truncate(time.Second)
	if err := env.Client.Update(ctx, cm, client.FieldOwner("argocd-controller")); err != nil {
		t.Fatal(err)
	}
	got := waitForStatus(t, p, func(p *mtuv1alpha1.NetworkMTUPolicy) error {
		if p.Status.DriftCorrections < 1 {
			return fmt.Errorf("no drift correction yet")
		}
		return conditionIs(p, mtuv1alpha1.ConditionConfigApplied, "True", mtuv1alpha1.ReasonDriftCorrected)
	})
	// The message names the other writer, by its field manager.
	if c := meta.FindStatusCondition(got.Status.Conditions, mtuv1alpha1.ConditionConfigApplied); !strings.Contains(c.Message, "argocd-controller (Update at ") {
		t.Errorf("ConfigApplied %q does not name the writer", c.Message)
	}
	// Only CNI agents started since the revert restart after the correction. (Times have
	// seconds only: a change in the second of the operator's write counts as after it.)
	if m := got.Status.Migration; m == nil || m.RevertedAt == nil || m.RevertedAt.Sub(revertedAt).Abs() > 2*time.Second {
		t.Errorf("migration %+v; want revertedAt at the update (%s)", m, revertedAt)
	}
	if b := backend(t, getConfigMap(t, "kube-flannel", "kube-flannel-cfg").Data["net-conf.json"]); b["MTU"] != float64(9000) {
		t.Errorf("Backend.MTU after drift = %v; want 9000 re-applied", b["MTU"])
	}
	if got.Status.LastDriftCorrection == nil {
		t.Errorf("lastDriftCorrection not set")
	}
	eventually(t, "DriftCorrected event", func() error { return hasEvent(t, p.Name, mtuv1alpha1.ReasonDriftCorrected) })
}

func TestOverlappingPolicyStallsTheLaterOne(t *testing.T) {
	flannelFixture(t, flannelNetConf)
	first := newPolicy("overlap-first", 9000, mtuv1alpha1.EncapsulationVXLAN)
	createPolicy(t, first)
	waitForStatus(t, first, ready)

	second := newPolicy("overlap-second", 1500, mtuv1alpha1.EncapsulationNone)
	createPolicy(t, second)
	got := waitForStatus(t, second, func(p *mtuv1alpha1.NetworkMTUPolicy) error {
		return conditionIs(p, mtuv1alpha1.ConditionStalled, "True", mtuv1alpha1.ReasonNodeSelectorClash)
	})
	if msg := condition(got, mtuv1alpha1.ConditionStalled).Message; !strings.Contains(msg, "overlap-first") {
		t.Errorf("Stalled message %q does not name the other policy", msg)
	}
	if got.Status.UnderlayMTU != 1500 || got.Status.PodMTU != 1500 {
		t.Errorf("the stalled policy shows underlay %d, pod MTU %d; want what it computed, 1500 and 1500", got.Status.UnderlayMTU, got.Status.PodMTU)
	}
	if b := backend(t, getConfigMap(t, "kube-flannel", "kube-flannel-cfg").Data["net-conf.json"]); b["Type"] != "vxlan" {
		t.Errorf("the stalled policy changed the CNI: Backend %v", b)
	}
	waitForStatus(t, first, ready)
}

func TestAntreaKeepsComments(t *testing.T) {
	createObject(t, configMap("kube-system", "antrea-config", map[string]string{"antrea-agent.conf": antreaAgentConf, "antrea-cni.conflist": "{}"}))
	createObject(t, daemonSet("kube-system", "antrea-agent"))
	p := newPolicy("antrea-geneve", 9000, mtuv1alpha1.EncapsulationGeneve)
	createPolicy(t, p)
	waitForStatus(t, p, ready)
	want := strings.Replace(antreaAgentConf, "defaultMTU: 0\n", "defaultMTU: 8950\n", 1)
	if got := getConfigMap(t, "kube-system", "antrea-config").Data["antrea-agent.conf"]; got != want {
		t.Fatalf("antrea-agent.conf:\n%s\nwant:\n%s", got, want)
	}

	// encap → noEncap: the mode and the MTU change; the nested multicluster setting does not.
	updateSpec(t, p, func(s *mtuv1alpha1.NetworkMTUPolicySpec) { s.Encapsulation.Type = mtuv1alpha1.EncapsulationNone })
	waitForStatus(t, p, func(p *mtuv1alpha1.NetworkMTUPolicy) error {
		if p.Status.PodMTU != 9000 {
			return fmt.Errorf("pod MTU %d", p.Status.PodMTU)
		}
		return ready(p)
	})
	want = strings.Replace(antreaAgentConf, "defaultMTU: 0\n", "defaultMTU: 9000\n", 1)
	want = strings.Replace(want, `trafficEncapMode: "encap"`, `trafficEncapMode: "noEncap"`, 1)
	if got := getConfigMap(t, "kube-system", "antrea-config").Data["antrea-agent.conf"]; got != want {
		t.Fatalf("antrea-agent.conf after noEncap:\n%s\nwant:\n%s", got, want)
	}
	if restartedAt(t, "kube-system", "antrea-agent") != "" {
		t.Errorf("antrea-agent's template was annotated: the operator restarts its pods node by node instead")
	}
}

func TestCalicoOperatorInstall(t *testing.T) {
	createObject(t, fromYAML(t, `
apiVersion: operator.tigera.io/v1
kind: Installation
metadata:
  name: default
spec:
  registry: registry.example/
  calicoNetwork:
    bgp: Disabled
    ipPools:
    - name: default-ipv4-ippool
      cidr: 192.168.0.0/16
      encapsulation: VXLANCrossSubnet
      natOutgoing: Enabled
      blockSize: 26
`))
	p := newPolicy("calico-operator", 1500, mtuv1alpha1.EncapsulationVXLAN)
	createPolicy(t, p)
	waitForStatus(t, p, ready)
	inst := &unstructured.Unstructured{}
	inst.SetGroupVersionKind(installationGVK)
	get := func() map[string]any {
		if err := env.Client.Get(context.Background(), types.NamespacedName{Name: "default"}, inst); err != nil {
			t.Fatal(err)
		}
		return inst.Object["spec"].(map[string]any)
	}
	spec := get()
	if fmt.Sprint(spec) != "map[calicoNetwork:map[bgp:Disabled ipPools:[map[blockSize:26 cidr:192.168.0.0/16 encapsulation:VXLANCrossSubnet name:default-ipv4-ippool natOutgoing:Enabled]] mtu:1450] registry:registry.example/]" {
		t.Errorf("Installation spec after VXLAN 1500 = %v", spec)
	}

	updateSpec(t, p, func(s *mtuv1alpha1.NetworkMTUPolicySpec) { s.Encapsulation.Type = mtuv1alpha1.EncapsulationNone })
	waitForStatus(t, p, func(p *mtuv1alpha1.NetworkMTUPolicy) error {
		if p.Status.PodMTU != 1500 {
			return fmt.Errorf("pod MTU %d", p.Status.PodMTU)
		}
		return ready(p)
	})
	if spec := get(); fmt.Sprint(spec) != "map[calicoNetwork:map[bgp:Disabled ipPools:[map[blockSize:26 cidr:192.168.0.0/16 encapsulation:None name:default-ipv4-ippool natOutgoing:Enabled]] mtu:1500] registry:registry.example/]" {
		t.Errorf("Installation spec after None = %v", spec)
	}

	// Back to VXLAN: the pool returns to the CrossSubnet mode it had before the operator.
	updateSpec(t, p, func(s *mtuv1alpha1.NetworkMTUPolicySpec) { s.Encapsulation.Type = mtuv1alpha1.EncapsulationVXLAN })
	waitForStatus(t, p, func(p *mtuv1alpha1.NetworkMTUPolicy) error {
		if p.Status.PodMTU != 1450 {
			return fmt.Errorf("pod MTU %d", p.Status.PodMTU)
		}
		return ready(p)
	})
	if spec := get(); fmt.Sprint(spec) != "map[calicoNetwork:map[bgp:Disabled ipPools:[map[blockSize:26 cidr:192.168.0.0/16 encapsulation:VXLANCrossSubnet name:default-ipv4-ippool natOutgoing:Enabled]] mtu:1450] registry:registry.example/]" {
		t.Errorf("Installation spec after the round trip = %v", spec)
	}
}

func TestCalicoManifestInstall(t *testing.T) {
	createObject(t, fromYAML(t, `
apiVersion: crd.projectcalico.org/v1
kind: FelixConfiguration
metadata:
  name: default
spec:
  logSeverityScreen: Info
  reportingInterval: 0s
`))
	createObject(t, fromYAML(t, `
apiVersion: crd.projectcalico.org/v1
kind: IPPool
metadata:
  name: default-ipv4-ippool
spec:
  cidr: 192.168.0.0/16
  ipipMode: Always
  natOutgoing: true
  blockSize: 26
`))
	createObject(t, configMap("kube-system", "calico-config", map[string]string{
		"typha_service_name": "none", "calico_backend": "bird", "veth_mtu": "0",
		"cni_network_config": `{"name": "k8s-pod-network", "plugins": [{"type": "calico", "mtu": __CNI_MTU__}]}`,
	}))
	createObject(t, daemonSet("kube-system", "calico-node"))

	p := newPolicy("calico-manifest", 9000, mtuv1alpha1.EncapsulationVXLAN)
	createPolicy(t, p)
	waitForStatus(t, p, ready)

	felix, pool := &unstructured.Unstructured{}, &unstructured.Unstructured{}
	felix.SetGroupVersionKind(felixConfigurationGVK)
	pool.SetGroupVersionKind(ipPoolGVK)
	ctx := context.Background()
	if err := env.Client.Get(ctx, types.NamespacedName{Name: "default"}, felix); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Get(ctx, types.NamespacedName{Name: "default-ipv4-ippool"}, pool); err != nil {
		t.Fatal(err)
	}
	// Every mode's tunnel MTU is sized for the underlay, so a later switch finds none stale.
	if got := fmt.Sprint(felix.Object["spec"]); got != "map[ipipMTU:8980 logSeverityScreen:Info reportingInterval:0s vxlanMTU:8950 wireguardMTU:8940]" {
		t.Errorf("FelixConfiguration spec = %s", got)
	}
	if got := fmt.Sprint(pool.Object["spec"]); got != "map[blockSize:26 cidr:192.168.0.0/16 ipipMode:Never natOutgoing:true vxlanMode:Always]" {
		t.Errorf("IPPool spec = %s", got)
	}
	cm := getConfigMap(t, "kube-system", "calico-config")
	if cm.Data["veth_mtu"] != "8950" || cm.Data["typha_service_name"] != "none" || !strings.Contains(cm.Data["cni_network_config"], "__CNI_MTU__") {
		t.Errorf("calico-config data = %v", cm.Data)
	}
	if restartedAt(t, "kube-system", "calico-node") != "" {
		t.Errorf("calico-node's template was annotated: the operator restarts its pods node by node instead")
	}
}

func TestNoCNIStalls(t *testing.T) {
	p := newPolicy("no-cni", 9000, mtuv1alpha1.EncapsulationVXLAN)
	createPolicy(t, p)
	got := waitForStatus(t, p, func(p *mtuv1alpha1.NetworkMTUPolicy) error {
		return conditionIs(p, mtuv1alpha1.ConditionStalled, "True", mtuv1alpha1.ReasonCNINotFound)
	})
	if err := conditionIs(got, mtuv1alpha1.ConditionCNIDetected, "False", mtuv1alpha1.ReasonCNINotFound); err != nil {
		t.Error(err)
	}
	if got.Status.PodMTU != 8950 {
		t.Errorf("pod MTU %d; the computation should still be shown", got.Status.PodMTU)
	}
}

// TestOneOwnerOfTheCNIConfiguration: of two policies over disjoint nodes that want different
// CNI configurations, the older owns it and the younger is Stalled naming it, with nothing
// rewritten back and forth; when the older goes, the younger takes over, says so, and writes.
func TestOneOwnerOfTheCNIConfiguration(t *testing.T) {
	flannelFixture(t, flannelNetConf)
	older := newPolicy("cni-owner", 9000, mtuv1alpha1.EncapsulationVXLAN)
	older.Spec.NodeSelector = &mtuv1alpha1.NodeSelector{MatchLabels: map[string]mtuv1alpha1.NodeLabelValue{"pool": "jumbo"}}
	createPolicy(t, older)
	waitForStatus(t, older, ready)
	time.Sleep(time.Second) // creation times have seconds only: the younger must be younger
	younger := newPolicy("cni-younger", 1500, mtuv1alpha1.EncapsulationVXLAN)
	younger.Spec.NodeSelector = &mtuv1alpha1.NodeSelector{MatchLabels: map[string]mtuv1alpha1.NodeLabelValue{"pool": "small"}}
	createPolicy(t, younger)
	waitForStatus(t, younger, func(p *mtuv1alpha1.NetworkMTUPolicy) error {
		if err := conditionIs(p, mtuv1alpha1.ConditionStalled, "True", mtuv1alpha1.ReasonCNIConfigOwned); err != nil {
			return err
		}
		if msg := condition(p, mtuv1alpha1.ConditionStalled).Message; !strings.Contains(msg, "NetworkMTUPolicy cni-owner") {
			return fmt.Errorf("the message does not name the owner: %s", msg)
		}
		return nil
	})
	rv := getConfigMap(t, "kube-flannel", "kube-flannel-cfg").ResourceVersion
	time.Sleep(2 * time.Second)
	cm := getConfigMap(t, "kube-flannel", "kube-flannel-cfg")
	if cm.ResourceVersion != rv || backend(t, cm.Data["net-conf.json"])["MTU"] != float64(9000) {
		t.Fatalf("the CNI configuration changed while owned by the older policy:\n%s", cm.Data["net-conf.json"])
	}

	if err := env.Client.Delete(context.Background(), older); err != nil {
		t.Fatal(err)
	}
	waitForStatus(t, younger, ready)
	if b := backend(t, getConfigMap(t, "kube-flannel", "kube-flannel-cfg").Data["net-conf.json"]); b["MTU"] != float64(1500) {
		t.Errorf("Backend after the takeover = %v; want MTU 1500", b)
	}
	eventually(t, "a CNIConfigTakenOver event", func() error { return hasEvent(t, younger.Name, "CNIConfigTakenOver") })
}

// TestOriginalsOutliveThePolicy: the values fields had before the operator first changed them
// are recorded on the CNI object itself, in the same write; a later write of the operator's own
// values does not replace them, and they outlive the policy: a new policy restores flannel's
// VXLAN options from them, with nothing in its own status.
func TestOriginalsOutliveThePolicy(t *testing.T) {
	flannelFixture(t, flannelNetConf)
	originals := func() map[string]string {
		t.Helper()
		var o map[string]string
		raw := getConfigMap(t, "kube-flannel", "kube-flannel-cfg").Annotations[plan.OriginalsAnnotation]
		if err := json.Unmarshal([]byte(raw), &o); err != nil {
			t.Fatalf("originals annotation %q: %v", raw, err)
		}
		return o
	}
	first := newPolicy("originals-first", 9000, mtuv1alpha1.EncapsulationVXLAN)
	createPolicy(t, first)
	waitForStatus(t, first, ready)
	if got := fmt.Sprint(originals()); got != `map[net-conf.json: Backend.MTU:]` {
		t.Errorf("originals after the first write: %s; want Backend.MTU absent", got)
	}
	updateSpec(t, first, func(s *mtuv1alpha1.NetworkMTUPolicySpec) { s.Encapsulation.Type = mtuv1alpha1.EncapsulationNone })
	waitForStatus(t, first, func(p *mtuv1alpha1.NetworkMTUPolicy) error {
		if p.Status.PodMTU != 9000 {
			return fmt.Errorf("pod MTU %d", p.Status.PodMTU)
		}
		return ready(p)
	})
	want := `map[net-conf.json: Backend.MTU: net-conf.json: Backend.Port:4789 net-conf.json: Backend.Type:"vxlan" net-conf.json: Backend.VNI:4096]`
	if got := fmt.Sprint(originals()); got != want {
		t.Errorf("originals after the switch to host-gw: %s\nwant %s (Backend.MTU still absent, not the operator's 9000)", got, want)
	}

	if err := env.Client.Delete(context.Background(), first); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the first policy gone", func() error {
		err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(first), &mtuv1alpha1.NetworkMTUPolicy{})
		if err == nil {
			return fmt.Errorf("still there")
		}
		return client.IgnoreNotFound(err)
	})
	second := newPolicy("originals-second", 1500, mtuv1alpha1.EncapsulationVXLAN)
	createPolicy(t, second)
	waitForStatus(t, second, ready)
	if b := backend(t, getConfigMap(t, "kube-flannel", "kube-flannel-cfg").Data["net-conf.json"]); fmt.Sprint(b) != "map[MTU:1500 Port:4789 Type:vxlan VNI:4096]" {
		t.Errorf("Backend = %v; want VNI and Port restored from the originals on the ConfigMap", b)
	}
	if got := fmt.Sprint(originals()); got != want {
		t.Errorf("originals after a new policy wrote: %s\nwant %s", got, want)
	}
}

// TestAPolicyThatLeavesNodesOutDoesNotChangeTheSharedConfig: every node's CNI agent reads the
// CNI configuration, so a policy that selects some nodes only must not change it: the nodes it
// leaves out would get the new pod MTU with nothing prepared. It is Stalled naming them, and
// writes nothing; without the selector it goes on.
func TestAPolicyThatLeavesNodesOutDoesNotChangeTheSharedConfig(t *testing.T) {
	flannelFixture(t, flannelNetConf)
	for name, pool := range map[string]string{"shared-a": "shared-jumbo", "shared-b": "shared-jumbo", "shared-c": "shared-small"} {
		node := &corev1.Node{}
		node.Name, node.Labels = name, map[string]string{"pool": pool}
		createObject(t, node)
	}
	before := getConfigMap(t, "kube-flannel", "kube-flannel-cfg").ResourceVersion
	p := newPolicy("shared-jumbo", 9000, mtuv1alpha1.EncapsulationVXLAN)
	p.Spec.NodeSelector = &mtuv1alpha1.NodeSelector{MatchLabels: map[string]mtuv1alpha1.NodeLabelValue{"pool": "shared-jumbo"}}
	createPolicy(t, p)
	got := waitForStatus(t, p, func(p *mtuv1alpha1.NetworkMTUPolicy) error {
		return conditionIs(p, mtuv1alpha1.ConditionStalled, "True", mtuv1alpha1.ReasonCNIConfigShared)
	})
	if msg := condition(got, mtuv1alpha1.ConditionStalled).Message; !strings.Contains(msg, "shared-c") || strings.Contains(msg, "shared-a") {
		t.Errorf("Stalled message %q does not name the node left out (only)", msg)
	}
	if len(got.Status.PlannedChanges) == 0 {
		t.Errorf("the change it would make is not in status.plannedChanges")
	}
	if rv := getConfigMap(t, "kube-flannel", "kube-flannel-cfg").ResourceVersion; rv != before {
		t.Errorf("the CNI configuration was written")
	}

	updateSpec(t, p, func(s *mtuv1alpha1.NetworkMTUPolicySpec) { s.NodeSelector = nil })
	waitForStatus(t, p, func(p *mtuv1alpha1.NetworkMTUPolicy) error {
		if c := condition(p, mtuv1alpha1.ConditionStalled); c.Reason == mtuv1alpha1.ReasonCNIConfigShared {
			return fmt.Errorf("still %s: %s", c.Reason, c.Message)
		}
		return nil
	})
}

// TestAbsentKindsAreRemembered: a kind the API server does not serve is not asked for again
// until a resync; an object merely missing, or any other error, is asked for each time.
func TestAbsentKindsAreRemembered(t *testing.T) {
	gvk := schema.GroupVersionKind{Group: "operator.tigera.io", Version: "v1", Kind: "Installation"}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{name: "kind not served", err: &meta.NoKindMatchError{GroupKind: gvk.GroupKind(), SearchedVersions: []string{"v1"}}, want: true},
		{name: "object missing", err: apierrors.NewNotFound(schema.GroupResource{Group: gvk.Group, Resource: "installations"}, "default")},
		{name: "found", err: nil},
		{name: "API server unavailable", err: apierrors.NewServiceUnavailable("later")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var kinds absentKinds
			kinds.see(gvk, tc.err)
			if got := kinds.absent(gvk); got != tc.want {
				t.Fatalf("absent %t, want %t", got, tc.want)
			}
			kinds.see(gvk, nil) // installed since, and read
			if kinds.absent(gvk) {
				t.Fatal("still absent after a read found it")
			}
		})
	}
}
