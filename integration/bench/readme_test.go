package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestUpdateReadmeReplacesOnlyTheBlock(t *testing.T) {
	p := filepath.Join(t.TempDir(), "README.md")
	before := "# x\n\nintro\n" + readmeBegin + "\nold figures\n" + readmeEnd + "\n\nafter\n"
	if err := os.WriteFile(p, []byte(before), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := updateReadme(p, "new figures\n"); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	want := "# x\n\nintro\n" + readmeBegin + "\nnew figures\n" + readmeEnd + "\n\nafter\n"
	if string(b) != want {
		t.Fatalf("got\n%s\nwant\n%s", b, want)
	}
	if err := os.WriteFile(p, []byte("no markers\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := updateReadme(p, "x"); err == nil || !strings.Contains(err.Error(), "block to replace") {
		t.Fatalf("want an error naming the missing block, got %v", err)
	}
	if b, _ := os.ReadFile(p); string(b) != "no markers\n" {
		t.Fatalf("file changed: %q", b)
	}
}

func TestReadmeOnlyFromAFullRun(t *testing.T) {
	all := map[string]bool{}
	for _, s := range allSections {
		all[s] = true
	}
	d := func(v string) *DaemonReport {
		return &DaemonReport{
			Version:    v,
			Lifecycle:  &LifecycleReport{Variants: make([]Summary, 4), ShimOverhead: 99.5, RuncOverhead: 83.3},
			CRI:        &CRIReport{Variants: make([]Summary, 3)},
			Exec:       &ExecReport{Variants: make([]Summary, 5)},
			Density:    []*DensityReport{{Runtime: runscRuntime, N: 30, AllRunning: 4557.4}, {Runtime: runcRuntime, N: 30, AllRunning: 2038.5}},
			Checkpoint: &CheckpointReport{Kinds: []CheckpointKind{{Name: "small (sleep)"}}},
			Targets:    []Target{{Name: "a goal", Result: "FAIL", Detail: "why"}},
		}
	}
	r := &Report{Meta: Meta{Host: map[string]string{}, Flags: map[string]string{}}, Daemons: []*DaemonReport{d("1.6"), d("2.4")}}
	if err := fullRun(r, all); err != nil {
		t.Fatalf("full run refused: %v", err)
	}
	partial := map[string]bool{"density": true}
	if err := fullRun(r, partial); err == nil {
		t.Fatal("a run of one section may not stand in the README")
	}
	noFigures := &Report{Meta: r.Meta, Daemons: []*DaemonReport{d("1.6"), {Version: "2.4", Errors: []string{"cri: boom"}}}}
	if err := fullRun(noFigures, all); err == nil {
		t.Fatal("a run whose sections failed may not stand in the README")
	}
	one := &Report{Meta: r.Meta, Daemons: r.Daemons[:1]}
	if err := fullRun(one, all); err == nil {
		t.Fatal("a run against one containerd may not stand in the README")
	}
	r.Daemons[1].Errors = []string{"stop containerd: boom"}
	s := readmeSummary(r)
	for _, want := range []string{"- ERROR in this run: stop containerd: boom", "| | containerd 1.6 | containerd 2.4 |", "**99.5** vs 83.3", "4557.4 / 2038.5", "Targets, containerd 2.4:", "- FAIL: a goal — why"} {
		if !strings.Contains(s, want) {
			t.Errorf("summary lacks %q:\n%s", want, s)
		}
	}
}
