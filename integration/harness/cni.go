package harness

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// CNIBinDir is where Debian's containernetworking-plugins installs the
// plugins (bridge, host-local, loopback, ...).
const CNIBinDir = "/usr/lib/cni"

// cniCacheDir is libcni's default cache of ADD results (containerd does not
// change it); an entry per pod network attachment must go on teardown.
const cniCacheDir = "/var/lib/cni/results"

const ipForwardSysctl = "/proc/sys/net/ipv4/ip_forward"

// CNINetwork is a private bridge network for one daemon's pods: a bridge
// with a unique name, a /24 of 10.88.0.0/16 no interface on the host uses,
// host-local IPAM with its state in Dir. Gateway is the bridge's address,
// so the host reaches the pods directly; there is no masquerading and so no
// iptables rule.
type CNINetwork struct {
	Name    string // the CNI network name
	Bridge  string // the bridge device
	Subnet  string // e.g. 10.88.37.0/24
	Gateway string // e.g. 10.88.37.1
	Dir     string // holds conf/ (the daemon's conf_dir) and ipam/
	ConfDir string

	ipForward []byte // net.ipv4.ip_forward before; the bridge plugin sets it
}

// NewCNINetwork writes the conflist of a fresh network into dir/conf.
func NewCNINetwork(dir string) (*CNINetwork, error) {
	suffix := make([]byte, 3)
	if _, err := rand.Read(suffix); err != nil {
		return nil, err
	}
	h := hex.EncodeToString(suffix)
	n := &CNINetwork{
		Name:    "runsc-shim-" + h,
		Bridge:  "rsc" + h,
		Dir:     dir,
		ConfDir: filepath.Join(dir, "conf"),
	}
	octet, err := freeOctet()
	if err != nil {
		return nil, err
	}
	n.Subnet = fmt.Sprintf("10.88.%d.0/24", octet)
	n.Gateway = fmt.Sprintf("10.88.%d.1", octet)
	n.ipForward, _ = os.ReadFile(ipForwardSysctl)

	conf := map[string]any{
		"cniVersion": "1.0.0",
		"name":       n.Name,
		"plugins": []any{map[string]any{
			"type":        "bridge",
			"bridge":      n.Bridge,
			"isGateway":   true,
			"ipMasq":      false,
			"hairpinMode": false,
			"ipam": map[string]any{
				"type":    "host-local",
				"ranges":  [][]map[string]string{{{"subnet": n.Subnet, "gateway": n.Gateway}}},
				"dataDir": filepath.Join(dir, "ipam"),
			},
		}},
	}
	b, err := json.MarshalIndent(conf, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(n.ConfDir, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(n.ConfDir, "10-"+n.Name+".conflist"), b, 0o644); err != nil {
		return nil, err
	}
	return n, nil
}

// freeOctet picks x at random so that no host address is in 10.88.x.0/24.
func freeOctet() (int, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return 0, err
	}
	for range 50 {
		r, err := rand.Int(rand.Reader, big.NewInt(200))
		if err != nil {
			return 0, err
		}
		x := 20 + int(r.Int64())
		_, subnet, _ := net.ParseCIDR(fmt.Sprintf("10.88.%d.0/24", x))
		used := false
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && (subnet.Contains(ipn.IP) || ipn.Contains(subnet.IP)) {
				used = true
			}
		}
		if !used {
			return x, nil
		}
	}
	return 0, errors.New("no free 10.88.x.0/24 subnet")
}

// Cleanup deletes the bridge, restores net.ipv4.ip_forward and reports
// iptables rules and CNI cache entries naming the network, bridge or subnet.
func (n *CNINetwork) Cleanup(logf Logf) error {
	var errs []error
	if _, err := net.InterfaceByName(n.Bridge); err == nil {
		if out, err := exec.Command("ip", "link", "del", n.Bridge).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("ip link del %s: %v: %s", n.Bridge, err, out))
		} else {
			logf.printf("deleted bridge %s", n.Bridge)
		}
	}
	if len(n.ipForward) > 0 {
		if cur, err := os.ReadFile(ipForwardSysctl); err == nil && string(cur) != string(n.ipForward) {
			if err := os.WriteFile(ipForwardSysctl, n.ipForward, 0o644); err != nil {
				errs = append(errs, fmt.Errorf("restore %s: %w", ipForwardSysctl, err))
			}
		}
	}
	if rules := n.IptablesRules(); len(rules) > 0 {
		errs = append(errs, fmt.Errorf("iptables rules left for %s: %s", n.Name, strings.Join(rules, "; ")))
	}
	if ents, err := os.ReadDir(cniCacheDir); err == nil {
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), n.Name+"-") {
				errs = append(errs, fmt.Errorf("CNI cache entry left: %s", filepath.Join(cniCacheDir, e.Name())))
				_ = os.Remove(filepath.Join(cniCacheDir, e.Name()))
			}
		}
	}
	return errors.Join(errs...)
}

// IptablesRules lists iptables rules mentioning the network, its bridge or
// its subnet (there should be none: ipMasq is off).
func (n *CNINetwork) IptablesRules() []string {
	out, err := exec.Command("iptables-save").Output()
	if err != nil {
		return nil
	}
	var rules []string
	prefix := strings.TrimSuffix(n.Subnet, ".0/24") + "."
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, n.Name) || strings.Contains(line, n.Bridge) || strings.Contains(line, prefix) {
			rules = append(rules, line)
		}
	}
	return rules
}

// CacheEntries lists libcni's cached results for the sandbox: the
// attachment to this network and containerd's loopback one
// (cni-loopback-<id>-lo).
func (n *CNINetwork) CacheEntries(sandboxID string) []string {
	m, _ := filepath.Glob(filepath.Join(cniCacheDir, "*-"+sandboxID+"-*"))
	return m
}

// cachedAttachments returns, by sandbox id, the network namespaces of the
// attachments to this network that libcni still has cached.
func (n *CNINetwork) cachedAttachments() map[string]string {
	out := map[string]string{}
	m, _ := filepath.Glob(filepath.Join(cniCacheDir, n.Name+"-*"))
	for _, path := range m {
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		var entry struct {
			ContainerID string `json:"containerId"`
			NetNS       string `json:"netns"`
		}
		if json.Unmarshal(b, &entry) == nil && entry.ContainerID != "" {
			out[entry.ContainerID] = entry.NetNS
		}
	}
	return out
}
