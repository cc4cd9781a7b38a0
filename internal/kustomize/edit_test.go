package kustomize

import (
	"strings"
	"testing"

	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/yaml"
)

const repo = "123456789012.dkr.ecr.us-east-1.amazonaws.com/app-rails"

func TestSetImage(t *testing.T) {
	t.Parallel()
	pin := Pin{Name: "app-rails", NewName: repo, NewTag: "20260102-030405-abcdef0", Digest: "sha256:" + strings.Repeat("b", 64)}
	tests := []struct {
		name  string
		given string
		pin   Pin
		want  string
	}{
		{
			name: "existing entry: only its values change",
			given: `# Production overlay, synced by Argo CD.
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: prod   # the namespace

resources:
  - ../../base

images:
  # the Rails app
  - name: app-rails
    newName: old.example.com/app-rails   # moved to ECR
    newTag: "20250101-000000-0000000"
labels:
  - pairs: {team: web}
# trailing comment
`,
			pin: pin,
			want: `# Production overlay, synced by Argo CD.
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: prod   # the namespace

resources:
  - ../../base

images:
  # the Rails app
  - name: app-rails
    newName: ` + repo + `   # moved to ECR
    newTag: "20260102-030405-abcdef0"
    digest: sha256:` + strings.Repeat("b", 64) + `
labels:
  - pairs: {team: web}
# trailing comment
`,
		},
		{
			name: "missing entry is appended in the list's own indentation",
			given: `resources: [../../base]
images:
- name: app-nginx   # the proxy
  newTag: v1

# more below
replicas:
- name: web
  count: 3
`,
			pin: Pin{Name: "app-rails", NewName: repo, NewTag: "t2"},
			want: `resources: [../../base]
images:
- name: app-nginx   # the proxy
  newTag: v1
- name: app-rails
  newName: ` + repo + `
  newTag: t2

# more below
replicas:
- name: web
  count: 3
`,
		},
		{
			name:  "no images list: one is added at the end",
			given: "resources:\n- ../../base\n",
			pin:   Pin{Name: "app-rails", NewName: "app-rails", NewTag: "t3"},
			want:  "resources:\n- ../../base\nimages:\n- name: app-rails\n  newTag: t3\n",
		},
		{
			name:  "tag mode drops the digest, as kustomize edit set image does",
			given: "images:\n- name: app-rails\n  newTag: old\n  digest: sha256:" + strings.Repeat("a", 64) + "\n  newName: " + repo + "\n",
			pin:   Pin{Name: "app-rails", NewName: repo, NewTag: "new"},
			want:  "images:\n- name: app-rails\n  newTag: new\n  newName: " + repo + "\n",
		},
		{
			name:  "a tag that would read as a number is quoted",
			given: "images:\n- name: app-rails\n  newTag: v1\n",
			pin:   Pin{Name: "app-rails", NewName: "app-rails", NewTag: "1.10"},
			want:  "images:\n- name: app-rails\n  newTag: \"1.10\"\n",
		},
		{
			name:  "single-quoted values stay single-quoted",
			given: "images:\n- name: app-rails\n  newTag: 'v1' # keep\n",
			pin:   Pin{Name: "app-rails", NewName: "app-rails", NewTag: "v2"},
			want:  "images:\n- name: app-rails\n  newTag: 'v2' # keep\n",
		},
		{
			name:  "flow-style entries fall back to kyaml re-encoding",
			given: "kind: Kustomization # k\nimages: [{name: app-rails, newTag: v1}]\n",
			pin:   Pin{Name: "app-rails", NewName: "app-rails", NewTag: "v2"},
			want:  "kind: Kustomization # k\nimages:\n- name: app-rails\n  newTag: v2\n",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := SetImage([]byte(tc.given), tc.pin)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tc.want)
			}
			// kustomize reads the result as the pin says.
			var k types.Kustomization
			if err := yaml.Unmarshal(got, &k); err != nil {
				t.Fatalf("kustomize cannot read the result: %v", err)
			}
			var found bool
			for _, im := range k.Images {
				if im.Name == tc.pin.Name {
					found = true
					if im.NewTag != tc.pin.NewTag || im.Digest != tc.pin.Digest {
						t.Errorf("kustomize reads %+v", im)
					}
				}
			}
			if !found {
				t.Error("kustomize does not see the entry")
			}
		})
	}
}

func TestSetImageErrors(t *testing.T) {
	t.Parallel()
	for _, given := range []string{"images: [\n", "- a\n- b\n"} {
		if _, err := SetImage([]byte(given), Pin{Name: "x", NewTag: "t"}); err == nil {
			t.Errorf("SetImage(%q) succeeded", given)
		}
	}
}

func FuzzSetImage(f *testing.F) {
	f.Add("images:\n- name: app\n  newTag: v1\n", "app", "v2")
	f.Add("resources: [a]\n", "app", "20260101-000000-abcdef0")
	f.Add("images:\n  - name: x\n    digest: sha256:aa\n  - name: app # c\n    newTag: 'q'\n", "app", "t")
	f.Fuzz(func(t *testing.T, given, name, tag string) {
		if name == "" || tag == "" || strings.ContainsAny(name+tag, "\n\r\t\x00") {
			return
		}
		var before types.Kustomization
		if yaml.Unmarshal([]byte(given), &before) != nil {
			return
		}
		got, err := SetImage([]byte(given), Pin{Name: name, NewName: name, NewTag: tag})
		if err != nil {
			return
		}
		var k types.Kustomization
		if err := yaml.Unmarshal(got, &k); err != nil {
			t.Fatalf("an edit produced YAML kustomize rejects: %v\n%s", err, got)
		}
	})
}
