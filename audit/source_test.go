package audit

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/warden-egress/warden/internal/miniotest"
)

// collect reads src and returns "name: line" for every line passed on.
func collect(t *testing.T, src string) ([]string, error) {
	t.Helper()
	var got []string
	err := ReadSource(context.Background(), src, func(name string, line []byte) error {
		got = append(got, filepath.ToSlash(name)+": "+string(line))
		return nil
	})
	return got, err
}

func gzipBytes(t *testing.T, s string) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	if _, err := zw.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func writeFiles(t *testing.T, dir string, files map[string][]byte) {
	t.Helper()
	for name, data := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func TestReadSource(t *testing.T) {
	dir := t.TempDir()
	// Two gzip members in one file, as an appending writer produces.
	multi := append(gzipBytes(t, "m1\n"), gzipBytes(t, "m2\n")...)
	writeFiles(t, dir, map[string][]byte{
		"plain.jsonl":            []byte("a\n\n  \nb\r\nc"), // blank lines skipped, CRLF and a last line without newline
		"z.jsonl.gz":             gzipBytes(t, "g1\ng2\n"),
		"multi.gz":               multi,
		"gz-without-suffix.log":  gzipBytes(t, "sniffed\n"),
		"tree/b/2.json":          []byte("d2\n"),
		"tree/a/1.jsonl":         []byte("d1\n"),
		"tree/a/skip.pub":        []byte("not audit\n"),
		"tree/a/README.md":       []byte("not audit\n"),
		"tree/c/empty.jsonl":     nil,
		"nested/deeper/x/y.log":  []byte("deep\n"),
		"other/only-ignored.txt": []byte("x\n"),
	})
	cases := []struct {
		src  string
		want []string
	}{
		{"plain.jsonl", []string{"plain.jsonl: a", "plain.jsonl: b", "plain.jsonl: c"}},
		{"z.jsonl.gz", []string{"z.jsonl.gz: g1", "z.jsonl.gz: g2"}},
		{"multi.gz", []string{"multi.gz: m1", "multi.gz: m2"}},
		{"gz-without-suffix.log", []string{"gz-without-suffix.log: sniffed"}},
		{"tree", []string{"tree/a/1.jsonl: d1", "tree/b/2.json: d2"}},
		{".", []string{
			"gz-without-suffix.log: sniffed", "multi.gz: m1", "multi.gz: m2",
			"nested/deeper/x/y.log: deep",
			"plain.jsonl: a", "plain.jsonl: b", "plain.jsonl: c",
			"tree/a/1.jsonl: d1", "tree/b/2.json: d2",
			"z.jsonl.gz: g1", "z.jsonl.gz: g2",
		}},
	}
	for _, c := range cases {
		t.Run(c.src, func(t *testing.T) {
			got, err := collect(t, filepath.Join(dir, c.src))
			if err != nil {
				t.Fatal(err)
			}
			for i := range got {
				got[i] = strings.TrimPrefix(got[i], filepath.ToSlash(dir)+"/")
			}
			if strings.Join(got, "\n") != strings.Join(c.want, "\n") {
				t.Errorf("lines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(c.want, "\n"))
			}
		})
	}
}

func TestReadSourceErrors(t *testing.T) {
	dir := t.TempDir()
	long := strings.Repeat("x", MaxLineBytes)
	writeFiles(t, dir, map[string][]byte{
		"max.jsonl":       []byte(long + "\r\nok\n"),
		"toolong.jsonl":   []byte("ok\n" + long + "y\n"),
		"badgz.gz":        {0x1f, 0x8b, 0x08, 0, 1, 2},
		"noaudit/a.txt":   []byte("x\n"),
		"truncated.gz":    gzipBytes(t, "one\ntwo\n")[:20],
		"callback.jsonl":  []byte("1\n2\n3\n"),
		"cancelled.jsonl": []byte(strings.Repeat("l\n", 5000)),
	})
	// A line of exactly MaxLineBytes is fine, even with \r\n.
	n := 0
	if err := ReadSource(context.Background(), filepath.Join(dir, "max.jsonl"), func(_ string, l []byte) error {
		n++
		if n == 1 && len(l) != MaxLineBytes {
			t.Errorf("first line has %d bytes, want %d", len(l), MaxLineBytes)
		}
		return nil
	}); err != nil || n != 2 {
		t.Errorf("max.jsonl: %d lines, err %v", n, err)
	}
	for _, c := range []struct{ src, want string }{
		{"toolong.jsonl", "toolong.jsonl: line 2: longer than 1048576 bytes"},
		{"badgz.gz", "badgz.gz: gzip"},
		{"truncated.gz", "truncated.gz: line"},
		{"noaudit", "noaudit: no *.jsonl, *.json, *.log or *.gz files"},
		{"missing.jsonl", "missing.jsonl: no such file"},
	} {
		_, err := collect(t, filepath.Join(dir, c.src))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.src, err, c.want)
		}
	}
	if _, err := collect(t, "s3:///prefix"); err == nil || !strings.Contains(err.Error(), "no bucket name") {
		t.Errorf("s3 without bucket: %v", err)
	}

	// The callback's error stops the read and comes back as is.
	stop := errors.New("stop here")
	n = 0
	err := ReadSource(context.Background(), filepath.Join(dir, "callback.jsonl"), func(string, []byte) error {
		n++
		if n == 2 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 2 {
		t.Errorf("callback error: %v after %d lines", err, n)
	}

	// A cancelled context ends the read.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err = ReadSource(ctx, filepath.Join(dir, "cancelled.jsonl"), func(string, []byte) error { return nil })
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled read: %v", err)
	}
}

// FuzzReadLines: any bytes, gzip or not, are read without a panic, and
// every line passed on is non-blank and holds no newline.
func FuzzReadLines(f *testing.F) {
	f.Add([]byte("a\nb\r\n\n"))
	f.Add(gzipBytesF(f, "x\ny\n"))
	f.Add([]byte{0x1f, 0x8b})
	f.Add([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		_ = ReadLines(context.Background(), "fuzz", bytes.NewReader(data), func(name string, line []byte) error {
			if name != "fuzz" || len(bytes.TrimSpace(line)) == 0 || bytes.IndexByte(line, '\n') >= 0 || len(line) > MaxLineBytes {
				t.Errorf("bad line %q from %q", line, name)
			}
			return nil
		})
	})
}

func gzipBytesF(f *testing.F, s string) []byte {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write([]byte(s))
	zw.Close()
	return b.Bytes()
}

// TestReadSourceS3 reads s3://bucket/prefix from a real MinIO: objects in key
// order (across pages), gzip ones decompressed, nothing outside the prefix,
// folder markers skipped; and a report built from S3 equals the one built
// from the same lines on disk.
func TestReadSourceS3(t *testing.T) {
	srv := miniotest.Start(t)
	srv.MakeBucket(t, "audit")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	fixture, err := os.ReadFile(mixedFixture)
	if err != nil {
		t.Fatal(err)
	}
	objects := map[string][]byte{
		"warden/dt=2026-11-30/hour=10/b-000002.jsonl.gz": gzipBytes(t, "b2\n"),
		"warden/dt=2026-11-30/hour=09/a-000001.jsonl.gz": gzipBytes(t, "a1\na2\n"),
		"warden/dt=2026-11-30/hour=09/a-000002.jsonl":    []byte("a3\r\n\na4"),
		"warden/dt=2026-11-30/":                          nil, // a folder marker
		"warden-other/x.jsonl":                           []byte("outside the prefix\n"),
		"report/mixed.jsonl.gz":                          gzipBytes(t, string(fixture)),
	}
	client := srv.Client()
	for key, body := range objects {
		if _, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("audit"), Key: aws.String(key), Body: bytes.NewReader(body)}); err != nil {
			t.Fatalf("put %s: %v", key, err)
		}
	}
	opts := SourceOptions{S3: S3SourceOptions{Endpoint: srv.Endpoint, Region: srv.Region, PathStyle: true, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey}}
	var got []string
	err = ReadSourceWith(ctx, "s3://audit/warden/", opts, func(name string, line []byte) error {
		got = append(got, name+": "+string(line))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"warden/dt=2026-11-30/hour=09/a-000001.jsonl.gz: a1",
		"warden/dt=2026-11-30/hour=09/a-000001.jsonl.gz: a2",
		"warden/dt=2026-11-30/hour=09/a-000002.jsonl: a3",
		"warden/dt=2026-11-30/hour=09/a-000002.jsonl: a4",
		"warden/dt=2026-11-30/hour=10/b-000002.jsonl.gz: b2",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("lines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	fromS3, err := BuildReport(ctx, []string{"s3://audit/report/"}, opts, ReportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var a, b bytes.Buffer
	if err := fromS3.WriteText(&a); err != nil {
		t.Fatal(err)
	}
	if err := buildFixture(t, mixedFixture).WriteText(&b); err != nil {
		t.Fatal(err)
	}
	if strings.Replace(a.String(), "report/mixed.jsonl.gz", mixedFixture, 1) != b.String() {
		t.Errorf("report from S3:\n%s\nfrom the file:\n%s", a.String(), b.String())
	}

	for _, c := range []struct{ src, want string }{
		{"s3://no-such-bucket/x", "s3://no-such-bucket/x: list objects"},
		{"s3://audit/nothing-here/", "s3://audit/nothing-here/: no objects under the prefix"},
	} {
		err := ReadSourceWith(ctx, c.src, opts, func(string, []byte) error { return nil })
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.src, err, c.want)
		}
	}
}
