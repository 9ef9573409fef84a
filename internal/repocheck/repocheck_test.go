package repocheck

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// root is the repository's top directory.
const root = "../.."

// files calls fn with the path and content of every text file of the
// repository that a reader follows: Go sources, Markdown, scripts and
// test data transcripts.
func files(t *testing.T, fn func(path, text string)) {
	t.Helper()
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); name == ".git" || name == "testdata" && strings.Contains(p, "fuzz") {
				return filepath.SkipDir
			}
			return nil
		}
		switch filepath.Ext(p) {
		case ".go", ".md", ".sh", ".txt":
		default:
			if filepath.Base(p) != "run" {
				return nil
			}
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		fn(rel, string(b))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// The notes the project was started from (Cyrus's formats, lab findings,
// benchmarking advice) are not in the repository: what the code relies on
// is in docs/cyrus, and nothing may send a reader to the notes.
func TestNoReferenceOutside(t *testing.T) {
	outside := regexp.MustCompile(`(^|[^/a-z])(locking|sync-records|seen-and-dbs|cyrus-spool|repository-notes|FINDINGS|BENCHMARKING|STYLE|guid|dlist)\.md|shared/(spec|cyrus-lab|cyrus-sync)|cyrus-lab FINDINGS|synccrc\.py`)
	n := 0
	files(t, func(path, text string) {
		n++
		if path == filepath.Join("internal", "repocheck", "repocheck_test.go") {
			return
		}
		// docs/cyrus's own pages link each other by bare name.
		inCyrus := strings.HasPrefix(path, filepath.Join("docs", "cyrus")+string(filepath.Separator))
		for i, line := range strings.Split(text, "\n") {
			if inCyrus {
				line = regexp.MustCompile(`\[(files|locking|replication)\.md\]\((files|locking|replication)\.md\)`).ReplaceAllString(line, "")
			}
			if m := outside.FindString(line); m != "" {
				t.Errorf("%s:%d cites %q, which is not in this repository: %s", path, i+1, m, strings.TrimSpace(line))
			}
		}
	})
	if n < 100 {
		t.Fatalf("only %d files looked at", n)
	}
}

// Every "docs/cyrus/F.md §N" (or §N.M) in the repository names a file of
// docs/cyrus with a heading "## N." (or "### N.M").
func TestCyrusDocCitations(t *testing.T) {
	cite := regexp.MustCompile(`docs/cyrus/([a-z]+\.md)((?:[\s/]*(?:§\s*[0-9.]*[0-9]),?)*)`)
	section := regexp.MustCompile(`§\s*([0-9]+(?:\.[0-9]+)?)`)
	headings := map[string]map[string]bool{}
	found := 0
	files(t, func(path, text string) {
		// Citations may break across comment lines: join them.
		text = regexp.MustCompile(`\n\s*(//|#)?\s*`).ReplaceAllString(text, " ")
		for _, m := range cite.FindAllStringSubmatch(text, -1) {
			doc := m[1]
			h, ok := headings[doc]
			if !ok {
				b, err := os.ReadFile(filepath.Join(root, "docs", "cyrus", doc))
				if err != nil {
					t.Errorf("%s cites docs/cyrus/%s: %v", path, doc, err)
					headings[doc] = nil
					continue
				}
				h = map[string]bool{}
				for _, hm := range regexp.MustCompile(`(?m)^#{2,3} ([0-9]+(?:\.[0-9]+)?)\.? `).FindAllStringSubmatch(string(b), -1) {
					h[hm[1]] = true
				}
				headings[doc] = h
			}
			for _, s := range section.FindAllStringSubmatch(m[2], -1) {
				found++
				if h != nil && !h[s[1]] {
					t.Errorf("%s cites docs/cyrus/%s §%s, which has no such section", path, doc, s[1])
				}
			}
		}
	})
	if found < 40 {
		t.Errorf("only %d citations of docs/cyrus sections found", found)
	}
}

// layers are the import layers of ARCHITECTURE.md: a package imports only
// from its own layer or below. Packages not listed (test helpers,
// scripts, main) are not checked, except that only main imports commands.
var layers = map[string]int{
	"dlist": 1, "msghdr": 1, "guid": 1, "guidtable": 1, "lock": 1, "cyrusfs": 1, "s3store": 1,
	"cyrusdb": 2, "cyrustool": 2, "syncrec": 2, "spill": 2, "dumpfile": 2, "dumpcheck": 2, "mboxname": 2, "partition": 2, "syncproto": 2,
	"dump": 3, "restore": 3, "restore/result": 3, "restore/msgsel": 3, "restore/invariant": 3, "verify": 3, "remote": 3, "seencleanup": 3, "usermap": 3, "dumplist": 3, "repo": 3, "repo/repodump": 3,
	"commands": 4,
}

const module = "github.com/mbtool/mbtool/"

// TestImportLayers checks the import rules of ARCHITECTURE.md on the
// non-test sources of every package.
func TestImportLayers(t *testing.T) {
	fset := token.NewFileSet()
	seen := map[string]bool{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return err
		}
		rel, _ := filepath.Rel(root, filepath.Dir(p))
		pkg := filepath.ToSlash(rel)
		f, err := parser.ParseFile(fset, p, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		seen[pkg] = true
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			dep, ok := strings.CutPrefix(path, module)
			if !ok {
				continue
			}
			if dep == "commands" && pkg != "." {
				t.Errorf("%s imports commands: only main.go may", p)
			}
			from, checked := layers[pkg]
			if !checked {
				continue
			}
			to, known := layers[dep]
			switch {
			case !known && (strings.HasPrefix(dep, "fixtures") || strings.HasPrefix(dep, "internal/cyruslab") || strings.HasPrefix(dep, "internal/s3lab")):
				t.Errorf("%s (not a test) imports the test helper %s", p, dep)
			case !known:
				t.Errorf("%s imports %s, which has no layer in ARCHITECTURE.md", p, dep)
			case to > from:
				t.Errorf("%s (layer %d) imports %s (layer %d): imports go down, never up (ARCHITECTURE.md)", p, from, dep, to)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for pkg := range layers {
		if !seen[pkg] {
			t.Errorf("ARCHITECTURE.md's layer package %s has no sources", pkg)
		}
	}
}
