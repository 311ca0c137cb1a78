package plan

import (
	"fmt"
	"strings"

	mtuv1alpha1 "github.com/mtu-operator/mtu-operator/api/v1alpha1"
)

// Where each CNI keeps its configuration.
const (
	FlannelNamespace       = "kube-flannel"
	FlannelLegacyNamespace = "kube-system"
	FlannelConfigMap       = "kube-flannel-cfg"
	FlannelConfigKey       = "net-conf.json"
	FlannelDaemonSet       = "kube-flannel-ds"

	CalicoInstallation       = "default"
	CalicoFelixConfiguration = "default"
	CalicoConfigNamespace    = "kube-system"
	CalicoConfigMap          = "calico-config"
	CalicoConfigKey          = "veth_mtu"
	CalicoNodeDaemonSet      = "calico-node"

	AntreaNamespace = "kube-system"
	AntreaConfigMap = "antrea-config"
	AntreaConfigKey = "antrea-agent.conf"
	AntreaDaemonSet = "antrea-agent"
)

// Seen is what the controller found of each CNI's configuration objects.
type Seen struct {
	// FlannelConfigMapNamespace is where kube-flannel-cfg was found; empty when absent.
	FlannelConfigMapNamespace string
	FlannelDaemonSet          bool
	// CalicoInstallation: operator.tigera.io Installation "default".
	CalicoInstallation bool
	// CalicoFelixConfiguration: crd.projectcalico.org FelixConfiguration "default".
	CalicoFelixConfiguration bool
	CalicoConfigMap          bool
	CalicoIPPools            int
	AntreaConfigMap          bool
	AntreaDaemonSet          bool
}

// CalicoInstall says how Calico was installed.
type CalicoInstall string

// The Calico install kinds.
const (
	CalicoOperatorInstall CalicoInstall = "Operator"
	CalicoManifestInstall CalicoInstall = "Manifest"
)

// Detection is the CNI the policy configures.
type Detection struct {
	Provider mtuv1alpha1.CNIProvider
	// Calico says which Calico objects to edit, when Provider is Calico.
	Calico CalicoInstall
	// Evidence names what was found, for the CNIDetected condition.
	Evidence string
}

// DetectCNI decides which CNI a policy configures from what was seen. Auto needs exactly one
// CNI; an explicit provider must be present.
func DetectCNI(want mtuv1alpha1.CNIProvider, seen Seen) (Detection, *Problem) {
	var found []Detection
	if seen.FlannelConfigMapNamespace != "" {
		found = append(found, Detection{Provider: mtuv1alpha1.CNIFlannel, Evidence: fmt.Sprintf("ConfigMap %s/%s", seen.FlannelConfigMapNamespace, FlannelConfigMap)})
	}
	switch {
	case seen.CalicoInstallation:
		found = append(found, Detection{Provider: mtuv1alpha1.CNICalico, Calico: CalicoOperatorInstall, Evidence: "Installation default (operator.tigera.io)"})
	case seen.CalicoFelixConfiguration || seen.CalicoConfigMap:
		var evidence []string
		if seen.CalicoFelixConfiguration {
			evidence = append(evidence, "FelixConfiguration default")
		}
		if seen.CalicoConfigMap {
			evidence = append(evidence, "ConfigMap kube-system/calico-config")
		}
		if seen.CalicoIPPools > 0 {
			evidence = append(evidence, fmt.Sprintf("%d IPPool(s)", seen.CalicoIPPools))
		}
		found = append(found, Detection{Provider: mtuv1alpha1.CNICalico, Calico: CalicoManifestInstall, Evidence: strings.Join(evidence, ", ")})
	}
	if seen.AntreaConfigMap {
		found = append(found, Detection{Provider: mtuv1alpha1.CNIAntrea, Evidence: "ConfigMap kube-system/antrea-config"})
	}

	if want != mtuv1alpha1.CNIAuto && want != "" {
		for _, d := range found {
			if d.Provider == want {
				return d, nil
			}
		}
		return Detection{}, &Problem{mtuv1alpha1.ReasonCNINotFound, fmt.Sprintf("cni.provider is %s but its configuration was not found (looked for %s)%s", want, lookedFor(want), alsoSeen(found))}
	}
	switch len(found) {
	case 0:
		return Detection{}, &Problem{mtuv1alpha1.ReasonCNINotFound, "no supported CNI found: looked for " + lookedFor(mtuv1alpha1.CNIAuto)}
	case 1:
		return found[0], nil
	default:
		var names []string
		for _, d := range found {
			names = append(names, fmt.Sprintf("%s (%s)", d.Provider, d.Evidence))
		}
		return Detection{}, &Problem{mtuv1alpha1.ReasonMultipleCNIs, "several CNIs found: " + strings.Join(names, "; ") + "; set cni.provider to the one in use"}
	}
}

func lookedFor(p mtuv1alpha1.CNIProvider) string {
	flannel := "ConfigMap kube-flannel-cfg in kube-flannel or kube-system"
	calico := "Installation default, FelixConfiguration default or ConfigMap kube-system/calico-config"
	antrea := "ConfigMap kube-system/antrea-config"
	switch p {
	case mtuv1alpha1.CNIFlannel:
		return flannel
	case mtuv1alpha1.CNICalico:
		return calico
	case mtuv1alpha1.CNIAntrea:
		return antrea
	default:
		return flannel + "; " + calico + "; " + antrea
	}
}

func alsoSeen(found []Detection) string {
	if len(found) == 0 {
		return ""
	}
	var names []string
	for _, d := range found {
		names = append(names, string(d.Provider))
	}
	return "; found instead: " + strings.Join(names, ", ")
}
