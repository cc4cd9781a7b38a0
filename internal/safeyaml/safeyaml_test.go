package safeyaml

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"
)

// bomb is a billion-laughs document: each level refers to the previous
// one ten times.
func bomb(levels int) string {
	var b strings.Builder
	b.WriteString("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i < levels; i++ {
		fmt.Fprintf(&b, "a%d: &a%d [", i, i)
		for j := 0; j < 10; j++ {
			if j > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "*a%d", i-1)
		}
		b.WriteString("]\n")
	}
	return b.String()
}

func TestParseRefusesAliasBombs(t *testing.T) {
	t.Parallel()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	_, err := Parse([]byte(bomb(12)))
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("took %v to refuse", d)
	}
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 100<<20 {
		t.Errorf("allocated %d MB to refuse", grew>>20)
	}
	if _, err := Parse([]byte(bomb(3))); err != nil {
		t.Errorf("a small document with aliases: %v", err)
	}
	if _, err := Parse([]byte(strings.Repeat("#", MaxFileSize+1))); !errors.Is(err, ErrTooLarge) {
		t.Errorf("an oversized file: %v", err)
	}
}
