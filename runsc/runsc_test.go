package runsc

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestArgs(t *testing.T) {
	r := &Runsc{Root: "/run/r", Bundle: "/b", Flags: []string{"--network=none", "--platform=ptrace"}}
	got := r.Args("create", "--bundle=/b", "id")
	want := []string{"--root=/run/r", "--log=/b/log.json", "--log-format=json", "--network=none", "--platform=ptrace", "create", "--bundle=/b", "id"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Args:\n got %q\nwant %q", got, want)
	}
}

func TestCreateOptsArgs(t *testing.T) {
	o := &CreateOpts{PidFile: "/b/init.pid", UserLog: "/u"}
	got := o.args("/b")
	want := []string{"--bundle=/b", "--pid-file=/b/init.pid", "--user-log=/u"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q want %q", got, want)
	}
}

func TestExecOptsArgs(t *testing.T) {
	o := &ExecOpts{ProcessFile: "/b/p.json", PidFile: "/b/e.pid", InternalPidFile: "/b/e.ipid"}
	got := o.args()
	want := []string{"--process=/b/p.json", "--pid-file=/b/e.pid", "--internal-pid-file=/b/e.ipid"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q want %q", got, want)
	}
}

func TestLastErrorIn(t *testing.T) {
	data := `{"msg":"starting","level":"info","time":"x"}
{"msg":"first failure","level":"error","time":"x"}
not json at all
{"msg":"unknown platform: bogus","level":"error","time":"x"}
{"msg":"exiting","level":"debug","time":"x"}`
	if got := lastErrorIn([]byte(data)); got != "unknown platform: bogus (cause: first failure)" {
		t.Fatalf("got %q", got)
	}
	if got := lastErrorIn([]byte(`{"msg":"fine","level":"info"}`)); got != "" {
		t.Fatalf("no error expected, got %q", got)
	}
}

func TestLastErrorKeepsTheCause(t *testing.T) {
	data := `{"msg":"creating loader: converting capabilities: unknown capability \"CAP_PERFMON\"","level":"error"}
{"msg":"creating container: cannot create sandbox: cannot read client sync file: waiting for sandbox to start: EOF","level":"error"}`
	got := lastErrorIn([]byte(data))
	if !strings.HasPrefix(got, "creating container: cannot create sandbox") || !strings.Contains(got, `unknown capability "CAP_PERFMON"`) {
		t.Fatalf("got %q", got)
	}
}

func TestLastErrorOnlyAfterOffset(t *testing.T) {
	p := filepath.Join(t.TempDir(), "log.json")
	old := `{"msg":"old failure","level":"error"}` + "\n"
	if err := os.WriteFile(p, []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := LastError(p, int64(len(old))); got != "" {
		t.Fatalf("an error from an earlier call leaked: %q", got)
	}
	if got := LastError(p, 0); got != "old failure" {
		t.Fatalf("got %q", got)
	}
	if got := LastError(filepath.Join(t.TempDir(), "missing"), 0); got != "" {
		t.Fatalf("missing log: got %q", got)
	}
}

func TestStderrMessage(t *testing.T) {
	usage := "flag provided but not defined: -bogus\nUsage: runsc <flags> <subcommand>\n\nSubcommands:\n\tcreate\n"
	if got := stderrMessage([]byte(usage)); got != "flag provided but not defined: -bogus" {
		t.Fatalf("got %q", got)
	}
	if got := stderrMessage([]byte("W1122 FATAL ERROR: x\nunknown platform: x\n")); got != "unknown platform: x" {
		t.Fatalf("got %q", got)
	}
}

func TestErrorHints(t *testing.T) {
	e := &Error{Subcommand: "start", Message: `starting container: setting up network: creating interfaces from net namespace "/proc/1/ns/net": cannot run with network enabled in root network namespace`}
	if !strings.Contains(e.Error(), `network = "host"`) {
		t.Fatalf("network error does not tell the fix: %s", e)
	}
	// Also to a user whose runtime has no runsc.toml: the shim then reads
	// the default file, which the hint names.
	if !strings.Contains(e.Error(), "when the runtime has no ConfigPath, "+DefaultConfigFile) || !strings.Contains(e.Error(), "runsc-node install") {
		t.Fatalf("network error does not tell a user without a ConfigPath what to add: %s", e)
	}
	e = &Error{Subcommand: "kill", ExitStatus: 1}
	if !strings.Contains(e.Error(), "exit status 1") || !strings.Contains(e.Error(), "no error message") {
		t.Fatalf("got %s", e)
	}
}

// fakeRunsc writes a shell script standing in for runsc; it appends its
// argv to <dir>/argv and runs body.
func fakeRunsc(t *testing.T, body string) (string, string) {
	t.Helper()
	dir := t.TempDir()
	script := filepath.Join(dir, "runsc")
	content := "#!/bin/sh\necho \"$@\" >> " + filepath.Join(dir, "argv") + "\n" + body + "\n"
	if err := os.WriteFile(script, []byte(content), 0o755); err != nil {
		t.Fatal(err)
	}
	return script, dir
}

func TestFailureQuotesLogJSON(t *testing.T) {
	bundle := t.TempDir()
	// Like runsc: write the error to --log and exit 128.
	script, _ := fakeRunsc(t, `for a in "$@"; do case $a in --log=*) log=${a#--log=};; esac; done
echo '{"msg":"starting container: boom","level":"error"}' >> "$log"
exit 128`)
	r := &Runsc{Command: script, Root: t.TempDir(), Bundle: bundle}
	err := r.Start(context.Background(), "c1", nil, nil)
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("want *Error, got %T %v", err, err)
	}
	if e.ExitStatus != 128 || err.Error() != "runsc start: starting container: boom" {
		t.Fatalf("got status %d, %q", e.ExitStatus, err)
	}
}

func TestSilentFailureNamesTheCallAndTheDebugLog(t *testing.T) {
	// Current runsc's `events --stats` of a stopped container: exit 128,
	// nothing in log.json, nothing on stderr.
	script, _ := fakeRunsc(t, `exit 128`)
	bundle := t.TempDir()
	r := &Runsc{Command: script, Root: t.TempDir(), Bundle: bundle, IDSuffix: IDSuffix}
	_, err := r.Stats(context.Background(), "c1")
	want := "runsc events: exit status 128; runsc wrote no error message to " + filepath.Join(bundle, LogFile) +
		" or stderr (`runsc events --stats c1+` failed: its debug log says why; set debug = \"true\" and debug-log = \"/var/log/runsc/%ID%/\" in [runsc_config] of runsc.toml)"
	if err == nil || err.Error() != want {
		t.Fatalf("got  %v\nwant %s", err, want)
	}
}

func TestFailureQuotesStderr(t *testing.T) {
	script, _ := fakeRunsc(t, `echo "flag provided but not defined: -bogusflag" >&2; echo "Usage: runsc" >&2; exit 2`)
	r := &Runsc{Command: script, Root: t.TempDir(), Bundle: t.TempDir(), Flags: []string{"--bogusflag=1"}}
	err := r.Kill(context.Background(), "c1", 15, false)
	if err == nil || !strings.Contains(err.Error(), "flag provided but not defined: -bogusflag") {
		t.Fatalf("got %v", err)
	}
}

func TestCreateDiagnosesFlagsWhenStdioIsTheContainers(t *testing.T) {
	// runsc create with IO: its stderr is the container's, so the shim asks
	// `runsc <flags> flags` why it failed.
	script, dir := fakeRunsc(t, `echo "flag provided but not defined: -nosuchflag" >&2; exit 2`)
	r := &Runsc{Command: script, Root: t.TempDir(), Bundle: t.TempDir(), Flags: []string{"--nosuchflag=1"}}
	err := r.Create(context.Background(), "c1", &CreateOpts{PidFile: "/x/pid"})
	if err == nil || !strings.Contains(err.Error(), "nosuchflag") {
		t.Fatalf("got %v", err)
	}
	argv, _ := os.ReadFile(filepath.Join(dir, "argv"))
	lines := strings.Split(strings.TrimSpace(string(argv)), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], " create ") || !strings.HasSuffix(lines[1], " flags") {
		t.Fatalf("calls: %q", lines)
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, "--root=") || !strings.Contains(l, "--log-format=json --nosuchflag=1") {
			t.Fatalf("call without global flags: %q", l)
		}
	}
}

func TestStateAndPsDecode(t *testing.T) {
	script, _ := fakeRunsc(t, `case "$*" in
*" state "*) echo '{"id":"c1","pid":42,"status":"running","bundle":"/b"}';;
*" ps "*) echo '[1,4]';;
esac`)
	r := &Runsc{Command: script, Root: t.TempDir(), Bundle: t.TempDir()}
	st, err := r.State(context.Background(), "c1")
	if err != nil || st.Pid != 42 || st.Status != "running" {
		t.Fatalf("state: %+v %v", st, err)
	}
	pids, err := r.Ps(context.Background(), "c1")
	if err != nil || !reflect.DeepEqual(pids, []int{1, 4}) {
		t.Fatalf("ps: %v %v", pids, err)
	}
}

func TestMissingBinary(t *testing.T) {
	r := &Runsc{Command: "/nonexistent/runsc", Root: t.TempDir(), Bundle: t.TempDir()}
	err := r.Start(context.Background(), "c1", nil, nil)
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/runsc") {
		t.Fatalf("got %v", err)
	}
}

func TestMissingSubcommandRefusedWithoutRunningRunsc(t *testing.T) {
	script, dir := fakeRunsc(t, `exit 0`)
	f := NewFeatures(script, "20221219.0", []string{"root"}, []string{"create", "start", "delete"})
	r := &Runsc{Command: script, Root: t.TempDir(), Bundle: t.TempDir(), Features: f, IDSuffix: IDSuffix}
	_, err := r.Stats(context.Background(), "c1")
	want := "runsc events: runsc 20221219.0 (" + script + ") has no \"events\" subcommand (see `" + script + " help`): " + ErrUnsupported.Error()
	if err == nil || err.Error() != want || !errors.Is(err, ErrUnsupported) {
		t.Fatalf("got  %v\nwant %s", err, want)
	}
	if _, err := r.Exec(context.Background(), "c1", &ExecOpts{PidFile: filepath.Join(t.TempDir(), "pid")}); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("exec: got %v, want ErrUnsupported", err)
	}
	if err := r.Delete(context.Background(), "c1", true); err != nil {
		t.Fatalf("delete, which this runsc has: %v", err)
	}
	argv, _ := os.ReadFile(filepath.Join(dir, "argv"))
	if n := strings.Count(string(argv), "\n"); n != 1 || !strings.Contains(string(argv), " delete ") {
		t.Fatalf("runsc ran %d times, want only the delete:\n%s", n, argv)
	}
}

func TestDoArgsAndError(t *testing.T) {
	script, dir := fakeRunsc(t, `for a in "$@"; do case $a in --log=*) log=${a#--log=};; esac; done
echo '{"msg":"cannot run with network enabled in root network namespace","level":"error"}' >> "$log"
exit 128`)
	bundle, root := t.TempDir(), t.TempDir()
	r := &Runsc{Command: script, Root: root, Bundle: bundle, Flags: []string{"--network=sandbox"}}
	_, err := r.Do(context.Background(), "true")
	if err == nil || !strings.Contains(err.Error(), "runsc do: cannot run with network enabled in root network namespace (runsc's own network stack cannot start") {
		t.Fatalf("got %v", err)
	}
	argv, _ := os.ReadFile(filepath.Join(dir, "argv"))
	want := "--root=" + root + " --log=" + filepath.Join(bundle, LogFile) + " --log-format=json --network=sandbox do true\n"
	if string(argv) != want {
		t.Fatalf("argv %q, want %q", argv, want)
	}
}
