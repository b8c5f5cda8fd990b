package runsc

import "context"

// Do runs `runsc do <args...>`: a command in a throwaway sandbox whose root
// is the caller's filesystem. The node installer uses it to find out which
// runsc settings (network modes, platforms) start a sandbox on this host.
// r.Bundle receives log.json; r.Root must be a private state root.
func (r *Runsc) Do(ctx context.Context, args ...string) ([]byte, error) {
	return r.runWith(ctx, r.cmd(ctx, "do", args...), "do", nil)
}
