package lazyre

import "testing"

func TestCompiledOnFirstUse(t *testing.T) {
	bad := New(`(`) // would panic at start-up with regexp.MustCompile
	defer func() {
		if recover() == nil {
			t.Fatal("an invalid expression did not panic on first use")
		}
	}()
	re := New(`^a(b+)$`)
	if !re.MatchString("abb") || re.MatchString("ac") || re.FindStringSubmatch("abbb")[1] != "bbb" {
		t.Fatalf("%s matches wrongly", re)
	}
	if got := re.ReplaceAllString("ab", "x"); got != "x" {
		t.Fatalf("ReplaceAllString = %q", got)
	}
	bad.MatchString("x")
}
