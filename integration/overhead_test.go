package integration

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	nodev1 "k8s.io/api/node/v1"
	"sigs.k8s.io/yaml"

	"github.com/gvisor-shim/containerd-shim-runsc-v1/integration/harness"
)

// procKiB reads a "<key> <n> kB" line of a /proc file.
func procKiB(path, key string) int64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), key); ok {
			n, _ := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
			return n
		}
	}
	return 0
}

// runtimeClassOverhead reads overhead.podFixed.memory of the gvisor
// RuntimeClass in deploy/runtimeclass.yaml, in bytes.
func runtimeClassOverhead(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "deploy", "runtimeclass.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range strings.Split(string(b), "\n---\n") {
		if !strings.Contains(doc, "kind: RuntimeClass") {
			continue
		}
		var rc nodev1.RuntimeClass
		if err := yaml.UnmarshalStrict([]byte(doc), &rc); err != nil {
			t.Fatalf("deploy/runtimeclass.yaml: %v", err)
		}
		if rc.Overhead == nil {
			t.Fatal("the RuntimeClass has no overhead")
		}
		return rc.Overhead.PodFixed.Memory().Value()
	}
	t.Fatal("no RuntimeClass in deploy/runtimeclass.yaml")
	return 0
}

// TestRuntimeClassOverhead measures what one idle gVisor pod (pause + one
// sleeping container) costs on the host, outside the containers' own
// limits: the resident memory of its runsc-sandbox (the Sentry), its
// runsc-gofer, its shim and the runsc processes the shim keeps (wait), and
// checks that the RuntimeClass's overhead.podFixed.memory covers it.
func TestRuntimeClassOverhead(t *testing.T) {
	declared := runtimeClassOverhead(t)
	forEachCRIDaemon(t, func(t *testing.T, e *criEnv) {
		p := e.runPod(t, "overhead", harness.HandlerRunsc, nil)
		p.start(t, criContainer{name: "app", command: []string{"sleep", "3600"}})
		byKind := map[string][2]int64{} // kind -> {count, rss KiB}
		var total, pss int64
		for _, proc := range harness.ProcessesMentioning(p.id) {
			if proc.Name == "containerd" {
				continue
			}
			dir := filepath.Join("/proc", strconv.Itoa(proc.Pid))
			rss := procKiB(filepath.Join(dir, "status"), "VmRSS:")
			kind := proc.Name
			if kind == "runsc" && len(proc.Argv) > 0 {
				for _, a := range proc.Argv[1:] {
					if !strings.HasPrefix(a, "-") {
						kind = "runsc " + a
						break
					}
				}
			}
			c := byKind[kind]
			byKind[kind] = [2]int64{c[0] + 1, c[1] + rss}
			total += rss
			pss += procKiB(filepath.Join(dir, "smaps_rollup"), "Pss:")
		}
		var kinds []string
		for k, v := range byKind {
			kinds = append(kinds, fmt.Sprintf("%s x%d %d KiB", k, v[0], v[1]))
		}
		sort.Strings(kinds)
		t.Logf("idle gVisor pod on containerd %s, runsc %s: RSS %d KiB (PSS %d KiB): %s; RuntimeClass overhead %d KiB",
			e.c.Version, harness.Runsc(), total, pss, strings.Join(kinds, ", "), declared/1024)
		if byKind["runsc-sandbox"][0] == 0 || byKind["runsc-gofer"][0] == 0 || byKind[harness.ShimBinaryName][0] == 0 {
			t.Fatalf("did not find the pod's sandbox, gofer and shim among its processes: %v", kinds)
		}
		if total*1024 > declared {
			t.Errorf("an idle gVisor pod uses %d KiB on the host, more than the RuntimeClass's overhead.podFixed.memory (%d KiB)", total, declared/1024)
		}
	})
}
