package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeAWS records what the S3 and CloudWatch sinks send: object keys, and
// the log stream and header of every CloudWatch call.
type fakeAWS struct {
	mu      sync.Mutex
	keys    []string
	streams []string
}

func (f *fakeAWS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	defer f.mu.Unlock()
	if target := r.Header.Get("X-Amz-Target"); target != "" {
		var in struct{ LogStreamName string }
		json.Unmarshal(body, &in)
		f.streams = append(f.streams, in.LogStreamName)
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		io.WriteString(w, "{}")
		return
	}
	if r.Method == http.MethodPut {
		f.keys = append(f.keys, r.URL.Path)
	}
}

// TestOpenSinks: each configured sink is built from its config, in order,
// with the instance naming S3 objects and the default CloudWatch stream
// and the HTTP auth value taken from the named environment variable.
func TestOpenSinks(t *testing.T) {
	// Keep the AWS default chain to the environment: no shared files, no IMDS.
	dir := t.TempDir()
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "none"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDTEST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("WARDEN_TEST_HEC_TOKEN", "Splunk tok-1")

	aws := &fakeAWS{}
	awsSrv := httptest.NewServer(aws)
	defer awsSrv.Close()
	var gotAuth, gotBody string
	hec := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		gotAuth, gotBody = r.Header.Get("Authorization"), string(b)
	}))
	defer hec.Close()

	path := filepath.Join(dir, "audit", "audit.jsonl")
	cfg := Config{Sinks: []SinkConfig{
		{Stdout: &struct{}{}},
		{File: &FileSinkConfig{Path: path, MaxBytes: 1 << 20}},
		{S3: &S3SinkConfig{Bucket: "sec", Prefix: "bedrock/", Region: "us-east-1", Endpoint: awsSrv.URL, PathStyle: true}},
		{CloudWatch: &CloudWatchSinkConfig{LogGroup: "/warden", Region: "us-east-1", Endpoint: awsSrv.URL}},
		{HTTP: &HTTPSinkConfig{URL: hec.URL, Format: "splunk_hec", AuthHeader: "Authorization", AuthEnv: "WARDEN_TEST_HEC_TOKEN", Timeout: 5 * time.Second}},
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var stdout bytes.Buffer
	sinks, err := OpenSinks(ctx, cfg, "w-7", &stdout)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	batch := []Entry{{ID: "r1", Time: time.Date(2026, 12, 1, 5, 0, 0, 0, time.UTC), Line: []byte(`{"id":"r1"}`)}}
	for _, s := range sinks {
		names = append(names, s.Name())
		if err := s.Write(ctx, batch); err != nil {
			t.Errorf("sink %s: %v", s.Name(), err)
		}
		if err := s.Close(); err != nil {
			t.Errorf("close %s: %v", s.Name(), err)
		}
	}
	if got := strings.Join(names, ","); got != "stdout,file,s3,cloudwatch,http" {
		t.Errorf("sinks %s, want stdout,file,s3,cloudwatch,http", got)
	}
	if stdout.String() != "{\"id\":\"r1\"}\n" {
		t.Errorf("stdout %q", stdout.String())
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != "{\"id\":\"r1\"}\n" {
		t.Errorf("file %q (%v)", b, err)
	}
	if len(aws.keys) != 1 || !strings.HasPrefix(aws.keys[0], "/sec/bedrock/dt=2026-12-01/hour=05/w-7-r1-") {
		t.Errorf("s3 keys %v, want one under /sec/bedrock/dt=2026-12-01/hour=05/ named for instance w-7", aws.keys)
	}
	if len(aws.streams) != 2 || aws.streams[0] != "w-7" || aws.streams[1] != "w-7" {
		t.Errorf("cloudwatch streams %v, want CreateLogStream and PutLogEvents on w-7 (the instance)", aws.streams)
	}
	if gotAuth != "Splunk tok-1" || !strings.Contains(gotBody, `"event":{"id":"r1"}`) {
		t.Errorf("http sink sent auth %q body %q", gotAuth, gotBody)
	}
}

func TestOpenSinksErrors(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("WARDEN_TEST_EMPTY_TOKEN", "")
	blocker := filepath.Join(dir, "file")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		sink SinkConfig
		want []string
	}{
		{"http auth env empty",
			SinkConfig{HTTP: &HTTPSinkConfig{URL: "http://127.0.0.1:1/", AuthHeader: "Authorization", AuthEnv: "WARDEN_TEST_EMPTY_TOKEN"}},
			[]string{"audit.sinks[1] (http)", "WARDEN_TEST_EMPTY_TOKEN"}},
		{"file path under a file",
			SinkConfig{File: &FileSinkConfig{Path: filepath.Join(blocker, "audit.jsonl")}},
			[]string{"audit.sinks[1] (file)", blocker}},
		{"no sink named", SinkConfig{}, []string{"audit.sinks[1]", "no sink named"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{Sinks: []SinkConfig{{Stdout: &struct{}{}}, tc.sink}}
			sinks, err := OpenSinks(context.Background(), cfg, "w", io.Discard)
			if err == nil || sinks != nil {
				t.Fatalf("openSinks = %v, %v: want an error and no sinks", sinks, err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}
