// Command funlen keeps shipit's functions short: none in internal/cli
// over 60 lines, none elsewhere over 80 (test files aside). A function
// that is table data (a list of cases, a map of names) says so with a
// "funlen: table" line in its doc comment. ci/lint.sh runs it:
//
//	go run ./ci/funlen [DIR]
package main

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

const (
	cliLimit   = 60
	otherLimit = 80
)

func main() {
	root := "."
	if len(os.Args) > 1 {
		root = os.Args[1]
	}
	long, err := check(root)
	if err != nil {
		fmt.Fprintln(os.Stderr, "funlen:", err)
		os.Exit(2)
	}
	for _, l := range long {
		fmt.Fprintln(os.Stderr, l)
	}
	if len(long) > 0 {
		fmt.Fprintf(os.Stderr, "funlen: %d functions are too long: split them (a command validates, calls one package, prints; the rest belongs in a package)\n", len(long))
		os.Exit(1)
	}
}

// check lists the functions under root that are over their limit.
func check(root string) ([]string, error) {
	var long []string
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); p != root && (strings.HasPrefix(n, ".") || n == "bin" || n == "testdata" || n == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, p, nil, parser.ParseComments)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		limit := otherLimit
		if strings.HasPrefix(filepath.ToSlash(rel), "internal/cli/") {
			limit = cliLimit
		}
		for _, decl := range f.Decls {
			fd, ok := decl.(*ast.FuncDecl)
			if !ok || fd.Body == nil || table(fd) {
				continue
			}
			n := fset.Position(fd.Body.Rbrace).Line - fset.Position(fd.Body.Lbrace).Line - 1
			if n > limit {
				long = append(long, fmt.Sprintf("%s:%d: %s is %d lines (at most %d)", rel, fset.Position(fd.Pos()).Line, fd.Name.Name, n, limit))
			}
		}
		return nil
	})
	return long, err
}

func table(fd *ast.FuncDecl) bool {
	return fd.Doc != nil && strings.Contains(fd.Doc.Text(), "funlen: table")
}
