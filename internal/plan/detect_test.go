package plan

import (
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/labels"

	mtuv1alpha1 "github.com/mtu-operator/mtu-operator/api/v1alpha1"
)

func TestDetectCNI(t *testing.T) {
	flannel := Seen{FlannelConfigMapNamespace: "kube-flannel", FlannelDaemonSet: true}
	tests := []struct {
		name         string
		want         mtuv1alpha1.CNIProvider
		seen         Seen
		wantProvider mtuv1alpha1.CNIProvider
		wantCalico   CalicoInstall
		wantReason   string
		wantMessage  string
	}{
		{"flannel", "Auto", flannel, "Flannel", "", "", ""},
		{"flannel in kube-system", "Auto", Seen{FlannelConfigMapNamespace: "kube-system"}, "Flannel", "", "", ""},
		{"calico operator", "Auto", Seen{CalicoInstallation: true, CalicoFelixConfiguration: true, CalicoIPPools: 2}, "Calico", CalicoOperatorInstall, "", ""},
		{"calico manifest", "Auto", Seen{CalicoFelixConfiguration: true, CalicoConfigMap: true, CalicoIPPools: 1}, "Calico", CalicoManifestInstall, "", ""},
		{"antrea", "Auto", Seen{AntreaConfigMap: true, AntreaDaemonSet: true}, "Antrea", "", "", ""},
		{"nothing", "Auto", Seen{}, "", "", mtuv1alpha1.ReasonCNINotFound, "no supported CNI found"},
		{"two", "Auto", Seen{FlannelConfigMapNamespace: "kube-flannel", AntreaConfigMap: true}, "", "", mtuv1alpha1.ReasonMultipleCNIs, "Flannel (ConfigMap kube-flannel/kube-flannel-cfg); Antrea (ConfigMap kube-system/antrea-config)"},
		{"explicit picks among several", "Antrea", Seen{FlannelConfigMapNamespace: "kube-flannel", AntreaConfigMap: true}, "Antrea", "", "", ""},
		{"explicit but absent", "Calico", flannel, "", "", mtuv1alpha1.ReasonCNINotFound, "cni.provider is Calico but its configuration was not found"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, problem := DetectCNI(tc.want, tc.seen)
			if tc.wantReason != "" {
				if problem == nil || problem.Reason != tc.wantReason || !strings.Contains(problem.Message, tc.wantMessage) {
					t.Fatalf("problem %v; want %s containing %q", problem, tc.wantReason, tc.wantMessage)
				}
				return
			}
			if problem != nil || got.Provider != tc.wantProvider || got.Calico != tc.wantCalico {
				t.Fatalf("got %+v, %v; want %s %s", got, problem, tc.wantProvider, tc.wantCalico)
			}
		})
	}
}

func TestEarlierOverlap(t *testing.T) {
	t0 := time.Unix(1000, 0)
	sel := func(s string) labels.Selector { l, _ := labels.Parse(s); return l }
	all := func(name string, at time.Time) PolicySelection { return PolicySelection{Name: name, Created: at} }
	nodes := []labels.Set{{"pool": "jumbo"}, {"pool": "edge"}}
	tests := []struct {
		name   string
		me     PolicySelection
		others []PolicySelection
		nodes  []labels.Set
		want   string
	}{
		{"alone", all("a", t0), nil, nodes, ""},
		{"both select everything, even with no nodes", all("b", t0.Add(time.Second)), []PolicySelection{all("a", t0)}, nil, "a"},
		{"the older keeps working", all("a", t0), []PolicySelection{all("b", t0.Add(time.Second))}, nodes, ""},
		{"disjoint selectors", PolicySelection{Name: "b", Created: t0.Add(time.Second), Selector: sel("pool=edge")}, []PolicySelection{{Name: "a", Created: t0, Selector: sel("pool=jumbo")}}, nodes, ""},
		{"a shared node", PolicySelection{Name: "b", Created: t0.Add(time.Second), Selector: sel("pool in (edge,jumbo)")}, []PolicySelection{{Name: "a", Created: t0, Selector: sel("pool=jumbo")}}, nodes, "a"},
		{"same time: name decides", all("b", t0), []PolicySelection{all("a", t0)}, nodes, "a"},
		{"names the oldest", all("c", t0.Add(2*time.Second)), []PolicySelection{all("b", t0.Add(time.Second)), all("a", t0)}, nodes, "a"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := EarlierOverlap(tc.me, append(tc.others, tc.me), tc.nodes); got != tc.want {
				t.Fatalf("EarlierOverlap = %q; want %q", got, tc.want)
			}
		})
	}
}

func TestMergeReplacedKeepsTheOriginal(t *testing.T) {
	cm := "ConfigMap kube-flannel/kube-flannel-cfg"
	vni := "net-conf.json: Backend.VNI"
	mtuPath := "net-conf.json: Backend.MTU"
	// vxlan → host-gw removes VNI and MTU.
	known := MergeReplaced(nil, []mtuv1alpha1.ConfigChange{{Resource: cm, Path: vni, From: "4096"}, {Resource: cm, Path: mtuPath, From: "1500"}})
	if got := RememberedFor(known, cm, "net-conf.json: ")["Backend.VNI"]; got != "4096" {
		t.Fatalf("remembered VNI %q; want 4096", got)
	}
	// host-gw → vxlan restores VNI (entry forgotten: back to its original) and sets MTU 9000.
	known = MergeReplaced(known, []mtuv1alpha1.ConfigChange{{Resource: cm, Path: vni, To: "4096"}, {Resource: cm, Path: mtuPath, To: "9000"}})
	if len(known) != 1 || known[0].Path != mtuPath || known[0].From != "1500" || known[0].To != "9000" {
		t.Fatalf("replaced values %+v; want only MTU 1500 → 9000", known)
	}
}

func TestDriftDelay(t *testing.T) {
	now := time.Unix(10000, 0)
	at := func(ago time.Duration) *time.Time { t := now.Add(-ago); return &t }
	tests := []struct {
		corrections int32
		last        *time.Time
		want        time.Duration
	}{
		{0, nil, 0},
		{1, at(time.Second), 4 * time.Second}, // first delay 5s
		{2, at(time.Second), 9 * time.Second}, // 10s
		{4, at(0), 40 * time.Second},          // 5 · 2³
		{20, at(0), 10 * time.Minute},         // capped
		{20, at(2 * time.Hour), 0},            // forgotten after an hour
		{3, at(30 * time.Second), 0},          // 20s already passed
	}
	for _, tc := range tests {
		if got := DriftDelay(tc.corrections, tc.last, now); got != tc.want {
			t.Errorf("DriftDelay(%d, %v) = %s; want %s", tc.corrections, tc.last, got, tc.want)
		}
	}
}
