package audit

import (
	"bytes"
	"context"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/warden-egress/warden/internal/miniotest"
)

// TestS3SinkMinIO writes batches spanning two UTC hours to a real MinIO and
// reads the objects back: Hive-style hour partitions, every line byte for
// byte in order, a retried batch overwriting instead of duplicating.
func TestS3SinkMinIO(t *testing.T) {
	m := miniotest.Start(t)
	m.MakeBucket(t, "sec-audit")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := NewS3Sink(ctx, S3SinkOptions{
		Bucket: "sec-audit", Prefix: "bedrock/", Region: m.Region, Endpoint: m.Endpoint, PathStyle: true,
		Instance: "w-1", AccessKey: m.AccessKey, SecretKey: m.SecretKey,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	// 10:58:20 onwards, one record a second: 100 in hour 10, 200 in hour 11.
	t0 := time.Date(2026, 12, 1, 10, 58, 20, 0, time.UTC)
	all := testEntries(300, t0, 700)
	all[250].Line = []byte(`{"id":"r000250","text":"ünïcode \u2028 and \\n escapes"}`)
	batches := [][]Entry{all[:60], all[60:200], all[200:]} // the second spans the hour
	for i, b := range batches {
		if err := s.Write(ctx, b); err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
	}
	// A retry of the second batch (the pipeline got an error it did not
	// see succeed) lands on the same keys.
	if err := s.Write(ctx, batches[1]); err != nil {
		t.Fatalf("retry: %v", err)
	}

	objs := m.Objects(t, "sec-audit", "bedrock/")
	keyRE := regexp.MustCompile(`^bedrock/dt=(\d{4}-\d{2}-\d{2})/hour=(\d{2})/w-1-(r\d{6})-(\d+)\.jsonl\.gz$`)
	keys := make([]string, 0, len(objs))
	for k := range objs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if len(keys) != 4 {
		t.Fatalf("objects %v: want 4 (batch 1, batch 2 in two hours, batch 3)", keys)
	}
	var got []Entry
	for _, k := range keys {
		mm := keyRE.FindStringSubmatch(k)
		if mm == nil {
			t.Fatalf("key %q does not match %s", k, keyRE)
		}
		lines := bytes.Split(bytes.TrimSuffix(objs[k], []byte("\n")), []byte("\n"))
		for _, l := range lines {
			var e *Entry
			for i := range all {
				if bytes.Equal(all[i].Line, l) {
					e = &all[i]
				}
			}
			if e == nil {
				t.Fatalf("object %s holds a line that was never written: %.60s", k, l)
			}
			if h := e.Time.UTC(); mm[1] != h.Format("2006-01-02") || mm[2] != h.Format("15") {
				t.Errorf("record %s at %s is in partition dt=%s/hour=%s", e.ID, h, mm[1], mm[2])
			}
			got = append(got, *e)
		}
		if first := got[len(got)-len(lines)]; mm[3] != first.ID {
			t.Errorf("key %s names %s, its first record is %s", k, mm[3], first.ID)
		}
	}
	// Keys sort by first record here, so concatenating them gives the
	// records in order, each once.
	slices.SortStableFunc(got, func(a, b Entry) int { return strings.Compare(a.ID, b.ID) })
	if len(got) != len(all) {
		t.Fatalf("%d records read back, want %d", len(got), len(all))
	}
	for i := range all {
		if got[i].ID != all[i].ID {
			t.Fatalf("record %d is %s, want %s", i, got[i].ID, all[i].ID)
		}
	}
	hours := map[string]int{}
	for _, k := range keys {
		hours[keyRE.FindStringSubmatch(k)[2]]++
	}
	if hours["10"] != 2 || hours["11"] != 2 {
		t.Errorf("objects per hour %v, want 2 in hour 10 and 2 in hour 11", hours)
	}
}

// TestS3SinkMinIOErrors: a missing bucket and a stopped server are errors
// that name the object; the sink works again after MinIO restarts.
func TestS3SinkMinIOErrors(t *testing.T) {
	m := miniotest.Start(t)
	m.MakeBucket(t, "audit")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	open := func(bucket string) Sink {
		s, err := NewS3Sink(ctx, S3SinkOptions{Bucket: bucket, Region: m.Region, Endpoint: m.Endpoint, PathStyle: true,
			AccessKey: m.AccessKey, SecretKey: m.SecretKey, Timeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	batch := testEntries(2, time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC), 100)
	err := open("no-such-bucket").Write(ctx, batch)
	if err == nil || !strings.Contains(err.Error(), "s3://no-such-bucket/dt=2026-12-01/hour=03/warden-r000000-") || !strings.Contains(err.Error(), "NoSuchBucket") {
		t.Fatalf("missing bucket: err = %v", err)
	}
	s := open("audit")
	m.Stop()
	if err := s.Write(ctx, batch); err == nil {
		t.Fatal("write with MinIO stopped succeeded")
	}
	m.Restart(t)
	if err := s.Write(ctx, batch); err != nil {
		t.Fatalf("write after restart: %v", err)
	}
	if n := len(m.Objects(t, "audit", "dt=2026-12-01/hour=03/")); n != 1 {
		t.Errorf("%d objects after the retry, want 1", n)
	}
}

func TestS3SinkOptions(t *testing.T) {
	if _, err := NewS3Sink(context.Background(), S3SinkOptions{}); err == nil || !strings.Contains(err.Error(), "no bucket") {
		t.Errorf("no bucket: err = %v", err)
	}
	e := Entry{ID: "01J/../x y", Time: time.Date(2026, 1, 2, 23, 59, 59, 5, time.FixedZone("x", 3600))}
	got := ObjectKey("p/", "host:1", e.Time.Truncate(time.Hour), e)
	want := "p/dt=2026-01-02/hour=22/host_1-01J_.._x_y-1767394799000000005.jsonl.gz" // 22:59:59.000000005Z
	if got != want {
		t.Errorf("ObjectKey = %s, want %s", got, want)
	}
}
