package audit

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// FileSinkOptions configure NewFileSink.
type FileSinkOptions struct {
	// Path is the live file; records are appended to it (created 0600,
	// its directory 0700 when missing).
	Path string
	// MaxBytes rotates the live file before a batch would take it past
	// this size (0: never). A single batch larger than MaxBytes still goes
	// whole into one file, so a file may exceed it by one batch.
	MaxBytes int64
	// MaxFiles is how many rotated files to keep, oldest removed first
	// (0: keep all).
	MaxFiles int
}

// rotatedTimeLayout names rotated files. It sorts lexically in time order,
// so audit/source.go reading a directory in lexical order reads them in
// the order they were written (and before the live file: '-' < '.').
const rotatedTimeLayout = "20060102T150405.000000000Z"

// NewFileSink opens (or creates) opts.Path for appending JSON lines.
//
// Rotation renames the live file to <stem>-<UTC time><ext> beside it (for
// /var/log/warden/audit.jsonl: audit-20261201T004900.123456789Z.jsonl)
// rather than shifting numbered files: one rename per rotation however
// many files are kept, and the rotated names keep the extension readers
// look for.
func NewFileSink(opts FileSinkOptions) (Sink, error) {
	if opts.Path == "" {
		return nil, errors.New("audit file sink: no path")
	}
	if opts.MaxBytes < 0 || opts.MaxFiles < 0 {
		return nil, fmt.Errorf("audit file sink %s: max bytes %d and max files %d must not be negative", opts.Path, opts.MaxBytes, opts.MaxFiles)
	}
	if err := os.MkdirAll(filepath.Dir(opts.Path), 0o700); err != nil {
		return nil, fmt.Errorf("audit file sink %s: %w", opts.Path, err)
	}
	s := &fileSink{o: opts}
	if err := s.open(); err != nil {
		return nil, err
	}
	return s, nil
}

type fileSink struct {
	o    FileSinkOptions
	mu   sync.Mutex
	f    *os.File
	size int64
	buf  []byte // reused between batches
}

func (s *fileSink) Name() string { return "file" }

func (s *fileSink) open() error {
	f, err := os.OpenFile(s.o.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("audit file sink: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("audit file sink: %w", err)
	}
	s.f, s.size = f, st.Size()
	return nil
}

func (s *fileSink) Write(ctx context.Context, batch []Entry) error {
	if len(batch) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		// A failed rotation left no file open: try again on this batch.
		if err := s.open(); err != nil {
			return err
		}
	}
	s.buf = appendLines(s.buf[:0], batch)
	if s.o.MaxBytes > 0 && s.size > 0 && s.size+int64(len(s.buf)) > s.o.MaxBytes {
		if err := s.rotate(); err != nil {
			return err
		}
	}
	n, err := s.f.Write(s.buf)
	s.size += int64(n)
	if err != nil {
		// Part of the batch may be in the file; the retry writes it all
		// again, and readers de-duplicate on the record ID.
		return fmt.Errorf("audit file sink %s: write %d records: %w", s.o.Path, len(batch), err)
	}
	return nil
}

// rotate closes the live file, renames it with the current time, prunes
// old rotated files and opens a new live file.
func (s *fileSink) rotate() error {
	if err := s.f.Close(); err != nil {
		return fmt.Errorf("audit file sink %s: close before rotation: %w", s.o.Path, err)
	}
	s.f = nil
	stem, ext := splitExt(s.o.Path)
	now := time.Now().UTC()
	var to string
	for {
		to = stem + "-" + now.Format(rotatedTimeLayout) + ext
		if _, err := os.Lstat(to); errors.Is(err, fs.ErrNotExist) {
			break
		}
		now = now.Add(time.Nanosecond) // same clock reading as the last rotation
	}
	if err := os.Rename(s.o.Path, to); err != nil {
		return fmt.Errorf("audit file sink %s: rotate: %w", s.o.Path, err)
	}
	if err := s.prune(); err != nil {
		return err
	}
	return s.open()
}

// prune removes the oldest rotated files beyond MaxFiles.
func (s *fileSink) prune() error {
	if s.o.MaxFiles == 0 {
		return nil
	}
	rotated, err := RotatedFiles(s.o.Path)
	if err != nil {
		return err
	}
	for len(rotated) > s.o.MaxFiles {
		if err := os.Remove(rotated[0]); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("audit file sink %s: prune: %w", s.o.Path, err)
		}
		rotated = rotated[1:]
	}
	return nil
}

// RotatedFiles lists the files a file sink at path has rotated, oldest
// first (the live file is not included).
func RotatedFiles(path string) ([]string, error) {
	stem, ext := splitExt(path)
	names, err := filepath.Glob(globEscape(stem) + "-*" + globEscape(ext))
	if err != nil {
		return nil, fmt.Errorf("audit file sink %s: list rotated files: %w", path, err)
	}
	var out []string
	for _, n := range names {
		ts := strings.TrimSuffix(strings.TrimPrefix(n, stem+"-"), ext)
		if _, err := time.Parse(rotatedTimeLayout, ts); err == nil {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out, nil
}

func splitExt(path string) (stem, ext string) {
	ext = filepath.Ext(path)
	return strings.TrimSuffix(path, ext), ext
}

func globEscape(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `*`, `\*`, `?`, `\?`, `[`, `\[`)
	return r.Replace(s)
}

// Close closes the live file. Writes go straight to the file (no user
// space buffer), so there is nothing left to flush; fsync is the spool's
// job, not this sink's.
func (s *fileSink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	if err != nil {
		return fmt.Errorf("audit file sink %s: close: %w", s.o.Path, err)
	}
	return nil
}
