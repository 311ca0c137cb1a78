package antrea

import (
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// Settings are what antrea-agent.conf says about encapsulation and MTU, with Antrea's defaults
// for absent keys.
type Settings struct {
	TrafficEncapMode, TunnelType, TrafficEncryptionMode string
	// DefaultMTU is 0 when Antrea takes the MTU from the node's interface.
	DefaultMTU int
}

// Read returns the settings of a document, as Antrea reads them.
func Read(doc []byte) (Settings, error) {
	_, body := splitBOM(doc)
	root, err := parse(body)
	if err != nil {
		return Settings{}, err
	}
	s := Settings{TrafficEncapMode: defaults[keyTrafficEncapMode], TunnelType: defaults[keyTunnelType], TrafficEncryptionMode: defaults[keyTrafficEncryptionMode]}
	for key, e := range topLevel(root) {
		if isNull(e.value) {
			continue
		}
		switch key {
		case keyTrafficEncapMode:
			s.TrafficEncapMode = e.value.Value
		case keyTunnelType:
			s.TunnelType = e.value.Value
		case keyTrafficEncryptionMode:
			s.TrafficEncryptionMode = strings.ToLower(e.value.Value)
		case keyDefaultMTU:
			if e.value.Kind != yaml.ScalarNode || e.value.Decode(&s.DefaultMTU) != nil {
				return Settings{}, unexpectedShape("defaultMTU %q is not a whole number", e.value.Value)
			}
		}
	}
	return s, nil
}
