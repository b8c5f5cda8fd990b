package runsc

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

// maxExtracted is the longest message lastErrorIn may return: a message and
// its cause, each at most maxMessage bytes.
const maxExtracted = 2*maxMessage + len(" (cause: )")

// Real log.json content: runsc (util.Errorf) writes each error entry without a
// trailing newline, and the sandbox (runsc boot, --log-fd) shares the file.
const (
	realUnknownPlatform = `{"msg":"unknown platform: bogus","level":"error","time":"2026-12-02T14:00:28.297879595Z"}`
	realNoSpec          = `{"msg":"reading spec: error opening spec file \"/run/containerd/io.containerd.runtime.v2.task/k8s.io/abc/config.json\": open /run/containerd/io.containerd.runtime.v2.task/k8s.io/abc/config.json: no such file or directory","level":"error","time":"2026-12-02T14:00:32.130736152Z"}`
	realBootCause       = `{"msg":"creating loader: converting capabilities: unknown capability \"CAP_PERFMON\"","level":"error","time":"2026-12-02T14:01:00.1Z"}`
	realCreateEOF       = `{"msg":"creating container: cannot create sandbox: cannot read client sync file: waiting for sandbox to start: EOF","level":"error","time":"2026-12-02T14:01:00.2Z"}`
)

// TestLastErrorInConcatenatedEntries: runsc's entries are not separated by
// newlines; the last one and the cause must still be found.
func TestLastErrorInConcatenatedEntries(t *testing.T) {
	got := lastErrorIn([]byte(realBootCause + realCreateEOF))
	want := `creating container: cannot create sandbox: cannot read client sync file: waiting for sandbox to start: EOF (cause: creating loader: converting capabilities: unknown capability "CAP_PERFMON")`
	if got != want {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
	if got := lastErrorIn([]byte(realUnknownPlatform)); got != "unknown platform: bogus" {
		t.Fatalf("single entry without newline: got %q", got)
	}
	// Braces and quotes inside messages do not split an entry.
	msg := `{"msg":"bad value \"}{\" in map[a:{}]\\","level":"error"}`
	if got := lastErrorIn([]byte("garbage}" + msg + "{\"msg\":\"cut off")); got != `bad value "}{" in map[a:{}]\` {
		t.Fatalf("got %q", got)
	}
	// LastError reads the real layout from a file, after the offset.
	p := filepath.Join(t.TempDir(), "log.json")
	if err := os.WriteFile(p, []byte(realNoSpec+realBootCause+realCreateEOF), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := LastError(p, int64(len(realNoSpec))); got != want {
		t.Fatalf("LastError after offset: got %q", got)
	}
}

func TestMessagesAreBoundedLines(t *testing.T) {
	long := strings.Repeat("é", 2*maxMessage)
	got := lastErrorIn([]byte(`{"msg":"line one\nline two\r\t` + long + `","level":"error"}`))
	if len(got) > maxMessage || strings.ContainsAny(got, "\n\r\t") || !utf8.ValidString(got) || !strings.HasPrefix(got, "line one line two  é") || !strings.HasSuffix(got, "...") {
		t.Fatalf("got %q (%d bytes)", got, len(got))
	}
	if got := stderrMessage([]byte("a\rb\x00c " + long + "\n")); len(got) > maxMessage || strings.ContainsAny(got, "\r\x00") {
		t.Fatalf("stderr: got %q (%d bytes)", got, len(got))
	}
}

// checkMessage is the contract of an extracted message: one line of bounded
// length, valid UTF-8, no surrounding space.
func checkMessage(t *testing.T, what, got string, limit int) {
	t.Helper()
	if len(got) > limit {
		t.Fatalf("%s: %d bytes, more than %d", what, len(got), limit)
	}
	if !utf8.ValidString(got) {
		t.Fatalf("%s: invalid UTF-8 %q", what, got)
	}
	for _, r := range got {
		if r == '\n' || r == '\r' || r == '\u2028' || r == '\u2029' || r < 0x20 || r == 0x7f {
			t.Fatalf("%s: control character %U in %q", what, r, got)
		}
	}
}

// FuzzLastErrorIn: any bytes in log.json give a bounded one-line message (or
// ""), never a panic; a message can only come from an error-level entry.
func FuzzLastErrorIn(f *testing.F) {
	f.Add([]byte(realUnknownPlatform))
	f.Add([]byte(realNoSpec + realBootCause + realCreateEOF))
	f.Add([]byte(realBootCause + "\n" + realCreateEOF + "\n"))
	f.Add([]byte(`{"msg":"starting","level":"info","time":"x"}
{"msg":"first failure","level":"error","time":"x"}
not json at all
{"msg":"unknown platform: bogus","level":"error","time":"x"}
{"msg":"exiting","level":"debug","time":"x"}`))
	f.Add([]byte(`{"msg":"fine","level":"info"}`))
	f.Add([]byte(`{"msg":"a\nb\u2028c\u0000","level":"FATAL"}{"msg":"x","level":"panic"}`))
	f.Add([]byte(`{"msg":"\"}{\\","level":"error"}{"msg":"unterminated`))
	f.Add([]byte(`{"msg":{"nested":"{}"},"level":"error"}{"msg":"  ","level":"error"}`))
	f.Add([]byte(`{"msg":"\xff\xfe invalid utf8","level":"error"}`))
	f.Add([]byte(`{"log":"k8s format","level":"error"}` + "\r\n" + `{"level":"error","msg":"` + strings.Repeat("x", 3000) + `"}`))
	f.Add([]byte("{{{{{{{{\"\"\"\\\\}}}}}}"))
	f.Add([]byte{})

	f.Fuzz(func(t *testing.T, data []byte) {
		got := lastErrorIn(data)
		checkMessage(t, "lastErrorIn", got, maxExtracted)
		if got != "" && !strings.Contains(strings.ToLower(string(data)), "error") &&
			!strings.Contains(strings.ToLower(string(data)), "fatal") &&
			!strings.Contains(strings.ToLower(string(data)), "panic") &&
			!strings.Contains(string(data), `\u`) {
			t.Fatalf("message %q from a log without an error level", got)
		}
		if strings.TrimSpace(got) != got {
			t.Fatalf("untrimmed message %q", got)
		}
		// Every object jsonObjects returns is a '{'...'}' slice of data.
		for _, o := range jsonObjects(data) {
			if len(o) < 2 || o[0] != '{' || o[len(o)-1] != '}' {
				t.Fatalf("jsonObjects returned %q", o)
			}
		}
	})
}

// FuzzStderrMessage: runsc's stderr, whatever it is, gives a bounded line.
func FuzzStderrMessage(f *testing.F) {
	f.Add([]byte("flag provided but not defined: -bogus\nUsage: runsc <flags> <subcommand>\n\nSubcommands:\n\tcreate\n"))
	f.Add([]byte("W1122 FATAL ERROR: x\nunknown platform: x\n"))
	f.Add([]byte("invalid boolean value \"maybe\" for -debug: parse error\n"))
	f.Add([]byte("running container: creating container: cannot create sandbox\r\n"))
	f.Add([]byte("a\rb\x00c\xff\n" + strings.Repeat("y", 5000)))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		got := stderrMessage(data)
		checkMessage(t, "stderrMessage", got, maxMessage)
		if len(strings.TrimSpace(string(data))) == 0 && got != "" {
			t.Fatalf("message %q from blank stderr", got)
		}
	})
}
