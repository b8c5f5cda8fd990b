package runsc

import (
	"context"
	"encoding/json"
	"fmt"
)

// Stats is the `data` of `runsc events --stats`: the container's resource
// usage as the sandbox accounts it (the shape of runc's events types).
type Stats struct {
	CPU struct {
		Usage struct {
			Total  uint64   `json:"total"`
			Kernel uint64   `json:"kernel"`
			User   uint64   `json:"user"`
			PerCPU []uint64 `json:"percpu,omitempty"`
		} `json:"usage"`
	} `json:"cpu"`
	Memory struct {
		Cache uint64            `json:"cache"`
		Usage MemoryEntry       `json:"usage"`
		Swap  MemoryEntry       `json:"swap"`
		Raw   map[string]uint64 `json:"raw,omitempty"`
	} `json:"memory"`
	Pids struct {
		Current uint64 `json:"current"`
		Limit   uint64 `json:"limit"`
	} `json:"pids"`
	// SandboxWide is set when the memory figures are the whole sandbox's,
	// not the container's (runsc 20221219's control call).
	SandboxWide bool `json:"-"`
}

// MemoryEntry is one memory counter of Stats.
type MemoryEntry struct {
	Limit   uint64 `json:"limit"`
	Usage   uint64 `json:"usage"`
	Max     uint64 `json:"max"`
	Failcnt uint64 `json:"failcnt"`
}

// ParseStats decodes the output of `runsc events --stats`.
func ParseStats(out []byte) (*Stats, error) {
	var ev struct {
		Type string `json:"type"`
		ID   string `json:"id"`
		Data *Stats `json:"data"`
	}
	if err := json.Unmarshal(out, &ev); err != nil {
		return nil, fmt.Errorf("runsc events: decode %q: %w", out, err)
	}
	if ev.Type != "stats" || ev.Data == nil {
		return nil, fmt.Errorf("runsc events: no stats in %q", out)
	}
	return ev.Data, nil
}

// Stats runs `runsc events --stats` once.
func (r *Runsc) Stats(ctx context.Context, id string) (*Stats, error) {
	out, err := r.run(r.cmd(ctx, "events", "--stats", r.ID(id)), "events")
	if err != nil {
		return nil, err
	}
	return ParseStats(out)
}
