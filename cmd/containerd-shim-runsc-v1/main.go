// Command containerd-shim-runsc-v1 is the containerd runtime shim for gVisor
// (runtime type io.containerd.runsc.v1).
package main

import (
	"github.com/gvisor-shim/containerd-shim-runsc-v1/runsc"
	"github.com/gvisor-shim/containerd-shim-runsc-v1/shim"
)

func main() {
	// A runsc process held for the systemd cgroup driver (runsc.Hold)
	// never reaches the shim.
	runsc.Hold()
	shim.Main()
}
