package audit

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// readAll concatenates the rotated files (oldest first) and the live file.
func readAll(t *testing.T, path string) (files []string, data []byte) {
	t.Helper()
	rotated, err := RotatedFiles(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range append(rotated, path) {
		b, err := os.ReadFile(f)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		data = append(data, b...)
	}
	return rotated, data
}

func TestFileSink(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name        string
		maxBytes    int64
		maxFiles    int
		batches     int // of 10 records of 100 bytes (1010 bytes with newlines)
		wantRotated int
		wantAll     bool // every line is still on disk
	}{
		{"no rotation", 0, 0, 5, 0, true},
		{"rotates before a batch would pass max bytes, keeps all", 2500, 0, 5, 2, true},
		{"keeps max files, oldest removed", 1500, 2, 6, 2, false},
		{"batch larger than max bytes still goes whole", 500, 0, 3, 2, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "new", "audit.jsonl")
			s, err := NewFileSink(FileSinkOptions{Path: path, MaxBytes: tc.maxBytes, MaxFiles: tc.maxFiles})
			if err != nil {
				t.Fatal(err)
			}
			var want bytes.Buffer
			all := testEntries(10*tc.batches, t0, 100)
			for i := range tc.batches {
				b := all[10*i : 10*i+10]
				if err := s.Write(context.Background(), b); err != nil {
					t.Fatal(err)
				}
				want.Write(appendLines(nil, b))
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			rotated, got := readAll(t, path)
			if len(rotated) != tc.wantRotated {
				t.Errorf("rotated files %v, want %d", rotated, tc.wantRotated)
			}
			if tc.wantAll && !bytes.Equal(got, want.Bytes()) {
				t.Errorf("files hold %d bytes, want the %d written in order", len(got), want.Len())
			}
			if !tc.wantAll && !bytes.HasSuffix(want.Bytes(), got) {
				t.Errorf("kept files are not the newest records in order")
			}
			for _, f := range append(rotated, path) {
				st, err := os.Stat(f)
				if err != nil {
					t.Fatal(err)
				}
				if st.Mode().Perm() != 0o600 {
					t.Errorf("%s mode %v, want 0600", f, st.Mode().Perm())
				}
				if tc.maxBytes > 0 && st.Size() > max(tc.maxBytes, 1010) {
					t.Errorf("%s holds %d bytes, more than max bytes %d or one batch", f, st.Size(), tc.maxBytes)
				}
				if filepath.Ext(f) != ".jsonl" {
					t.Errorf("rotated file %s lost the .jsonl extension readers look for", f)
				}
			}
			if st, err := os.Stat(filepath.Dir(path)); err != nil || st.Mode().Perm() != 0o700 {
				t.Errorf("created dir mode %v (%v), want 0700", st.Mode().Perm(), err)
			}
		})
	}
}

// TestFileSinkAppends proves a reopened sink appends and counts the
// existing size toward rotation.
func TestFileSinkAppends(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	if err := os.WriteFile(path, []byte("{\"old\":1}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := NewFileSink(FileSinkOptions{Path: path, MaxBytes: 15})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Write(context.Background(), []Entry{{ID: "a", Line: []byte(`{"new":1}`)}}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	rotated, got := readAll(t, path)
	if len(rotated) != 1 || string(got) != "{\"old\":1}\n{\"new\":1}\n" {
		t.Errorf("rotated %v, contents %q: want the old line rotated and the new one live", rotated, got)
	}
}

func TestFileSinkOptionErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		opts FileSinkOptions
		want string
	}{
		{"no path", FileSinkOptions{}, "no path"},
		{"negative", FileSinkOptions{Path: filepath.Join(dir, "a"), MaxBytes: -1}, "negative"},
		{"dir is a file", FileSinkOptions{Path: filepath.Join(dir, "f", "a.jsonl")}, filepath.Join(dir, "f")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "dir is a file" {
				os.WriteFile(filepath.Join(dir, "f"), nil, 0o600)
			}
			_, err := NewFileSink(tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

// BenchmarkFileSink writes ~700-byte records in batches of 500; the target
// is at least 50,000 records/s.
func BenchmarkFileSink(b *testing.B) {
	path := filepath.Join(b.TempDir(), "audit.jsonl")
	s, err := NewFileSink(FileSinkOptions{Path: path, MaxBytes: 64 << 20, MaxFiles: 2})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	batch := testEntries(500, time.Now(), 700)
	b.SetBytes(int64(len(appendLines(nil, batch))))
	b.ResetTimer()
	for b.Loop() {
		if err := s.Write(context.Background(), batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(batch))/b.Elapsed().Seconds(), "records/s")
}
