package e2ee_test

import (
	"bufio"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode"
)

// The documents whose Go snippets and links are checked: the README and
// every page of docs/.
func documents(t *testing.T) []string {
	t.Helper()
	docs, err := filepath.Glob(filepath.Join("docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	return append([]string{"README.md"}, docs...)
}

// TestREADMESnippetsComeFromExamples checks that every ```go block of the
// README and of docs/*.md is taken from an Example function of the
// module's tests: its lines, trimmed, appear in that order in the
// function's source (other lines may come between them). Blank lines,
// lines that are only a comment and "..." are not compared, so a snippet
// may leave out what the reader does not need. A snippet that drifts from
// its Example, which go test compiles and runs, fails here.
func TestREADMESnippetsComeFromExamples(t *testing.T) {
	examples := exampleSources(t)
	if len(examples) == 0 {
		t.Fatal("no Example function found in the module's tests")
	}
	for _, doc := range documents(t) {
		blocks, err := goBlocks(doc)
		if err != nil {
			t.Fatal(err)
		}
		if doc == "README.md" && len(blocks) == 0 {
			t.Errorf("README.md has no go block: the fence parser is broken")
		}
		for _, b := range blocks {
			want := significantLines(b.lines)
			if len(want) == 0 {
				continue
			}
			best, bestName := -1, ""
			for _, ex := range examples {
				if n := matchedPrefix(want, ex.lines); n > best {
					best, bestName = n, ex.name
				}
				if best == len(want) {
					break
				}
			}
			if best < len(want) {
				t.Errorf("%s:%d: the go block is not taken from any Example function: "+
					"closest is %s, which lacks, after the block's first %d lines,\n\t%s",
					doc, b.line, bestName, best, want[best])
			}
		}
	}
}

// An example is the source of one Example function, as trimmed lines.
type example struct {
	name  string // file:Function
	lines []string
}

// exampleSources returns every Example function of the *_test.go files
// under the module root, nested modules included (they are read, not
// built).
func exampleSources(t *testing.T) []example {
	t.Helper()
	var out []example
	fset := token.NewFileSet()
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != "." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		f, err := parser.ParseFile(fset, path, src, parser.ParseComments)
		if err != nil {
			t.Logf("%v (reading its Example functions as far as they parse)", err)
		}
		if f == nil {
			return nil
		}
		for _, decl := range f.Decls {
			fn, ok := decl.(*ast.FuncDecl)
			if !ok || fn.Recv != nil || !strings.HasPrefix(fn.Name.Name, "Example") || fn.Body == nil {
				continue
			}
			start, end := fset.Position(fn.Pos()).Offset, fset.Position(fn.End()).Offset
			if start < 0 || end > len(src) || start >= end {
				continue
			}
			var lines []string
			for _, l := range strings.Split(string(src[start:end]), "\n") {
				lines = append(lines, strings.TrimSpace(l))
			}
			out = append(out, example{name: path + ":" + fn.Name.Name, lines: lines})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// A block is one fenced code block of a Markdown file.
type block struct {
	line  int // of the opening fence, 1-based
	lines []string
}

// goBlocks returns the ```go blocks of the Markdown file at path, fences
// indented (in a list item) included.
func goBlocks(path string) ([]block, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []block
	var cur *block
	inFence := false
	s := bufio.NewScanner(f)
	for n := 1; s.Scan(); n++ {
		line := strings.TrimSpace(s.Text())
		switch {
		case !inFence && strings.HasPrefix(line, "```"):
			inFence = true
			if strings.TrimSpace(strings.TrimPrefix(line, "```")) == "go" {
				cur = &block{line: n}
			}
		case inFence && line == "```":
			inFence = false
			if cur != nil {
				out = append(out, *cur)
				cur = nil
			}
		case cur != nil:
			cur.lines = append(cur.lines, s.Text())
		}
	}
	if inFence {
		return nil, fmt.Errorf("%s: a code block is not closed", path)
	}
	return out, s.Err()
}

// significantLines returns the lines of a snippet that must appear in its
// Example: trimmed, without blank lines, comment-only lines and "...".
func significantLines(lines []string) []string {
	var out []string
	for _, l := range lines {
		l = strings.TrimSpace(l)
		if l == "" || l == "..." || strings.HasPrefix(l, "//") {
			continue
		}
		out = append(out, l)
	}
	return out
}

// matchedPrefix returns how many of want, from the first, appear in order
// in have.
func matchedPrefix(want, have []string) int {
	n := 0
	for _, l := range have {
		if n < len(want) && l == want[n] {
			n++
		}
	}
	return n
}

// TestREADMELinksResolve checks that every relative link of the README and
// of docs/*.md names a file or directory of the repository and, when it
// has a fragment, a heading of that Markdown file, in GitHub's anchor style.
func TestREADMELinksResolve(t *testing.T) {
	link := regexp.MustCompile(`\]\(([^)\s]+)\)`)
	for _, doc := range documents(t) {
		data, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		for n, line := range proseLines(string(data)) {
			if line == "" {
				continue
			}
			for _, m := range link.FindAllStringSubmatch(line, -1) {
				target := m[1]
				u, err := url.Parse(target)
				if err != nil {
					t.Errorf("%s:%d: link %q: %v", doc, n+1, target, err)
					continue
				}
				if u.Scheme != "" || u.Host != "" {
					continue
				}
				file := doc
				if u.Path != "" {
					file = filepath.Join(filepath.Dir(doc), filepath.FromSlash(u.Path))
				}
				info, err := os.Stat(file)
				if err != nil {
					t.Errorf("%s:%d: link %q: no such file or directory", doc, n+1, target)
					continue
				}
				if u.Fragment == "" {
					continue
				}
				if info.IsDir() || !strings.HasSuffix(file, ".md") {
					t.Errorf("%s:%d: link %q: a fragment on a file that is not Markdown", doc, n+1, target)
					continue
				}
				anchors, err := markdownAnchors(file)
				if err != nil {
					t.Fatal(err)
				}
				if !anchors[u.Fragment] {
					t.Errorf("%s:%d: link %q: %s has no heading with anchor #%s", doc, n+1, target, file, u.Fragment)
				}
			}
		}
	}
}

// proseLines returns the lines of a Markdown text, with the lines of fenced
// code blocks blanked, so that line numbers stay right.
func proseLines(text string) []string {
	lines := strings.Split(text, "\n")
	inFence := false
	for i, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), "```") {
			inFence = !inFence
			lines[i] = ""
			continue
		}
		if inFence {
			lines[i] = ""
		}
	}
	return lines
}

// markdownAnchors returns the anchors GitHub gives the headings of the
// Markdown file at path: lower case, punctuation dropped, spaces as
// hyphens, and "-1", "-2", ... after repeated ones.
func markdownAnchors(path string) (map[string]bool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	anchors := map[string]bool{}
	seen := map[string]int{}
	for _, l := range proseLines(string(data)) {
		if !strings.HasPrefix(l, "#") {
			continue
		}
		title := strings.TrimLeft(l, "#")
		if title == "" || title[0] != ' ' {
			continue
		}
		a := anchor(strings.TrimSpace(title))
		if n := seen[a]; n > 0 {
			anchors[fmt.Sprintf("%s-%d", a, n)] = true
		} else {
			anchors[a] = true
		}
		seen[a]++
	}
	return anchors, nil
}

// anchor returns GitHub's anchor for a heading's text.
func anchor(title string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(title) {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}
