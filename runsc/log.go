package runsc

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"strings"
)

// maxLogTail bounds how much of log.json is read to find an error.
const maxLogTail = 1 << 20

type logEntry struct {
	Msg   string `json:"msg"`
	Level string `json:"level"`
}

// LastError returns the message of the last error-level entry that runsc
// wrote to its JSON log at path after byte offset off, or "" if there is none.
func LastError(path string, off int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size()-off > maxLogTail {
		off = st.Size() - maxLogTail
	}
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return ""
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return ""
	}
	return lastErrorIn(data)
}

// lastErrorIn returns the last error message in data. runsc often ends with a
// generic error ("cannot create sandbox: ... EOF") after the sandbox logged
// the cause: an earlier, different error is kept as the cause.
func lastErrorIn(data []byte) string {
	var first, msg string
	for _, line := range bytes.Split(data, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] != '{' {
			continue
		}
		var e logEntry
		if json.Unmarshal(line, &e) != nil {
			continue
		}
		switch strings.ToLower(e.Level) {
		case "error", "fatal", "panic":
			if m := strings.TrimSpace(e.Msg); m != "" {
				if first == "" {
					first = m
				}
				msg = m
			}
		}
	}
	if first != "" && !strings.Contains(msg, first) {
		return msg + " (cause: " + first + ")"
	}
	return msg
}

// stderrMessage picks runsc's complaint out of its stderr: a flag error (which
// is followed by the usage text), or else the last non-empty line.
func stderrMessage(b []byte) string {
	var last string
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		if strings.HasPrefix(l, "flag provided but not defined") || strings.HasPrefix(l, "invalid value") ||
			strings.HasPrefix(l, "invalid boolean value") {
			return l
		}
		last = l
	}
	return last
}
