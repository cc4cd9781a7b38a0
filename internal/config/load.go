package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"

	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"

	"github.com/shipit-dev/shipit/internal/confine"
	"github.com/shipit-dev/shipit/internal/kustomize"
	"github.com/shipit-dev/shipit/internal/safeyaml"
)

// Error is a configuration error: exit code 2, and a message that names the
// file, the line where known, the key, and what to do.
type Error struct {
	File string
	Line int
	Key  string
	Msg  string
	Err  error // what it is, when a caller branches on it (ErrNotFound)
}

// Unwrap gives Err.
func (e *Error) Unwrap() error { return e.Err }

// BadInput marks a configuration error as the user's to fix (exit code 2).
func (e *Error) BadInput() bool { return true }

func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			fmt.Fprintf(&b, ":%d", e.Line)
		}
		b.WriteString(": ")
	}
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// ErrNotFound is returned by Find when no shipit.yaml is found.
var ErrNotFound = errors.New("no " + FileName + " found")

// Find looks for shipit.yaml in dir and its parents.
func Find(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		p := filepath.Join(d, FileName)
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
		if filepath.Dir(d) == d {
			return "", &Error{Err: ErrNotFound, Msg: fmt.Sprintf("%s in %s or any parent directory (run `shipit init` to write one, or pass --config FILE)", ErrNotFound, dir)}
		}
	}
}

// Options says where the configuration comes from.
type Options struct {
	// File is --config; empty to search from Dir upward.
	File string
	// Dir is the working directory.
	Dir string
	// Flags are the values of keys that the user set by flag: they win
	// over the file and the environment.
	Flags map[string]string
}

// Load reads shipit.yaml, applies SHIPIT_<KEY> environment variables and
// flags (flags win), fills in defaults and validates the result.
func Load(opt Options) (*Config, error) {
	file := opt.File
	if file == "" {
		f, err := Find(opt.Dir)
		if err != nil {
			return nil, err
		}
		file = f
	} else if !filepath.IsAbs(file) {
		file = filepath.Join(opt.Dir, file)
	}
	data, err := confine.ReadFollowing(file)
	if err != nil {
		return nil, &Error{File: file, Msg: fmt.Sprintf("cannot read the configuration: %v", unwrapPath(err))}
	}
	cfg, err := Parse(file, data)
	if err != nil {
		return nil, err
	}
	if err := override(cfg, opt); err != nil {
		return nil, err
	}
	cfg.defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// Parse decodes shipit.yaml strictly: unknown keys and values of the wrong
// type are errors naming the line and the key. Keys keep their case (build
// argument names are case-sensitive).
func Parse(file string, data []byte) (*Config, error) {
	abs, err := filepath.Abs(file)
	if err != nil {
		return nil, err
	}
	cfg := &Config{File: abs}
	docp, err := safeyaml.Parse(data)
	if errors.Is(err, safeyaml.ErrTooLarge) {
		return nil, &Error{File: file, Msg: fmt.Sprintf("refused: %v", err)}
	}
	if err != nil {
		return nil, &Error{File: file, Msg: fmt.Sprintf("not valid YAML: %s", strings.TrimPrefix(err.Error(), "yaml: "))}
	}
	doc := *docp
	if len(doc.Content) == 0 {
		return nil, &Error{File: file, Msg: "the file is empty: it needs at least `images:` (run `shipit init` for a starting point)"}
	}
	root := doc.Content[0]
	cfg.lines = map[string]int{}
	lines := cfg.lines
	if err := check(lines, file, root, reflect.TypeOf(Config{}), ""); err != nil {
		return nil, err
	}
	if err := root.Decode(cfg); err != nil {
		return nil, &Error{File: file, Msg: strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	cfg.File, cfg.lines = abs, lines
	return cfg, nil
}

// check walks a YAML node against the schema type, so that a typo or a
// wrong type is reported with its line and full key rather than ignored.
func check(lines map[string]int, file string, n *yaml.Node, t reflect.Type, key string) error {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if _, ok := lines[key]; !ok {
		lines[key] = n.Line
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil
	}
	bad := func(want string) error {
		return &Error{File: file, Line: n.Line, Key: key, Msg: fmt.Sprintf("expected %s, got %s", want, describe(n))}
	}
	if t == reflect.TypeOf(Registry{}) && n.Kind == yaml.ScalarNode {
		return nil // the short form, registry: host/prefix
	}
	switch t.Kind() {
	case reflect.Pointer:
		return check(lines, file, n, t.Elem(), key)
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return bad("a mapping")
		}
		fields := map[string]reflect.StructField{}
		var names []string
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name == "" || name == "-" {
				continue
			}
			fields[name] = f
			names = append(names, name)
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			lines[join(key, k.Value)] = k.Line
			f, ok := fields[k.Value]
			if !ok {
				return &Error{File: file, Line: k.Line, Key: join(key, k.Value),
					Msg: fmt.Sprintf("unknown key%s (known keys here: %s)", suggest(k.Value, names), strings.Join(names, ", "))}
			}
			if err := check(lines, file, v, f.Type, join(key, k.Value)); err != nil {
				return err
			}
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return bad("a mapping")
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Kind != yaml.ScalarNode || k.Value == "" {
				return &Error{File: file, Line: k.Line, Key: key, Msg: "keys must be non-empty names"}
			}
			lines[join(key, k.Value)] = k.Line
			if err := check(lines, file, v, t.Elem(), join(key, k.Value)); err != nil {
				return err
			}
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return bad("a list")
		}
		for i, v := range n.Content {
			if err := check(lines, file, v, t.Elem(), fmt.Sprintf("%s[%d]", key, i)); err != nil {
				return err
			}
		}
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			return bad("a string")
		}
	case reflect.Bool:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
			return bad("true or false")
		}
	}
	return nil
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	default:
		return fmt.Sprintf("%q", n.Value)
	}
}

func join(key, k string) string {
	if key == "" {
		return k
	}
	return key + "." + k
}

// suggest names the known key closest to a misspelt one.
func suggest(got string, known []string) string {
	best, bestD := "", 3
	for _, k := range known {
		if d := distance(strings.ToLower(got), k); d < bestD {
			best, bestD = k, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(", did you mean %q?", best)
}

// distance is the Levenshtein distance of a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// override applies SHIPIT_<KEY> environment variables and set flags to every
// scalar and list key, through viper: flags win over the environment, which
// wins over the file.
func override(cfg *Config, opt Options) error {
	v := viper.New()
	leaves := map[string]reflect.Value{}
	collect(reflect.ValueOf(cfg).Elem(), "", leaves)
	for _, name := range cfg.ImageNames() {
		collect(reflect.ValueOf(cfg.Images[name]).Elem(), "images."+name, leaves)
	}
	keys := make([]string, 0, len(leaves))
	for k := range leaves {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		envs := []string{key, EnvName(key)}
		switch key {
		case "builder.addr":
			envs = append(envs, "BUILDKIT_HOST")
		case "registry.url":
			envs = append(envs, "SHIPIT_REGISTRY")
		}
		if err := v.BindEnv(envs...); err != nil {
			return err
		}
	}
	for key, val := range opt.Flags {
		v.Set(key, val)
	}
	for _, key := range keys {
		if !v.IsSet(key) {
			continue
		}
		fv := leaves[key]
		switch fv.Kind() {
		case reflect.String:
			fv.SetString(v.GetString(key))
		case reflect.Bool:
			fv.SetBool(v.GetBool(key))
		case reflect.Pointer: // *bool: set, so it wins over the top level's
			b := v.GetBool(key)
			fv.Set(reflect.ValueOf(&b))
		case reflect.Slice:
			var list []string
			for _, s := range strings.Split(v.GetString(key), ",") {
				if s = strings.TrimSpace(s); s != "" {
					list = append(list, s)
				}
			}
			fv.Set(reflect.ValueOf(list))
		}
	}
	return nil
}

// EnvName is the environment variable that sets a key: SHIPIT_ and the key
// in upper case with dots and dashes as underscores (images.web.target is
// SHIPIT_IMAGES_WEB_TARGET).
func EnvName(key string) string {
	return "SHIPIT_" + strings.ToUpper(strings.NewReplacer(".", "_", "-", "_").Replace(key))
}

// collect lists the settable leaves of a struct: strings and string lists.
func collect(v reflect.Value, prefix string, out map[string]reflect.Value) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		key := join(prefix, name)
		fv := v.Field(i)
		switch {
		case fv.Kind() == reflect.String, fv.Kind() == reflect.Bool:
			out[key] = fv
		case fv.Kind() == reflect.Pointer && fv.Type().Elem().Kind() == reflect.Bool:
			out[key] = fv
		case fv.Kind() == reflect.Slice && fv.Type().Elem().Kind() == reflect.String:
			out[key] = fv
		case fv.Kind() == reflect.Struct:
			collect(fv, key, out)
		}
	}
}

func (c *Config) defaults() {
	if c.Builder.Addr == "" {
		c.Builder.Addr = DefaultBuilderAddr
	}
	if c.Cache.Export == "" {
		c.Cache.Export = CacheNone
	}
	if c.Deploy.Repo == "" {
		c.Deploy.Repo = "."
	}
	if c.Deploy.Branch == "" {
		c.Deploy.Branch = "main"
	}
	if c.Deploy.Mode == "" {
		c.Deploy.Mode = ModeGit
	}
	if c.Deploy.Pin == "" {
		c.Deploy.Pin = string(kustomize.ModeTagAndDigest)
	}
	if p := c.Deploy.Previews; p != nil {
		envs := c.Envs()
		if p.From == "" && len(envs) > 0 {
			p.From = envs[0].Name
		}
		if p.Dir == "" {
			p.Dir = "previews"
			if e, ok := c.Env(p.From); ok && len(e.Overlays) > 0 {
				// beside the overlays' folder: k8s/overlays/staging -> k8s/previews
				p.Dir = filepath.Join(filepath.Dir(filepath.Dir(filepath.Clean(e.Overlays[0]))), "previews")
			}
		}
		if p.Namespace == "" {
			p.Namespace = c.App() + "-{{.Name}}"
		}
		if a := p.ArgoCD; a != nil {
			if a.Application == "" {
				a.Application = c.App() + "-{{.Name}}"
			}
			if a.Namespace == "" {
				a.Namespace = "argocd"
			}
		}
	}
	for i := range c.Deploy.Environments {
		if c.Deploy.Environments[i].ArgoCD.Namespace == "" {
			c.Deploy.Environments[i].ArgoCD.Namespace = "argocd"
		}
	}
	for _, im := range c.Images {
		if im != nil && im.Dockerfile == "" {
			im.Dockerfile = "Dockerfile"
		}
	}
}

func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
