package flannel

// Fixtures shaped like the net-conf.json of real installs, written for these tests.

// upstreamVXLAN is the shape of the default manifest: two-space indentation, vxlan with no
// options.
const upstreamVXLAN = `{
  "Network": "10.244.0.0/16",
  "EnableNFTables": false,
  "Backend": {
    "Type": "vxlan"
  }
}
`

// dualStackTuned is a dual-stack install with four-space indentation, tunnel options, an
// MTU and keys flannel does not know at both levels.
const dualStackTuned = `{
    "EnableIPv4": true,
    "EnableIPv6": true,
    "Network": "10.42.0.0/16",
    "IPv6Network": "fd00:42::/56",
    "SubnetLen": 24,
    "IPv6SubnetLen": 64,
    "Backend": {
        "Type": "vxlan",
        "VNI": 4096,
        "Port": 4789,
        "GBP": true,
        "MTU": 9000,
        "x-owner": "platform-team"
    },
    "x-managed-by": "helm"
}`

// compactOneLine is the whole document on one line, as some installers write it.
const compactOneLine = `{"Network":"10.244.0.0/16","SubnetLen":24,"Backend":{"Type":"vxlan","VNI":1,"MTU":1450}}`

// lowercaseFirst has Backend first, lower-case keys, an upper-case type and unknown keys.
const lowercaseFirst = `{
  "backend": {"mtu": 1450, "type": "VXLAN", "vni": 1, "directRouting": true, "note": "keep me"},
  "network": "10.244.0.0/16",
  "subnetLen": 26
}`

// wireguardTuned is a wireguard install with every option set.
const wireguardTuned = `{
  "Network": "10.244.0.0/16",
  "Backend": {
    "Type": "wireguard",
    "ListenPort": 51820,
    "ListenPortV6": 51821,
    "PSK": "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2U=",
    "PersistentKeepaliveInterval": 25,
    "Mode": "separate",
    "MTU": 1420
  }
}`

// noBackend lacks Backend, which flannel reads as the udp backend.
const noBackend = `{
  "Network": "10.244.0.0/16",
  "EnableNFTables": false
}`

// tabsCRLF is indented with tabs, with Windows line ends, ipip with DirectRouting.
const tabsCRLF = "{\r\n\t\"Network\": \"10.244.0.0/16\",\r\n\t\"Backend\": {\r\n\t\t\"Type\": \"ipip\",\r\n\t\t\"DirectRouting\": true\r\n\t}\r\n}\r\n"

// paddedHostGW has whitespace around the document and inside braces, and a number written
// in an unusual way that must survive.
const paddedHostGW = "\n  { \"Network\": \"10.244.0.0/16\", \"SubnetLen\": 2.4e1, \"Backend\": { \"Type\": \"host-gw\" } }  \n\n"

var fixtures = []string{
	upstreamVXLAN, dualStackTuned, compactOneLine, lowercaseFirst, wireguardTuned, noBackend, tabsCRLF, paddedHostGW,
}
