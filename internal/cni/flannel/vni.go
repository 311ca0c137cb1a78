package flannel

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/mtu-operator/mtu-operator/internal/cni"
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

// Backend returns the backend type a net-conf.json configures, lower-cased as flannel looks it
// up ("vxlan" when the document does not say), and Backend.MTU (0 when not set: flannel then
// takes the external interface's MTU).
func Backend(doc []byte) (backendType string, backendMTU int, err error) {
	var conf map[string]json.RawMessage
	if err := json.Unmarshal(doc, &conf); err != nil {
		return "", 0, fmt.Errorf("%w: flannel net-conf.json: %w", cni.ErrUnparseable, err)
	}
	backendType = "vxlan"
	raw := lookupFold(conf, "Backend")
	if raw == nil {
		return backendType, 0, nil
	}
	var backend map[string]json.RawMessage
	if err := json.Unmarshal(raw, &backend); err != nil {
		return "", 0, fmt.Errorf("%w: flannel net-conf.json: Backend is not an object", cni.ErrUnexpectedShape)
	}
	if t := lookupFold(backend, typeKey); t != nil {
		if err := json.Unmarshal(t, &backendType); err != nil {
			return "", 0, fmt.Errorf("%w: flannel net-conf.json: Backend.Type is not a string", cni.ErrUnexpectedShape)
		}
	}
	if m := lookupFold(backend, mtuKey); m != nil {
		if err := json.Unmarshal(m, &backendMTU); err != nil {
			return "", 0, fmt.Errorf("%w: flannel net-conf.json: Backend.MTU is not a whole number", cni.ErrUnexpectedShape)
		}
	}
	return backendName(backendType), backendMTU, nil
}
