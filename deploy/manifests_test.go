// Package deploy holds the Kubernetes manifests (RuntimeClass, the node
// installer DaemonSet and its cleanup); this test parses them strictly into
// the Kubernetes API types and checks that they fit together.
package deploy

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/gvisor-shim/containerd-shim-runsc-v1/node"
)

// readyLabel is what the DaemonSet sets on a node and the RuntimeClass selects.
const (
	readyLabel = "runsc.gvisor.dev/ready"
	readyValue = "true"
)

var docSep = regexp.MustCompile(`(?m)^---[ \t]*$`)

type manifests struct {
	runtimeClasses []nodev1.RuntimeClass
	daemonSets     map[string]appsv1.DaemonSet
	serviceAccount map[string]corev1.ServiceAccount
	clusterRoles   map[string]rbacv1.ClusterRole
	bindings       []rbacv1.ClusterRoleBinding
	pods           []corev1.Pod
	namespaces     []corev1.Namespace
}

// load decodes every document of every deploy/*.yaml strictly (unknown or
// misplaced fields fail) into its API type.
func load(t *testing.T) *manifests {
	t.Helper()
	files, err := filepath.Glob("*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests: %v", err)
	}
	m := &manifests{daemonSets: map[string]appsv1.DaemonSet{}, serviceAccount: map[string]corev1.ServiceAccount{}, clusterRoles: map[string]rbacv1.ClusterRole{}}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range docSep.Split(string(b), -1) {
			if strings.TrimSpace(regexp.MustCompile(`(?m)^\s*#.*$`).ReplaceAllString(doc, "")) == "" {
				continue
			}
			var tm metav1.TypeMeta
			if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
				t.Fatalf("%s document %d: %v", f, i, err)
			}
			strict := func(v any) {
				t.Helper()
				if err := yaml.UnmarshalStrict([]byte(doc), v); err != nil {
					t.Fatalf("%s document %d (%s %s): %v", f, i, tm.APIVersion, tm.Kind, err)
				}
			}
			switch tm.APIVersion + " " + tm.Kind {
			case "node.k8s.io/v1 RuntimeClass":
				var v nodev1.RuntimeClass
				strict(&v)
				m.runtimeClasses = append(m.runtimeClasses, v)
			case "apps/v1 DaemonSet":
				var v appsv1.DaemonSet
				strict(&v)
				m.daemonSets[v.Name] = v
			case "v1 ServiceAccount":
				var v corev1.ServiceAccount
				strict(&v)
				m.serviceAccount[v.Namespace+"/"+v.Name] = v
			case "rbac.authorization.k8s.io/v1 ClusterRole":
				var v rbacv1.ClusterRole
				strict(&v)
				m.clusterRoles[v.Name] = v
			case "rbac.authorization.k8s.io/v1 ClusterRoleBinding":
				var v rbacv1.ClusterRoleBinding
				strict(&v)
				m.bindings = append(m.bindings, v)
			case "v1 Pod":
				var v corev1.Pod
				strict(&v)
				m.pods = append(m.pods, v)
			case "v1 Namespace":
				var v corev1.Namespace
				strict(&v)
				m.namespaces = append(m.namespaces, v)
			default:
				t.Fatalf("%s document %d: unexpected %q %q (add it to this test)", f, i, tm.APIVersion, tm.Kind)
			}
		}
	}
	return m
}

func TestStrictParseCatchesMistakes(t *testing.T) {
	// The decoder this test relies on rejects a misplaced field.
	bad := "apiVersion: node.k8s.io/v1\nkind: RuntimeClass\nmetadata:\n  name: x\nhandler: runsc\nnodeSelector:\n  a: b\n"
	if err := yaml.UnmarshalStrict([]byte(bad), &nodev1.RuntimeClass{}); err == nil {
		t.Fatal("a RuntimeClass with a top-level nodeSelector parsed")
	}
}

func TestRuntimeClass(t *testing.T) {
	m := load(t)
	if len(m.runtimeClasses) != 1 {
		t.Fatalf("%d RuntimeClasses", len(m.runtimeClasses))
	}
	rc := m.runtimeClasses[0]
	if rc.Name != "gvisor" || rc.Handler != node.RuntimeName {
		t.Errorf("RuntimeClass %q handler %q, want gvisor / %q (the runtime runsc-node adds)", rc.Name, rc.Handler, node.RuntimeName)
	}
	if rc.Scheduling == nil || rc.Scheduling.NodeSelector[readyLabel] != readyValue {
		t.Errorf("RuntimeClass scheduling %+v does not select %s=%s", rc.Scheduling, readyLabel, readyValue)
	}
	if rc.Overhead == nil {
		t.Fatal("RuntimeClass has no overhead")
	}
	if mem := rc.Overhead.PodFixed.Memory(); mem.Cmp(resource.MustParse("64Mi")) < 0 {
		t.Errorf("overhead memory %s is below one idle sandbox (see TestRuntimeClassOverhead)", mem)
	}
	if cpu := rc.Overhead.PodFixed.Cpu(); cpu.IsZero() {
		t.Error("overhead has no cpu")
	}
	for _, p := range m.pods {
		if p.Spec.RuntimeClassName == nil || *p.Spec.RuntimeClassName != rc.Name {
			t.Errorf("example pod %s does not use the RuntimeClass", p.Name)
		}
	}
}

func script(c corev1.Container) string {
	return strings.Join(append(append([]string{}, c.Command...), c.Args...), " ")
}

func hostRootMounted(t *testing.T, ds appsv1.DaemonSet, c corev1.Container) {
	t.Helper()
	vol := ""
	for _, vm := range c.VolumeMounts {
		if vm.MountPath == "/host" {
			vol = vm.Name
		}
	}
	for _, v := range ds.Spec.Template.Spec.Volumes {
		if v.Name == vol && v.HostPath != nil && v.HostPath.Path == "/" {
			return
		}
	}
	t.Errorf("%s/%s: the host's / is not mounted at /host", ds.Name, c.Name)
}

func TestInstallerDaemonSet(t *testing.T) {
	m := load(t)
	ds, ok := m.daemonSets["runsc-node"]
	if !ok {
		t.Fatal("no runsc-node DaemonSet")
	}
	spec := ds.Spec.Template.Spec
	if !spec.HostPID || len(spec.NodeSelector) == 0 {
		t.Errorf("hostPID %v, nodeSelector %v", spec.HostPID, spec.NodeSelector)
	}
	if !reflectSubset(ds.Spec.Selector.MatchLabels, ds.Spec.Template.Labels) {
		t.Error("the selector does not match the pod template")
	}
	var install, label *corev1.Container
	for i, c := range spec.InitContainers {
		if strings.Contains(script(c), "runsc-node install --host-root=/host") {
			install = &spec.InitContainers[i]
		}
	}
	for i, c := range spec.Containers {
		if strings.Contains(script(c), "kubectl label node") {
			label = &spec.Containers[i]
		}
	}
	if install == nil || label == nil {
		t.Fatalf("want an init container running `runsc-node install --host-root=/host` and a container labeling the node")
	}
	for _, c := range []*corev1.Container{install, label} {
		if c.SecurityContext == nil || c.SecurityContext.Privileged == nil || !*c.SecurityContext.Privileged {
			t.Errorf("container %s is not privileged", c.Name)
		}
		hostRootMounted(t, ds, *c)
	}
	s := script(*label)
	if !strings.Contains(s, readyLabel+"="+readyValue) {
		t.Errorf("the DaemonSet does not apply %s=%s (the RuntimeClass's nodeSelector): %s", readyLabel, readyValue, s)
	}
	if !strings.Contains(s, "runsc-node doctor") || strings.Index(s, "runsc-node doctor") > strings.Index(s, "kubectl label") {
		t.Error("the node is labeled without passing doctor first")
	}
	// The verify image is the DaemonSet's own image.
	if !slices.Contains(install.Command, "--verify-image="+install.Image) {
		t.Errorf("install's --verify-image is not its image %s: %v", install.Image, install.Command)
	}
	checkRBAC(t, m, spec.ServiceAccountName, ds.Namespace)

	cleanup, ok := m.daemonSets["runsc-node-cleanup"]
	if !ok {
		t.Fatal("no cleanup DaemonSet")
	}
	found := false
	for _, c := range cleanup.Spec.Template.Spec.InitContainers {
		if strings.Contains(script(c), "runsc-node uninstall --host-root=/host") {
			found = true
			hostRootMounted(t, cleanup, c)
		}
	}
	if !found {
		t.Error("the cleanup DaemonSet does not run `runsc-node uninstall --host-root=/host`")
	}
	if reflectSubset(cleanup.Spec.Template.Spec.NodeSelector, spec.NodeSelector) {
		t.Error("install and cleanup select the same nodes")
	}
	checkRBAC(t, m, cleanup.Spec.Template.Spec.ServiceAccountName, cleanup.Namespace)
}

// checkRBAC: the ServiceAccount exists and is bound to a role that may
// patch nodes.
func checkRBAC(t *testing.T, m *manifests, sa, ns string) {
	t.Helper()
	if _, ok := m.serviceAccount[ns+"/"+sa]; !ok {
		t.Errorf("no ServiceAccount %s/%s", ns, sa)
		return
	}
	for _, b := range m.bindings {
		for _, s := range b.Subjects {
			if s.Kind != "ServiceAccount" || s.Name != sa || s.Namespace != ns {
				continue
			}
			for _, r := range m.clusterRoles[b.RoleRef.Name].Rules {
				if slices.Contains(r.Resources, "nodes") && slices.Contains(r.Verbs, "patch") {
					return
				}
			}
		}
	}
	t.Errorf("ServiceAccount %s/%s may not patch nodes", ns, sa)
}

func reflectSubset(sub, super map[string]string) bool {
	for k, v := range sub {
		if super[k] != v {
			return false
		}
	}
	return true
}
