package antrea

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// snippetGroups are pieces of antrea-agent.conf-like YAML, tricky ones included. A generated
// document takes at most one piece from each group, so that keys do not repeat.
var snippetGroups = [][]string{
	{
		"trafficEncapMode: encap", `trafficEncapMode: "noEncap" # c`, "trafficEncapMode:", "trafficEncapMode: ~",
		"trafficEncapMode: 'encap'", `trafficEncapMode: ""`, "trafficEncapMode: 123", "trafficEncapMode: true",
		"trafficEncapMode: encap #c1 #c2", "'trafficEncapMode'   :  encap", "? trafficEncapMode\n: encap",
		"trafficEncapMode:\t'x'\t# t",
	},
	{"tunnelType: geneve", "# tunnelType: geneve", "#tunnelType: vxlan", "tunnelType:\n  gre", "tunnelType: vxlan # c", "tunnelType: null"},
	{
		"trafficEncryptionMode: none", `trafficEncryptionMode: "WireGuard"`, "# trafficEncryptionMode: none",
		`trafficEncryptionMode: "no\u006ee"`, "trafficEncryptionMode: IPSEC", "trafficEncryptionMode: 'wire''guard'",
	},
	{
		"defaultMTU: 0", "defaultMTU: 1500 # x", "#defaultMTU: 0", "# defaultMTU: 0", "defaultMTU:", "defaultMTU:\t1400",
		"defaultMTU: 0o17", "defaultMTU: +5", "defaultMTU: -0", "defaultMTU : 5", "? defaultMTU\n: 5",
		"\"defaultMTU\":\n\n  # c\n  1400", "defaultMTU: 0x578",
	},
	{"featureGates:\n#  AllAlpha: false\n  Egress: true"},
	{"multicluster:\n# mode\n  trafficEncryptionMode: none\n  wireGuard:\n    port: 1"},
	{"wireGuard:\n#defaultMTU: 0\n  port: 51820"},
	{"note: \"a\n#defaultMTU: 0\nb\""},
	{"list: [1,\n# tunnelType: x\n2]", "map: {a: 1,\n# defaultMTU: 0\n b: 2}"},
	{"block: |\n  text\n  # not a comment", "block: >-\n  text\n#defaultMTU: 1\n"},
	{"keep: |+\n  text\n"},
	{"empty:", "empty: !!null"},
	{"# comment", "", "  # indented comment", "#trafficEncryptionMode:"},
	{"anchor: &a {x: 1}\nmerge:\n  <<: *a"},
	{"<<: {defaultMTU: 7}"},
	{"x: .nan"},
	{"plain: multi\n  line"},
	{"seq:\n- 1\n# defaultMTU: 3\n- 2"},
	{"seq2:\n  - a\n#trafficEncapMode: x\n  - b"},
	{"'q': 'it''s'"},
	{`"k": "v\""`},
	{"1: one"},
	{"é: ü"},
}

var documentStarts = []string{"", "", "", "---\n", "--- # doc\n", "%YAML 1.1\n---\n", "&root\n", "# head\n\n"}

// generatedDocs builds n documents from the snippets, some indented, some with CRLF, some
// with a byte order mark.
func generatedDocs(seed uint64, n int) []string {
	r := rand.New(rand.NewPCG(seed, seed))
	docs := make([]string, 0, n)
	for range n {
		var parts []string
		for _, i := range r.Perm(len(snippetGroups))[:1+r.IntN(len(snippetGroups))] {
			group := snippetGroups[i]
			parts = append(parts, group[r.IntN(len(group))])
		}
		doc := documentStarts[r.IntN(len(documentStarts))] + strings.Join(parts, "\n")
		if r.IntN(2) == 0 {
			doc += "\n"
		}
		if r.IntN(6) == 0 {
			doc = "  " + strings.ReplaceAll(doc, "\n", "\n  ")
		}
		if r.IntN(4) == 0 {
			doc = strings.ReplaceAll(doc, "\n", "\r\n")
		}
		if r.IntN(8) == 0 {
			doc = byteOrderMark + doc
		}
		docs = append(docs, doc)
	}
	return docs
}

// TestEditGeneratedDocuments checks FuzzEdit's properties on documents built from tricky
// pieces, which random bytes rarely reach, and that the only documents refused are invalid
// YAML or hold a key with no value written after an explicit `? key`.
func TestEditGeneratedDocuments(t *testing.T) {
	edited := 0
	for i, doc := range generatedDocs(1, 3000) {
		want := fuzzWants[i%len(fuzzWants)]
		want.DefaultMTU = 1400 + i%100
		err := checkEdit(t, []byte(doc), want)
		switch {
		case err == nil:
			edited++
		case strings.Contains(err.Error(), "not valid YAML"), strings.Contains(err.Error(), "has no value"),
			strings.Contains(err.Error(), "single value"):
		default:
			t.Errorf("Edit(%q): %v", doc, err)
		}
	}
	if edited < 2000 {
		t.Errorf("only %d of 3000 generated documents were edited", edited)
	}
}
