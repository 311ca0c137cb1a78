package lab

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/mtu-operator/mtu-operator/internal/plan"
)

// CNI is the CNI the lab installs: its objects in the API, its devices on the nodes, and how
// its plugin sizes a new pod's interface.
type CNI string

// The CNIs the lab can install.
const (
	Flannel CNI = "flannel"
	Calico  CNI = "calico"
	Antrea  CNI = "antrea"
)

// CNIs lists them, for flags and table tests.
var CNIs = []CNI{Flannel, Calico, Antrea}

// ParseCNI reads a CNI name.
func ParseCNI(s string) (CNI, error) {
	for _, c := range CNIs {
		if strings.EqualFold(s, string(c)) {
			return c, nil
		}
	}
	return "", fmt.Errorf("unknown CNI %q: choose one of %v", s, CNIs)
}

//go:embed manifests/*.yaml
var manifests embed.FS

// install creates the CNI's objects as its upstream manifest would.
func (c CNI) install(ctx context.Context, cl client.Client) error {
	doc, err := manifests.ReadFile("manifests/" + string(c) + ".yaml")
	if err != nil {
		return err
	}
	return applyAll(ctx, cl, doc)
}

// applyAll creates every object of a multi-document YAML file.
func applyAll(ctx context.Context, cl client.Client, doc []byte) error {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(doc)))
	for {
		raw, err := r.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(raw, &u.Object); err != nil {
			return err
		}
		if len(u.Object) == 0 {
			continue
		}
		if err := cl.Create(ctx, u); err != nil {
			return fmt.Errorf("creating %s %s: %w", u.GetKind(), u.GetName(), err)
		}
	}
}

// Devices are the CNI's host devices on a node, at the MTU its agent gives them on a node
// whose underlay is underlayMTU (VXLAN everywhere in the lab).
func (c CNI) devices(n *Node) []netlink.Link {
	tunnelMTU := n.UnderlayMTU - vxlanOverhead
	vxlan := func(name string, vni, port int) *netlink.Vxlan {
		return &netlink.Vxlan{LinkAttrs: netlink.LinkAttrs{Name: name, MTU: tunnelMTU, HardwareAddr: n.tunnelMAC()}, VxlanId: vni, Port: port, VtepDevIndex: n.underlayIndex}
	}
	bridge := func(name string) netlink.Link {
		return &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name, MTU: tunnelMTU, HardwareAddr: n.gatewayMAC()}}
	}
	switch c {
	case Calico:
		return []netlink.Link{vxlan(c.TunnelDevice(), 4096, 4789)}
	case Antrea:
		// antrea-gw0 is an OVS internal port in a real node; a bridge stands in for it (pods
		// hang off it as they hang off br-int). The tunnel is the kernel device OVS makes for
		// its VXLAN port, bound to no underlay device.
		tunnel := vxlan(antreaTunnel, 1, 4789)
		tunnel.MTU, tunnel.VtepDevIndex = antreaTunnelMTU, 0
		return []netlink.Link{bridge(c.Gateway()), tunnel}
	default:
		return []netlink.Link{vxlan(c.TunnelDevice(), 1, 8472), bridge(c.Gateway())}
	}
}

// AgentDaemonSet is the CNI's agent DaemonSet, which the operator restarts after an edit.
func (c CNI) AgentDaemonSet() types.NamespacedName {
	switch c {
	case Calico:
		return types.NamespacedName{Namespace: plan.CalicoConfigNamespace, Name: plan.CalicoNodeDaemonSet}
	case Antrea:
		return types.NamespacedName{Namespace: plan.AntreaNamespace, Name: plan.AntreaDaemonSet}
	default:
		return types.NamespacedName{Namespace: plan.FlannelNamespace, Name: plan.FlannelDaemonSet}
	}
}

// tunnel is the VXLAN device the CNI's agent keeps on a node, and whether its configuration
// wants one, as the agent decides when it starts.
func (c CNI) tunnel(ctx context.Context, cl client.Client) (name string, wanted bool, err error) {
	switch c {
	case Calico:
		vxlan, err := calicoVXLAN(ctx, cl)
		return c.TunnelDevice(), vxlan, err
	case Antrea:
		encap, err := antreaEncap(ctx, cl)
		return c.standInTunnel(), encap, err
	default:
		backendType, _, err := flannelBackend(ctx, cl)
		return c.TunnelDevice(), strings.EqualFold(backendType, "vxlan"), err
	}
}

// TunnelDevice is the VXLAN device of the CNI's agent on a node; empty for Antrea, whose
// tunnel lives in OVS, out of the lab.
func (c CNI) TunnelDevice() string {
	switch c {
	case Calico:
		return "vxlan.calico"
	case Antrea:
		return ""
	default:
		return "flannel.1"
	}
}

// Gateway is the device pods attach to and whose address is their gateway; empty for Calico,
// which routes each pod's veth instead.
func (c CNI) Gateway() string {
	switch c {
	case Calico:
		return ""
	case Antrea:
		return "antrea-gw0"
	default:
		return "cni0"
	}
}

// agentSizedDevice is the device a stand-in CNI's agent sets its computed MTU on when it
// starts; flannel's real flanneld never changes a device's MTU.
func (c CNI) agentSizedDevice() string {
	switch c {
	case Calico:
		return c.TunnelDevice()
	case Antrea:
		return c.Gateway()
	default:
		return ""
	}
}

// IsPodVeth says whether a link on a node is the host end of a pod's veth.
func (c CNI) IsPodVeth(name string) bool {
	return strings.HasPrefix(name, c.hostVethPrefix()) && name != c.Gateway()
}

// hostVethPrefix is how the CNI names the node's end of a pod's veth.
func (c CNI) hostVethPrefix() string {
	switch c {
	case Calico:
		return "cali"
	case Antrea:
		return "antrea-"
	default:
		return "veth"
	}
}

// flannelBackend reads the backend type and MTU option from flannel's net-conf.json.
func flannelBackend(ctx context.Context, cl client.Client) (backendType string, mtu int, err error) {
	cm := &corev1.ConfigMap{}
	if err := cl.Get(ctx, types.NamespacedName{Namespace: plan.FlannelNamespace, Name: plan.FlannelConfigMap}, cm); err != nil {
		return "", 0, err
	}
	var conf struct {
		Backend struct {
			Type string
			MTU  int
		}
	}
	if err := json.Unmarshal([]byte(cm.Data[plan.FlannelConfigKey]), &conf); err != nil {
		return "", 0, fmt.Errorf("net-conf.json: %w", err)
	}
	return conf.Backend.Type, conf.Backend.MTU, nil
}

// calicoVXLAN reads whether Calico's default pool encapsulates with VXLAN.
func calicoVXLAN(ctx context.Context, cl client.Client) (bool, error) {
	pool := &unstructured.Unstructured{}
	pool.SetGroupVersionKind(schema.GroupVersionKind{Group: "crd.projectcalico.org", Version: "v1", Kind: "IPPool"})
	if err := cl.Get(ctx, types.NamespacedName{Name: "default-ipv4-ippool"}, pool); err != nil {
		return false, err
	}
	mode, _, _ := unstructured.NestedString(pool.Object, "spec", "vxlanMode")
	return mode != "Never", nil
}

// podMTU is the MTU the CNI's plugin gives a new pod on n, read from the CNI's configuration
// in the API as its agent would after a restart: the operator's edits decide it.
func (c CNI) podMTU(ctx context.Context, cl client.Client, n *Node) (int, error) {
	underlay, err := n.ns.link("eth0")
	if err != nil {
		return 0, err
	}
	nic := underlay.Attrs().MTU
	cm := &corev1.ConfigMap{}
	switch c {
	case Calico:
		if err := cl.Get(ctx, types.NamespacedName{Namespace: plan.CalicoConfigNamespace, Name: plan.CalicoConfigMap}, cm); err != nil {
			return 0, err
		}
		if m, err := strconv.Atoi(cm.Data[plan.CalicoConfigKey]); err == nil && m > 0 {
			return m, nil
		}
		vxlan, err := calicoVXLAN(ctx, cl)
		if err != nil {
			return 0, err
		}
		if !vxlan {
			return nic, nil
		}
		return nic - vxlanOverhead, nil
	case Antrea:
		if err := cl.Get(ctx, types.NamespacedName{Namespace: plan.AntreaNamespace, Name: plan.AntreaConfigMap}, cm); err != nil {
			return 0, err
		}
		var conf struct {
			TrafficEncapMode string `json:"trafficEncapMode"`
			DefaultMTU       int    `json:"defaultMTU"`
		}
		if err := yaml.Unmarshal([]byte(cm.Data[plan.AntreaConfigKey]), &conf); err != nil {
			return 0, fmt.Errorf("antrea-agent.conf: %w", err)
		}
		if conf.DefaultMTU > 0 {
			return conf.DefaultMTU, nil
		}
		if conf.TrafficEncapMode == "noEncap" {
			return nic, nil
		}
		return nic - vxlanOverhead, nil
	default:
		// flanneld: vxlan pods get Backend.MTU (default: the NIC's) less 50; host-gw the NIC's.
		backendType, mtu, err := flannelBackend(ctx, cl)
		if err != nil {
			return 0, err
		}
		if !strings.EqualFold(backendType, "vxlan") {
			return nic, nil
		}
		return cmp.Or(mtu, nic) - vxlanOverhead, nil
	}
}
