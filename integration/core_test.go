package integration

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/oci"

	"github.com/gvisor-shim/containerd-shim-runsc-v1/integration/harness"
)

// containerTimeout bounds one container's life in these tests, so a hung
// shim fails its test instead of hanging the suite.
const containerTimeout = 60 * time.Second

// coreEnv is what every core subtest needs.
type coreEnv struct {
	d    *harness.Daemon
	img  client.Image
	cfg  harness.RunscConfig
	opts *runtimeoptions.Options
}

// run runs a container through the runsc shim with env's runsc.toml, unless
// o.RuntimeOptions is set.
func (e *coreEnv) run(t *testing.T, o harness.RunOptions) (harness.RunResult, error) {
	t.Helper()
	harness.LogOnFailure(t, e.d, o.ID)
	ctx, cancel := context.WithTimeout(context.Background(), containerTimeout)
	defer cancel()
	o.Image = e.img
	o.Runtime = harness.RuntimeName
	if o.RuntimeOptions == nil {
		o.RuntimeOptions = e.opts
	}
	return e.d.Run(ctx, o)
}

// mustRun is run that fails t on error, and checks for leftovers after.
func (e *coreEnv) mustRun(t *testing.T, o harness.RunOptions) harness.RunResult {
	t.Helper()
	res, err := e.run(t, o)
	if err != nil {
		t.Fatalf("run %v: %v", o.Args, err)
	}
	harness.AssertNoLeftovers(t, e.d, o.ID, e.cfg.Root, res.ShimAddress)
	return res
}

func TestCore(t *testing.T) {
	harness.RequireRoot(t)
	harness.RequireBinary(t, harness.Runsc())
	harness.RequireBinary(t, harness.BusyboxBinary)
	dir := shim(t)

	forEachDaemon(t, harness.DaemonOptions{ShimDirs: []string{dir}}, func(t *testing.T, d *harness.Daemon) {
		v := strings.ReplaceAll(d.Version, ".", "")
		e := &coreEnv{d: d, img: harness.ImportBusyboxT(t, d)}
		e.cfg = harness.WriteRunscConfigT(t, filepath.Join(d.Dir, "runsc"), nil)
		e.opts = &runtimeoptions.Options{ConfigPath: e.cfg.Path}

		t.Run("uname-dmesg", func(t *testing.T) {
			res := e.mustRun(t, harness.RunOptions{
				ID:   containerID("uname-" + v),
				Args: []string{"sh", "-c", "uname -r; dmesg"},
			})
			t.Logf("stdout:\n%s", res.Stdout)
			lines := strings.SplitN(res.Stdout, "\n", 2)
			if !harness.IsGVisorKernel(lines[0]) {
				t.Errorf("uname -r = %q, want gVisor's kernel (4.4.0 or *-gvisor); stdout:\n%s", lines[0], res.Stdout)
			}
			if !strings.Contains(res.Stdout, "Starting gVisor") {
				t.Errorf("dmesg lacks %q: not in a gVisor sandbox? stdout:\n%s", "Starting gVisor", res.Stdout)
			}
			if res.ExitStatus != 0 {
				t.Errorf("exit status %d, want 0; stderr: %s", res.ExitStatus, res.Stderr)
			}
		})

		t.Run("exit-status", func(t *testing.T) {
			res := e.mustRun(t, harness.RunOptions{
				ID:   containerID("exit-" + v),
				Args: []string{"sh", "-c", "exit 3"},
			})
			if res.ExitStatus != 3 {
				t.Errorf("exit status %d, want 3", res.ExitStatus)
			}
		})

		t.Run("kill-sigterm", func(t *testing.T) {
			id := containerID("kill-" + v)
			res := e.mustRun(t, harness.RunOptions{
				ID:   id,
				Args: []string{"sleep", "1000"},
				AfterStart: func(ctx context.Context, task client.Task) error {
					// While it runs, the leak check must see the sandbox: its
					// processes, its state under the private runsc root, the
					// bundle. Otherwise the checks after Delete prove nothing.
					left := strings.Join(d.Leftovers(id, e.cfg.Root), "\n")
					for _, want := range []string{"process ", "runsc-sandbox", "runsc state: " + e.cfg.Root, "path exists: " + d.TaskBundle(id)} {
						if !strings.Contains(left, want) {
							t.Errorf("leak check of a running sandbox lacks %q; got:\n%s", want, left)
						}
					}
					return task.Kill(ctx, syscall.SIGTERM)
				},
			})
			if res.ExitStatus != 143 {
				t.Errorf("exit status %d after SIGTERM, want 143", res.ExitStatus)
			}
		})

		t.Run("stdout-stderr", func(t *testing.T) {
			res := e.mustRun(t, harness.RunOptions{
				ID:   containerID("stdio-" + v),
				Args: []string{"sh", "-c", "echo out; echo err >&2"},
			})
			if res.Stdout != "out\n" {
				t.Errorf("stdout = %q, want %q", res.Stdout, "out\n")
			}
			if res.Stderr != "err\n" {
				t.Errorf("stderr = %q, want %q", res.Stderr, "err\n")
			}
		})

		t.Run("tty", func(t *testing.T) {
			res := e.mustRun(t, harness.RunOptions{
				ID:   containerID("tty-" + v),
				TTY:  true,
				Args: []string{"sh", "-c", "tty; test -t 0 && test -t 1 && echo tty-ok; echo hi"},
			})
			t.Logf("tty output: %q", res.Stdout)
			if !strings.Contains(res.Stdout, "tty-ok") {
				t.Errorf("stdin/stdout are not a terminal; output %q", res.Stdout)
			}
			if !strings.Contains(res.Stdout, "hi") {
				t.Errorf("output %q lacks %q", res.Stdout, "hi")
			}
			if res.ExitStatus != 0 {
				t.Errorf("exit status %d, want 0", res.ExitStatus)
			}
		})

		// A bad runsc configuration must fail NewTask with runsc's (or the
		// shim's) own words, not "exit status 1", and leave nothing behind.
		badConfigs := []struct {
			name  string
			write func(dir string) (harness.RunscConfig, error)
			want  func(cfg harness.RunscConfig) string
		}{{
			name: "bad-platform",
			write: func(dir string) (harness.RunscConfig, error) {
				return harness.WriteRunscConfig(dir, map[string]string{"platform": "bogus"})
			},
			want: func(harness.RunscConfig) string { return "unknown platform: bogus" },
		}, {
			name: "unknown-flag",
			write: func(dir string) (harness.RunscConfig, error) {
				return harness.WriteRunscConfig(dir, map[string]string{"bogusflag": "1"})
			},
			// Checked against the flags the runsc in use lists.
			want: func(cfg harness.RunscConfig) string {
				return "runsc config " + cfg.Path + `: [runsc_config] key "bogusflag" is not a flag of runsc `
			},
		}, {
			name: "malformed-toml",
			write: func(dir string) (harness.RunscConfig, error) {
				cfg := harness.RunscConfig{Path: filepath.Join(dir, "runsc.toml"), Root: filepath.Join(dir, "runsc-root")}
				if err := os.MkdirAll(dir, 0o755); err != nil {
					return cfg, err
				}
				return cfg, os.WriteFile(cfg.Path, []byte("[runsc_config\nnetwork = \"none\n"), 0o644)
			},
			want: func(cfg harness.RunscConfig) string { return cfg.Path },
		}}
		for _, bc := range badConfigs {
			t.Run(bc.name, func(t *testing.T) {
				cfg, err := bc.write(filepath.Join(d.Dir, bc.name))
				if err != nil {
					t.Fatal(err)
				}
				id := containerID(bc.name + "-" + v)
				res, err := e.run(t, harness.RunOptions{
					ID:             id,
					Args:           []string{"true"},
					RuntimeOptions: &runtimeoptions.Options{ConfigPath: cfg.Path},
				})
				want := bc.want(cfg)
				switch {
				case err == nil:
					t.Errorf("container ran (exit %d) with a bad runsc config; want NewTask to fail with %q", res.ExitStatus, want)
				case !strings.HasPrefix(err.Error(), "NewTask"):
					t.Errorf("want NewTask to fail, got: %v", err)
				case !strings.Contains(err.Error(), want):
					t.Errorf("NewTask error does not contain %q:\n%v", want, err)
				default:
					t.Logf("NewTask failed as expected: %v", err)
				}
				harness.AssertNoLeftovers(t, d, id, cfg.Root, res.ShimAddress)
			})
		}

		// An AppArmor profile (containerd's CRI writes one on hosts with
		// AppArmor): runsc ignores it (TestCompatRawLSM), so the container
		// runs and the shim warns, naming the container and the profile.
		t.Run("apparmor-warning", func(t *testing.T) {
			id := containerID("apparmor-" + v)
			res := e.mustRun(t, harness.RunOptions{
				ID:       id,
				Args:     []string{"sh", "-c", "echo ran"},
				SpecOpts: []oci.SpecOpts{oci.WithApparmorProfile("runsc-shim-compat-nonexistent")},
			})
			if res.ExitStatus != 0 || strings.TrimSpace(res.Stdout) != "ran" {
				t.Errorf("container with an AppArmor profile: exit %d, stdout %q, stderr %q; want it to run", res.ExitStatus, res.Stdout, res.Stderr)
			}
			warned := false
			for _, l := range d.LogGrep("runsc does not apply process.apparmorProfile") {
				if strings.Contains(l, "id="+id) && strings.Contains(l, "runsc-shim-compat-nonexistent") {
					warned = true
				}
			}
			if !warned {
				t.Errorf("no shim warning naming container %s and its AppArmor profile in the containerd log", id)
			}
		})

		t.Run("ctr-run", func(t *testing.T) {
			harness.RequireBinary(t, d.Ctr)
			id := containerID("ctr-" + v)
			harness.LogOnFailure(t, d, id)
			stdout := ctrRun(t, d, []string{"--runtime", harness.RuntimeName, "--runtime-config-path", e.cfg.Path}, id, "uname", "-r")
			if got := strings.TrimSpace(stdout); !harness.IsGVisorKernel(got) {
				t.Errorf("ctr run uname -r printed %q, want gVisor's kernel", got)
			}
			harness.AssertNoLeftovers(t, d, id, e.cfg.Root)
		})
	})
}

// ctrRun runs `ctr run <runtimeFlags> --rm <busybox> id args...` with the
// daemon's own ctr and returns its stdout; it fails t if ctr fails or does
// not finish within containerTimeout.
func ctrRun(t *testing.T, d *harness.Daemon, runtimeFlags []string, id string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), containerTimeout)
	defer cancel()
	argv := append(d.CtrArgs()[1:], "run")
	argv = append(argv, runtimeFlags...)
	argv = append(argv, "--rm", harness.BusyboxRef, id)
	argv = append(argv, args...)
	cmd := exec.CommandContext(ctx, d.Ctr, argv...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%s %s did not finish within %s (hung); stdout %q stderr %q",
			d.Ctr, strings.Join(argv, " "), containerTimeout, stdout.String(), stderr.String())
	}
	if err != nil {
		t.Fatalf("%s %s: %v\nstdout: %s\nstderr: %s", d.Ctr, strings.Join(argv, " "), err, stdout.String(), stderr.String())
	}
	if stderr.Len() > 0 {
		t.Logf("ctr stderr: %s", stderr.String())
	}
	return stdout.String()
}
