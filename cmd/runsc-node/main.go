// Command runsc-node installs containerd-shim-runsc-v1 (gVisor) on a node,
// removes it again, and diagnoses a node:
//
//	runsc-node install   [flags]   merge the runsc runtime into containerd's config, install the shim
//	                                and runsc.toml, restart containerd, verify
//	runsc-node uninstall [flags]   restore what install changed
//	runsc-node doctor    [flags]   one line per check; exit status 1 if the node cannot run gVisor pods
//
// All logic is in package node.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/gvisor-shim/containerd-shim-runsc-v1/node"
)

// Version is set at build time.
var Version = "dev"

const usage = `usage: runsc-node install|uninstall|doctor|version [flags]

  install    merge a "runsc" runtime into containerd's config (keeping every byte of it,
             with a backup), install the shim and /etc/containerd/runsc.toml, restart
             containerd and run a test container in gVisor
  uninstall  restore containerd's config byte for byte and remove what install added
  doctor     check the node; exit status 1 if it cannot run gVisor pods

flags:
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	sub := os.Args[1]
	if sub == "version" || sub == "-v" || sub == "--version" {
		fmt.Println("runsc-node", Version)
		return
	}
	switch sub {
	case "install", "uninstall", "doctor":
	default:
		fmt.Fprintf(os.Stderr, "runsc-node: unknown command %q\n%s", sub, usage)
		os.Exit(2)
	}
	fs := flag.NewFlagSet("runsc-node "+sub, flag.ContinueOnError)
	var o node.Options
	fs.StringVar(&o.HostRoot, "host-root", "/", "where the host's root directory is mounted; every host path is resolved under it")
	fs.StringVar(&o.ContainerdConfig, "containerd-config", "", "containerd's config file (host path; default: the running containerd's --config, else "+node.DefaultConfig+")")
	fs.StringVar(&o.ContainerdAddress, "containerd-address", node.DefaultAddress, "containerd's gRPC socket (host path)")
	fs.StringVar(&o.ContainerdBin, "containerd-bin", "", "containerd binary (host path; default: the running containerd's executable, else containerd on PATH)")
	fs.StringVar(&o.ShimSrc, "shim-src", "", "the shim binary to install (default: "+node.ShimName+" next to runsc-node, else bin/"+node.ShimName+")")
	fs.StringVar(&o.Runsc, "runsc", "", "runsc binary (host path or name on containerd's PATH); when set, runsc.toml names it as binary_name")
	fs.StringVar(&o.ShimDir, "shim-dir", node.DefaultShimDir, "where to install the shim (host path, must be on containerd's PATH)")
	fs.StringVar(&o.RunscConfig, "runsc-config", node.DefaultRunscConfig, "runsc.toml to write and name as the runtime's ConfigPath (host path)")
	fs.StringVar(&o.StateDir, "state-dir", node.DefaultStateDir, "where install records what it changed (host path)")
	fs.BoolVar(&o.NoRestart, "no-restart", false, "do not restart containerd (and so do not verify)")
	fs.BoolVar(&o.DryRun, "dry-run", false, "print the change and exit")
	fs.BoolVar(&o.Force, "force", false, "uninstall: restore the original config even if it changed since the install")
	fs.StringVar(&o.VerifyImage, "verify-image", "", "image for the verify container (needs sh, uname, dmesg; default: a busybox image in the namespace)")
	fs.StringVar(&o.VerifyNamespace, "verify-namespace", node.DefaultVerifyNamespace, "containerd namespace of the verify container and image")
	fs.Usage = func() {
		fmt.Fprint(os.Stderr, usage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(os.Args[2:]); err != nil {
		os.Exit(2)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "runsc-node %s: unexpected arguments %q\n", sub, fs.Args())
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch sub {
	case "install":
		err = node.Install(ctx, o)
	case "uninstall":
		err = node.Uninstall(ctx, o)
	case "doctor":
		_, err = node.Doctor(ctx, o)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "runsc-node %s: %v\n", sub, err)
		os.Exit(1)
	}
}
