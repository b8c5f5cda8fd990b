package integration

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// compatDoc is the compatibility table whose rows cite these tests.
const compatDoc = "../docs/compatibility.md"

var citedTest = regexp.MustCompile("`(Test[A-Za-z0-9_]+(?:/[A-Za-z0-9._-]+)*)`")

// integrationTests returns the package's top-level Test functions and the
// literal subtest names passed to t.Run.
func integrationTests(t *testing.T) (funcs, subtests map[string]bool) {
	t.Helper()
	files, err := filepath.Glob("*_test.go")
	if err != nil {
		t.Fatal(err)
	}
	funcs, subtests = map[string]bool{}, map[string]bool{}
	fset := token.NewFileSet()
	for _, f := range files {
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatalf("parse %s: %v", f, err)
		}
		for _, d := range file.Decls {
			if fd, ok := d.(*ast.FuncDecl); ok && fd.Recv == nil && strings.HasPrefix(fd.Name.Name, "Test") {
				funcs[fd.Name.Name] = true
			}
		}
		ast.Inspect(file, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) != 2 {
				return true
			}
			if sel, ok := call.Fun.(*ast.SelectorExpr); !ok || sel.Sel.Name != "Run" {
				return true
			}
			if lit, ok := call.Args[0].(*ast.BasicLit); ok && lit.Kind == token.STRING {
				if s, err := strconv.Unquote(lit.Value); err == nil {
					subtests[s] = true
				}
			}
			return true
		})
	}
	return funcs, subtests
}

// TestCompatibilityDocTestsExist: every test docs/compatibility.md cites
// exists in this package (the test function, and each subtest name as a
// t.Run of the package; the containerd-<version> level is implied), and
// every TestCompatRaw* measurement and TestCRICompat subtest is cited, so
// the table and the tests cannot drift apart.
func TestCompatibilityDocTestsExist(t *testing.T) {
	doc, err := os.ReadFile(compatDoc)
	if err != nil {
		t.Fatalf("read the compatibility table: %v", err)
	}
	funcs, subtests := integrationTests(t)
	cited := map[string]bool{}
	for _, m := range citedTest.FindAllStringSubmatch(string(doc), -1) {
		name := m[1]
		cited[name] = true
		parts := strings.Split(name, "/")
		if !funcs[parts[0]] {
			t.Errorf("%s cites %s: no test function %s in package integration", compatDoc, name, parts[0])
			continue
		}
		for _, sub := range parts[1:] {
			if !subtests[sub] {
				t.Errorf("%s cites %s: no subtest %q (t.Run) in package integration", compatDoc, name, sub)
			}
		}
	}
	if len(cited) == 0 {
		t.Fatalf("%s cites no test", compatDoc)
	}
	var uncited []string
	for f := range funcs {
		if strings.HasPrefix(f, "TestCompatRaw") && !cited[f] {
			uncited = append(uncited, f)
		}
	}
	for _, sub := range criCompatSubtests(t) {
		if !cited["TestCRICompat/"+sub] {
			uncited = append(uncited, "TestCRICompat/"+sub)
		}
	}
	sort.Strings(uncited)
	for _, u := range uncited {
		t.Errorf("%s is not cited by any row of %s", u, compatDoc)
	}
	t.Logf("%s cites %d tests, all present", compatDoc, len(cited))
}

// criCompatSubtests are the subtest names TestCRICompat runs.
func criCompatSubtests(t *testing.T) []string {
	t.Helper()
	src, err := os.ReadFile("cri_compat_test.go")
	if err != nil {
		t.Fatal(err)
	}
	body := string(src)
	start := strings.Index(body, "func TestCRICompat(")
	end := strings.Index(body[start:], "\n}\n")
	var out []string
	for _, m := range regexp.MustCompile(`t\.Run\("([^"]+)"`).FindAllStringSubmatch(body[start:start+end], -1) {
		out = append(out, m[1])
	}
	if len(out) == 0 {
		t.Fatal("TestCRICompat runs no subtests?")
	}
	return out
}
