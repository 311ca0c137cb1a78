package antrea

import (
	"bytes"
	"errors"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	yaml "go.yaml.in/yaml/v3"

	"github.com/mtu-operator/mtu-operator/internal/cni"
	"github.com/mtu-operator/mtu-operator/internal/mtu"
)

func readFixture(t testing.TB) string {
	t.Helper()
	doc, err := os.ReadFile("testdata/antrea-agent.conf")
	if err != nil {
		t.Fatal(err)
	}
	return string(doc)
}

// replaceLine swaps one whole line of the fixture, failing when it is not there exactly once.
func replaceLine(t testing.TB, doc, old, replacement string) string {
	t.Helper()
	if n := strings.Count(doc, "\n"+old+"\n"); n != 1 {
		t.Fatalf("fixture has %d lines %q, want 1", n, old)
	}
	return strings.Replace(doc, "\n"+old+"\n", "\n"+replacement+"\n", 1)
}

// lineDiff returns the lines only in a and the lines only in b, from a longest common
// subsequence of their lines.
func lineDiff(a, b string) (removed, added []string) {
	x, y := strings.Split(a, "\n"), strings.Split(b, "\n")
	common := make([][]int, len(x)+1)
	for i := range common {
		common[i] = make([]int, len(y)+1)
	}
	for i := len(x) - 1; i >= 0; i-- {
		for j := len(y) - 1; j >= 0; j-- {
			if x[i] == y[j] {
				common[i][j] = common[i+1][j+1] + 1
			} else {
				common[i][j] = max(common[i+1][j], common[i][j+1])
			}
		}
	}
	i, j := 0, 0
	for i < len(x) && j < len(y) {
		switch {
		case x[i] == y[j]:
			i, j = i+1, j+1
		case common[i+1][j] >= common[i][j+1]:
			removed = append(removed, x[i])
			i++
		default:
			added = append(added, y[j])
			j++
		}
	}
	return append(removed, x[i:]...), append(added, y[j:]...)
}

// linesOf cuts a document into lines, without their \n or \r\n (Edit ends a last line
// that had no line break with the document's own).
func linesOf(doc string) []string {
	lines := strings.Split(doc, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimSuffix(l, "\r")
	}
	return lines
}

// commentLines returns the lines that are comments, whole.
func commentLines(doc string) []string {
	var comments []string
	for _, l := range linesOf(doc) {
		if strings.HasPrefix(strings.TrimLeft(l, " \t"), "#") {
			comments = append(comments, l)
		}
	}
	return comments
}

// assertCommentsKept checks that every comment line of in appears in out, in the same order.
func assertCommentsKept(t testing.TB, in, out string) {
	t.Helper()
	outLines := linesOf(out)
	next := 0
	for _, comment := range commentLines(in) {
		found := slices.Index(outLines[next:], comment)
		if found < 0 {
			t.Fatalf("comment line %q lost or moved out of order\noutput:\n%s", comment, out)
		}
		next += found + 1
	}
}

var ownedLine = regexp.MustCompile(`^(trafficEncapMode|tunnelType|trafficEncryptionMode|defaultMTU):`)

func decodeMap(t testing.TB, doc string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := yaml.Unmarshal([]byte(doc), &m); err != nil {
		t.Fatalf("output does not parse: %v\n%s", err, doc)
	}
	return m
}

func TestEditFixture(t *testing.T) {
	fixture := readFixture(t)
	noEncap := replaceLine(t, replaceLine(t, fixture, `trafficEncapMode: "encap"`, `trafficEncapMode: "noEncap"`),
		"defaultMTU: 0", "defaultMTU: 1500")
	wireGuardDone := replaceLine(t, replaceLine(t, fixture, `trafficEncryptionMode: "none"`, `trafficEncryptionMode: "WireGuard"`),
		"defaultMTU: 0", "defaultMTU: 1440")
	tests := []struct {
		name    string
		doc     string
		want    mtu.Antrea
		changes []cni.Change
		removed []string
		added   []string
	}{{
		name: "encap geneve to noEncap",
		doc:  fixture,
		want: mtu.Antrea{TrafficEncapMode: "noEncap", TrafficEncryptionMode: "none", DefaultMTU: 1500, PodMTU: 1500},
		changes: []cni.Change{
			{Path: "trafficEncapMode", Old: "encap", New: "noEncap"},
			{Path: "defaultMTU", Old: "0", New: "1500"},
		},
		removed: []string{`trafficEncapMode: "encap"`, "defaultMTU: 0"},
		added:   []string{`trafficEncapMode: "noEncap"`, "defaultMTU: 1500"},
	}, {
		name: "noEncap to encap vxlan with IPsec",
		doc:  noEncap,
		want: mtu.Antrea{TrafficEncapMode: "encap", TunnelType: "vxlan", TrafficEncryptionMode: "ipsec", DefaultMTU: 1412, PodMTU: 1412},
		changes: []cni.Change{
			{Path: "trafficEncapMode", Old: "noEncap", New: "encap"},
			{Path: "tunnelType", New: "vxlan"},
			{Path: "trafficEncryptionMode", Old: "none", New: "ipsec"},
			{Path: "defaultMTU", Old: "1500", New: "1412"},
		},
		removed: []string{`trafficEncapMode: "noEncap"`, `trafficEncryptionMode: "none"`, "defaultMTU: 1500"},
		added:   []string{`trafficEncapMode: "encap"`, "tunnelType: vxlan", `trafficEncryptionMode: "ipsec"`, "defaultMTU: 1412"},
	}, {
		name: "WireGuard",
		doc:  fixture,
		want: mtu.Antrea{TrafficEncapMode: "encap", TrafficEncryptionMode: "wireGuard", DefaultMTU: 1440, PodMTU: 1440},
		changes: []cni.Change{
			{Path: "trafficEncryptionMode", Old: "none", New: "wireGuard"},
			{Path: "defaultMTU", Old: "0", New: "1440"},
		},
		removed: []string{`trafficEncryptionMode: "none"`, "defaultMTU: 0"},
		added:   []string{`trafficEncryptionMode: "wireGuard"`, "defaultMTU: 1440"},
	}, {
		name: "already set, encryption mode in another case",
		doc:  wireGuardDone,
		want: mtu.Antrea{TrafficEncapMode: "encap", TrafficEncryptionMode: "wireGuard", DefaultMTU: 1440, PodMTU: 1440},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, changes, err := Edit([]byte(tc.doc), tc.want)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(changes, tc.changes) {
				t.Errorf("changes = %+v; want %+v", changes, tc.changes)
			}
			removed, added := lineDiff(tc.doc, string(out))
			if !slices.Equal(removed, tc.removed) || !slices.Equal(added, tc.added) {
				t.Errorf("diff: removed %q, added %q; want removed %q, added %q", removed, added, tc.removed, tc.added)
			}
			for _, l := range slices.Concat(removed, added) {
				if !ownedLine.MatchString(l) {
					t.Errorf("line %q changed; it is not an owned key", l)
				}
			}
			assertCommentsKept(t, tc.doc, string(out))
			if !strings.Contains(string(out), "\n  trafficEncryptionMode: none\n") {
				t.Error("the multicluster trafficEncryptionMode line changed")
			}
			multicluster, _ := decodeMap(t, string(out))["multicluster"].(map[string]any)
			if multicluster["trafficEncryptionMode"] != "none" {
				t.Errorf("multicluster.trafficEncryptionMode = %v; want none", multicluster["trafficEncryptionMode"])
			}
			again, changes, err := Edit(out, tc.want)
			if err != nil || len(changes) != 0 || !bytes.Equal(again, out) {
				t.Errorf("editing the output again: changes %+v, error %v, same bytes %v", changes, err, bytes.Equal(again, out))
			}
		})
	}
}

func TestEditInsertsAfterCommentedOutLine(t *testing.T) {
	fixture := readFixture(t)
	want := mtu.Antrea{TrafficEncapMode: "encap", TunnelType: "geneve", TrafficEncryptionMode: "none", DefaultMTU: 1450}
	out, changes, err := Edit([]byte(fixture), want)
	if err != nil {
		t.Fatal(err)
	}
	wantChanges := []cni.Change{{Path: "tunnelType", New: "geneve"}, {Path: "defaultMTU", Old: "0", New: "1450"}}
	if !slices.Equal(changes, wantChanges) {
		t.Errorf("changes = %+v; want %+v", changes, wantChanges)
	}
	if !strings.Contains(string(out), "\n# tunnelType: geneve\ntunnelType: geneve\n\n# The UDP port") {
		t.Errorf("tunnelType not inserted right after its commented-out line:\n%s", out)
	}
}

// TestEditLayout covers the layouts the fixture does not: each output is given in full.
func TestEditLayout(t *testing.T) {
	want := mtu.Antrea{TrafficEncapMode: "noEncap", TrafficEncryptionMode: "none", DefaultMTU: 1500}
	tests := []struct {
		name, doc, out string
		want           mtu.Antrea
	}{{
		name: "CRLF kept on edited and inserted lines",
		doc:  "# MTU\r\n#defaultMTU: 0\r\ntrafficEncapMode: encap # mode\r\ntrafficEncryptionMode: none\r\n",
		out:  "# MTU\r\n#defaultMTU: 0\r\ndefaultMTU: 1500\r\ntrafficEncapMode: noEncap # mode\r\ntrafficEncryptionMode: none\r\n",
	}, {
		name: "appended when absent and not commented out, newline added first",
		doc:  "ovsBridge: br-int\ntrafficEncapMode: noEncap",
		out:  "ovsBridge: br-int\ntrafficEncapMode: noEncap\ntrafficEncryptionMode: none\ndefaultMTU: 1500\n",
	}, {
		name: "commented-out line inside a nested map is not used",
		doc:  "wireGuard:\n#defaultMTU: 0\n  port: 51820\ntrafficEncapMode: noEncap\ntrafficEncryptionMode: none\n",
		out:  "wireGuard:\n#defaultMTU: 0\n  port: 51820\ntrafficEncapMode: noEncap\ntrafficEncryptionMode: none\ndefaultMTU: 1500\n",
	}, {
		name: "deeper commented-out lines belong to nested maps",
		doc:  "featureGates:\n#  defaultMTU: 0\ntrafficEncapMode: noEncap\ntrafficEncryptionMode: none\n",
		out:  "featureGates:\n#  defaultMTU: 0\ntrafficEncapMode: noEncap\ntrafficEncryptionMode: none\ndefaultMTU: 1500\n",
	}, {
		name: "null values filled in, comments kept",
		doc:  "trafficEncapMode: ~\ntrafficEncryptionMode: # none\ndefaultMTU:\n",
		out:  "trafficEncapMode: noEncap\ntrafficEncryptionMode: none # none\ndefaultMTU: 1500\n",
	}, {
		name: "single quotes kept, value on the line after its key",
		doc:  "trafficEncapMode: 'encap'\ntrafficEncryptionMode: 'NONE'\ndefaultMTU:\n  # the MTU\n  1400 # was\n",
		out:  "trafficEncapMode: 'noEncap'\ntrafficEncryptionMode: 'NONE'\ndefaultMTU:\n  # the MTU\n  1500 # was\n",
	}, {
		name: "quoted keys, wide characters before the value",
		doc:  "\"trafficEncapMode\" : \"encap\"\n'defaultMTU':\ntrafficEncryptionMode: \"none\" # é ü ’\n",
		out:  "\"trafficEncapMode\" : \"noEncap\"\n'defaultMTU': 1500\ntrafficEncryptionMode: \"none\" # é ü ’\n",
	}, {
		name: "byte order mark kept",
		doc:  "\ufefftrafficEncapMode: encap\ntrafficEncryptionMode: none\ndefaultMTU: 0x5dc\n",
		out:  "\ufefftrafficEncapMode: noEncap\ntrafficEncryptionMode: none\ndefaultMTU: 0x5dc\n",
	}, {
		name: "indented top level",
		doc:  "  trafficEncapMode: encap\n  trafficEncryptionMode: none\n",
		out:  "  trafficEncapMode: noEncap\n  trafficEncryptionMode: none\n  defaultMTU: 1500\n",
	}, {
		name: "comments only",
		doc:  "# nothing yet\n# defaultMTU: 0",
		out:  "# nothing yet\n# defaultMTU: 0\ndefaultMTU: 1500\ntrafficEncapMode: noEncap\ntrafficEncryptionMode: none\n",
	}, {
		name: "empty",
		doc:  "",
		out:  "trafficEncapMode: noEncap\ntrafficEncryptionMode: none\ndefaultMTU: 1500\n",
	}, {
		name: "commented-out line inside a quoted string falls back to the end",
		doc:  "note: \"a\n#defaultMTU: 0\nb\"\ntrafficEncapMode: noEncap\ntrafficEncryptionMode: none\n",
		out:  "note: \"a\n#defaultMTU: 0\nb\"\ntrafficEncapMode: noEncap\ntrafficEncryptionMode: none\ndefaultMTU: 1500\n",
	}, {
		name: "block scalar ending the file without a line break: new keys go first",
		doc:  "# settings\nnoSNAT: false\nbanner: |\n  hello",
		out:  "# settings\ntrafficEncapMode: noEncap\ntrafficEncryptionMode: none\ndefaultMTU: 1500\nnoSNAT: false\nbanner: |\n  hello",
	}, {
		name: "document end marker: new keys go first",
		doc:  "noSNAT: false\n...\n",
		out:  "trafficEncapMode: noEncap\ntrafficEncryptionMode: none\ndefaultMTU: 1500\nnoSNAT: false\n...\n",
	}, {
		name: "values YAML would misread are quoted",
		doc:  "trafficEncapMode: encap\ntunnelType: geneve\ntrafficEncryptionMode: none\ndefaultMTU: 1500\n",
		want: mtu.Antrea{TrafficEncapMode: "on", TunnelType: "1e3", TrafficEncryptionMode: "a \"b\"", DefaultMTU: 1500},
		out:  "trafficEncapMode: \"on\"\ntunnelType: \"1e3\"\ntrafficEncryptionMode: \"a \\\"b\\\"\"\ndefaultMTU: 1500\n",
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := want
			if tc.want != (mtu.Antrea{}) {
				w = tc.want
			}
			out, _, err := Edit([]byte(tc.doc), w)
			if err != nil {
				t.Fatal(err)
			}
			if string(out) != tc.out {
				t.Fatalf("got\n%q\nwant\n%q", out, tc.out)
			}
			again, changes, err := Edit(out, w)
			if err != nil || len(changes) != 0 || !bytes.Equal(again, out) {
				t.Errorf("editing the output again: changes %+v, error %v, same bytes %v", changes, err, bytes.Equal(again, out))
			}
		})
	}
}

func TestEditRejects(t *testing.T) {
	want := mtu.Antrea{TrafficEncapMode: "encap", TunnelType: "geneve", TrafficEncryptionMode: "none", DefaultMTU: 1450}
	tests := []struct {
		name, doc string
		sentinel  error
		message   string
	}{
		{"bad indentation", "a:\n  b: 1\n c: 2\n", cni.ErrUnparseable, "not valid YAML"},
		{"tab indentation", "a:\n\tb: 1\n", cni.ErrUnparseable, "not valid YAML"},
		{"not UTF-8", "defaultMTU: \xff\n", cni.ErrUnparseable, "not UTF-8"},
		{"root is a list", "- defaultMTU: 1\n", cni.ErrUnparseable, "top level is a list"},
		{"root is a value", "antrea\n", cni.ErrUnparseable, "single value"},
		{"nested duplicate key", "egress:\n  a: 1\n  a: 2\n", cni.ErrUnparseable, "already defined"},
		{"defaultMTU is a map", "defaultMTU: {a: 1}\n", cni.ErrUnexpectedShape, "defaultMTU is a map, not a number"},
		{"tunnelType is a list", "tunnelType:\n- geneve\n", cni.ErrUnexpectedShape, "tunnelType is a list, not a string"},
		{"defaultMTU is a word", "defaultMTU: \"abc\"\n", cni.ErrUnexpectedShape, `defaultMTU is "abc", not a whole number`},
		{"defaultMTU is quoted", "defaultMTU: \"1450\"\n", cni.ErrUnexpectedShape, "not a whole number"},
		{"defaultMTU is fractional", "defaultMTU: 1450.5\n", cni.ErrUnexpectedShape, "not a whole number"},
		{"duplicate top-level key", "defaultMTU: 1\nfoo: 2\ndefaultMTU: 3\n", cni.ErrUnexpectedShape, "defaultMTU appears twice at the top level (lines 1 and 3)"},
		{"two documents", "defaultMTU: 1\n---\nfoo: 2\n", cni.ErrUnexpectedShape, "more than one YAML document"},
		{"flow style", "{defaultMTU: 1}\n", cni.ErrUnexpectedShape, "flow style"},
		{"value on two lines", "trafficEncapMode: \"no\n  Encap\"\n", cni.ErrUnexpectedShape, "spans several lines"},
		{"plain value on two lines", "trafficEncapMode: no\n  Encap\n", cni.ErrUnexpectedShape, "spans several lines"},
		{"block scalar", "trafficEncapMode: |\n  encap\n", cni.ErrUnexpectedShape, "multi-line block"},
		{"alias", "x: &m 1400\ndefaultMTU: *m\n", cni.ErrUnexpectedShape, "refers to another value (*m)"},
		{"anchor", "defaultMTU: &m 1400\nx: *m\n", cni.ErrUnexpectedShape, "anchor &m"},
		{"tag", "trafficEncapMode: !!str encap\n", cni.ErrUnexpectedShape, "explicit YAML tag"},
		{"lone carriage return", "a: 1\rdefaultMTU: 2\n", cni.ErrUnexpectedShape, "carriage return"},
		{"second byte order mark", "\ufeff\ufeffa: 1\n", cni.ErrUnexpectedShape, "byte order mark"},
		{"line separator", "a: 1 # \u2028defaultMTU: 2\n", cni.ErrUnexpectedShape, "U+2028"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, changes, err := Edit([]byte(tc.doc), want)
			if !errors.Is(err, tc.sentinel) {
				t.Fatalf("error %v; want one wrapping %v", err, tc.sentinel)
			}
			if !strings.HasPrefix(err.Error(), "antrea-agent.conf: ") || !strings.Contains(err.Error(), tc.message) {
				t.Errorf("error %q; want it to start with antrea-agent.conf: and say %q", err, tc.message)
			}
			if out != nil || changes != nil {
				t.Errorf("got output %q and changes %+v with the error", out, changes)
			}
		})
	}
}

func TestEditRejectsInvalidSettings(t *testing.T) {
	for _, want := range []mtu.Antrea{
		{TrafficEncryptionMode: "none", DefaultMTU: 1500},
		{TrafficEncapMode: "encap", DefaultMTU: 1500},
		{TrafficEncapMode: "encap", TrafficEncryptionMode: "none", DefaultMTU: -1},
		{TrafficEncapMode: "encap", TunnelType: "\xff", TrafficEncryptionMode: "none"},
	} {
		out, _, err := Edit([]byte("defaultMTU: 0\n"), want)
		if err == nil || errors.Is(err, cni.ErrUnparseable) || errors.Is(err, cni.ErrUnexpectedShape) || out != nil {
			t.Errorf("Edit(%+v) = %q, %v; want an error about the settings", want, out, err)
		}
	}
}

// TestVerifyRefusesCollateralChanges checks the final safety check directly, since Edit
// only reaches it with layouts its planning misreads.
func TestVerifyRefusesCollateralChanges(t *testing.T) {
	before, err := parse([]byte("noSNAT: false\ndefaultMTU: 0\n"))
	if err != nil {
		t.Fatal(err)
	}
	settings, err := settingsFor(mtu.Antrea{TrafficEncapMode: "encap", TrafficEncryptionMode: "none", DefaultMTU: 1500})
	if err != nil {
		t.Fatal(err)
	}
	plan := &editPlan{changes: []cni.Change{{Path: "trafficEncapMode"}, {Path: "trafficEncryptionMode"}, {Path: "defaultMTU"}}}
	owned := "trafficEncapMode: encap\ntrafficEncryptionMode: none\n"
	for edited, message := range map[string]string{
		owned + "noSNAT: true\ndefaultMTU: 1500\n":  "settings the operator does not own",
		owned + "noSNAT: false\ndefaultMTU: [\n":    "does not parse back",
		owned + "noSNAT: false\ndefaultMTU: 1400\n": "defaultMTU could not be written",
		"noSNAT: false\ndefaultMTU: 1500\n":         "trafficEncapMode could not be written",
		owned + "noSNAT: false\ndefaultMTU: 1500\n": "",
	} {
		err := verify(before, []byte(edited), settings, plan)
		if message == "" {
			if err != nil {
				t.Errorf("verify(%q) = %v; want nil", edited, err)
			}
			continue
		}
		if !errors.Is(err, cni.ErrUnexpectedShape) || !strings.Contains(err.Error(), message) {
			t.Errorf("verify(%q) = %v; want ErrUnexpectedShape saying %q", edited, err, message)
		}
	}
}
