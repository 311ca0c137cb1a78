package flannel

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/mtu-operator/mtu-operator/internal/cni"
	"github.com/mtu-operator/mtu-operator/internal/mtu"
)

var (
	vxlan8950 = mtu.Flannel{BackendType: "vxlan", BackendMTU: 8950, PodMTU: 8900}
	vxlan1450 = mtu.Flannel{BackendType: "vxlan", BackendMTU: 1450, PodMTU: 1400}
	hostGW    = mtu.Flannel{BackendType: "host-gw", PodMTU: 9000}
	ipip      = mtu.Flannel{BackendType: "ipip", PodMTU: 8980}
	wireguard = mtu.Flannel{BackendType: "wireguard", BackendMTU: 8920, PodMTU: 8840}
)

// editTwice runs Edit and checks that editing its output again changes nothing.
func editTwice(t *testing.T, doc string, want mtu.Flannel, remembered cni.Remembered) (string, []cni.Change) {
	t.Helper()
	out, changes, err := Edit([]byte(doc), want, remembered)
	if err != nil {
		t.Fatalf("Edit: %v", err)
	}
	again, more, err := Edit(out, want, remembered)
	if err != nil || len(more) != 0 || !bytes.Equal(again, out) {
		t.Fatalf("Edit is not idempotent: second edit gave %v, %v and\n%s", more, err, again)
	}
	return string(out), changes
}

func TestEdit(t *testing.T) {
	tests := []struct {
		name       string
		doc        string
		want       mtu.Flannel
		remembered cni.Remembered
		out        string
		changes    []cni.Change
	}{
		{
			name: "upstream manifest gets an MTU",
			doc:  upstreamVXLAN,
			want: vxlan8950,
			out: `{
  "Network": "10.244.0.0/16",
  "EnableNFTables": false,
  "Backend": {
    "Type": "vxlan",
    "MTU": 8950
  }
}
`,
			changes: []cni.Change{{Path: "Backend.MTU", New: "8950"}},
		},
		{
			name:    "upstream manifest to host-gw changes only the type",
			doc:     upstreamVXLAN,
			want:    hostGW,
			out:     strings.Replace(upstreamVXLAN, `"vxlan"`, `"host-gw"`, 1),
			changes: []cni.Change{{Path: "Backend.Type", Old: `"vxlan"`, New: `"host-gw"`}},
		},
		{
			name: "vxlan options are removed for host-gw, unknown keys stay",
			doc:  dualStackTuned,
			want: hostGW,
			out: `{
    "EnableIPv4": true,
    "EnableIPv6": true,
    "Network": "10.42.0.0/16",
    "IPv6Network": "fd00:42::/56",
    "SubnetLen": 24,
    "IPv6SubnetLen": 64,
    "Backend": {
        "Type": "host-gw",
        "x-owner": "platform-team"
    },
    "x-managed-by": "helm"
}`,
			changes: []cni.Change{
				{Path: "Backend.Type", Old: `"vxlan"`, New: `"host-gw"`},
				{Path: "Backend.VNI", Old: "4096"},
				{Path: "Backend.Port", Old: "4789"},
				{Path: "Backend.GBP", Old: "true"},
				{Path: "Backend.MTU", Old: "9000"},
			},
		},
		{
			name: "vxlan to wireguard keeps MTU and sets it",
			doc:  dualStackTuned,
			want: wireguard,
			out: strings.Replace(dualStackTuned, `"Type": "vxlan",
        "VNI": 4096,
        "Port": 4789,
        "GBP": true,
        "MTU": 9000,`, `"Type": "wireguard",
        "MTU": 8920,`, 1),
			changes: []cni.Change{
				{Path: "Backend.Type", Old: `"vxlan"`, New: `"wireguard"`},
				{Path: "Backend.VNI", Old: "4096"},
				{Path: "Backend.Port", Old: "4789"},
				{Path: "Backend.GBP", Old: "true"},
				{Path: "Backend.MTU", Old: "9000", New: "8920"},
			},
		},
		{
			name:    "compact document stays on one line",
			doc:     compactOneLine,
			want:    vxlan8950,
			out:     `{"Network":"10.244.0.0/16","SubnetLen":24,"Backend":{"Type":"vxlan","VNI":1,"MTU":8950}}`,
			changes: []cni.Change{{Path: "Backend.MTU", Old: "1450", New: "8950"}},
		},
		{
			name: "compact vxlan to ipip restores DirectRouting",
			doc:  compactOneLine,
			want: ipip,
			remembered: cni.Remembered{
				"Backend.DirectRouting": "true",
				"Backend.VNI":           "4096",
			},
			out: `{"Network":"10.244.0.0/16","SubnetLen":24,"Backend":{"Type":"ipip","DirectRouting":true}}`,
			changes: []cni.Change{
				{Path: "Backend.Type", Old: `"vxlan"`, New: `"ipip"`},
				{Path: "Backend.VNI", Old: "1"},
				{Path: "Backend.MTU", Old: "1450"},
				{Path: "Backend.DirectRouting", New: "true"},
			},
		},
		{
			name: "lower-case keys and type already match",
			doc:  lowercaseFirst,
			want: vxlan1450,
			out:  lowercaseFirst,
		},
		{
			name:    "lower-case MTU key keeps its spelling",
			doc:     lowercaseFirst,
			want:    vxlan8950,
			out:     strings.Replace(lowercaseFirst, `"mtu": 1450`, `"mtu": 8950`, 1),
			changes: []cni.Change{{Path: "Backend.mtu", Old: "1450", New: "8950"}},
		},
		{
			name: "first member removed, shared option kept",
			doc:  lowercaseFirst,
			want: ipip,
			out: `{
  "backend": {"type": "ipip", "directRouting": true, "note": "keep me"},
  "network": "10.244.0.0/16",
  "subnetLen": 26
}`,
			changes: []cni.Change{
				{Path: "Backend.mtu", Old: "1450"},
				{Path: "Backend.type", Old: `"VXLAN"`, New: `"ipip"`},
				{Path: "Backend.vni", Old: "1"},
			},
		},
		{
			name: "wireguard to vxlan restores tunnel options after the kept members",
			doc:  wireguardTuned,
			want: vxlan8950,
			remembered: cni.Remembered{
				"Backend.VNI":  "4096",
				"Backend.Port": "4789",
				"Backend.GBP":  "true",
				"Backend.MTU":  "9000",
			},
			out: `{
  "Network": "10.244.0.0/16",
  "Backend": {
    "Type": "vxlan",
    "MTU": 8950,
    "VNI": 4096,
    "Port": 4789,
    "GBP": true
  }
}`,
			changes: []cni.Change{
				{Path: "Backend.Type", Old: `"wireguard"`, New: `"vxlan"`},
				{Path: "Backend.ListenPort", Old: "51820"},
				{Path: "Backend.ListenPortV6", Old: "51821"},
				{Path: "Backend.PSK", Old: `"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2U="`},
				{Path: "Backend.PersistentKeepaliveInterval", Old: "25"},
				{Path: "Backend.Mode", Old: `"separate"`},
				{Path: "Backend.MTU", Old: "1420", New: "8950"},
				{Path: "Backend.VNI", New: "4096"},
				{Path: "Backend.Port", New: "4789"},
				{Path: "Backend.GBP", New: "true"},
			},
		},
		{
			name: "missing Backend is added like its siblings",
			doc:  noBackend,
			want: vxlan8950,
			out: `{
  "Network": "10.244.0.0/16",
  "EnableNFTables": false,
  "Backend": {
    "Type": "vxlan",
    "MTU": 8950
  }
}`,
			changes: []cni.Change{
				{Path: "Backend.Type", New: `"vxlan"`},
				{Path: "Backend.MTU", New: "8950"},
			},
		},
		{
			name:    "missing Backend in a compact document",
			doc:     `{"Network":"10.244.0.0/16"}`,
			want:    hostGW,
			out:     `{"Network":"10.244.0.0/16","Backend":{"Type":"host-gw"}}`,
			changes: []cni.Change{{Path: "Backend.Type", New: `"host-gw"`}},
		},
		{
			name: "empty document object",
			doc:  `{}`,
			want: vxlan1450,
			out:  `{"Backend":{"Type":"vxlan","MTU":1450}}`,
			changes: []cni.Change{
				{Path: "Backend.Type", New: `"vxlan"`},
				{Path: "Backend.MTU", New: "1450"},
			},
		},
		{
			name:    "empty pretty document object",
			doc:     "{\n}\n",
			want:    hostGW,
			out:     "{\n  \"Backend\": {\n    \"Type\": \"host-gw\"\n  }\n}\n",
			changes: []cni.Change{{Path: "Backend.Type", New: `"host-gw"`}},
		},
		{
			name: "empty Backend in a pretty document is written out",
			doc:  "{\n  \"Network\": \"10.244.0.0/16\",\n  \"Backend\": {}\n}",
			want: vxlan1450,
			out:  "{\n  \"Network\": \"10.244.0.0/16\",\n  \"Backend\": {\n    \"Type\": \"vxlan\",\n    \"MTU\": 1450\n  }\n}",
			changes: []cni.Change{
				{Path: "Backend.Type", New: `"vxlan"`},
				{Path: "Backend.MTU", New: "1450"},
			},
		},
		{
			name: "tabs and CRLF survive, ipip to vxlan keeps DirectRouting",
			doc:  tabsCRLF,
			want: vxlan1450,
			remembered: cni.Remembered{
				"Backend.VNI": "1",
			},
			out: "{\r\n\t\"Network\": \"10.244.0.0/16\",\r\n\t\"Backend\": {\r\n\t\t\"Type\": \"vxlan\",\r\n\t\t\"DirectRouting\": true,\r\n\t\t\"VNI\": 1,\r\n\t\t\"MTU\": 1450\r\n\t}\r\n}\r\n",
			changes: []cni.Change{
				{Path: "Backend.Type", Old: `"ipip"`, New: `"vxlan"`},
				{Path: "Backend.VNI", New: "1"},
				{Path: "Backend.MTU", New: "1450"},
			},
		},
		{
			name: "padding and number formatting survive",
			doc:  paddedHostGW,
			want: vxlan8950,
			out:  "\n  { \"Network\": \"10.244.0.0/16\", \"SubnetLen\": 2.4e1, \"Backend\": { \"Type\": \"vxlan\", \"MTU\": 8950 } }  \n\n",
			changes: []cni.Change{
				{Path: "Backend.Type", Old: `"host-gw"`, New: `"vxlan"`},
				{Path: "Backend.MTU", New: "8950"},
			},
		},
		{
			name:    "comma-first layout",
			doc:     "{ \"Network\": \"10.244.0.0/16\"\n, \"SubnetLen\": 24\n}",
			want:    hostGW,
			out:     "{ \"Network\": \"10.244.0.0/16\"\n, \"SubnetLen\": 24\n, \"Backend\": {\n  \"Type\": \"host-gw\"\n}\n}",
			changes: []cni.Change{{Path: "Backend.Type", New: `"host-gw"`}},
		},
		{
			name:    "compact Backend in a pretty document stays compact",
			doc:     "{\n  \"Network\": \"10.244.0.0/16\",\n  \"Backend\": {\"Type\": \"host-gw\"}\n}",
			want:    vxlan1450,
			out:     "{\n  \"Network\": \"10.244.0.0/16\",\n  \"Backend\": {\"Type\": \"vxlan\", \"MTU\": 1450}\n}",
			changes: []cni.Change{{Path: "Backend.Type", Old: `"host-gw"`, New: `"vxlan"`}, {Path: "Backend.MTU", New: "1450"}},
		},
		{
			name:    "compact Backend emptied in a pretty document stays compact",
			doc:     "{\n  \"Network\": \"10.244.0.0/16\",\n  \"Backend\": {\"VNI\": 1, \"MTU\": 1450}\n}",
			want:    hostGW,
			out:     "{\n  \"Network\": \"10.244.0.0/16\",\n  \"Backend\": {\"Type\": \"host-gw\"}\n}",
			changes: []cni.Change{{Path: "Backend.VNI", Old: "1"}, {Path: "Backend.MTU", Old: "1450"}, {Path: "Backend.Type", New: `"host-gw"`}},
		},
		{
			name:    "pretty Backend emptied keeps its lines",
			doc:     "{\"Backend\": {\n    \"VNI\": 1,\n    \"MTU\": 1450\n}}",
			want:    ipip,
			out:     "{\"Backend\": {\n    \"Type\": \"ipip\"\n}}",
			changes: []cni.Change{{Path: "Backend.VNI", Old: "1"}, {Path: "Backend.MTU", Old: "1450"}, {Path: "Backend.Type", New: `"ipip"`}},
		},
		{
			name:    "a type flannel would not recognize is replaced",
			doc:     `{"Backend":{"Type":"hoſt-gw"}}`,
			want:    hostGW,
			out:     `{"Backend":{"Type":"host-gw"}}`,
			changes: []cni.Change{{Path: "Backend.Type", Old: `"hoſt-gw"`, New: `"host-gw"`}},
		},
		{
			name:    "Backend without Type keeps an option the backend reads",
			doc:     `{"Backend":{"VNI":7}}`,
			want:    vxlan1450,
			out:     `{"Backend":{"VNI":7,"Type":"vxlan","MTU":1450}}`,
			changes: []cni.Change{{Path: "Backend.Type", New: `"vxlan"`}, {Path: "Backend.MTU", New: "1450"}},
		},
		{
			name:    "Backend left with no member is written anew",
			doc:     `{"Backend":{"VNI":7}}`,
			want:    hostGW,
			out:     `{"Backend":{"Type":"host-gw"}}`,
			changes: []cni.Change{{Path: "Backend.VNI", Old: "7"}, {Path: "Backend.Type", New: `"host-gw"`}},
		},
		{
			name:    "escaped keys are matched and kept as written",
			doc:     `{"Backend":{"T\u0079pe":"vxlan","\u004dTU":1450}}`,
			want:    vxlan8950,
			out:     `{"Backend":{"T\u0079pe":"vxlan","\u004dTU":8950}}`,
			changes: []cni.Change{{Path: "Backend.MTU", Old: "1450", New: "8950"}},
		},
		{
			name:    "an MTU written as a string or with an exponent is rewritten",
			doc:     `{"Backend":{"Type":"vxlan","MTU":"8950"}}`,
			want:    vxlan8950,
			out:     `{"Backend":{"Type":"vxlan","MTU":8950}}`,
			changes: []cni.Change{{Path: "Backend.MTU", Old: `"8950"`, New: "8950"}},
		},
		{
			name: "no MTU asked for leaves MTU alone",
			doc:  compactOneLine,
			want: mtu.Flannel{BackendType: "vxlan"},
			out:  compactOneLine,
		},
		{
			name:       "MTU is never restored from remembered",
			doc:        `{"Backend":{"Type":"host-gw"}}`,
			want:       mtu.Flannel{BackendType: "vxlan"},
			remembered: cni.Remembered{"Backend.MTU": "9000"},
			out:        `{"Backend":{"Type":"vxlan"}}`,
			changes:    []cni.Change{{Path: "Backend.Type", Old: `"host-gw"`, New: `"vxlan"`}},
		},
		{
			name:       "options are restored only when the type changes",
			doc:        `{"Backend":{"Type":"vxlan"}}`,
			want:       mtu.Flannel{BackendType: "vxlan"},
			remembered: cni.Remembered{"Backend.VNI": "4096"},
			out:        `{"Backend":{"Type":"vxlan"}}`,
		},
		{
			name: "stray options stay while the type does not change",
			doc:  `{"Backend":{"Type":"host-gw","VNI":1}}`,
			want: hostGW,
			out:  `{"Backend":{"Type":"host-gw","VNI":1}}`,
		},
		{
			name: "remembered spelling is restored, canonical spelling preferred, bad values skipped",
			doc:  `{"Backend":{"Type":"host-gw"}}`,
			want: mtu.Flannel{BackendType: "vxlan"},
			remembered: cni.Remembered{
				"Backend.vni":     "1",
				"Backend.VNI":     "4096",
				"Backend.port":    "4789",
				"Backend.GBP":     "{not json",
				"Backend.Unknown": "1",
				"Other.Learning":  "true",
			},
			out: `{"Backend":{"Type":"vxlan","VNI":4096,"port":4789}}`,
			changes: []cni.Change{
				{Path: "Backend.Type", Old: `"host-gw"`, New: `"vxlan"`},
				{Path: "Backend.VNI", New: "4096"},
				{Path: "Backend.port", New: "4789"},
			},
		},
		{
			name: "udp from another backend is replaced, its unknown options kept",
			doc:  `{"Backend":{"Type":"udp","Port":8285,"x":1}}`,
			want: wireguard,
			out:  `{"Backend":{"Type":"wireguard","x":1,"MTU":8920}}`,
			changes: []cni.Change{
				{Path: "Backend.Type", Old: `"udp"`, New: `"wireguard"`},
				{Path: "Backend.Port", Old: "8285"},
				{Path: "Backend.MTU", New: "8920"},
			},
		},
		{
			name:       "a remembered object value is restored whole",
			doc:        `{"Backend":{"Type":"host-gw"}}`,
			want:       mtu.Flannel{BackendType: "vxlan"},
			remembered: cni.Remembered{"Backend.MacPrefix": ` "0E:6A" `},
			out:        `{"Backend":{"Type":"vxlan","MacPrefix":"0E:6A"}}`,
			changes:    []cni.Change{{Path: "Backend.Type", Old: `"host-gw"`, New: `"vxlan"`}, {Path: "Backend.MacPrefix", New: `"0E:6A"`}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, changes := editTwice(t, tt.doc, tt.want, tt.remembered)
			if out != tt.out {
				t.Errorf("output:\n%s\nwant:\n%s", out, tt.out)
			}
			if !reflect.DeepEqual(changes, tt.changes) {
				t.Errorf("changes:\n%v\nwant:\n%v", changes, tt.changes)
			}
		})
	}
}

// TestRoundTrip goes from vxlan to host-gw (no encapsulation) and back, feeding the first
// step's changes back as remembered: the tunnel options come back exactly.
func TestRoundTrip(t *testing.T) {
	const tunnel = `{
  "Network": "10.244.0.0/16",
  "Backend": {
    "Type": "vxlan",
    "VNI": 4096,
    "Port": 4789,
    "GBP": true,
    "MTU": 9000
  }
}`
	plain, removed := editTwice(t, tunnel, hostGW, nil)
	wantPlain := `{
  "Network": "10.244.0.0/16",
  "Backend": {
    "Type": "host-gw"
  }
}`
	if plain != wantPlain {
		t.Fatalf("to host-gw:\n%s\nwant:\n%s", plain, wantPlain)
	}
	wantRemoved := []cni.Change{
		{Path: "Backend.Type", Old: `"vxlan"`, New: `"host-gw"`},
		{Path: "Backend.VNI", Old: "4096"},
		{Path: "Backend.Port", Old: "4789"},
		{Path: "Backend.GBP", Old: "true"},
		{Path: "Backend.MTU", Old: "9000"},
	}
	if !reflect.DeepEqual(removed, wantRemoved) {
		t.Fatalf("to host-gw changes:\n%v\nwant:\n%v", removed, wantRemoved)
	}

	remembered := cni.RememberedFrom(removed)
	back, restored := editTwice(t, plain, mtu.Flannel{BackendType: "vxlan", BackendMTU: 9000}, remembered)
	if back != tunnel {
		t.Errorf("back to vxlan:\n%s\nwant the original:\n%s", back, tunnel)
	}
	wantRestored := []cni.Change{
		{Path: "Backend.Type", Old: `"host-gw"`, New: `"vxlan"`},
		{Path: "Backend.VNI", New: "4096"},
		{Path: "Backend.Port", New: "4789"},
		{Path: "Backend.GBP", New: "true"},
		{Path: "Backend.MTU", New: "9000"},
	}
	if !reflect.DeepEqual(restored, wantRestored) {
		t.Errorf("back to vxlan changes:\n%v\nwant:\n%v", restored, wantRestored)
	}

	// The MTU comes from want, not from what was remembered.
	lower, _ := editTwice(t, plain, vxlan1450, remembered)
	if want := strings.Replace(tunnel, `"MTU": 9000`, `"MTU": 1450`, 1); lower != want {
		t.Errorf("back to vxlan with MTU 1450:\n%s\nwant:\n%s", lower, want)
	}
}

func TestEditRejects(t *testing.T) {
	tests := []struct {
		name     string
		doc      string
		sentinel error
		message  string
	}{
		{"not JSON", "Network: 10.244.0.0/16\nBackend:\n  Type: vxlan\n", cni.ErrUnparseable, "not valid JSON: invalid character 'N'"},
		{"a JSON array", `[{"Network":"10.244.0.0/16"}]`, cni.ErrUnparseable, "net-conf.json is a list, not an object"},
		{"a top-level null", " null ", cni.ErrUnparseable, "net-conf.json is null, not an object"},
		{"a string", `"{}"`, cni.ErrUnparseable, "net-conf.json is a string, not an object"},
		{"empty", "", cni.ErrUnparseable, "net-conf.json is empty"},
		{"only whitespace", " \n\t", cni.ErrUnparseable, "net-conf.json is empty"},
		{"truncated", upstreamVXLAN[:60], cni.ErrUnparseable, "unexpected end of JSON input"},
		{"two documents", `{} {}`, cni.ErrUnparseable, "not valid JSON"},
		{"a byte-order mark", "\ufeff{}", cni.ErrUnparseable, "not valid JSON"},
		{"invalid UTF-8", "{\"Network\": \"10.244.0.0/16\xff\"}", cni.ErrUnparseable, "not valid UTF-8 text (at byte 26)"},
		{"Backend a string", `{"Backend":"vxlan"}`, cni.ErrUnexpectedShape, "net-conf.json: Backend is a string, not an object"},
		{"Backend null", `{"backend":null}`, cni.ErrUnexpectedShape, "backend is null, not an object"},
		{"Backend a list", `{"Backend":[{"Type":"vxlan"}]}`, cni.ErrUnexpectedShape, "Backend is a list, not an object"},
		{"Type a number", `{"Backend":{"Type":1}}`, cni.ErrUnexpectedShape, "Backend.Type is a number, not a string"},
		{"Type null", `{"Backend":{"type":null}}`, cni.ErrUnexpectedShape, "Backend.type is null, not a string"},
		{"Backend twice", `{"Backend":{"Type":"vxlan"},"backend":{"Type":"host-gw"}}`, cni.ErrUnexpectedShape, `has both "Backend" and "backend"`},
		{"Backend exactly twice", `{"Backend":{},"Backend":{}}`, cni.ErrUnexpectedShape, `has "Backend" twice`},
		{"VNI in two spellings", `{"Backend":{"Type":"vxlan","VNI":1,"vni":2}}`, cni.ErrUnexpectedShape, `Backend has both "VNI" and "vni"`},
		{"Type twice", `{"Backend":{"Type":"vxlan","Type":"host-gw"}}`, cni.ErrUnexpectedShape, `Backend has "Type" twice`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, changes, err := Edit([]byte(tt.doc), vxlan8950, nil)
			if !errors.Is(err, tt.sentinel) {
				t.Fatalf("error %v does not wrap %v", err, tt.sentinel)
			}
			if !strings.Contains(err.Error(), tt.message) {
				t.Errorf("error %q does not say %q", err, tt.message)
			}
			if out != nil || changes != nil {
				t.Errorf("rejected document still gave output %q and changes %v", out, changes)
			}
		})
	}
}

func TestEditRejectsWant(t *testing.T) {
	for _, want := range []mtu.Flannel{
		{BackendType: "udp"},
		{BackendType: ""},
		{BackendType: "host-gw", BackendMTU: 1500},
		{BackendType: "ipip", BackendMTU: 1480},
		{BackendType: "vxlan", BackendMTU: -1},
	} {
		out, _, err := Edit([]byte(upstreamVXLAN), want, nil)
		if err == nil || out != nil {
			t.Errorf("Edit with %+v: no error", want)
			continue
		}
		if errors.Is(err, cni.ErrUnparseable) || errors.Is(err, cni.ErrUnexpectedShape) {
			t.Errorf("Edit with %+v: %v blames the document", want, err)
		}
	}
}

// TestWantTypeIgnoresCase: flannel lower-cases the type, so "VXLAN" asked over "vxlan"
// written is no change, and a new type is written as asked.
func TestWantTypeIgnoresCase(t *testing.T) {
	out, changes := editTwice(t, upstreamVXLAN, mtu.Flannel{BackendType: "VXLAN"}, nil)
	if out != upstreamVXLAN || changes != nil {
		t.Errorf("VXLAN over vxlan changed the document: %v\n%s", changes, out)
	}
	out, _ = editTwice(t, upstreamVXLAN, mtu.Flannel{BackendType: "Host-GW"}, nil)
	if !strings.Contains(out, `"Type": "Host-GW"`) {
		t.Errorf("type not written as asked:\n%s", out)
	}
}

// TestEditDoesNotAlias checks that the output never shares memory with the input.
func TestEditDoesNotAlias(t *testing.T) {
	doc := []byte(lowercaseFirst)
	out, changes, err := Edit(doc, vxlan1450, nil)
	if err != nil || changes != nil {
		t.Fatalf("Edit: %v %v", changes, err)
	}
	out[0] = 'X'
	if doc[0] != '{' {
		t.Error("changing the output changed the input")
	}
}
