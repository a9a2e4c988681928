package bundle

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"go.uber.org/zap/zaptest"

	"github.com/warden-egress/warden/internal/miniotest"
)

// TestS3Store: an S3 prefix (a real MinIO) as the place bundles are
// published: Create never replaces a serial, List sees only bundle files
// under the prefix, a Warden reads it directly, and the bundle service
// serves what was published there.
func TestS3Store(t *testing.T) {
	ctx := context.Background()
	m := miniotest.Start(t)
	if m == nil {
		return
	}
	m.MakeBucket(t, "policy")
	open := func(url string) *S3Store {
		st, err := NewS3Store(ctx, S3Options{URL: url, Endpoint: m.Endpoint, Region: m.Region, PathStyle: true,
			Credentials: StaticCredentials(m.AccessKey, m.SecretKey)})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	store := open("s3://policy/bundles/eks")
	s, pub := testKey(5, "k")
	trust := Trust{"k": pub}
	all := Scope{Fleets: []string{"*"}}

	// Nothing yet: a Warden reading the prefix is not ready.
	h := newFollowerHarness(t, followerSetup{store: store, trust: trust, cache: t.TempDir()})
	if _, err := h.f.Once(ctx); err == nil || !strings.Contains(err.Error(), "no unexpired bundle") {
		t.Fatalf("empty prefix: %v", err)
	}

	b1 := fresh(t, 1, all, s)
	if err := store.Create(ctx, FileName(1), b1); err != nil {
		t.Fatal(err)
	}
	if err := store.Create(ctx, FileName(1), fresh(t, 1, Scope{Namespaces: []string{"x"}}, s)); !errors.Is(err, ErrExists) {
		t.Fatalf("a second Create of serial 1: %v, want ErrExists", err)
	}
	// Objects that are not bundle files, or sit elsewhere, are not listed.
	for _, key := range []string{"bundles/eks/README", "bundles/eks/old/" + FileName(7), "bundles/ecs/" + FileName(8), "bundles/" + FileName(9)} {
		if _, err := m.Client().PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("policy"), Key: aws.String(key), Body: bytes.NewReader(b1)}); err != nil {
			t.Fatal(err)
		}
	}
	list, err := store.List(ctx)
	if err != nil || len(list) != 1 || list[0].Name != FileName(1) || list[0].Stamp == "" {
		t.Fatalf("List = %+v, %v", list, err)
	}
	if got, err := store.Get(ctx, FileName(1)); err != nil || !bytes.Equal(got, b1) {
		t.Fatalf("Get = %v", err)
	}

	// A Warden reading the prefix directly.
	if changed, err := h.f.Once(ctx); !changed || err != nil || h.f.Current().Serial != 1 {
		t.Fatalf("Once = %v %v", changed, err)
	}
	b2 := fresh(t, 2, all, s)
	if err := store.Create(ctx, FileName(2), b2); err != nil {
		t.Fatal(err)
	}
	if changed, err := h.f.Once(ctx); !changed || err != nil || h.f.Current().Serial != 2 {
		t.Fatalf("Once after serial 2 = %v %v", changed, err)
	}
	if changed, err := h.f.Once(ctx); changed || err != nil {
		t.Fatalf("unchanged prefix: Once = %v %v", changed, err)
	}

	// The bundle service in front of the same prefix, and a publish
	// through it landing there.
	svc, err := NewService(ctx, open("s3://policy/bundles/eks/"), trust, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewTLSServer(svc)
	defer ts.Close()
	srv := &testService{svc: svc, ts: ts}
	if _, body := srv.get(t, "fleet=f", ""); body != string(b2) {
		t.Fatalf("the service over S3 served %.60q", body)
	}
	b3 := fresh(t, 3, all, s)
	if code := srv.put(t, b3); code != http.StatusCreated {
		t.Fatalf("PUT to the service over S3 = %d", code)
	}
	if got, err := store.Get(ctx, FileName(3)); err != nil || !bytes.Equal(got, b3) {
		t.Fatalf("the published bundle is not in the prefix: %v", err)
	}
	if changed, err := h.f.Once(ctx); !changed || err != nil || h.f.Current().Serial != 3 {
		t.Fatalf("the Warden reading S3 after a PUT to the service: %v %v", changed, err)
	}

	// MinIO gone: the Warden keeps serial 3 and says why.
	m.Kill()
	if _, err := h.f.Once(ctx); err == nil {
		t.Fatal("Once with MinIO down succeeded")
	}
	if ready, detail := h.f.Status(); !ready || !strings.Contains(detail, "serial 3") || !strings.Contains(detail, "s3://policy/bundles/eks/") {
		t.Fatalf("Status with MinIO down = %v %q", ready, detail)
	}
}
