package release

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	updatertag "github.com/argoproj-labs/argocd-image-updater/registry-scanner/pkg/tag"

	"github.com/shipit-dev/shipit/internal/tag"
)

// UpdaterPick is the tag Argo CD Image Updater's alphabetical strategy
// picks from tags: the last, in its own sort, of those allow matches. It
// uses the updater's registry-scanner package, so that shipit's prediction
// and the updater cannot disagree. "" when none matches.
func UpdaterPick(tags []string, allow string) (string, error) {
	re, err := regexp.Compile(allow)
	if err != nil {
		return "", err
	}
	list := updatertag.NewImageTagList()
	for _, t := range tags {
		if re.MatchString(t) {
			list.Add(updatertag.NewImageTag(t, time.Time{}, ""))
		}
	}
	sorted := list.SortAlphabetically()
	if len(sorted) == 0 {
		return "", nil
	}
	return sorted[len(sorted)-1].TagName, nil
}

// UpdaterImage is one image in the Image Updater configuration.
type UpdaterImage struct {
	Alias         string // shipit's image name
	Repository    string
	KustomizeName string // the images entry name in the kustomization
}

// UpdaterConfig renders the Argo CD Image Updater configuration that
// matches shipit's tags: strategy alphabetical, an anchored allow-tags
// regexp for the release tags of prefix, the kustomize image name, and git
// write-back to the overlay's kustomization. Both the v1 ImageUpdater
// resource and the v0.x Application annotations.
func UpdaterConfig(app, overlay, branch, prefix string, imgs []UpdaterImage) string {
	allow := tag.Pattern(prefix)
	var b strings.Builder
	fmt.Fprintf(&b, `# Argo CD Image Updater configuration for shipit's release tags.
# Tags are %sYYYYMMDD-HHMMSS-<sha7>: they sort in commit order, so the
# alphabetical strategy picks the newest release, and shipit pin's rollback
# tags (newer tags on old digests) roll back. shipit status predicts the
# pick with the updater's own tag sort.
#
# Argo CD Image Updater v1.x: an ImageUpdater resource.
apiVersion: argocd-image-updater.argoproj.io/v1alpha1
kind: ImageUpdater
metadata:
  name: %s
  namespace: argocd
spec:
  writeBackConfig:
    method: git
    gitConfig:
      branch: %s
      writeBackTarget: "kustomization:%s"
  applicationRefs:
  - namePattern: %q
    commonUpdateSettings:
      updateStrategy: alphabetical
      allowTags: "regexp:%s"
    images:
`, prefix, app, branch, overlay, app, allow)
	for _, im := range imgs {
		fmt.Fprintf(&b, "    - alias: %s\n      imageName: %s\n      manifestTargets:\n        kustomize:\n          name: %s\n", im.Alias, im.Repository, im.KustomizeName)
	}
	var list []string
	for _, im := range imgs {
		list = append(list, im.Alias+"="+im.Repository)
	}
	fmt.Fprintf(&b, `---
# Argo CD Image Updater v0.x: annotations on the Argo CD Application %q.
metadata:
  annotations:
    argocd-image-updater.argoproj.io/image-list: %s
    argocd-image-updater.argoproj.io/write-back-method: git
    argocd-image-updater.argoproj.io/write-back-target: "kustomization:%s"
    argocd-image-updater.argoproj.io/git-branch: %s
`, app, strings.Join(list, ","), overlay, branch)
	for _, im := range imgs {
		fmt.Fprintf(&b, "    argocd-image-updater.argoproj.io/%s.update-strategy: alphabetical\n", im.Alias)
		fmt.Fprintf(&b, "    argocd-image-updater.argoproj.io/%s.allow-tags: \"regexp:%s\"\n", im.Alias, allow)
		fmt.Fprintf(&b, "    argocd-image-updater.argoproj.io/%s.kustomize.image-name: %s\n", im.Alias, im.KustomizeName)
	}
	return b.String()
}
