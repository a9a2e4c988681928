// Package miniotest runs a real MinIO server on loopback for tests that
// need S3: the audit S3 sink's tests and the audit pipeline's load test,
// which stops and restarts it to prove delivery survives an outage.
//
// The binary comes from $WARDEN_MINIO or ~/.cache/warden/minio/bin/minio
// (scripts/minio builds it). MinIO is AGPL; Warden only runs it as a
// separate process in tests and never links it.
package miniotest

import (
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/warden-egress/warden/internal/proctest"
	"github.com/warden-egress/warden/internal/testenv"
)

// Bounds on the server's life: a cold start on a busy CI machine takes a
// few seconds; a stop that takes longer than stopWait is killed.
const (
	startWait = 60 * time.Second
	stopWait  = 15 * time.Second
	callWait  = 30 * time.Second
)

// Server is a running MinIO on 127.0.0.1. Stop it and start it again with
// Restart: it keeps its port, data directory and credentials.
type Server struct {
	Endpoint  string // http://127.0.0.1:PORT
	AccessKey string
	SecretKey string
	Region    string // what clients should sign for: us-east-1

	bin, dir, certs   string
	home              string
	addr, consoleAddr string

	proc *proctest.Proc
}

// Binary is where the MinIO binary is looked for: $WARDEN_MINIO, else
// ~/.cache/warden/minio/bin/minio.
func Binary() string {
	if p := os.Getenv("WARDEN_MINIO"); p != "" {
		return p
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(".cache", "warden", "minio", "bin", "minio")
	}
	return filepath.Join(home, ".cache", "warden", "minio", "bin", "minio")
}

// Start runs MinIO with a fresh data directory and stops it when the test
// ends. Without the binary it reports testenv.Missing (fails under CI).
func Start(t testing.TB) *Server {
	t.Helper()
	bin := Binary()
	if st, err := os.Stat(bin); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
		testenv.Missing(t, "minio binary not found at %s: run scripts/minio", bin)
		return nil
	}
	s := &Server{
		AccessKey: "wardentest",
		SecretKey: "wardentest-secret-key",
		Region:    "us-east-1",
		bin:       bin,
		dir:       t.TempDir(),
		certs:     t.TempDir(),
		home:      t.TempDir(),
		addr:      proctest.FreeAddr(t),
	}
	s.consoleAddr = proctest.FreeAddr(t)
	s.Endpoint = "http://" + s.addr
	s.proc = &proctest.Proc{Name: "miniotest: minio on " + s.addr, StartWait: startWait, StopWait: stopWait, Poll: 100 * time.Millisecond}
	t.Cleanup(s.Kill)
	s.start(t)
	return s
}

func (s *Server) start(t testing.TB) {
	t.Helper()
	cmd := exec.Command(s.bin, "server", "--quiet", "--certs-dir", s.certs,
		"--address", s.addr, "--console-address", s.consoleAddr, s.dir)
	cmd.Env = append(os.Environ(),
		"MINIO_ROOT_USER="+s.AccessKey,
		"MINIO_ROOT_PASSWORD="+s.SecretKey,
		"MINIO_BROWSER=off",
		"MINIO_UPDATE=off",
		"MINIO_CI_CD=1", // no prompts, no surprises in a sandbox
		"HOME="+s.home,  // MinIO creates ~/.minio: not in the user's home
	)
	client := &http.Client{Timeout: 2 * time.Second}
	s.proc.Start(t, cmd, func() error {
		resp, err := client.Get(s.Endpoint + "/minio/health/cluster") // 200 once the object layer takes writes (live answers earlier)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("health: %s", resp.Status)
		}
		return nil
	})
}

// Stop sends SIGTERM and waits for MinIO to exit (killing it after 15 s).
func (s *Server) Stop() { s.proc.Stop() }

// Kill stops MinIO with SIGKILL, as a crash would.
func (s *Server) Kill() { s.proc.Kill() }

// Restart starts MinIO again on the same port and data directory, after
// stopping it if it still runs.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop()
	s.start(t)
}

// Output is what MinIO printed since it last started (for failure messages).
func (s *Server) Output() string { return s.proc.Output() }

// Client returns an S3 client for the server (path-style, static
// credentials).
func (s *Server) Client() *s3.Client {
	return s3.New(s3.Options{
		Region:       s.Region,
		BaseEndpoint: aws.String(s.Endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, ""),
		HTTPClient:   &http.Client{Timeout: callWait},
	})
}

// MakeBucket creates a bucket.
func (s *Server) MakeBucket(t testing.TB, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), callWait)
	defer cancel()
	if _, err := s.Client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("miniotest: create bucket %s on %s: %v", name, s.Endpoint, err)
	}
}

// Objects returns every object under prefix in bucket by key, gzip ones
// (by name .gz) decompressed.
func (s *Server) Objects(t testing.TB, bucket, prefix string) map[string][]byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*callWait)
	defer cancel()
	client := s.Client()
	out := map[string][]byte{}
	p := s3.NewListObjectsV2Paginator(client, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatalf("miniotest: list s3://%s/%s: %v", bucket, prefix, err)
		}
		for _, o := range page.Contents {
			key := aws.ToString(o.Key)
			obj, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
			if err != nil {
				t.Fatalf("miniotest: get s3://%s/%s: %v", bucket, key, err)
			}
			var r io.Reader = obj.Body
			if strings.HasSuffix(key, ".gz") {
				zr, err := gzip.NewReader(obj.Body)
				if err != nil {
					obj.Body.Close()
					t.Fatalf("miniotest: gunzip s3://%s/%s: %v", bucket, key, err)
				}
				r = zr
			}
			data, err := io.ReadAll(r)
			obj.Body.Close()
			if err != nil {
				t.Fatalf("miniotest: read s3://%s/%s: %v", bucket, key, err)
			}
			out[key] = data
		}
	}
	return out
}
