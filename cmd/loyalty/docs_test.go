package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestDocsNameFilesThatExist: docs/RULES.md sent newcomers to
// shared/examples/rules.yaml, which is not in the repository. Every
// relative link of the README and docs/, and every path in backticks under
// one of the repository's directories, must name a file that is there.
func TestDocsNameFilesThatExist(t *testing.T) {
	const root = "../.."
	docs, _ := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	docs = append(docs, filepath.Join(root, "README.md"))
	link := regexp.MustCompile(`\]\(([^)#]+)(#[^)]*)?\)`)
	path := regexp.MustCompile("`((?:cmd|docs|deploy|rules|engine|http|store|internal|crashtest|shared)/[A-Za-z0-9_./-]*[A-Za-z0-9_])`")
	for _, doc := range docs {
		src, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		name, _ := filepath.Rel(root, doc)
		for _, m := range link.FindAllStringSubmatch(string(src), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			if _, err := os.Stat(filepath.Join(filepath.Dir(doc), target)); err != nil {
				t.Errorf("%s links %s, which does not exist", name, target)
			}
		}
		for _, m := range path.FindAllStringSubmatch(string(src), -1) {
			if strings.ContainsAny(m[1], "*") {
				continue
			}
			if _, err := os.Stat(filepath.Join(root, m[1])); err != nil {
				t.Errorf("%s names %s, which is not in the repository", name, m[1])
			}
		}
	}
}
