// Package initgc turns the garbage collector off while Go initialises the
// program's packages, and main turns it back on (Restore).
//
// shipit links about a thousand packages, and their initialisation
// allocates about 3.5 MB, nearly all of it kept (registered types,
// compiled patterns, tables): just past the 4 MB at which Go's first
// collection starts, so every command paid a whole collection (about
// 2 ms of `shipit version`'s 12) before main ran, for nothing to free.
// Go initialises packages in the order of their import paths among
// those whose imports are done, and this one imports only runtime/debug,
// so it runs before the packages that allocate most.
package initgc

import "runtime/debug"

// percent is the collector's setting before init turned it off: GOGC's,
// or 100.
var percent = debug.SetGCPercent(-1)

// Restore gives the collector back its setting. main calls it first.
func Restore() { debug.SetGCPercent(percent) }
