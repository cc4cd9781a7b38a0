package tag

// Newest is the newest release tag (not dirty) of the prefix among tags,
// or "".
func Newest(tags []string, prefix string) string {
	newest := ""
	for _, s := range tags {
		if t, err := Parse(s); err == nil && !t.Dirty && t.Prefix == prefix && Less(newest, s) {
			newest = s
		}
	}
	return newest
}
