package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Install merges the runsc runtime into containerd's config, installs the
// shim and runsc.toml, restarts containerd and verifies. It is idempotent.
func Install(ctx context.Context, opts Options) error {
	n, err := Discover(ctx, opts)
	if err != nil {
		return err
	}
	return n.Install(ctx)
}

// Install is Install on a discovered node.
func (n *Node) Install(ctx context.Context) error {
	o := n.opts
	running := "not running"
	if n.Process != nil {
		running = fmt.Sprintf("pid %d", n.Process.Pid)
	}
	n.note("containerd %s (%s, %s), config %s", n.Version, n.Bin, running, n.Config)

	in := MergeInput{Containerd: n.Version, Config: n.Config, Read: n.read, Glob: n.glob, RunscConfig: o.RunscConfig}
	if n.Version.Major < 2 {
		dump, err := n.ConfigDump(ctx)
		if err == nil {
			in.DefaultRuntimes, _, err = EffectiveRuntimes(dump)
		}
		if err != nil {
			// A file Plan refuses anyway is better explained by Plan.
			if _, perr := Plan(in); perr != nil {
				return fmt.Errorf("merge the runsc runtime into containerd's config: %w", perr)
			}
			return fmt.Errorf("read containerd's effective config (to keep its runtimes): %w", err)
		}
	}
	m, err := Plan(in)
	if err != nil {
		return fmt.Errorf("merge the runsc runtime into containerd's config: %w", err)
	}

	if !m.Unchanged {
		if err := n.checkNotSymlink(m.File); err != nil {
			return err
		}
	}

	shimSrc, err := shimSource(o.ShimSrc)
	if err != nil {
		return err
	}
	shim, err := os.ReadFile(shimSrc)
	if err != nil {
		return fmt.Errorf("read shim binary: %w", err)
	}
	shimDst := filepath.Join(o.ShimDir, ShimName)
	oldShim, _ := n.read(shimDst)
	shimChanged := !bytes.Equal(oldShim, shim)

	rb, err := n.findRunsc(ctx)
	if err != nil {
		return fmt.Errorf("%w (install runsc first: e.g. `apt install runsc`, or pass --runsc)", err)
	}
	n.note("runsc %s (%s)", rb.Features.Version, rb.HostPath)
	var runscTOMLData []byte
	if n.host.Exists(o.RunscConfig) {
		n.note("runsc config %s exists: kept as is", o.RunscConfig)
	} else {
		network, why, err := ChooseNetwork(ProbeNetworks(ctx, rb, NetworkModes))
		if err != nil {
			return err
		}
		n.note("runsc config %s: %s", o.RunscConfig, why)
		binaryName := ""
		if o.Runsc != "" {
			binaryName = rb.HostPath
		}
		runscTOMLData = runscTOML(binaryName, network, why)
	}

	if o.DryRun {
		n.note("dry run: nothing written")
		if m.Unchanged {
			n.note("containerd config: already has the %s runtime (%s): no change", RuntimeName, m.Why)
		} else {
			n.note("containerd config: %s", m.Why)
			fmt.Fprint(n.out, diff(m))
		}
		if shimChanged {
			n.note("would install %s from %s", shimDst, shimSrc)
		}
		if runscTOMLData != nil {
			n.note("would write %s:\n%s", o.RunscConfig, runscTOMLData)
		}
		return nil
	}

	st, err := n.loadState()
	if err != nil {
		return err
	}
	if shimChanged {
		if err := n.installFile(&st.Shim, shimDst, shim, 0o755); err != nil {
			return err
		}
		if err := n.saveState(st); err != nil {
			return err
		}
		n.note("installed %s", shimDst)
	} else {
		n.note("%s is up to date", shimDst)
	}
	if runscTOMLData != nil {
		if err := n.installFile(&st.RunscConfig, o.RunscConfig, runscTOMLData, 0o644); err != nil {
			return err
		}
		if err := n.saveState(st); err != nil {
			return err
		}
	}
	if m.Unchanged {
		n.note("containerd config: already installed (%s): no change", m.Why)
	} else {
		if st.Config != nil && st.Config.Path != m.File {
			return fmt.Errorf("runsc-node state records an edit of %s, but the runtime is missing and would go into %s: run `runsc-node uninstall` first", st.Config.Path, m.File)
		}
		mode := os.FileMode(0o644)
		if r, err := n.host.Path(m.File); err == nil {
			if fi, err := os.Stat(r); err == nil {
				mode = fi.Mode().Perm()
			}
		}
		if err := n.installFile(&st.Config, m.File, m.After, mode); err != nil {
			return err
		}
		if err := n.saveState(st); err != nil {
			return err
		}
		if st.Config.Existed {
			n.note("containerd config: added the %s runtime to %s; %s (original saved as %s)", RuntimeName, m.File, m.Why, st.Config.Backup)
		} else {
			n.note("containerd config: wrote %s; %s", m.File, m.Why)
		}
	}

	if o.NoRestart {
		if !m.Unchanged {
			n.note("not restarting containerd (--no-restart): restart it to load the runtime: %s", n.restartCommand())
		}
		return nil
	}
	restarted := false
	if !m.Unchanged {
		ok, err := n.restart(ctx)
		if err != nil {
			return err
		}
		if !ok {
			n.note("not verified: containerd must be restarted first")
			return nil
		}
		restarted = true
	} else if n.Process == nil {
		n.note("containerd is not running: start it, then run `runsc-node doctor`")
		return nil
	}
	// containerd's own API runs the shim whatever the CRI config says: make
	// sure the running CRI plugin has the runtime kubelet will ask for.
	if loaded, err := n.runningRuntimes(ctx); err == nil && !loaded[RuntimeName] {
		if restarted {
			return fmt.Errorf("containerd restarted, but its CRI plugin has no %q runtime (it has %s): run `runsc-node doctor`", RuntimeName, orNone(sortedNames(loaded)))
		}
		n.note("not verified: the running containerd's CRI plugin has no %q runtime yet (it has %s): restart containerd (%s), then run install again", RuntimeName, orNone(sortedNames(loaded)), n.restartCommand())
		return nil
	}
	v, err := n.Verify(ctx)
	if err != nil {
		return err
	}
	n.note("verified: a container of %s ran with runtime %s: uname -r = %s, dmesg: %s", v.Image, v.Runtime, v.Kernel, v.Dmesg)
	n.note("installed")
	return nil
}

// shimSource is --shim-src, or the shim next to runsc-node, or
// bin/containerd-shim-runsc-v1.
func shimSource(flag string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	var tried []string
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), ShimName)
		if isExecutable(p) == nil {
			return p, nil
		}
		tried = append(tried, p)
	}
	p := filepath.Join("bin", ShimName)
	if isExecutable(p) == nil {
		return p, nil
	}
	tried = append(tried, p)
	return "", fmt.Errorf("no shim binary to install (looked at %s): pass --shim-src", strings.Join(tried, ", "))
}

// diff shows what Merge changes, as a unified diff of the appended lines.
func diff(m *Merge) string {
	var b strings.Builder
	before := "/dev/null"
	if m.Existed {
		before = m.File
	}
	fmt.Fprintf(&b, "--- %s\n+++ %s\n", before, m.File)
	added := strings.TrimPrefix(string(m.After), string(m.Before))
	oldLines := strings.Count(string(m.Before), "\n")
	lines := strings.Split(strings.TrimSuffix(added, "\n"), "\n")
	fmt.Fprintf(&b, "@@ -%d,0 +%d,%d @@\n", oldLines, oldLines+1, len(lines))
	for _, l := range lines {
		b.WriteString("+" + l + "\n")
	}
	return b.String()
}

// systemd reports whether the host runs systemd as PID 1.
func (n *Node) systemd() bool {
	return n.host.Exists("/run/systemd/system")
}

// restartCommand is what restarts containerd on this host.
func (n *Node) restartCommand() string {
	if n.systemd() {
		return "systemctl restart containerd"
	}
	if n.Process != nil {
		return fmt.Sprintf("kill -TERM %d and start it again as before: %s", n.Process.Pid, shellJoin(n.Process.Argv))
	}
	return fmt.Sprintf("start containerd: %s --config %s", n.Bin, n.Config)
}

func shellJoin(argv []string) string {
	out := make([]string, len(argv))
	for i, a := range argv {
		if a != "" && strings.Trim(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,@%+") == "" {
			out[i] = a
		} else {
			out[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return strings.Join(out, " ")
}

// restart restarts containerd through systemd; without systemd it prints
// the command and returns false.
func (n *Node) restart(ctx context.Context) (bool, error) {
	if !n.systemd() {
		n.note("containerd is not managed by systemd here (PID 1 is not systemd): restart it yourself: %s", n.restartCommand())
		return false, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/systemctl", "restart", "containerd")
	if root := filepath.Clean(n.host.Root); root != "/" {
		// The host's systemctl, with the host's libraries.
		cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: root}
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return false, fmt.Errorf("systemctl restart containerd: %w: %s", err, strings.TrimSpace(string(out)))
	}
	n.note("restarted containerd (systemctl restart containerd)")
	if err := n.waitServing(ctx); err != nil {
		return false, err
	}
	return true, nil
}

// waitServing waits until containerd answers on its socket after a restart.
func (n *Node) waitServing(ctx context.Context) error {
	var last error
	for {
		c, err := n.dial(ctx)
		if err == nil {
			ok, serr := c.IsServing(ctx)
			c.Close()
			if serr == nil && ok {
				return nil
			}
			err = serr
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("containerd does not serve on %s after the restart: %w", n.opts.ContainerdAddress, errors.Join(ctx.Err(), last))
		case <-time.After(200 * time.Millisecond):
		}
	}
}
