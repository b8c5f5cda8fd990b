package shim

import (
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
