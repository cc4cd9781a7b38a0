package initgc

import (
	"os"
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

// gcPercent is the collector's setting now.
func gcPercent() int {
	p := debug.SetGCPercent(100)
	debug.SetGCPercent(p)
	return p
}

// TestRestore: with GOGC unset, the heap may grow to startHeap before the
// first collection, and once the live heap is past half of it the
// collector is GOGC=100's again.
func TestRestore(t *testing.T) {
	t.Setenv("GOGC", "") // restored after the test
	if err := os.Unsetenv("GOGC"); err != nil {
		t.Fatal(err)
	}
	percent = 100
	debug.SetGCPercent(100)
	runtime.GC() // what an earlier run of the test kept is freed
	Restore()
	p := gcPercent()
	live := liveHeap()
	want := min(uint64(startHeap), 100*live) // at most 100 times the heap
	if goal := live * uint64(100+p) / 100; p <= 100 || goal < want*9/10 || goal > want*11/10 {
		t.Fatalf("after Restore: GOGC %d, live heap %d: next collection at %d bytes, want about %d", p, live, goal, want)
	}
	kept := make([][]byte, 0, 24)
	for range 24 {
		kept = append(kept, make([]byte, 1<<20)) // 24 MB live: past half of startHeap
	}
	deadline := time.Now().Add(10 * time.Second)
	for gcPercent() != 100 {
		if time.Now().After(deadline) {
			t.Fatalf("with %d MB live the collector is still at GOGC %d, want 100", len(kept), gcPercent())
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond) // finalizers run on their own goroutine
	}
	runtime.KeepAlive(kept)
}

// TestRestoreKeepsGOGC: a GOGC the user set is the collector's setting.
func TestRestoreKeepsGOGC(t *testing.T) {
	t.Setenv("GOGC", "50")
	percent = 50
	t.Cleanup(func() { percent = 100 })
	Restore()
	if p := gcPercent(); p != 50 {
		t.Fatalf("GOGC=50: the collector is at %d", p)
	}
}
