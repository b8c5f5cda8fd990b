package runsc

import (
	"encoding/json"
	"io"
	"os"
	"strings"
	"unicode"
	"unicode/utf8"
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

// maxMessage bounds the length in bytes of a message taken from log.json or
// stderr (it ends up in errors returned to containerd and kubelet).
const maxMessage = 1024

// lastErrorIn returns the last error message in data. runsc often ends with a
// generic error ("cannot create sandbox: ... EOF") after the sandbox logged
// the cause: an earlier, different error is kept as the cause.
//
// runsc writes its error entries without a newline between them (runsc
// create and the sandbox share the file: `{...}{...}`), so entries are split
// at the end of each top-level JSON object as well as at newlines.
func lastErrorIn(data []byte) string {
	var first, msg string
	for _, obj := range jsonObjects(data) {
		var e logEntry
		if json.Unmarshal(obj, &e) != nil {
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
		return oneLine(msg) + " (cause: " + oneLine(first) + ")"
	}
	return oneLine(msg)
}

// jsonObjects splits data into its top-level JSON objects: each starts with
// '{' and ends with the '}' that closes it, outside strings. Text between
// objects is skipped; a newline (never inside a valid entry) abandons an
// unterminated object. One pass, linear in len(data).
func jsonObjects(data []byte) [][]byte {
	var objs [][]byte
	depth, start := 0, 0
	inString, escaped := false, false
	for i, c := range data {
		switch {
		case c == '\n':
			depth, inString, escaped = 0, false, false
		case depth == 0:
			if c == '{' {
				depth, start = 1, i
			}
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{':
			depth++
		case c == '}':
			depth--
			if depth == 0 {
				objs = append(objs, data[start:i+1])
			}
		}
	}
	return objs
}

// oneLine makes s a single line of at most maxMessage bytes: control
// characters (newlines included) become spaces, invalid UTF-8 becomes U+FFFD
// and a longer message is cut at a character boundary and ends in "...".
func oneLine(s string) string {
	s = strings.TrimSpace(strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(s, "\uFFFD")))
	if len(s) <= maxMessage {
		return s
	}
	cut := maxMessage - len("...")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
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
			return oneLine(l)
		}
		last = l
	}
	return oneLine(last)
}
