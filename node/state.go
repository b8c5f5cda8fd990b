package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// State records what install changed, so that uninstall can undo exactly
// that. It lives in <state dir>/state.json on the host.
type State struct {
	// Config is the containerd config file install edited or created.
	Config *FileRecord `json:"config,omitempty"`
	// Shim is the installed shim binary.
	Shim *FileRecord `json:"shim,omitempty"`
	// RunscConfig is the runsc.toml install wrote.
	RunscConfig *FileRecord `json:"runsc_config,omitempty"`
}

// FileRecord is one file install wrote.
type FileRecord struct {
	// Path is the host path.
	Path string `json:"path"`
	// Existed: the file was there before; Backup (a host path) holds its
	// original bytes.
	Existed bool   `json:"existed"`
	Backup  string `json:"backup,omitempty"`
	// Mode is the original file's permission bits.
	Mode os.FileMode `json:"mode,omitempty"`
	// SHA256 is the hash of what install wrote.
	SHA256 string `json:"sha256"`
}

func (n *Node) statePath() string {
	return filepath.Join(n.opts.StateDir, stateFile)
}

func (n *Node) loadState() (*State, error) {
	b, err := n.read(n.statePath())
	if errors.Is(err, os.ErrNotExist) {
		return &State{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read runsc-node state: %w", err)
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("runsc-node state %s is corrupt: %w", n.statePath(), err)
	}
	for _, r := range []*FileRecord{s.Config, s.Shim, s.RunscConfig} {
		if r == nil {
			continue
		}
		if _, err := n.host.Path(r.Path); err != nil {
			return nil, fmt.Errorf("runsc-node state %s: %w", n.statePath(), err)
		}
		if r.Existed {
			if _, err := n.host.Path(r.Backup); err != nil {
				return nil, fmt.Errorf("runsc-node state %s: backup: %w", n.statePath(), err)
			}
		}
	}
	return &s, nil
}

func (n *Node) saveState(s *State) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return n.writeAtomic(n.statePath(), append(b, '\n'), 0o600)
}

// install writes data to the host path p, recording in *rec (if not yet
// recorded) whether it existed, and backing up the original first.
func (n *Node) installFile(rec **FileRecord, p string, data []byte, mode os.FileMode) error {
	r, err := n.host.Path(p)
	if err != nil {
		return err
	}
	if err := n.checkNotSymlink(p); err != nil {
		return err
	}
	if *rec == nil {
		fr := &FileRecord{Path: p}
		if st, err := os.Stat(r); err == nil {
			old, err := os.ReadFile(r)
			if err != nil {
				return fmt.Errorf("back up %s: %w", p, err)
			}
			fr.Existed, fr.Backup, fr.Mode = true, p+BackupSuffix, st.Mode().Perm()
			if err := n.writeAtomic(fr.Backup, old, st.Mode().Perm()); err != nil {
				return fmt.Errorf("back up %s: %w", p, err)
			}
		} else if !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("install %s: %w", p, err)
		}
		*rec = fr
	}
	(*rec).SHA256 = sum(data)
	return n.writeAtomic(p, data, mode)
}

// checkNotSymlink refuses to replace a symlink (the rename would replace
// the link, and uninstall could not bring it back).
func (n *Node) checkNotSymlink(p string) error {
	r, err := n.host.Path(p)
	if err != nil {
		return err
	}
	if fi, err := os.Lstat(r); err == nil && fi.Mode()&os.ModeSymlink != 0 {
		target, _ := os.Readlink(r)
		return fmt.Errorf("%s is a symlink (to %s): runsc-node edits regular files only, so that uninstall can restore them; pass the file it points to", p, target)
	}
	return nil
}
