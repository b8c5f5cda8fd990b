package runsc

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestMain(m *testing.M) {
	// The held runsc process (CreateOpts.Place) is this test binary.
	Hold()
	os.Exit(m.Run())
}

// TestPlaceRunsBeforeRunsc: Place (create) and Start's place (a container
// joining a pod: runsc starts its gofer from `runsc start`) see the pid of
// the process that then executes runsc (same pid, runsc's argv unchanged),
// before runsc ran.
func TestPlaceRunsBeforeRunsc(t *testing.T) {
	for _, sub := range []string{"create", "start"} {
		t.Run(sub, func(t *testing.T) {
			script, dir := fakeRunsc(t, `echo $$ > "$(dirname "$0")/pid"`)
			bundle := t.TempDir()
			r := &Runsc{Command: script, Root: t.TempDir(), Bundle: bundle}
			var placed int
			place := func(pid int) error {
				if _, err := os.Stat(filepath.Join(dir, "argv")); err == nil {
					t.Errorf("runsc ran before Place")
				}
				placed = pid
				return nil
			}
			var err error
			want := r.Args("start", "c1")
			if sub == "create" {
				err = r.Create(context.Background(), "c1", &CreateOpts{Place: place})
				want = r.Args("create", "--bundle="+bundle, "c1")
			} else {
				err = r.Start(context.Background(), "c1", nil, place)
			}
			if err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(filepath.Join(dir, "pid"))
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := strconv.Atoi(strings.TrimSpace(string(b))); got != placed || placed == 0 {
				t.Errorf("Place saw pid %d, runsc ran as pid %d", placed, got)
			}
			argv, _ := os.ReadFile(filepath.Join(dir, "argv"))
			if want := strings.Join(want, " ") + "\n"; string(argv) != want {
				t.Errorf("runsc argv %q, want %q", argv, want)
			}
		})
	}
}

// TestCreatePlaceFailureRunsNoRunsc: when Place fails, runsc never runs and
// Create returns Place's error as is.
func TestCreatePlaceFailureRunsNoRunsc(t *testing.T) {
	script, dir := fakeRunsc(t, `exit 0`)
	r := &Runsc{Command: script, Root: t.TempDir(), Bundle: t.TempDir()}
	boom := errors.New("no scope for you")
	err := r.Create(context.Background(), "c1", &CreateOpts{Place: func(int) error { return boom }})
	if err != boom {
		t.Fatalf("Create: %v, want Place's error", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "argv")); err == nil {
		t.Errorf("runsc ran although Place failed")
	}
}

// TestCreatePlaceQuotesRunscError: a held runsc that fails is reported as
// any runsc failure, naming the call without the holder's arguments.
func TestCreatePlaceQuotesRunscError(t *testing.T) {
	script, _ := fakeRunsc(t, `exit 3`)
	r := &Runsc{Command: script, Root: t.TempDir(), Bundle: t.TempDir()}
	err := r.Create(context.Background(), "c1", &CreateOpts{Place: func(int) error { return nil }})
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("Create: %T %v, want *Error", err, err)
	}
	if e.ExitStatus != 3 || strings.Contains(err.Error(), HoldArg) || !strings.HasPrefix(e.Call, "create --bundle=") {
		t.Fatalf("Create: %v (call %q), want runsc's exit status 3 and the create call", err, e.Call)
	}
}
