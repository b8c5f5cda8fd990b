package shim

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/gvisor-shim/containerd-shim-runsc-v1/runsc"
)

// Output of `runsc events --stats` from runsc 20221219 for a CPU-busy container.
const runscStatsOutput = `{"type":"stats","id":"st1","data":{"cpu":{"usage":{"total":792996555}},"memory":{"usage":{"limit":0,"usage":2035712,"failcnt":0},"swap":{"limit":0,"failcnt":0},"kernel":{"limit":0,"failcnt":0},"kernelTCP":{"limit":0,"failcnt":0}},"pids":{"current":1}}}`

func TestMetricsFromRunscStats(t *testing.T) {
	st, err := runsc.ParseStats([]byte(runscStatsOutput))
	if err != nil {
		t.Fatal(err)
	}
	m1 := metricsV1(st, 64<<20)
	if m1.CPU.Usage.Total != 792996555 || m1.Memory.Usage.Usage != 2035712 || m1.Memory.Usage.Limit != 64<<20 || m1.Pids.Current != 1 {
		t.Fatalf("v1: %+v", m1)
	}
	m2 := metricsV2(st, 64<<20)
	if m2.CPU.UsageUsec != 792996 || m2.Memory.Usage != 2035712 || m2.Memory.UsageLimit != 64<<20 || m2.Pids.Current != 1 {
		t.Fatalf("v2: %+v", m2)
	}
	// rssBytes (v1 total_rss, v2 anon): usage without the file cache.
	wantRSS := st.Memory.Usage.Usage - st.Memory.Cache
	if wantRSS == 0 || m1.Memory.TotalRSS != wantRSS || m1.Memory.RSS != wantRSS || m2.Memory.Anon != wantRSS {
		t.Fatalf("rss: v1 total_rss %d rss %d, v2 anon %d, want %d (usage %d - cache %d)",
			m1.Memory.TotalRSS, m1.Memory.RSS, m2.Memory.Anon, wantRSS, st.Memory.Usage.Usage, st.Memory.Cache)
	}
	// Without a limit the container sees the host's memory: never 0.
	if l := metricsV1(st, 0).Memory.Usage.Limit; l == 0 {
		t.Fatal("v1 limit 0 without a container limit")
	}
	if l := metricsV2(st, 0).Memory.UsageLimit; l == 0 {
		t.Fatal("v2 limit 0 without a container limit")
	}
}

func TestParseStatsRejectsOtherEvents(t *testing.T) {
	if _, err := runsc.ParseStats([]byte(`{"type":"oom","id":"x"}`)); err == nil {
		t.Fatal("an oom event parsed as stats")
	}
	if _, err := runsc.ParseStats([]byte(`not json`)); err == nil {
		t.Fatal("garbage parsed")
	}
}

// runsc 20221219 answers a pod member's stats with the whole sandbox's
// memory: each member reports its share, and the shares sum to the
// sandbox's figures exactly (kubelet's pod total counts the sandbox once).
func TestSplitSandboxWide(t *testing.T) {
	sandbox := func() *runsc.Stats {
		st := &runsc.Stats{}
		st.Memory.Usage.Usage = 10_000_003
		st.Memory.Usage.Max = 12_000_000
		st.Memory.Usage.Limit = 64 << 20
		st.Memory.Cache = 4_000_001
		st.Memory.Swap.Usage = 2
		st.Memory.Raw = map[string]uint64{"rss": 6_000_002, "inactive_file": 1_000_000}
		return st
	}
	p := &pod{}
	for _, id := range []string{"writer", "reader", "sidecar"} {
		p.setMember(id, true)
	}
	var usage, cache, swap, rss, inactive uint64
	for _, id := range []string{"writer", "reader", "sidecar"} {
		rank, n := p.memberRank(id)
		if n != 3 {
			t.Fatalf("%s: %d members, want 3", id, n)
		}
		st := sandbox()
		splitSandboxWide(st, rank, n)
		u := st.Memory.Usage.Usage
		if u < 10_000_003/3 || u > 10_000_003/3+1 {
			t.Errorf("%s: usage %d, want a third of 10000003", id, u)
		}
		if st.Memory.Usage.Max != 12_000_000 || st.Memory.Usage.Limit != 64<<20 {
			t.Errorf("%s: max %d limit %d, want the sandbox's", id, st.Memory.Usage.Max, st.Memory.Usage.Limit)
		}
		if m := metricsV1(st, 0).Memory; m.TotalRSS > m.Usage.Usage || m.TotalInactiveFile > m.Usage.Usage {
			t.Errorf("%s: rss %d, inactive file %d above the usage %d", id, m.TotalRSS, m.TotalInactiveFile, m.Usage.Usage)
		}
		usage += u
		cache += st.Memory.Cache
		swap += st.Memory.Swap.Usage
		rss += st.Memory.Raw["rss"]
		inactive += st.Memory.Raw["inactive_file"]
	}
	want := sandbox()
	if usage != want.Memory.Usage.Usage || cache != want.Memory.Cache || swap != want.Memory.Swap.Usage ||
		rss != want.Memory.Raw["rss"] || inactive != want.Memory.Raw["inactive_file"] {
		t.Errorf("members' shares sum to usage %d cache %d swap %d rss %d inactive %d, want the sandbox's %+v",
			usage, cache, swap, rss, inactive, want.Memory)
	}

	// One member: the sandbox's figures are its own.
	one := &pod{}
	one.setMember("only", true)
	st := sandbox()
	rank, n := one.memberRank("only")
	splitSandboxWide(st, rank, n)
	if st.Memory.Usage.Usage != 10_000_003 || st.Memory.Cache != 4_000_001 {
		t.Errorf("single member: usage %d cache %d, want the sandbox's", st.Memory.Usage.Usage, st.Memory.Cache)
	}
	// A container that is not (or no longer) a member is left alone.
	if _, n := p.memberRank("gone"); n != 0 {
		t.Errorf("non-member: %d members, want 0", n)
	}
}

func TestParseCPUCounter(t *testing.T) {
	if v := parseCPUCounter([]byte("123456789\n"), false); v != 123456789 {
		t.Errorf("cpuacct.usage: %d", v)
	}
	stat := "usage_usec 4242\nuser_usec 4000\nsystem_usec 242\nnr_periods 0\n"
	if v := parseCPUCounter([]byte(stat), true); v != 4242000 {
		t.Errorf("cpu.stat: %d, want 4242000", v)
	}
	if v := parseCPUCounter([]byte("user_usec 1"), true); v != 0 {
		t.Errorf("cpu.stat without usage_usec: %d", v)
	}
}

// A pod member's memory is the Sentry's figure plus its share of what the
// host charges the sandbox beyond the Sentry's figures for all members
// (the pod's tmpfs, the Sentry's own memory): the members sum to the
// sandbox cgroup's usage, and rssBytes stays the Sentry's anonymous memory.
func TestAttributeHostMemory(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	const host, inactive = 100_000_001, 10_000_000
	write("memory.usage_in_bytes", "100000001\n")
	write("memory.current", "100000001\n")
	write("memory.stat", "cache 5\ntotal_inactive_file 10000000\ninactive_file 10000000\nfile 3\n")
	p := &pod{oomFile: filepath.Join(dir, "memory.oom_control")}
	p.setMember("a", true)
	p.setMember("b", true)
	sentry := map[string]uint64{"a": 30_000_000, "b": 2_000_000}
	// The first round tells the pod what the Sentry reports for each
	// member (containerd polls them all every second).
	for _, id := range []string{"a", "b"} {
		st := &runsc.Stats{}
		st.Memory.Usage.Usage = sentry[id]
		p.attributeHost(id, st)
	}
	var sum, inactiveSum uint64
	for _, id := range []string{"a", "b"} {
		st := &runsc.Stats{}
		st.Memory.Usage.Usage = sentry[id]
		p.attributeHost(id, st)
		m := metricsV1(st, 0).Memory
		extra := m.Usage.Usage - sentry[id]
		if extra < (host-32_000_000)/2 || extra > (host-32_000_000)/2+1 {
			t.Errorf("%s: usage %d, want the Sentry's %d + half of the rest", id, m.Usage.Usage, sentry[id])
		}
		if m.TotalRSS != sentry[id] {
			t.Errorf("%s: rss %d, want the Sentry's %d", id, m.TotalRSS, sentry[id])
		}
		sum += m.Usage.Usage
		inactiveSum += m.TotalInactiveFile
	}
	if sum != host || inactiveSum != inactive {
		t.Errorf("members sum to usage %d, inactive file %d; want the host cgroup's %d, %d", sum, inactiveSum, host, inactive)
	}
	// Without the cgroup's files (gone with the sandbox): the Sentry's.
	gone := &pod{oomFile: filepath.Join(t.TempDir(), "memory.oom_control")}
	gone.setMember("a", true)
	st := &runsc.Stats{}
	st.Memory.Usage.Usage = 42
	gone.attributeHost("a", st)
	if st.Memory.Usage.Usage != 42 {
		t.Errorf("no host cgroup: usage %d, want the Sentry's 42", st.Memory.Usage.Usage)
	}
	p.release()
}
