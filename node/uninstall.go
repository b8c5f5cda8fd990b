package node

import (
	"context"
	"errors"
	"fmt"
	"os"
)

// Uninstall undoes what install recorded: the config file gets its
// original bytes back (or is removed if install created it), and the shim
// and runsc.toml are restored or removed.
func Uninstall(ctx context.Context, opts Options) error {
	opts.defaults()
	if err := opts.validate(); err != nil {
		return err
	}
	n := &Node{opts: opts, host: Host{Root: opts.HostRoot}, out: opts.Out}
	return n.Uninstall(ctx)
}

// Uninstall is Uninstall on a node.
func (n *Node) Uninstall(ctx context.Context) error {
	st, err := n.loadState()
	if err != nil {
		return err
	}
	if st.Config == nil && st.Shim == nil && st.RunscConfig == nil {
		n.note("nothing to uninstall: %v (no %s)", errNotInstalled, n.statePath())
		return nil
	}
	if st.Config != nil {
		cur, err := n.read(st.Config.Path)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("read %s: %w", st.Config.Path, err)
		}
		if sum(cur) != st.Config.SHA256 && !n.opts.Force {
			return fmt.Errorf("%s changed since runsc-node installed the runtime: restoring the original would lose those changes; remove the runsc runtime by hand and delete %s, or run uninstall --force to restore %s anyway",
				st.Config.Path, n.statePath(), backupOrRemove(st.Config))
		}
	}
	if n.opts.DryRun {
		for _, r := range []*FileRecord{st.Config, st.Shim, st.RunscConfig} {
			if r != nil {
				n.note("would restore %s: %s", r.Path, backupOrRemove(r))
			}
		}
		return nil
	}
	for _, r := range []**FileRecord{&st.Config, &st.RunscConfig, &st.Shim} {
		if *r == nil {
			continue
		}
		if err := n.restoreFile(*r); err != nil {
			return err
		}
		n.note("restored %s: %s", (*r).Path, backupOrRemove(*r))
		*r = nil
		if err := n.saveState(st); err != nil {
			return err
		}
	}
	if err := os.Remove(n.host.mustPath(n.statePath())); err != nil {
		return fmt.Errorf("remove runsc-node state: %w", err)
	}
	_ = os.Remove(n.host.mustPath(n.opts.StateDir))
	if n.opts.NoRestart {
		n.note("uninstalled; restart containerd to unload the runtime")
	} else {
		n.note("uninstalled; restart containerd to unload the runtime: %s", n.restartCommandNoProcess())
	}
	return nil
}

func (n *Node) restartCommandNoProcess() string {
	if n.systemd() {
		return "systemctl restart containerd"
	}
	return "restart the containerd process (PID 1 is not systemd)"
}

func backupOrRemove(r *FileRecord) string {
	if r.Existed {
		return "original bytes from " + r.Backup
	}
	return "removed (install created it)"
}

func (n *Node) restoreFile(r *FileRecord) error {
	p, err := n.host.Path(r.Path)
	if err != nil {
		return err
	}
	if !r.Existed {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove %s: %w", r.Path, err)
		}
		return nil
	}
	old, err := n.read(r.Backup)
	if err != nil {
		return fmt.Errorf("restore %s: backup: %w", r.Path, err)
	}
	mode := r.Mode
	if mode == 0 {
		mode = 0o644
	}
	if err := n.writeAtomic(r.Path, old, mode); err != nil {
		return fmt.Errorf("restore %s: %w", r.Path, err)
	}
	if err := os.Remove(n.host.mustPath(r.Backup)); err != nil {
		return fmt.Errorf("remove backup %s: %w", r.Backup, err)
	}
	return nil
}
