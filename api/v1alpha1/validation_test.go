package v1alpha1_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	mtuv1alpha1 "github.com/mtu-operator/mtu-operator/api/v1alpha1"
	"github.com/mtu-operator/mtu-operator/internal/mtu"
	"github.com/mtu-operator/mtu-operator/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	os.Exit(testenv.Main(m, testenv.Options{}, func(e *testenv.Env) func() { env = e; return nil }))
}

// policy builds a NetworkMTUPolicy as a user would write it, from the YAML of its spec.
func policy(t *testing.T, name, specYAML string) *unstructured.Unstructured {
	t.Helper()
	var spec map[string]any
	if err := yaml.Unmarshal([]byte(specYAML), &spec); err != nil {
		t.Fatalf("bad test YAML: %v", err)
	}
	u := &unstructured.Unstructured{Object: map[string]any{"spec": spec}}
	u.SetAPIVersion(mtuv1alpha1.GroupVersion.String())
	u.SetKind("NetworkMTUPolicy")
	u.SetName(name)
	return u
}

func create(t *testing.T, u *unstructured.Unstructured) error {
	t.Helper()
	err := env.Client.Create(context.Background(), u)
	if err == nil {
		t.Cleanup(func() { _ = env.Client.Delete(context.Background(), u) })
	}
	return err
}

func TestPolicyAdmission(t *testing.T) {
	tests := []struct {
		name string
		spec string
		// wantErr is a part of the API server's message; empty means the policy is admitted.
		wantErr string
	}{
		// Admitted.
		{"jumbo VXLAN", "{underlay: {mtu: 9000}, encapsulation: {type: VXLAN}}", ""},
		{"noEncap 1500", "{underlay: {mtu: 1500}, encapsulation: {type: None}}", ""},
		{"auto-detect Geneve", "{underlay: {source: AutoDetect}, encapsulation: {type: Geneve}}", ""},
		{"auto-detect with a pattern", "{underlay: {source: AutoDetect, interfacePattern: '^bond[0-9]+$'}, encapsulation: {type: VXLAN}}", ""},
		{"dry run", "{underlay: {mtu: 9000}, encapsulation: {type: VXLAN}, mode: DryRun}", ""},
		{"dual-stack VXLAN at the floor: 1350 − 70 = 1280", "{underlay: {mtu: 1350}, encapsulation: {type: VXLAN}, ipFamilies: [IPv4, IPv6]}", ""},
		{"IPv4 VXLAN at the floor: 626 − 50 = 576", "{underlay: {mtu: 626}, encapsulation: {type: VXLAN}, ipFamilies: [IPv4]}", ""},
		{"Antrea Geneve with IPsec", "{underlay: {mtu: 1500}, encapsulation: {type: Geneve, encryption: IPsec}, cni: {provider: Antrea}}", ""},
		{"Calico IPIP", "{underlay: {mtu: 1500}, encapsulation: {type: IPIP}, cni: {provider: Calico}}", ""},
		{"flannel WireGuard, IPv6", "{underlay: {mtu: 1500}, encapsulation: {type: WireGuard}, ipFamilies: [IPv6], cni: {provider: Flannel}}", ""},
		{"enforce the underlay", "{underlay: {mtu: 9000, management: Enforce}, encapsulation: {type: VXLAN}}", ""},
		{"evict with a limit", "{underlay: {mtu: 9000}, encapsulation: {type: None}, stalePods: {action: Evict, maxConcurrentEvictions: 3}}", ""},
		{"maxUnavailable as a number", "{underlay: {mtu: 9000}, encapsulation: {type: VXLAN}, rollout: {maxUnavailable: 2}}", ""},
		{"maxUnavailable as 100%", "{underlay: {mtu: 9000}, encapsulation: {type: VXLAN}, rollout: {maxUnavailable: '100%'}}", ""},
		{"node selector", "{underlay: {mtu: 9000}, encapsulation: {type: VXLAN}, nodeSelector: {matchLabels: {pool: jumbo}}}", ""},
		{"node selector with a prefixed key and expressions", "{underlay: {mtu: 9000}, encapsulation: {type: VXLAN}, nodeSelector: {matchLabels: {'node.kubernetes.io/pool': jumbo-1}, matchExpressions: [{key: zone, operator: In, values: [a, b]}, {key: gpu, operator: DoesNotExist}]}}", ""},
		{"largest MTU", "{underlay: {mtu: 65535}, encapsulation: {type: Geneve}}", ""},

		// Rejected, each with the message a user reads.
		{"node selector: unknown operator", "{underlay: {mtu: 9000}, encapsulation: {type: VXLAN}, nodeSelector: {matchExpressions: [{key: zone, operator: Equals, values: [a]}]}}", `Unsupported value: "Equals": supported values: "In", "NotIn", "Exists", "DoesNotExist"`},
		{"node selector: Exists with values", "{underlay: {mtu: 9000}, encapsulation: {type: VXLAN}, nodeSelector: {matchExpressions: [{key: zone, operator: Exists, values: [a]}]}}", "In and NotIn need values; Exists and DoesNotExist take none"},
		{"node selector: In without values", "{underlay: {mtu: 9000}, encapsulation: {type: VXLAN}, nodeSelector: {matchExpressions: [{key: zone, operator: In}]}}", "In and NotIn need values"},
		{"node selector: a key with a space", "{underlay: {mtu: 9000}, encapsulation: {type: VXLAN}, nodeSelector: {matchLabels: {'node pool': jumbo}}}", "each key must be a label key"},
		{"node selector: an expression key with a space", "{underlay: {mtu: 9000}, encapsulation: {type: VXLAN}, nodeSelector: {matchExpressions: [{key: 'my zone', operator: Exists}]}}", `matchExpressions[0].key: Invalid value: "my zone"`},
		{"node selector: a value too long", "{underlay: {mtu: 9000}, encapsulation: {type: VXLAN}, nodeSelector: {matchLabels: {pool: 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'}}}", "matchLabels.pool: Too long: may not be more than 63 bytes"},
		{"node selector: a value that is not a label value", "{underlay: {mtu: 9000}, encapsulation: {type: VXLAN}, nodeSelector: {matchLabels: {pool: '-jumbo'}}}", "matchLabels.pool in body should match"},
		{"no underlay", "{encapsulation: {type: VXLAN}}", "spec.underlay: Required value"},
		{"no encapsulation", "{underlay: {mtu: 9000}}", "spec.encapsulation: Required value"},
		{"MTU below 576", "{underlay: {mtu: 575}, encapsulation: {type: None}}", "should be greater than or equal to 576"},
		{"MTU above 65535", "{underlay: {mtu: 65536}, encapsulation: {type: None}}", "should be less than or equal to 65535"},
		{"declared without an MTU", "{underlay: {source: Declared}, encapsulation: {type: VXLAN}}", "underlay.mtu is required when underlay.source is Declared"},
		{"MTU paired with auto-detection", "{underlay: {source: AutoDetect, mtu: 9000}, encapsulation: {type: VXLAN}}", "underlay.mtu cannot be set when underlay.source is AutoDetect"},
		{"enforce a detected MTU", "{underlay: {source: AutoDetect, management: Enforce}, encapsulation: {type: VXLAN}}", "underlay.management Enforce needs underlay.source Declared"},
		{"unknown encapsulation", "{underlay: {mtu: 9000}, encapsulation: {type: STT}}", `Unsupported value: "STT"`},
		{"IPv6 underlay below 1280", "{underlay: {mtu: 1200}, encapsulation: {type: None}, ipFamilies: [IPv6]}", "underlay.mtu must be at least 1280 when ipFamilies includes IPv6"},
		{"dual-stack pod MTU below 1280: 1349 − 70", "{underlay: {mtu: 1349}, encapsulation: {type: VXLAN}, ipFamilies: [IPv4, IPv6]}", "the pod MTU would fall below the IPv6 minimum of 1280 (the pod MTU is underlay.mtu minus the tunnel overhead"},
		{"IPv4 pod MTU below 576: 600 − 50", "{underlay: {mtu: 600}, encapsulation: {type: Geneve}}", "the pod MTU would fall below the IPv4 floor of 576"},
		{"IPsec pushes the pod below 1280: 1380 − 108 = 1272", "{underlay: {mtu: 1380}, encapsulation: {type: Geneve, encryption: IPsec}, ipFamilies: [IPv6]}", "the pod MTU would fall below the IPv6 minimum of 1280"},
		{"IPIP with IPv6", "{underlay: {mtu: 9000}, encapsulation: {type: IPIP}, ipFamilies: [IPv4, IPv6]}", "IPIP carries only IPv4"},
		{"GRE with IPv6", "{underlay: {mtu: 9000}, encapsulation: {type: GRE}, ipFamilies: [IPv6]}", "GRE tunnels (Antrea) do not support IPv6"},
		{"IPsec without a tunnel", "{underlay: {mtu: 9000}, encapsulation: {type: None, encryption: IPsec}}", "encapsulation.encryption IPsec applies only to VXLAN, Geneve and GRE tunnels"},
		{"IPsec on WireGuard", "{underlay: {mtu: 9000}, encapsulation: {type: WireGuard, encryption: IPsec}}", "encapsulation.encryption IPsec applies only to VXLAN, Geneve and GRE tunnels"},
		{"Geneve on flannel", "{underlay: {mtu: 9000}, encapsulation: {type: Geneve}, cni: {provider: Flannel}}", "Geneve and GRE tunnels need Antrea"},
		{"GRE on Calico", "{underlay: {mtu: 9000}, encapsulation: {type: GRE}, cni: {provider: Calico}}", "Geneve and GRE tunnels need Antrea"},
		{"IPIP on Antrea", "{underlay: {mtu: 9000}, encapsulation: {type: IPIP}, cni: {provider: Antrea}}", "Antrea has no IPIP tunnel"},
		{"IPsec on flannel", "{underlay: {mtu: 9000}, encapsulation: {type: VXLAN, encryption: IPsec}, cni: {provider: Flannel}}", "IPsec encryption of the tunnel needs Antrea"},
		{"unknown CNI", "{underlay: {mtu: 9000}, encapsulation: {type: VXLAN}, cni: {provider: Cilium}}", `Unsupported value: "Cilium"`},
		{"eviction limit without Evict", "{underlay: {mtu: 9000}, encapsulation: {type: VXLAN}, stalePods: {action: Report, maxConcurrentEvictions: 3}}", "stalePods.maxConcurrentEvictions applies only when stalePods.action is Evict"},
		{"maxUnavailable zero", "{underlay: {mtu: 9000}, encapsulation: {type: VXLAN}, rollout: {maxUnavailable: 0}}", "rollout.maxUnavailable must be a number of nodes (at least 1) or a percentage from 1% to 100%"},
		{"maxUnavailable 0%", "{underlay: {mtu: 9000}, encapsulation: {type: VXLAN}, rollout: {maxUnavailable: '0%'}}", "rollout.maxUnavailable must be a number of nodes"},
		{"maxUnavailable 150%", "{underlay: {mtu: 9000}, encapsulation: {type: VXLAN}, rollout: {maxUnavailable: '150%'}}", "rollout.maxUnavailable must be a number of nodes"},
		{"invalid interface pattern", "{underlay: {source: AutoDetect, interfacePattern: '^(eth'}, encapsulation: {type: VXLAN}}", "underlay.interfacePattern must be a valid regular expression"},
		{"three IP families", "{underlay: {mtu: 9000}, encapsulation: {type: VXLAN}, ipFamilies: [IPv4, IPv6, IPv4]}", "spec.ipFamilies"},
		{"unknown mode", "{underlay: {mtu: 9000}, encapsulation: {type: VXLAN}, mode: Yolo}", `Unsupported value: "Yolo"`},
		{"unknown pod action", "{underlay: {mtu: 9000}, encapsulation: {type: VXLAN}, stalePods: {action: Restart}}", `Unsupported value: "Restart"`},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := create(t, policy(t, fmt.Sprintf("admission-%d", i), tc.spec))
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("valid policy rejected: %v", err)
			case tc.wantErr != "" && err == nil:
				t.Fatalf("invalid policy admitted; want an error containing %q", tc.wantErr)
			case tc.wantErr != "" && !apierrors.IsInvalid(err):
				t.Fatalf("error %v is not a validation error", err)
			case tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr):
				t.Fatalf("error %q\ndoes not say %q", err, tc.wantErr)
			}
		})
	}
}

// TestPolicyDefaults: a minimal policy reads back with every default a user relies on.
func TestPolicyDefaults(t *testing.T) {
	p := &mtuv1alpha1.NetworkMTUPolicy{}
	p.Name = "defaults"
	p.Spec.Underlay.MTU = new(int32(9000))
	p.Spec.Encapsulation.Type = mtuv1alpha1.EncapsulationVXLAN
	ctx := context.Background()
	if err := env.Client.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(ctx, p) })

	got := &mtuv1alpha1.NetworkMTUPolicy{}
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(p), got); err != nil {
		t.Fatal(err)
	}
	s := got.Spec
	checks := map[string][2]string{
		"underlay.source":           {string(s.Underlay.Source), "Declared"},
		"underlay.interfacePattern": {s.Underlay.InterfacePattern, mtuv1alpha1.DefaultInterfacePattern},
		"underlay.management":       {string(s.Underlay.Management), "Observe"},
		"encapsulation.encryption":  {string(s.Encapsulation.Encryption), "None"},
		"cni.provider":              {string(s.CNI.Provider), "Auto"},
		"cni.agentRestart":          {string(s.CNI.AgentRestart), "OnConfigChange"},
		"stalePods.action":          {string(s.StalePods.Action), "Report"},
		"mode":                      {string(s.Mode), "Apply"},
	}
	if s.Rollout.MaxUnavailable == nil {
		t.Errorf("rollout.maxUnavailable not defaulted")
	} else {
		checks["rollout.maxUnavailable"] = [2]string{s.Rollout.MaxUnavailable.String(), "25%"}
	}
	for field, c := range checks {
		if c[0] != c[1] {
			t.Errorf("%s = %q; want default %q", field, c[0], c[1])
		}
	}
}

// TestProviderImmutable: Auto may be pinned to the detected CNI, but a specific CNI never
// changes to another.
func TestProviderImmutable(t *testing.T) {
	ctx := context.Background()
	u := policy(t, "immutable-provider", "{underlay: {mtu: 9000}, encapsulation: {type: VXLAN}}")
	if err := create(t, u); err != nil {
		t.Fatal(err)
	}
	setProvider := func(provider string) error {
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(u), u); err != nil {
			t.Fatal(err)
		}
		if err := unstructured.SetNestedField(u.Object, provider, "spec", "cni", "provider"); err != nil {
			t.Fatal(err)
		}
		return env.Client.Update(ctx, u)
	}
	if err := setProvider("Flannel"); err != nil {
		t.Fatalf("Auto → Flannel rejected: %v", err)
	}
	err := setProvider("Calico")
	if err == nil || !strings.Contains(err.Error(), "cni.provider cannot change once set to a specific CNI") {
		t.Fatalf("Flannel → Calico: error %v; want the immutability message", err)
	}
}

// TestAdmissionAgreesWithCalculator: the CRD's CEL arithmetic and the calculator are two
// copies of one rule. For every encapsulation, encryption and family set, the API server
// admits an underlay exactly at the pod floor plus overhead and rejects one byte less, and
// rejects the combinations the calculator does not support.
func TestAdmissionAgreesWithCalculator(t *testing.T) {
	familySets := map[string][]mtu.Family{"IPv4": {mtu.IPv4}, "IPv6": {mtu.IPv6}, "dual": {mtu.IPv4, mtu.IPv6}}
	n := 0
	for _, encap := range []mtu.Encapsulation{mtu.VXLAN, mtu.Geneve, mtu.IPIP, mtu.GRE, mtu.WireGuard, mtu.None} {
		for _, encryption := range []mtu.Encryption{mtu.NoEncryption, mtu.IPsec} {
			for setName, families := range familySets {
				familyYAML := strings.Trim(strings.ReplaceAll(fmt.Sprint(families), " ", ", "), "[]")
				t.Run(fmt.Sprintf("%s/%s/%s", encap, encryption, setName), func(t *testing.T) {
					floor := mtu.Floor(families)
					var overhead int
					var unsupported error
					for _, f := range families {
						o, err := mtu.Overhead(encap, encryption, f)
						if err != nil {
							unsupported = err
						}
						overhead = max(overhead, o)
					}
					// Antrea's GRE is IPv4 only; the CRD rejects it like an unsupported combination.
					if encap == mtu.GRE && setName != "IPv4" {
						unsupported = mtu.ErrUnsupported
					}
					at := max(floor, mtu.MinIPv4MTU) + overhead
					for _, tc := range []struct {
						underlay int
						admit    bool
					}{{at, unsupported == nil}, {at - 1, false}} {
						if tc.underlay < mtu.MinIPv4MTU || tc.underlay > mtu.MaxMTU {
							continue
						}
						_, calcErr := mtu.Compute(mtu.Input{UnderlayMTU: tc.underlay, Encapsulation: encap, Encryption: encryption, Families: families})
						if (calcErr == nil) != tc.admit && unsupported == nil {
							t.Fatalf("calculator disagrees with the test at %d: %v", tc.underlay, calcErr)
						}
						n++
						spec := fmt.Sprintf("{underlay: {mtu: %d}, encapsulation: {type: %s, encryption: %s}, ipFamilies: [%s]}", tc.underlay, encap, encryption, familyYAML)
						err := create(t, policy(t, fmt.Sprintf("agree-%d", n), spec))
						if tc.admit && err != nil {
							t.Errorf("underlay %d: rejected, calculator admits it: %v", tc.underlay, err)
						}
						if !tc.admit && err == nil {
							t.Errorf("underlay %d: admitted, calculator rejects it", tc.underlay)
						}
					}
				})
			}
		}
	}
}

// TestSamplesAreAdmitted: every sample under config/samples applies cleanly.
func TestSamplesAreAdmitted(t *testing.T) {
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(root, "config", "samples", "*.yaml"))
	if err != nil || len(files) < 4 {
		t.Fatalf("samples: %v, %v; want at least 4", files, err)
	}
	for _, file := range files {
		if filepath.Base(file) == "kustomization.yaml" {
			continue
		}
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			u := &unstructured.Unstructured{}
			if err := yaml.Unmarshal(data, &u.Object); err != nil {
				t.Fatal(err)
			}
			if err := create(t, u); err != nil {
				t.Fatalf("sample rejected: %v", err)
			}
		})
	}
}
