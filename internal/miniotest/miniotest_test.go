package miniotest

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// TestMinioRestart proves the server keeps its endpoint and data across
// Stop/Restart and Kill/Restart, which the pipeline's load test relies on.
func TestMinioRestart(t *testing.T) {
	s := Start(t)
	s.MakeBucket(t, "audit")
	put := func(key, body string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := s.Client().PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("audit"), Key: aws.String(key), Body: bytes.NewReader([]byte(body))}); err != nil {
			t.Fatalf("put %s: %v", key, err)
		}
	}
	put("a/one.jsonl", "1\n")
	endpoint := s.Endpoint
	s.Stop()
	s.Restart(t)
	put("a/two.jsonl", "2\n")
	s.Kill()
	s.Restart(t)
	if s.Endpoint != endpoint {
		t.Fatalf("endpoint changed across restarts: %s → %s", endpoint, s.Endpoint)
	}
	got := s.Objects(t, "audit", "a/")
	want := map[string]string{"a/one.jsonl": "1\n", "a/two.jsonl": "2\n"}
	if len(got) != len(want) {
		t.Fatalf("objects after restarts: %d, want %d: %v", len(got), len(want), got)
	}
	for k, v := range want {
		if string(got[k]) != v {
			t.Errorf("object %s = %q, want %q", k, got[k], v)
		}
	}
}
