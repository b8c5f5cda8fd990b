package harness

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// PauseRef is the name the locally built pause image is imported under and
// the CRI's sandbox image. It names a registry on localhost, so that a
// missing image can at worst make containerd try a pull over loopback.
const PauseRef = "localhost/runsc-shim-test/pause:static"

// pauseSource is a minimal pod sandbox process, like Kubernetes' pause:
// exit 0 on SIGINT/SIGTERM, reap children, sleep forever.
const pauseSource = `#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void sigdown(int sig) { (void)sig; _exit(0); }

static void sigreap(int sig) {
	(void)sig;
	while (waitpid(-1, NULL, WNOHANG) > 0) {
	}
}

int main(void) {
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = sigdown;
	if (sigaction(SIGINT, &sa, NULL) < 0 || sigaction(SIGTERM, &sa, NULL) < 0)
		return 1;
	sa.sa_handler = sigreap;
	sa.sa_flags = SA_NOCLDSTOP;
	if (sigaction(SIGCHLD, &sa, NULL) < 0)
		return 2;
	for (;;)
		pause();
	return 42;
}
`

// BuildPause compiles the static pause binary into dir with gcc and returns
// its path.
func BuildPause(dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	src := filepath.Join(dir, "pause.c")
	out := filepath.Join(dir, "pause")
	if err := os.WriteFile(src, []byte(pauseSource), 0o644); err != nil {
		return "", err
	}
	cmd := exec.Command("gcc", "-static", "-O2", "-o", out, src)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("gcc -static -O2 -o %s %s: %w\n%s", out, src, err, buf.String())
	}
	return out, nil
}

// PauseArchive builds the image layout archive of PauseRef from a pause
// binary: /pause as entrypoint, nothing else.
func PauseArchive(pause string) ([]byte, error) {
	bin, err := os.ReadFile(pause)
	if err != nil {
		return nil, err
	}
	return ImageArchive(ImageSpec{
		Ref: PauseRef,
		Entries: []LayerEntry{
			{Name: "dev/", Mode: 0o755}, {Name: "proc/", Mode: 0o555}, {Name: "sys/", Mode: 0o555},
			{Name: "etc/", Mode: 0o755}, {Name: "pause", Mode: 0o755, Data: bin},
		},
		Config: ocispec.ImageConfig{
			Entrypoint: []string{"/pause"},
			User:       "65535:65535",
		},
		CreatedBy: "integration/harness: gcc -static -O2 pause.c",
	})
}
