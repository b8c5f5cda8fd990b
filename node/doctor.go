package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/pelletier/go-toml/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Check is one line of doctor's report.
type Check struct {
	Name string
	OK   bool
	// Detail says what was found; Fix what to do about a failure.
	Detail string
	Fix    string
}

func (c Check) String() string {
	if c.OK {
		return fmt.Sprintf("ok   %s: %s", c.Name, c.Detail)
	}
	return fmt.Sprintf("FAIL %s: %s; fix: %s", c.Name, c.Detail, c.Fix)
}

// ErrNodeNotReady is returned by Doctor when a check failed.
var ErrNodeNotReady = errors.New("this node cannot run gVisor pods")

// Doctor checks the node and prints one line per check. It returns
// ErrNodeNotReady (wrapped) if any check failed.
func Doctor(ctx context.Context, opts Options) ([]Check, error) {
	opts.defaults()
	var checks []Check
	report := func(c Check) {
		checks = append(checks, c)
		fmt.Fprintln(opts.Out, c.String())
	}
	n, err := Discover(ctx, opts)
	if err != nil {
		report(Check{Name: "containerd", Detail: err.Error(), Fix: "install containerd, or pass --containerd-bin / --containerd-address"})
		return checks, fmt.Errorf("%w: %d check(s) failed", ErrNodeNotReady, 1)
	}
	for _, c := range n.Doctor(ctx) {
		report(c)
	}
	failed := 0
	for _, c := range checks {
		if !c.OK {
			failed++
		}
	}
	if failed > 0 {
		return checks, fmt.Errorf("%w: %d check(s) failed", ErrNodeNotReady, failed)
	}
	return checks, nil
}

// runscFile is runsc.toml as the shim reads it (shim.Config); unknown keys
// are errors there too.
type runscFile struct {
	BinaryName  string         `toml:"binary_name"`
	Root        string         `toml:"root"`
	LogLevel    string         `toml:"log_level"`
	LogPath     string         `toml:"log_path"`
	RunscConfig map[string]any `toml:"runsc_config"`
	ShimCgroup  string         `toml:"shim_cgroup"`
	IoUID       uint32         `toml:"io_uid"`
	IoGID       uint32         `toml:"io_gid"`
}

// shimOwnedFlags are runsc flags the shim sets itself.
var shimOwnedFlags = map[string]bool{"root": true, "log": true, "log-format": true}

// Doctor runs the checks on a discovered node.
func (n *Node) Doctor(ctx context.Context) []Check {
	var out []Check
	add := func(c Check) { out = append(out, c) }

	running := "not running on " + n.opts.ContainerdAddress
	if n.Process != nil {
		running = fmt.Sprintf("pid %d on %s", n.Process.Pid, n.opts.ContainerdAddress)
	}
	add(Check{Name: "containerd", OK: true, Detail: fmt.Sprintf("%s (%s, %s), config %s", n.Version, n.Bin, running, n.Config)})

	// The runtime in the effective config.
	var runtime map[string]any
	var plugin string
	var dumpDoc map[string]any
	dump, err := n.ConfigDump(ctx)
	if err == nil {
		dumpDoc, err = parseConfig("containerd config dump", dump)
	}
	if err != nil {
		add(Check{Name: "runtime in containerd config", Detail: fmt.Sprintf("cannot read the effective config: %v", err), Fix: "fix containerd's config file " + n.Config})
	} else {
		runtimes, p, _ := EffectiveRuntimes(dump)
		plugin = p
		runtime, _ = runtimes[RuntimeName].(map[string]any)
		switch {
		case runtime == nil:
			add(Check{Name: "runtime in containerd config", Detail: fmt.Sprintf("no %q runtime in the effective config (`containerd --config %s config dump`)", RuntimeName, n.Config),
				Fix: "run `runsc-node install` (or merge the runtime tables of the README into " + n.Config + ") and restart containerd"})
		case runtime["runtime_type"] != RuntimeType:
			add(Check{Name: "runtime in containerd config", Detail: fmt.Sprintf("runtime %q has runtime_type %v", RuntimeName, runtime["runtime_type"]),
				Fix: fmt.Sprintf("set runtime_type = %q in [plugins.%q.containerd.runtimes.%s]", RuntimeType, plugin, RuntimeName)})
		default:
			add(Check{Name: "runtime in containerd config", OK: true, Detail: fmt.Sprintf("plugins.%q.containerd.runtimes.%s, runtime_type %s", plugin, RuntimeName, RuntimeType)})
		}
	}

	// The shim on containerd's PATH.
	pathDirs := n.containerdPATH()
	pathFrom := "containerd's environment"
	if n.Process == nil {
		pathFrom = "the default PATH (containerd is not running)"
	}
	if p, err := n.host.LookPath(ShimName, pathDirs); err != nil {
		add(Check{Name: "shim on containerd's PATH", Detail: fmt.Sprintf("%s is not in %s (PATH from %s)", ShimName, strings.Join(pathDirs, ":"), pathFrom),
			Fix: fmt.Sprintf("run `runsc-node install` (installs it into %s) or copy %s into a directory of containerd's PATH", DefaultShimDir, ShimName)})
	} else {
		add(Check{Name: "shim on containerd's PATH", OK: true, Detail: p})
	}

	// runsc.toml.
	cfgPath := n.opts.RunscConfig
	if runtime != nil {
		if o, ok := runtime["options"].(map[string]any); ok {
			if c, ok := o["ConfigPath"].(string); ok && c != "" {
				cfgPath = c
			}
		}
	}
	var rf runscFile
	cfgOK := false
	if b, err := n.read(cfgPath); err != nil {
		add(Check{Name: "runsc.toml", Detail: fmt.Sprintf("%s (the runtime's ConfigPath): %v", cfgPath, err), Fix: "run `runsc-node install` (writes it) or create it (README, \"runsc.toml\")"})
	} else if err := decodeStrict(b, &rf); err != nil {
		add(Check{Name: "runsc.toml", Detail: fmt.Sprintf("%s: %v", cfgPath, err), Fix: fmt.Sprintf("correct %s: keys are binary_name, root, log_level, log_path, shim_cgroup, io_uid, io_gid and the [runsc_config] table", cfgPath)})
	} else {
		cfgOK = true
	}

	// runsc.
	runscName := rf.BinaryName
	if runscName == "" {
		runscName = n.opts.Runsc
	}
	if runscName == "" {
		runscName = "runsc"
	}
	saved := n.opts.Runsc
	n.opts.Runsc = runscName
	rb, err := n.findRunsc(ctx)
	n.opts.Runsc = saved
	if err != nil {
		fix := "install runsc (e.g. `apt install runsc`) on containerd's PATH"
		if rf.BinaryName != "" {
			fix = fmt.Sprintf("install runsc at %s or correct binary_name in %s", rf.BinaryName, cfgPath)
		}
		add(Check{Name: "runsc", Detail: err.Error(), Fix: fix})
	} else {
		add(Check{Name: "runsc", OK: true, Detail: fmt.Sprintf("%s (%s)", rb.Features.Version, rb.HostPath)})
	}

	var flags []string
	network := "sandbox"
	if cfgOK {
		var bad []string
		keys := make([]string, 0, len(rf.RunscConfig))
		for k := range rf.RunscConfig {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			v := fmt.Sprint(rf.RunscConfig[k])
			switch {
			case shimOwnedFlags[k]:
				bad = append(bad, fmt.Sprintf("[runsc_config] key %q is set by the shim itself", k))
			case rb != nil && !rb.Features.HasFlag(k):
				bad = append(bad, fmt.Sprintf("[runsc_config] key %q is not a flag of runsc %s", k, rb.Features.Version))
			default:
				flags = append(flags, "--"+k+"="+v)
			}
			if k == "network" {
				network = v
			}
		}
		if len(bad) > 0 {
			add(Check{Name: "runsc.toml", Detail: cfgPath + ": " + strings.Join(bad, "; "), Fix: fmt.Sprintf("remove those keys from %s (see `runsc flags`)", cfgPath)})
			cfgOK = false
		} else {
			shown := "none"
			if len(flags) > 0 {
				shown = strings.Join(flags, " ")
			}
			add(Check{Name: "runsc.toml", OK: true, Detail: fmt.Sprintf("%s valid (runsc flags: %s)", cfgPath, shown)})
		}
	}

	// A test sandbox with the configured flags, and which network modes work.
	if rb != nil {
		var works []string
		for _, r := range ProbeNetworks(ctx, rb, NetworkModes) {
			if r.Err == nil {
				works = append(works, r.Network)
			}
		}
		platforms := ProbePlatforms(ctx, rb)
		add(Check{Name: "runsc platforms", OK: len(platforms) > 0, Detail: "platforms that start a sandbox: " + orNone(platforms),
			Fix: fmt.Sprintf("none of %s starts: run `%s --network=none --platform=ptrace do true` to see why", strings.Join(Platforms, ", "), rb.HostPath)})
		if cfgOK {
			if err := probeSandbox(ctx, rb, flags...); err != nil {
				fix := "no network mode starts a sandbox here: see the error"
				if len(works) > 0 {
					fix = fmt.Sprintf("set network = %q in [runsc_config] of %s", works[0], cfgPath)
				}
				add(Check{Name: "test sandbox", Detail: fmt.Sprintf("with the runsc.toml flags (network %q): %v; network modes that start: %s", network, err, orNone(works)), Fix: fix})
			} else {
				add(Check{Name: "test sandbox", OK: true, Detail: fmt.Sprintf("starts with the runsc.toml flags (network %q, platform %s); network modes that start: %s", network, platformOf(rf), orNone(works))})
			}
		} else if len(works) == 0 {
			add(Check{Name: "test sandbox", Detail: "no network mode starts a sandbox (`runsc do true`)", Fix: fmt.Sprintf("run `%s --network=none do true` to see why", rb.HostPath)})
		} else {
			add(Check{Name: "test sandbox", OK: true, Detail: fmt.Sprintf("starts with runsc's defaults; network modes that start: %s (runsc.toml not usable: see above)", orNone(works))})
		}
	}

	// cgroups.
	cg := "v1"
	if n.host.Exists("/sys/fs/cgroup/cgroup.controllers") {
		cg = "v2"
	}
	driver := "cgroupfs"
	if v, ok := lookup(dumpDoc, "plugins", plugin, "containerd", "runtimes", "runc", "options", "SystemdCgroup"); ok && v == true {
		driver = "systemd (runc's SystemdCgroup = true)"
	}
	pid1 := "PID 1 is not systemd"
	if n.systemd() {
		pid1 = "PID 1 is systemd"
	}
	add(Check{Name: "cgroups", OK: true, Detail: fmt.Sprintf("cgroup %s, driver %s, %s", cg, driver, pid1)})

	// Capabilities.
	add(n.capabilityCheck(dumpDoc))

	// The CRI plugin of the running containerd.
	add(n.criCheck(ctx))
	return out
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

func platformOf(rf runscFile) string {
	if p, ok := rf.RunscConfig["platform"]; ok {
		return fmt.Sprint(p)
	}
	return "runsc's default"
}

func decodeStrict(b []byte, v any) error {
	d := toml.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		var sm *toml.StrictMissingError
		if errors.As(err, &sm) {
			var keys []string
			for _, e := range sm.Errors {
				row, _ := e.Position()
				keys = append(keys, fmt.Sprintf("%s (line %d)", strings.Join(e.Key(), "."), row))
			}
			return fmt.Errorf("unknown key %s", strings.Join(keys, ", "))
		}
		var de *toml.DecodeError
		if errors.As(err, &de) {
			row, col := de.Position()
			return fmt.Errorf("line %d column %d: %w", row, col, err)
		}
		return err
	}
	return nil
}

// capSysResource is CAP_SYS_RESOURCE's bit.
const capSysResource = 24

// capabilityCheck finds out whether the host lets processes lower their
// oom_score_adj (CAP_SYS_RESOURCE), which containerd's CRI does for every
// container unless restrict_oom_score_adj is set.
func (n *Node) capabilityCheck(dump map[string]any) Check {
	c := Check{Name: "capabilities"}
	lacking := false
	src := "runsc-node's own"
	capEff := ""
	pidDir := "self"
	if n.Process != nil {
		pidDir, src = strconv.Itoa(n.Process.Pid), "containerd's"
	}
	if b, err := os.ReadFile(filepath.Join(procRoot, pidDir, "status")); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "CapEff:"); ok {
				capEff = strings.TrimSpace(v)
			}
		}
	}
	if v, err := strconv.ParseUint(capEff, 16, 64); err == nil && v&(1<<capSysResource) == 0 {
		lacking = true
	}
	// And try it: lower our own oom_score_adj by one, then put it back.
	if b, err := os.ReadFile("/proc/self/oom_score_adj"); err == nil {
		if cur, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && cur > -1000 {
			if err := os.WriteFile("/proc/self/oom_score_adj", []byte(strconv.Itoa(cur-1)), 0); err != nil {
				lacking = true
			} else {
				_ = os.WriteFile("/proc/self/oom_score_adj", []byte(strconv.Itoa(cur)), 0)
			}
		}
	}
	if !lacking {
		c.OK, c.Detail = true, fmt.Sprintf("CAP_SYS_RESOURCE present (%s CapEff %s)", src, capEff)
		return c
	}
	restricted := false
	for _, p := range []string{criPluginV2, criPluginV3} {
		if v, ok := lookup(dump, "plugins", p, "restrict_oom_score_adj"); ok && v == true {
			restricted = true
		}
	}
	if restricted {
		c.OK, c.Detail = true, fmt.Sprintf("the host lacks CAP_SYS_RESOURCE (%s CapEff %s; a negative oom_score_adj is refused), and the CRI has restrict_oom_score_adj = true; the shim warns and runs without OOM protection", src, capEff)
		return c
	}
	plugin := criPluginV2
	if n.Version.Major >= 2 {
		plugin = criPluginV3 + "\"] (version 3) or [plugins.\"" + criPluginV2
	}
	c.Detail = fmt.Sprintf("the host lacks CAP_SYS_RESOURCE (%s CapEff %s; a negative oom_score_adj is refused): containerd's CRI cannot set container OOM scores and every pod fails", src, capEff)
	c.Fix = fmt.Sprintf("set restrict_oom_score_adj = true in [plugins.\"%s\"] of %s, or run containerd with CAP_SYS_RESOURCE", plugin, n.Config)
	return c
}

// criCheck asks the running containerd whether its CRI plugin loaded.
func (n *Node) criCheck(ctx context.Context) Check {
	c := Check{Name: "CRI plugin"}
	if n.Process == nil {
		c.Detail = "containerd is not running on " + n.opts.ContainerdAddress
		c.Fix = n.restartCommand()
		return c
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	cl, err := n.dial(ctx)
	if err != nil {
		c.Detail, c.Fix = err.Error(), "check that containerd serves on "+n.opts.ContainerdAddress
		return c
	}
	defer cl.Close()
	resp, err := cl.IntrospectionService().Plugins(namespaces.WithNamespace(ctx, n.opts.VerifyNamespace))
	if err != nil {
		c.Detail, c.Fix = fmt.Sprintf("list plugins: %v", err), "check containerd's log"
		return c
	}
	want := map[string]bool{"io.containerd.grpc.v1.cri": true, "io.containerd.cri.v1.runtime": true}
	var seen, failed []string
	for _, p := range resp.Plugins {
		id := p.Type + "." + p.ID
		if !want[id] {
			continue
		}
		if p.InitErr != nil {
			failed = append(failed, fmt.Sprintf("%s: %s", id, p.InitErr.Message))
		} else {
			seen = append(seen, id)
		}
	}
	switch {
	case len(failed) > 0:
		c.Detail = "failed to load: " + strings.Join(failed, "; ")
		c.Fix = "correct containerd's config (" + n.Config + ") and restart containerd; kubelet cannot use this node until then"
	case len(seen) == 0:
		c.Detail = "containerd has no CRI plugin (disabled_plugins?)"
		c.Fix = "remove \"cri\" / \"io.containerd.grpc.v1.cri\" from disabled_plugins in " + n.Config + " and restart containerd"
	default:
		c.OK, c.Detail = true, "loaded: "+strings.Join(seen, ", ")
		loaded, err := n.runningRuntimes(ctx)
		switch {
		case err != nil:
			c.Detail += fmt.Sprintf(" (cannot read its runtimes: %v)", err)
		case !loaded[RuntimeName]:
			c.OK = false
			c.Detail += fmt.Sprintf(", but the running containerd has no %q runtime (it has %s): it was not restarted since the config changed", RuntimeName, orNone(sortedNames(loaded)))
			c.Fix = n.restartCommand()
		default:
			c.Detail += fmt.Sprintf(", runtimes %s", strings.Join(sortedNames(loaded), ", "))
		}
	}
	return c
}

func sortedNames(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// runningRuntimes asks the running CRI plugin (CRI Status, verbose) which
// runtimes it has loaded.
func (n *Node) runningRuntimes(ctx context.Context) (map[string]bool, error) {
	addr, err := n.host.Path(n.opts.ContainerdAddress)
	if err != nil {
		return nil, err
	}
	conn, err := grpc.NewClient("unix://"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	st, err := runtimeapi.NewRuntimeServiceClient(conn).Status(ctx, &runtimeapi.StatusRequest{Verbose: true})
	if err != nil {
		return nil, fmt.Errorf("CRI Status: %w", err)
	}
	var cfg struct {
		Containerd struct {
			Runtimes map[string]json.RawMessage `json:"runtimes"`
		} `json:"containerd"`
	}
	if err := json.Unmarshal([]byte(st.GetInfo()["config"]), &cfg); err != nil {
		return nil, fmt.Errorf("CRI Status config: %w", err)
	}
	out := map[string]bool{}
	for k := range cfg.Containerd.Runtimes {
		out[k] = true
	}
	if len(out) == 0 {
		return nil, errors.New("CRI Status lists no runtimes")
	}
	return out, nil
}
