package scaffold

// native is a gem that needs Alpine packages: -dev packages to compile
// against, and libraries to run with.
type native struct {
	gem     string
	build   []string
	runtime []string
	adapter bool // a database adapter
}

// natives is the one table of gems that need system packages in the
// image. Every gem of the production bundle that is here gets its
// packages; an app with several adapters (pg, mysql2 and sqlite3) gets
// all of them.
var natives = []native{
	{gem: "pg", build: []string{"postgresql-dev"}, runtime: []string{"postgresql-client"}, adapter: true},
	{gem: "mysql2", build: []string{"mariadb-dev"}, runtime: []string{"mariadb-client"}, adapter: true},
	{gem: "trilogy", runtime: []string{"mariadb-client"}, adapter: true},
	{gem: "sqlite3", build: []string{"sqlite-dev"}, runtime: []string{"sqlite-libs"}, adapter: true},
	{gem: "ruby-vips", runtime: []string{"vips"}},
	{gem: "image_processing", runtime: []string{"vips"}},
	{gem: "mini_magick", runtime: []string{"imagemagick"}},
	{gem: "rmagick", build: []string{"imagemagick-dev"}, runtime: []string{"imagemagick"}},
	{gem: "ffi", build: []string{"libffi-dev"}},
	{gem: "ffi-libarchive", runtime: []string{"libarchive"}},
	{gem: "bzip2-ffi", runtime: []string{"libbz2"}},
	{gem: "gd2-ffij", runtime: []string{"gd"}},
	{gem: "libxml-ruby", build: []string{"libxml2-dev"}, runtime: []string{"libxml2"}},
	{gem: "rgeo", build: []string{"geos-dev"}, runtime: []string{"geos"}},
	{gem: "h3", build: []string{"cmake"}},
	{gem: "charlock_holmes", build: []string{"icu-dev"}, runtime: []string{"icu-libs"}},
	{gem: "idn-ruby", build: []string{"libidn-dev"}, runtime: []string{"libidn"}},
}

// adapterGems names the adapters init knows, for the finding that there is
// none.
const adapterGems = "pg, mysql2, trilogy, sqlite3"
