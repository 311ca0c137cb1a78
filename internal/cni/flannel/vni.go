package flannel

import (
	"encoding/json"
	"strings"
)

// defaultVNI is flannel's VXLAN network identifier when Backend.VNI is not set.
const defaultVNI = 1

// VNI returns the VXLAN network identifier a net-conf.json configures (flannel names its
// devices flannel.<VNI> and flannel-v6.<VNI>); 1, flannel's default, when the document does
// not say or cannot be read.
func VNI(doc []byte) int {
	var conf map[string]json.RawMessage
	if json.Unmarshal(doc, &conf) != nil {
		return defaultVNI
	}
	var backend map[string]json.RawMessage
	if json.Unmarshal(lookupFold(conf, "Backend"), &backend) != nil {
		return defaultVNI
	}
	var vni int
	if json.Unmarshal(lookupFold(backend, "VNI"), &vni) != nil || vni <= 0 {
		return defaultVNI
	}
	return vni
}

// lookupFold finds a key ignoring case, as flannel's decoding does.
func lookupFold(m map[string]json.RawMessage, key string) json.RawMessage {
	for k, v := range m {
		if strings.EqualFold(k, key) {
			return v
		}
	}
	return nil
}
