package node

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2"
)

// The runtime runsc-node adds to containerd's CRI configuration.
const (
	RuntimeName    = "runsc"
	RuntimeType    = "io.containerd.runsc.v1"
	OptionsTypeURL = "io.containerd.runsc.v1.options"
	// DefaultRunscConfig is the runsc.toml the runtime's ConfigPath names.
	DefaultRunscConfig = "/etc/containerd/runsc.toml"
)

// CRI plugin ids holding the runtimes: version 2 files (containerd 1.x,
// migrated by 2.x) and version 3+ files (containerd 2.x).
const (
	criPluginV2 = "io.containerd.grpc.v1.cri"
	criPluginV3 = "io.containerd.cri.v1.runtime"
)

// addedMarker starts the text runsc-node appends to a config file.
const addedMarker = "# Added by runsc-node install (gVisor, containerd-shim-runsc-v1); `runsc-node uninstall` restores this file."

// Version is a containerd version.
type Version struct {
	Major, Minor, Patch int
	Raw                 string
}

func (v Version) String() string { return v.Raw }

var versionRE = regexp.MustCompile(`^v?(\d+)\.(\d+)\.(\d+)`)

// ParseVersion parses the output of `containerd --version`, e.g.
// "containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+deb12u3".
func ParseVersion(out string) (Version, error) {
	fields := strings.Fields(out)
	for _, f := range fields {
		if m := versionRE.FindStringSubmatch(f); m != nil {
			v := Version{Raw: f}
			v.Major, _ = strconv.Atoi(m[1])
			v.Minor, _ = strconv.Atoi(m[2])
			v.Patch, _ = strconv.Atoi(m[3])
			return v, nil
		}
	}
	return Version{}, fmt.Errorf("no version in containerd --version output %q", strings.TrimSpace(out))
}

// MergeInput is what Merge needs to know about the node.
type MergeInput struct {
	Containerd Version
	// Config is the host path of containerd's main config file.
	Config string
	// Read reads a host path; a missing file is an error wrapping
	// os.ErrNotExist.
	Read func(path string) ([]byte, error)
	// Glob expands an import pattern (host paths).
	Glob func(pattern string) ([]string, error)
	// RunscConfig is the ConfigPath written into the runtime's options.
	RunscConfig string
	// DefaultRuntimes are the CRI runtimes of containerd's effective
	// config before the install (from `config dump`), by name. containerd
	// 1.x replaces its built-in runtimes (runc) by the runtimes of the file
	// that defines any: when the owning file defines none, they are
	// written along with runsc. Nil: a plain runc runtime is written.
	DefaultRuntimes map[string]any
}

// Merge is the change to one config file.
type Merge struct {
	// File is the host path of the file to write.
	File string
	// Existed tells whether File existed; Before is its content.
	Existed bool
	Before  []byte
	// After is the new content; equal to Before when Unchanged.
	After []byte
	// Unchanged: the runtime is already there, exactly as runsc-node
	// writes it.
	Unchanged bool
	// Why explains the choice of file.
	Why string
}

// configFile is one parsed file of containerd's config.
type configFile struct {
	path    string
	data    []byte
	doc     map[string]any
	version int64
}

func (f *configFile) criPlugin() string {
	if f.version >= 3 {
		return criPluginV3
	}
	return criPluginV2
}

func parseConfig(path string, data []byte) (map[string]any, error) {
	doc := map[string]any{}
	if err := toml.Unmarshal(data, &doc); err != nil {
		var de *toml.DecodeError
		if errors.As(err, &de) {
			row, col := de.Position()
			return nil, fmt.Errorf("parse %s: line %d column %d: %w", path, row, col, err)
		}
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	return doc, nil
}

func fileVersion(doc map[string]any) (int64, bool) {
	v, ok := doc["version"].(int64)
	return v, ok
}

// lookup walks nested tables.
func lookup(doc map[string]any, keys ...string) (any, bool) {
	var cur any = doc
	for _, k := range keys {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[k]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// Plan computes the change that adds the runsc runtime, or refuses with an
// error that says why and what to do.
func Plan(in MergeInput) (*Merge, error) {
	if in.RunscConfig == "" {
		in.RunscConfig = DefaultRunscConfig
	}
	legacy := in.Containerd.Major < 2
	data, err := in.Read(in.Config)
	if errors.Is(err, os.ErrNotExist) {
		return planNewFile(in), nil
	}
	if err != nil {
		return nil, fmt.Errorf("read containerd config: %w", err)
	}
	doc, err := parseConfig(in.Config, data)
	if err != nil {
		return nil, fmt.Errorf("containerd config is not valid TOML, refusing to edit it: %w", err)
	}
	version, ok := fileVersion(doc)
	if !ok {
		version = 1
	}
	switch {
	case version <= 1:
		return nil, fmt.Errorf("%s is a version 1 containerd config (no `version = 2`): runsc-node only merges into version 2 (containerd 1.6/1.7) or 3 (containerd 2.x) files; convert it (containerd 2.x: `containerd config migrate`), then run install again", in.Config)
	case version >= 3 && legacy:
		return nil, fmt.Errorf("%s is a version %d config but containerd is %s: containerd 1.x silently ignores version %d files (the CRI plugin would run with built-in defaults); rewrite it as a version 2 file first", in.Config, version, in.Containerd, version)
	}
	files := []*configFile{{path: in.Config, data: data, doc: doc, version: version}}
	if err := loadImports(in, files[0], &files, map[string]bool{in.Config: true}); err != nil {
		return nil, err
	}

	// The file that owns the CRI plugin section: the last one to define
	// it (containerd 1.x: a later file's plugin section replaces an
	// earlier one's whole).
	target := files[0]
	why := fmt.Sprintf("%s (the main config; no file defines the CRI plugin section)", in.Config)
	for _, f := range files {
		if _, ok := lookup(f.doc, "plugins", f.criPlugin()); ok {
			target = f
			why = fmt.Sprintf("%s defines the CRI plugin section [plugins.%q]", f.path, f.criPlugin())
		}
	}
	// Our runtime already somewhere? On 1.x only the owner's CRI section
	// counts: a later file's section replaces an earlier one's whole.
	for _, f := range files {
		for _, plugin := range []string{criPluginV2, criPluginV3} {
			rt, ok := lookup(f.doc, "plugins", plugin, "containerd", "runtimes", RuntimeName)
			if !ok {
				continue
			}
			if legacy && f != target {
				return nil, fmt.Errorf("%s defines a %q runtime that has no effect on containerd %s: %s's CRI plugin section replaces that file's whole; remove it from %s, then run install again",
					f.path, RuntimeName, in.Containerd, target.path, f.path)
			}
			if diffs := diffRuntime(rt, in.RunscConfig); len(diffs) > 0 {
				return nil, fmt.Errorf("%s already defines a %q runtime (plugins.%q.containerd.runtimes.%s) that differs from runsc-node's: %s; remove that runtime or make it match, then run install again",
					f.path, RuntimeName, plugin, RuntimeName, strings.Join(diffs, "; "))
			}
			return &Merge{File: f.path, Existed: true, Before: f.data, After: f.data, Unchanged: true,
				Why: fmt.Sprintf("%s already defines the %q runtime", f.path, RuntimeName)}, nil
		}
	}

	if legacy && target.version >= 3 {
		return nil, fmt.Errorf("%s (imported) is a version %d file that containerd %s ignores; refusing to edit it", target.path, target.version, in.Containerd)
	}
	if len(files) > 1 {
		why += fmt.Sprintf(" (of %d files: main and imports)", len(files))
	}

	var add bytes.Buffer
	add.WriteString("\n" + addedMarker + "\n")
	plugin := target.criPlugin()
	if legacy {
		if _, ok := lookup(target.doc, "plugins", plugin, "containerd", "runtimes"); !ok {
			writeDefaultRuntimes(&add, plugin, in.DefaultRuntimes)
		}
	}
	writeRuntime(&add, plugin, in.RunscConfig)

	after := append([]byte{}, target.data...)
	if len(after) > 0 && after[len(after)-1] != '\n' {
		after = append(after, '\n')
	}
	after = append(after, add.Bytes()...)
	if err := checkOnlyAdded(target, after, plugin); err != nil {
		return nil, fmt.Errorf("cannot merge into %s by appending tables: %w; add this by hand instead:\n%s", target.path, err, add.String())
	}
	return &Merge{File: target.path, Existed: true, Before: target.data, After: after, Why: why}, nil
}

// loadImports appends f's imports, in containerd's order, recursively.
func loadImports(in MergeInput, f *configFile, files *[]*configFile, seen map[string]bool) error {
	raw, ok := f.doc["imports"]
	if !ok {
		return nil
	}
	list, ok := raw.([]any)
	if !ok {
		return fmt.Errorf("%s: imports is not an array of strings", f.path)
	}
	for _, item := range list {
		pattern, ok := item.(string)
		if !ok {
			return fmt.Errorf("%s: imports holds %v, not a string", f.path, item)
		}
		// containerd resolves a relative import against the importing
		// file's directory; 2.x expands '*' in any of them, 1.x only in
		// absolute ones (a relative "conf.d/*.toml" imports nothing).
		glob := strings.Contains(pattern, "*") && (filepath.IsAbs(pattern) || in.Containerd.Major >= 2)
		if !filepath.IsAbs(pattern) {
			pattern = filepath.Join(filepath.Dir(f.path), pattern)
		}
		matches := []string{filepath.Clean(pattern)}
		if glob {
			var err error
			if matches, err = in.Glob(pattern); err != nil {
				return fmt.Errorf("%s: imports %q: %w", f.path, pattern, err)
			}
		}
		for _, m := range matches {
			if seen[m] {
				continue
			}
			seen[m] = true
			data, err := in.Read(m)
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			if err != nil {
				return fmt.Errorf("read imported config: %w", err)
			}
			doc, err := parseConfig(m, data)
			if err != nil {
				return fmt.Errorf("imported containerd config is not valid TOML, refusing to edit: %w", err)
			}
			v, ok := fileVersion(doc)
			if !ok {
				v = f.version
			}
			imp := &configFile{path: m, data: data, doc: doc, version: v}
			*files = append(*files, imp)
			if err := loadImports(in, imp, files, seen); err != nil {
				return err
			}
		}
	}
	return nil
}

// ourRuntime is the runtime table as runsc-node writes it.
func ourRuntime(runscConfig string) map[string]any {
	return map[string]any{
		"runtime_type": RuntimeType,
		"options": map[string]any{
			"TypeUrl":    OptionsTypeURL,
			"ConfigPath": runscConfig,
		},
	}
}

// diffRuntime lists how an existing runtime table differs from ours.
func diffRuntime(existing any, runscConfig string) []string {
	m, ok := existing.(map[string]any)
	if !ok {
		return []string{fmt.Sprintf("it is %T, not a table", existing)}
	}
	var diffs []string
	compare("", m, ourRuntime(runscConfig), &diffs)
	sort.Strings(diffs)
	return diffs
}

func compare(prefix string, have, want map[string]any, diffs *[]string) {
	for k, w := range want {
		h, ok := have[k]
		switch {
		case !ok:
			*diffs = append(*diffs, fmt.Sprintf("%s%s is missing (want %s)", prefix, k, tomlValue(w)))
		default:
			wm, wIsMap := w.(map[string]any)
			hm, hIsMap := h.(map[string]any)
			if wIsMap && hIsMap {
				compare(prefix+k+".", hm, wm, diffs)
			} else if !reflect.DeepEqual(h, w) {
				*diffs = append(*diffs, fmt.Sprintf("%s%s is %s (want %s)", prefix, k, tomlValue(h), tomlValue(w)))
			}
		}
	}
	for k, h := range have {
		if _, ok := want[k]; !ok {
			*diffs = append(*diffs, fmt.Sprintf("%s%s = %s is set (runsc-node does not set it)", prefix, k, tomlValue(h)))
		}
	}
}

// checkOnlyAdded parses the new content and checks that it is the old
// content plus exactly the runtimes appended under plugin.
func checkOnlyAdded(old *configFile, after []byte, plugin string) error {
	doc, err := parseConfig(old.path, after)
	if err != nil {
		return err
	}
	runtimes, ok := lookup(doc, "plugins", plugin, "containerd", "runtimes")
	if !ok {
		return errors.New("the appended runtime is not in the parsed result")
	}
	rm := runtimes.(map[string]any)
	oldRuntimes, _ := lookup(old.doc, "plugins", plugin, "containerd", "runtimes")
	om, _ := oldRuntimes.(map[string]any)
	for name := range rm {
		if _, ok := om[name]; !ok {
			delete(rm, name)
		}
	}
	if om == nil {
		// The runtimes table (and maybe its parents) are new.
		c, _ := lookup(doc, "plugins", plugin, "containerd")
		cm := c.(map[string]any)
		delete(cm, "runtimes")
		if _, had := lookup(old.doc, "plugins", plugin, "containerd"); !had && len(cm) == 0 {
			p, _ := lookup(doc, "plugins", plugin)
			delete(p.(map[string]any), "containerd")
			if _, had := lookup(old.doc, "plugins", plugin); !had {
				ps, _ := lookup(doc, "plugins")
				delete(ps.(map[string]any), plugin)
				if _, had := old.doc["plugins"]; !had {
					delete(doc, "plugins")
				}
			}
		}
	}
	if !reflect.DeepEqual(doc, old.doc) {
		return errors.New("the result differs from the original in more than the appended runtime")
	}
	return nil
}

// planNewFile is a complete minimal config for a node without one.
func planNewFile(in MergeInput) *Merge {
	var b bytes.Buffer
	b.WriteString("# Written by runsc-node install: containerd's built-in defaults plus the gVisor runtime.\n")
	b.WriteString("# `runsc-node uninstall` removes this file.\n")
	plugin := criPluginV3
	if in.Containerd.Major < 2 {
		b.WriteString("version = 2\n")
		plugin = criPluginV2
		// containerd 1.x drops its built-in runc runtime once a file
		// defines any runtime: keep it (the default runtime).
		writeDefaultRuntimes(&b, plugin, in.DefaultRuntimes)
	} else {
		b.WriteString("version = 3\n")
	}
	writeRuntime(&b, plugin, in.RunscConfig)
	return &Merge{File: in.Config, After: b.Bytes(), Why: fmt.Sprintf("%s does not exist: containerd runs with its built-in defaults", in.Config)}
}

func header(keys ...string) string {
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = tomlKey(k)
	}
	return "[" + strings.Join(parts, ".") + "]"
}

var bareKey = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

func tomlKey(k string) string {
	if bareKey.MatchString(k) {
		return k
	}
	return tomlString(k)
}

func tomlValue(v any) string {
	switch x := v.(type) {
	case string:
		return tomlString(x)
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = tomlValue(e)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = tomlKey(k) + " = " + tomlValue(x[k])
		}
		return "{ " + strings.Join(parts, ", ") + " }"
	}
	b, err := toml.Marshal(map[string]any{"v": v})
	if err != nil {
		return tomlString(fmt.Sprint(v))
	}
	return strings.TrimPrefix(strings.TrimSpace(string(b)), "v = ")
}

// tomlString is s as a TOML basic string.
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func writeRuntime(b *bytes.Buffer, plugin, runscConfig string) {
	base := []string{"plugins", plugin, "containerd", "runtimes", RuntimeName}
	fmt.Fprintf(b, "%s\n  runtime_type = %s\n", header(base...), tomlString(RuntimeType))
	fmt.Fprintf(b, "%s\n  TypeUrl = %s\n  ConfigPath = %s\n", header(append(base, "options")...),
		tomlString(OptionsTypeURL), tomlString(runscConfig))
}

// writeDefaultRuntimes writes containerd's effective runtimes (other than
// runsc) as tables, or a plain runc runtime when they are unknown.
func writeDefaultRuntimes(b *bytes.Buffer, plugin string, runtimes map[string]any) {
	if len(runtimes) == 0 {
		runtimes = map[string]any{"runc": map[string]any{"runtime_type": "io.containerd.runc.v2"}}
	}
	names := make([]string, 0, len(runtimes))
	for n := range runtimes {
		if n != RuntimeName {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		m, ok := runtimes[n].(map[string]any)
		if !ok {
			continue
		}
		writeTable(b, []string{"plugins", plugin, "containerd", "runtimes", n}, m)
	}
}

// writeTable writes m as [keys] with its scalars, then its sub-tables.
func writeTable(b *bytes.Buffer, keys []string, m map[string]any) {
	fmt.Fprintf(b, "%s\n", header(keys...))
	var scalars, tables []string
	for k, v := range m {
		if _, ok := v.(map[string]any); ok {
			tables = append(tables, k)
		} else {
			scalars = append(scalars, k)
		}
	}
	sort.Strings(scalars)
	sort.Strings(tables)
	for _, k := range scalars {
		fmt.Fprintf(b, "  %s = %s\n", tomlKey(k), tomlValue(m[k]))
	}
	for _, k := range tables {
		writeTable(b, append(append([]string{}, keys...), k), m[k].(map[string]any))
	}
}

// EffectiveRuntimes extracts the CRI runtimes from `containerd config dump`
// output (either plugin id).
func EffectiveRuntimes(dump []byte) (map[string]any, string, error) {
	doc, err := parseConfig("containerd config dump", dump)
	if err != nil {
		return nil, "", err
	}
	for _, plugin := range []string{criPluginV2, criPluginV3} {
		if rt, ok := lookup(doc, "plugins", plugin, "containerd", "runtimes"); ok {
			if m, ok := rt.(map[string]any); ok {
				return m, plugin, nil
			}
		}
	}
	return map[string]any{}, "", nil
}
