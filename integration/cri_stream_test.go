package integration

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	restclient "k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/client-go/transport/spdy"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/gvisor-shim/containerd-shim-runsc-v1/integration/harness"
)

// The streaming CRI calls (Attach, PortForward, as kubelet makes them for
// `kubectl attach` and `kubectl port-forward`) return a URL of
// containerd's CRI streaming server; the client talks SPDY to it with
// client-go's remotecommand and portforward, as kubectl does through the
// API server and kubelet.

// streamConfig is the client config for containerd's streaming server
// (plain HTTP on 127.0.0.1 in the harness).
var streamConfig = &restclient.Config{TLSClientConfig: restclient.TLSClientConfig{Insecure: true}}

// testCRIAttach: Attach to a container whose PID 1 is a shell reading
// stdin and writing stdout: a line sent is echoed back, under runsc as
// under runc.
func (e *criEnv) testCRIAttach(t *testing.T) {
	for _, h := range []string{harness.HandlerRunsc, harness.HandlerRunc} {
		t.Run(h, func(t *testing.T) {
			p := e.runPod(t, "attach-"+h, h, nil)
			id := p.start(t, criContainer{name: "echo", command: []string{"sh", "-c", `echo ready; while read l; do echo "echo:$l"; done`},
				mutate: func(cc *runtimeapi.ContainerConfig) { cc.Stdin = true }})
			p.containerLog(t, "echo", id, "ready")
			resp, err := e.c.Runtime.Attach(criCtx(t), &runtimeapi.AttachRequest{ContainerId: id, Stdin: true, Stdout: true, Stderr: true})
			if err != nil {
				t.Fatalf("Attach %s: %v", id, err)
			}
			u, err := url.Parse(resp.Url)
			if err != nil {
				t.Fatalf("Attach %s: url %q: %v", id, resp.Url, err)
			}
			exe, err := remotecommand.NewSPDYExecutor(streamConfig, http.MethodPost, u)
			if err != nil {
				t.Fatalf("attach %s: %v", u, err)
			}
			stdinR, stdinW := io.Pipe()
			stdoutR, stdoutW := io.Pipe()
			ctx, cancel := context.WithTimeout(context.Background(), criWaitTimeout)
			done := make(chan error, 1)
			go func() {
				err := exe.StreamWithContext(ctx, remotecommand.StreamOptions{Stdin: stdinR, Stdout: stdoutW, Stderr: io.Discard})
				stdoutW.CloseWithError(fmt.Errorf("attach stream ended: %v", err))
				done <- err
			}()
			defer func() {
				cancel()
				stdinW.Close()
				<-done
			}()
			lines := make(chan string, 1)
			go func() {
				l, err := bufio.NewReader(stdoutR).ReadString('\n')
				if err != nil {
					l = "error: " + err.Error()
				}
				lines <- strings.TrimSpace(l)
			}()
			if _, err := io.WriteString(stdinW, "hello-attach\n"); err != nil {
				t.Fatalf("attach %s: write stdin: %v", id, err)
			}
			select {
			case got := <-lines:
				t.Logf("handler %s: sent %q over attach, read %q", h, "hello-attach", got)
				if got != "echo:hello-attach" {
					t.Errorf("handler %s: attach read %q, want %q", h, got, "echo:hello-attach")
				}
			case <-ctx.Done():
				t.Fatalf("handler %s: no echo over attach within %s", h, criWaitTimeout)
			}
			if log := p.containerLog(t, "echo", id, "echo:hello-attach"); !strings.Contains(log, "echo:hello-attach") {
				t.Errorf("handler %s: container log %q lacks the echoed line", h, log)
			}
			p.stopRemove(t, true)
		})
	}
}

// testCRIPortForward: PortForward to a server (busybox httpd) listening
// on the pod's port 8080: a request through the forwarded local port gets
// the page, under runsc with network "host" (the Sentry's sockets are the
// pod netns's, where containerd dials) as under runc. With runsc's own
// network stack (network "sandbox", current runsc only: 20221219 cannot
// start it here) the server is in the Sentry, not in the netns where
// containerd dials localhost: the forwarded connection is refused.
func (e *criEnv) testCRIPortForward(t *testing.T) {
	handlers := []string{harness.HandlerRunsc, harness.HandlerRunc}
	if e.netstack(t) {
		handlers = append(handlers, harness.HandlerRunscNetstack)
	}
	for _, h := range handlers {
		t.Run(h, func(t *testing.T) {
			p := e.runPod(t, "portfwd-"+h, h, nil)
			id := p.start(t, criContainer{name: "httpd", command: []string{"sh", "-c",
				"mkdir -p /www && echo forwarded-" + h + " > /www/index.html && exec httpd -f -p 8080 -h /www"}})
			// The server listens once it answers on the pod's IP (as
			// kubelet's httpGet probe sees it).
			if _, err := httpGetRetry("http://"+p.ip+":8080/", 120); err != nil {
				t.Fatalf("httpd in %s not serving on %s:8080: %v", id, p.ip, err)
			}
			got, err := portForwardGet(t, e, p.id, 8080, "/")
			t.Logf("handler %s: GET through port-forward: %q, %v", h, got, err)
			if h == harness.HandlerRunscNetstack {
				if err == nil {
					t.Errorf("handler %s (runsc's own network stack): GET through port-forward worked (%q): update docs/compatibility.md", h, got)
				}
			} else if err != nil {
				t.Errorf("handler %s: %v", h, err)
			} else if want := "forwarded-" + h; strings.TrimSpace(got) != want {
				t.Errorf("handler %s: GET through port-forward: %q, want %q", h, got, want)
			}
			p.stopRemove(t, true)
		})
	}
}

// portForwardGet forwards a local port to the pod's port with CRI
// PortForward and GETs path through it.
func portForwardGet(t *testing.T, e *criEnv, podID string, port int32, path string) (string, error) {
	t.Helper()
	resp, err := e.c.Runtime.PortForward(criCtx(t), &runtimeapi.PortForwardRequest{PodSandboxId: podID, Port: []int32{port}})
	if err != nil {
		return "", fmt.Errorf("PortForward %s: %w", podID, err)
	}
	u, err := url.Parse(resp.Url)
	if err != nil {
		return "", fmt.Errorf("PortForward %s: url %q: %w", podID, resp.Url, err)
	}
	transport, upgrader, err := spdy.RoundTripperFor(streamConfig)
	if err != nil {
		return "", fmt.Errorf("spdy round tripper: %w", err)
	}
	dialer := spdy.NewDialer(upgrader, &http.Client{Transport: transport}, http.MethodPost, u)
	stop, ready := make(chan struct{}), make(chan struct{})
	var out, errOut strings.Builder
	fw, err := portforward.NewOnAddresses(dialer, []string{"127.0.0.1"}, []string{fmt.Sprintf("0:%d", port)}, stop, ready, &out, &errOut)
	if err != nil {
		return "", fmt.Errorf("port-forward %s: %w", u, err)
	}
	done := make(chan error, 1)
	go func() { done <- fw.ForwardPorts() }()
	defer func() {
		close(stop)
		<-done
	}()
	select {
	case <-ready:
	case err := <-done:
		done <- err
		return "", fmt.Errorf("port-forward %s ended before it was ready: %w (%s)", u, err, errOut.String())
	case <-time.After(criWaitTimeout):
		return "", fmt.Errorf("port-forward %s not ready within %s", u, criWaitTimeout)
	}
	ports, err := fw.GetPorts()
	if err != nil || len(ports) != 1 {
		return "", fmt.Errorf("port-forward %s: ports %v: %w", u, ports, err)
	}
	client := &http.Client{Timeout: criCallTimeout}
	r, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d%s", ports[0].Local, path))
	if err != nil {
		return "", fmt.Errorf("GET through port-forward (local %d -> pod %d): %w; forwarder: %s", ports[0].Local, port, err, errOut.String())
	}
	defer r.Body.Close()
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return "", fmt.Errorf("GET through port-forward: read body: %w", err)
	}
	if r.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET through port-forward: %s: %q; forwarder: %s", r.Status, body, errOut.String())
	}
	return string(body), nil
}
