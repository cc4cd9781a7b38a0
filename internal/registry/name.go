package registry

import "github.com/shipit-dev/shipit/internal/lazyre"

// imageName is a repository path component, as the distribution spec
// allows it: lower-case letters and digits, separated by one '.' or '_',
// two '_', or any run of '-'.
var imageName = lazyre.New(`^[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*$`)

// ValidImageName reports whether name can be an image's name in
// shipit.yaml: the last component of its repository. It is the one rule
// for image names: the configuration, the hold files and everything that
// reads them use it.
func ValidImageName(name string) bool { return imageName.MatchString(name) }
