package build

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
	"time"
)

func TestRecordRoundTripAndMerge(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), ".shipit", RecordFile)
	if _, err := ReadRecord(path); !errors.Is(err, ErrNoRecord) {
		t.Fatalf("missing record: %v", err)
	}
	at := time.Unix(1700000000, 0).UTC()
	first := &Record{Version: RecordVersion, Commit: "c1", CommitTime: at, Tag: "t1", Images: []Image{{Name: "web", Digest: "sha256:a"}}}
	if err := WriteRecord(path, first); err != nil {
		t.Fatal(err)
	}
	got, err := ReadRecord(path)
	if err != nil || !reflect.DeepEqual(got, first) {
		t.Fatalf("read back %+v, %v", got, err)
	}

	// Building another image of the same commit keeps web in the record.
	second := &Record{Version: RecordVersion, Commit: "c1", CommitTime: at, Tag: "t1", Images: []Image{{Name: "api", Digest: "sha256:b"}}}
	second.Merge(got)
	if len(second.Images) != 2 || second.Images[0].Name != "api" || second.Images[1].Name != "web" {
		t.Errorf("merge = %+v", second.Images)
	}
	// A new commit replaces the record.
	third := &Record{Version: RecordVersion, Commit: "c2", Tag: "t2", Images: []Image{{Name: "api"}}}
	third.Merge(got)
	if len(third.Images) != 1 {
		t.Errorf("a record of another commit was merged: %+v", third.Images)
	}
	// No temp files are left beside the record.
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("state dir holds %d entries, want only the record", len(entries))
	}

	if err := os.WriteFile(path, []byte(`{"version": 99}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadRecord(path); err == nil {
		t.Error("a record of an unknown version was accepted")
	}
}

// TestRecordWrittenPastALeftTemporaryFile: a run killed while writing the
// record leaves its temporary file; the next run, which in a container
// has the same pid, still writes the record.
func TestRecordWrittenPastALeftTemporaryFile(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), ".shipit")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	left := filepath.Join(dir, "."+RecordFile+"."+strconv.Itoa(os.Getpid())+".tmp")
	if err := os.WriteFile(left, []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, RecordFile)
	if err := WriteRecord(path, &Record{Version: RecordVersion, Commit: "c1", Tag: "t1"}); err != nil {
		t.Fatalf("a temporary file left by a killed run blocks the record: %v", err)
	}
	if r, err := ReadRecord(path); err != nil || r.Commit != "c1" {
		t.Fatalf("read back %+v, %v", r, err)
	}
}
