// Command demo shows the shim at work: it builds containerd-shim-runsc-v1,
// starts a private containerd (2.4 if available, else 1.6), imports a
// busybox image built from the host's static busybox, runs one container
// in a gVisor sandbox printing `uname -r` and the first lines of `dmesg`,
// and removes everything it created. Run as root:
//
//	go run ./integration/demo [-containerd auto|1.6|2.4] [-v]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/gvisor-shim/containerd-shim-runsc-v1/integration/harness"
)

func main() {
	version := flag.String("containerd", "auto", "containerd to run: auto (2.4 if present, else 1.6), 1.6 or 2.4")
	verbose := flag.Bool("v", false, "log harness progress")
	flag.Parse()
	if err := run(*version, *verbose); err != nil {
		fmt.Fprintf(os.Stderr, "demo: %v\n", err)
		os.Exit(1)
	}
}

func run(version string, verbose bool) (retErr error) {
	if os.Geteuid() != 0 {
		return errors.New("must run as root (containerd and runsc need it)")
	}
	logf := harness.Logf(nil)
	if verbose {
		logf = harness.StderrLogf
	}
	step := func(format string, args ...any) { fmt.Printf("==> "+format+"\n", args...) }

	if version == "auto" {
		version = "1.6"
		if bin, _, _ := harness.DaemonBinaries("2.4"); isExecutable(bin) {
			version = "2.4"
		}
	}
	bin, _, err := harness.DaemonBinaries(version)
	if err != nil {
		return err
	}
	for _, b := range []string{bin, harness.Runsc(), harness.BusyboxBinary} {
		if !isExecutable(b) {
			return fmt.Errorf("%s is missing (see .ci/run for how to install it)", b)
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()

	shimDir, err := os.MkdirTemp("", "runsc-shim-demo")
	if err != nil {
		return err
	}
	defer os.RemoveAll(shimDir)
	step("building %s", harness.ShimBinaryName)
	if _, err := harness.BuildShim(shimDir, logf); err != nil {
		return err
	}

	step("starting a private containerd %s (%s)", version, bin)
	d, err := harness.StartDaemon(ctx, harness.DaemonOptions{
		Version:   version,
		ShimDirs:  []string{shimDir},
		Namespace: "runsc-demo",
		Logf:      logf,
	})
	if err != nil {
		return err
	}
	defer func() {
		step("stopping containerd and removing %s", d.Dir)
		if err := d.Stop(); err != nil {
			retErr = errors.Join(retErr, fmt.Errorf("cleanup: %w", err))
		}
	}()
	defer func() {
		if retErr != nil {
			fmt.Fprintf(os.Stderr, "containerd log tail (%s):\n%s\n", d.LogPath, d.LogTail(40))
		}
	}()

	step("importing busybox image %s", harness.BusyboxRef)
	img, err := harness.ImportBusybox(ctx, d.Client, logf)
	if err != nil {
		return err
	}
	cfg, err := harness.WriteRunscConfig(filepath.Join(d.Dir, "runsc"), nil)
	if err != nil {
		return err
	}

	id := fmt.Sprintf("runsc-demo-%d", os.Getpid())
	step("running container %q with runtime %s (runsc config %s)", id, harness.RuntimeName, cfg.Path)
	start := time.Now()
	res, err := d.Run(ctx, harness.RunOptions{
		ID:             id,
		Image:          img,
		Runtime:        harness.RuntimeName,
		RuntimeOptions: &runtimeoptions.Options{ConfigPath: cfg.Path},
		Args:           []string{"sh", "-c", "echo \"uname -r: $(uname -r)\"; echo 'dmesg | head -n 5:'; dmesg | head -n 5"},
	})
	if err != nil {
		return err
	}
	fmt.Print(indent(res.Stdout))
	if res.Stderr != "" {
		fmt.Print(indent("stderr: " + res.Stderr))
	}
	step("container exited with status %d after %s", res.ExitStatus, time.Since(start).Round(time.Millisecond))
	if left := d.WaitNoLeftovers(5*time.Second, id, cfg.Root, res.ShimAddress); len(left) > 0 {
		return fmt.Errorf("container left behind:\n  %s", strings.Join(left, "\n  "))
	}
	step("no processes, mounts, sockets or runsc state left behind")
	if res.ExitStatus != 0 {
		return fmt.Errorf("container exited with status %d", res.ExitStatus)
	}
	return nil
}

func indent(s string) string {
	s = strings.TrimRight(s, "\n")
	return "    " + strings.ReplaceAll(s, "\n", "\n    ") + "\n"
}

func isExecutable(path string) bool {
	st, err := os.Stat(path)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}
