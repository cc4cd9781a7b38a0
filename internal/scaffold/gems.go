package scaffold

import (
	"path"
	"slices"
	"strings"

	"github.com/shipit-dev/shipit/internal/lazyre"
)

// gem is a gem of the app's bundle.
type gem struct {
	from    string // the file it was found in: Gemfile, or Gemfile.lock
	runtime bool   // installed in the image: not only in development or test groups
}

// gems is the app's bundle: the Gemfile's gems with their groups, and
// Gemfile.lock's, each counted as development-only when only development
// or test gems depend on it.
type gems map[string]gem

var (
	gemLine    = lazyre.New(`^\s*gem\s*\(?\s*["']([A-Za-z0-9_.-]+)["'](.*)$`)
	inlineGrp  = lazyre.New(`(?:\bgroups?:|:groups?\s*=>)\s*(%[wi]?\[[^\]]*\]|\[[^\]]*\]|:\w+|["']\w+["'])`)
	groupOpt   = lazyre.New(`\w+:\s*\S+`) // group :test, optional: true
	groupOpen  = lazyre.New(`^\s*group\s*\(?\s*(.+?)\)?\s+do\b`)
	symbol     = lazyre.New(`:?["']?(\w+)["']?`)
	lockSpec   = lazyre.New(`^ {4}([A-Za-z0-9_.-]+) \(([^)]*)\)`)
	lockSpecOf = lazyre.New(`^ {6}([A-Za-z0-9_.-]+)`)
	lockDep    = lazyre.New(`^ {2}([A-Za-z0-9_.-]+)(?: |!|$)`)
	lockPlat   = lazyre.New(`^ {2}(\S+)\s*$`)
)

// devGroups are the groups a production image leaves out (BUNDLE_WITHOUT).
var devGroups = []string{"development", "test"}

// lockfile is what init reads from Gemfile.lock.
type lockfile struct {
	deps      map[string][]string // a spec's dependencies
	specs     map[string][]string // a gem's locked versions (1.16.0-x86_64-linux)
	platforms []string
	direct    []string // DEPENDENCIES
}

func parseLock(lock string) lockfile {
	l := lockfile{deps: map[string][]string{}, specs: map[string][]string{}}
	section, spec := "", ""
	for _, line := range strings.Split(lock, "\n") {
		if line != "" && line[0] != ' ' {
			section = strings.TrimSpace(line)
			continue
		}
		switch section {
		case "GEM", "GIT", "PATH":
			if m := lockSpec.FindStringSubmatch(line); m != nil {
				spec = m[1]
				l.specs[spec] = append(l.specs[spec], m[2])
			} else if m := lockSpecOf.FindStringSubmatch(line); m != nil && spec != "" {
				l.deps[spec] = append(l.deps[spec], m[1])
			}
		case "DEPENDENCIES":
			if m := lockDep.FindStringSubmatch(line); m != nil {
				l.direct = append(l.direct, m[1])
			}
		case "PLATFORMS":
			if m := lockPlat.FindStringSubmatch(line); m != nil {
				l.platforms = append(l.platforms, m[1])
			}
		}
	}
	return l
}

// parseGemfile reads the Gemfile's gems and whether each is installed in
// production (in no group, or in a group other than development and test).
func parseGemfile(gemfile string) map[string]bool {
	out := map[string]bool{}
	var stack [][]string // the groups of each open block; nil for other blocks
	for _, line := range strings.Split(gemfile, "\n") {
		code := strings.TrimSpace(stripComment(line))
		switch {
		case code == "end":
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
			continue
		case groupOpen.MatchString(code):
			stack = append(stack, symbols(groupOpt.ReplaceAllString(groupOpen.FindStringSubmatch(code)[1], "")))
			continue
		case opensBlock(code):
			stack = append(stack, nil)
			continue
		}
		m := gemLine.FindStringSubmatch(code)
		if m == nil {
			continue
		}
		var groups []string
		for _, g := range stack {
			groups = append(groups, g...)
		}
		if g := inlineGrp.FindStringSubmatch(m[2]); g != nil {
			groups = append(groups, symbols(g[1])...)
		}
		out[m[1]] = out[m[1]] || !onlyDev(groups)
	}
	return out
}

func onlyDev(groups []string) bool {
	if len(groups) == 0 {
		return false
	}
	for _, g := range groups {
		if !slices.Contains(devGroups, g) {
			return false
		}
	}
	return true
}

func symbols(s string) []string {
	var out []string
	s = strings.TrimPrefix(strings.TrimPrefix(s, "%w"), "%i")
	for _, m := range symbol.FindAllStringSubmatch(s, -1) {
		out = append(out, m[1])
	}
	return out
}

var blockOpen = lazyre.New(`\bdo(\s*\|[^|]*\|)?$|^(if|unless|case|begin|while|until)\b`)

// opensBlock says whether a line of Ruby opens a block that an end closes
// (not a modifier if).
func opensBlock(code string) bool { return blockOpen.MatchString(code) }

func stripComment(line string) string {
	if i := strings.Index(line, " #"); i >= 0 {
		return line[:i]
	}
	if strings.HasPrefix(strings.TrimSpace(line), "#") {
		return ""
	}
	return line
}

// readGems makes the bundle from the Gemfile and Gemfile.lock.
func readGems(gemfile string, lock lockfile) gems {
	direct := parseGemfile(gemfile)
	out := gems{}
	var prod, dev []string
	for name, runtime := range direct {
		out[name] = gem{from: "Gemfile", runtime: runtime}
		if runtime {
			prod = append(prod, name)
		} else {
			dev = append(dev, name)
		}
	}
	inProd, inDev := lock.closure(prod), lock.closure(dev)
	for name := range lock.specs {
		if _, ok := out[name]; !ok {
			out[name] = gem{from: "Gemfile.lock", runtime: inProd[name] || !inDev[name]}
		}
	}
	for _, name := range lock.direct {
		if _, ok := out[name]; !ok {
			out[name] = gem{from: "Gemfile.lock", runtime: true}
		}
	}
	return out
}

// closure is every gem the named ones depend on, with them.
func (l lockfile) closure(names []string) map[string]bool {
	seen := map[string]bool{}
	for len(names) > 0 {
		n := names[len(names)-1]
		names = names[:len(names)-1]
		if seen[n] {
			continue
		}
		seen[n] = true
		names = append(names, l.deps[n]...)
	}
	return seen
}

// has says where a gem of the production image was found, or "".
func (g gems) has(name string) string {
	if x, ok := g[name]; ok && x.runtime {
		return x.from
	}
	return ""
}

// devOnly says where a gem found only in development or test groups was
// found, or "".
func (g gems) devOnly(name string) string {
	if x, ok := g[name]; ok && !x.runtime {
		return x.from
	}
	return ""
}

var (
	gemPath     = lazyre.New(`(?:\bpath:|:path\s*=>)\s*["']([^"']+)["']`)
	pathBlock   = lazyre.New(`^\s*path\s*\(?\s*["']([^"']+)["']`)
	evalGemfile = lazyre.New(`^\s*eval_gemfile\s*\(?\s*["']([^"']+)["']`)
	gemspecLine = lazyre.New(`^\s*gemspec\b`)
	quoted      = lazyre.New(`["']([A-Za-z0-9_./-]+)["']`)
)

// readGemfileFiles finds what the Gemfile reads beside itself, which
// bundle install needs in the build: path gems (gem "x", path: "engines/x";
// path "engines" do), eval_gemfile files. A path outside the repository,
// or a gemspec line, is said: the template cannot copy it.
func (r *Rails) readGemfileFiles() error {
	gemfile, _, err := r.read("Gemfile")
	if err != nil {
		return err
	}
	for _, line := range strings.Split(gemfile, "\n") {
		code := stripComment(line)
		var p string
		switch {
		case gemLine.MatchString(code) && gemPath.MatchString(code):
			p = gemPath.FindStringSubmatch(code)[1]
		case pathBlock.MatchString(code):
			p = pathBlock.FindStringSubmatch(code)[1]
		case evalGemfile.MatchString(code):
			p = evalGemfile.FindStringSubmatch(code)[1]
		case gemspecLine.MatchString(code):
			r.Findings = append(r.Findings, Finding{Warning: true, image: true, From: "Gemfile",
				What:   "gemspec: the app is also a gem, and bundle install reads its .gemspec (and what that requires)",
				Change: "add a COPY of them before bundle install in the Dockerfile"})
			continue
		default:
			r.gemfileReads(code)
			continue
		}
		r.gemfileFile(p)
	}
	return nil
}

// gemfileReads copies a file of the repository a line of the Gemfile
// names in a string (File.read("config/database.yml"), as Redmine's does to
// pick adapters): Bundler evaluates the Gemfile, which reads it.
func (r *Rails) gemfileReads(code string) {
	if gemLine.MatchString(code) || groupOpen.MatchString(code) {
		return
	}
	for _, m := range quoted.FindAllStringSubmatch(code, -1) {
		p := path.Clean(m[1])
		if !strings.Contains(p, "/") && !strings.Contains(p, ".") || slices.Contains([]string{"Gemfile", "Gemfile.lock", ".ruby-version"}, p) ||
			strings.HasPrefix(p, "..") || path.IsAbs(p) || !r.exists(p) {
			continue
		}
		r.BundleCopies = appendNew(r.BundleCopies, p)
		r.image("the Gemfile reads "+p+": copied before bundle install", "Gemfile")
	}
}

func (r *Rails) gemfileFile(p string) {
	clean := path.Clean(p)
	switch {
	case path.IsAbs(clean) || clean == ".." || strings.HasPrefix(clean, "../"):
		r.Findings = append(r.Findings, Finding{Warning: true, image: true, From: "Gemfile",
			What:   "the Gemfile reads " + p + ", outside the repository: the build cannot see it",
			Change: "move it into the repository, or vendor the gem"})
	case clean == "." || clean == "vendor" || strings.HasPrefix(clean, "vendor/"):
		// the app itself, or vendor/, copied anyway
	case r.isDir(clean):
		r.BundleCopies = appendNew(r.BundleCopies, clean+"/")
		r.image("the Gemfile's "+clean+"/: copied before bundle install", "Gemfile")
	case r.exists(clean):
		r.BundleCopies = appendNew(r.BundleCopies, clean)
		r.image("the Gemfile's "+clean+": copied before bundle install", "Gemfile")
	default:
		r.Findings = append(r.Findings, Finding{Warning: true, image: true, From: "Gemfile",
			What:   "the Gemfile reads " + p + ", which the repository does not have",
			Change: "commit it, or remove it from the Gemfile"})
	}
}
