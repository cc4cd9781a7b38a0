// Package initgc turns the garbage collector off while Go initialises the
// program's packages, and main turns it back on (Restore), with room for
// the heap to grow before the first collection.
//
// shipit links about a thousand packages, and their initialisation
// allocates about 3.4 MB, nearly all of it kept (registered types,
// compiled patterns, tables): just past the 4 MB at which Go's first
// collection starts, so every command paid a whole collection before main
// ran, for nothing to free. This package imports only the runtime's
// packages and os, so Go initialises it before the last half of that.
//
// A command then allocates a few megabytes more before its first network
// call. At GOGC's default the collector would run twice in the first
// 30 ms of a build, each time marking the same live 3 MB beside the work
// on the way to the first solve, on a CI runner's two cores. So, when
// GOGC is not set, Restore lets the heap reach startHeap before Go
// collects, and hands the collector back to GOGC=100 once the live heap is
// past half of it: a command that lives long with a large heap collects
// as Go's default would, and a short one not at all.
package initgc

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
)

// percent is the collector's setting before init turned it off: GOGC's,
// or 100.
var percent = debug.SetGCPercent(-1)

// startHeap is how large the heap may grow before the first collection
// when GOGC is not set.
const startHeap = 32 << 20

// Restore gives the collector back its setting. main calls it first.
func Restore() {
	if _, set := os.LookupEnv("GOGC"); set || percent != 100 {
		debug.SetGCPercent(percent)
		return
	}
	if startPercent() {
		afterEachGC(startPercent)
	}
}

// startPercent sets the collector so that the next collection comes when
// the heap reaches startHeap, and reports whether the live heap leaves
// room for that; when it does not, GOGC=100 is set.
func startPercent() bool {
	live := liveHeap()
	if live == 0 || 2*live >= startHeap {
		debug.SetGCPercent(100)
		return false
	}
	pct := min(startHeap*100/live, 10000) // no more than 100 times the heap
	debug.SetGCPercent(int(pct) - 100)    //nolint:gosec // pct <= 10000
	return true
}

// liveHeap is the heap the last collection kept, or, before the first,
// what is allocated now; 0 when the runtime does not say.
func liveHeap() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	for _, v := range s {
		if v.Value.Kind() == metrics.KindUint64 && v.Value.Uint64() > 0 {
			return v.Value.Uint64()
		}
	}
	return 0
}

// afterEachGC calls f after every collection until it returns false, with
// a finalizer on an object only the collector frees.
func afterEachGC(f func() bool) {
	sentinel := new([64]byte)
	runtime.SetFinalizer(sentinel, func(*[64]byte) {
		if f() {
			afterEachGC(f)
		}
	})
}
