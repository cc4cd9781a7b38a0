package kustomize

import (
	"slices"
	"testing"
)

func TestReferences(t *testing.T) {
	t.Parallel()
	k := []byte(`resources:
  - ../../base
  - service.yaml
  - https://github.com/org/repo//deploy?ref=v1
  - github.com/org/repo/deploy?ref=v1
components: [../../components/tls]
bases: [../old-base]
crds: [crds/app.yaml]
patches:
  - path: patches/replicas.yaml
  - patch: |-
      - op: replace
        path: /spec/replicas
        value: 3
patchesStrategicMerge:
  - smp.yaml
patchesJson6902:
  - path: json.yaml
    target: {kind: Deployment, name: web}
configMapGenerator:
  - name: app
    files: [app.conf, key=cfg/other.conf]
    envs: [app.env]
secretGenerator:
  - name: s
    env: secret.env
replacements:
  - path: replacements.yaml
transformers: [labels.yaml]
openapi:
  path: schema.json
`)
	got, err := References(k)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"../../base", "service.yaml", "../../components/tls", "../old-base", "crds/app.yaml", "labels.yaml", "smp.yaml",
		"patches/replicas.yaml", "json.yaml", "replacements.yaml", "schema.json", "app.conf", "cfg/other.conf", "app.env", "secret.env"}
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("References lacks %s: %v", w, got)
		}
	}
	for _, g := range got {
		if !slices.Contains(want, g) {
			t.Errorf("References has %q, which is not a path of the repository", g)
		}
	}
	if _, err := References([]byte("resources: [a\n")); err == nil {
		t.Error("a broken kustomization gave references")
	}
}
