// Command gitopsfixture writes a git fast-import stream of a platform
// team's GitOps repository, for ci/bench.sh gitops-scale: APPS apps, each
// a base of FILES files and two overlays (staging, production), then
// COMMITS commits in all, each moving one app's staging pin. Every overlay
// also reaches shared parts outside its app's directory (a component and a
// common base), as platform teams keep them.
//
//	gitopsfixture -apps 300 -files 20 -commits 20000 | git fast-import --quiet
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"strings"
)

func main() {
	apps := flag.Int("apps", 300, "apps")
	files := flag.Int("files", 20, "files in each app's base")
	commits := flag.Int("commits", 20000, "commits in all")
	registry := flag.String("registry", "127.0.0.1:5055/bench", "where the apps' images live")
	flag.Parse()
	w := bufio.NewWriterSize(os.Stdout, 1<<20)
	defer w.Flush()
	when := int64(1767225600) // 2026-01-01
	commit := func(mark int, msg string, changes []string) {
		fmt.Fprintf(w, "commit refs/heads/main\nmark :%d\ncommitter bench <bench@example.com> %d +0000\n", mark, when+int64(mark))
		fmt.Fprintf(w, "data %d\n%s\n", len(msg), msg)
		if mark > 1 {
			fmt.Fprintf(w, "from :%d\n", mark-1)
		}
		for _, c := range changes {
			_, _ = w.WriteString(c)
		}
		_, _ = w.WriteString("\n")
	}
	file := func(path, content string) string {
		return fmt.Sprintf("M 100644 inline %s\ndata %d\n%s\n", path, len(content), content)
	}
	// Shared parts outside every app's directory, as platform teams keep
	// them: a component (a ConfigMap, a generated one from a file, a
	// patch) and a base of common resources that overlays reach by ../.
	first := []string{
		file("components/monitoring/kustomization.yaml", "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\nresources: [servicemonitor.yaml]\nconfigMapGenerator:\n  - name: monitoring\n    files: [scrape.yaml=cfg/scrape.yaml]\npatches:\n  - path: patches/annotations.yaml\n    target: {kind: Deployment}\n"),
		file("components/monitoring/servicemonitor.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: servicemonitor}\ndata: {interval: 30s}\n"),
		file("components/monitoring/cfg/scrape.yaml", "scrape_interval: 30s\n"),
		file("components/monitoring/patches/annotations.yaml", "- op: add\n  path: /metadata/annotations\n  value: {prometheus.io/scrape: \"true\"}\n"),
		file("platform/common/kustomization.yaml", "resources: [networkpolicy.yaml]\n"),
		file("platform/common/networkpolicy.yaml", "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: default-deny}\nspec: {podSelector: {}, policyTypes: [Ingress]}\n"),
	}
	for a := 0; a < *apps; a++ {
		app := fmt.Sprintf("app%03d", a)
		var res []string
		for f := 0; f < *files-1; f++ {
			name := fmt.Sprintf("config-%02d.yaml", f)
			res = append(res, name)
			first = append(first, file("apps/"+app+"/base/"+name, fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: %s-%02d}\ndata: {key: \"%s\"}\n", app, f, strings.Repeat("v", 200))))
		}
		res = append(res, "deploy.yaml")
		first = append(first, file("apps/"+app+"/base/deploy.yaml", deployment(app)))
		first = append(first, file("apps/"+app+"/base/kustomization.yaml", "resources:\n  - "+strings.Join(res, "\n  - ")+"\n"))
		for _, env := range []string{"staging", "production"} {
			first = append(first, file("apps/"+app+"/overlays/"+env+"/kustomization.yaml", overlay(app, env, *registry, "20260101-000000-0000000")))
		}
	}
	commit(1, "platform: every app", first)
	for c := 2; c <= *commits; c++ {
		app := fmt.Sprintf("app%03d", c%*apps)
		t := fmt.Sprintf("20260101-%06d-%07x", c%240000, c)
		commit(c, "release "+app+" "+t, []string{file("apps/"+app+"/overlays/staging/kustomization.yaml", overlay(app, "staging", *registry, t))})
	}
}

func deployment(app string) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: %s}
spec:
  selector: {matchLabels: {app: %s}}
  template:
    metadata: {labels: {app: %s}}
    spec:
      containers:
        - {name: web, image: web}
        - {name: proxy, image: proxy}
`, app, app, app)
}

func overlay(app, env, registry, tag string) string {
	return fmt.Sprintf(`namespace: %s-%s
resources:
  - ../../base
  - ../../../../platform/common
components:
  - ../../../../components/monitoring
images:
  - name: web
    newName: %s/%s-web
    newTag: "%s"
  - name: proxy
    newName: %s/%s-proxy
    newTag: "%s"
`, app, env, registry, app, tag, registry, app, tag)
}
