package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/warden-egress/warden/bedrock/bedrocktest"
	"github.com/warden-egress/warden/internal/miniotest"
)

// wardenProc is `warden serve` in a child process (this test binary in its
// "warden" helper role), so the test can SIGKILL it.
type wardenProc struct {
	cmd    *exec.Cmd
	stderr *bytes.Buffer
	done   chan struct{}
}

func startWardenProc(t *testing.T, env []string, args ...string) *wardenProc {
	t.Helper()
	a, _ := json.Marshal(args)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), netnsHelperEnv+"=warden", netnsArgsEnv+"="+string(a)), env...)
	p := &wardenProc{cmd: cmd, stderr: &bytes.Buffer{}, done: make(chan struct{})}
	cmd.Stderr = p.stderr
	cmd.Stdout = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { p.signal(syscall.SIGKILL) })
	return p
}

func (p *wardenProc) signal(sig syscall.Signal) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// TestAuditLoadNoLoss is the audit pipeline's acceptance: calls run through
// Warden while its S3 sink (a real MinIO server) is stopped and restarted
// several times and Warden itself is SIGKILLed once and restarted; in the
// end every call whose response reached the client has exactly one record
// in MinIO after de-duplication by id, and the trail verifies.
func TestAuditLoadNoLoss(t *testing.T) {
	minio := miniotest.Start(t)
	minio.MakeBucket(t, "audit")
	emu := bedrocktest.NewServer(bedrocktest.Config{Credentials: map[string]string{minio.AccessKey: minio.SecretKey}})
	t.Cleanup(emu.Close)

	dir := t.TempDir()
	ep, admin := freeAddr(t), freeAddr(t)
	cfgPath := filepath.Join(dir, "warden.yaml")
	cfg := fmt.Sprintf(`version: 1
listen: {endpoint: %q, admin: %q}
upstream: {region: us-east-1, url: %q, insecure: true}
identity: {static: {app: svc}}
apps:
  - name: svc
    allow_weak_identity: true
    match: {tags: {app: svc}}
    allow: {models: ["amazon.nova-*"], operations: [Converse, ConverseStream]}
audit:
  instance: load-test
  spool: {dir: %q, segment_bytes: 262144, max_bytes: 67108864}
  batch: {max_records: 200, max_wait: 50ms, max_backoff: 400ms}
  checkpoint: {every: 100, interval: 1s}
  sinks: [{s3: {bucket: audit, prefix: warden/, region: us-east-1, endpoint: %q, path_style: true}}]
`, ep, admin, emu.URL, filepath.Join(dir, "spool"), minio.Endpoint)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"AWS_ACCESS_KEY_ID=" + minio.AccessKey, "AWS_SECRET_ACCESS_KEY=" + minio.SecretKey, "AWS_REGION=us-east-1",
		"AWS_EC2_METADATA_DISABLED=true", "AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null"}
	var proc atomic.Pointer[wardenProc]
	start := func() {
		proc.Store(startWardenProc(t, env, "serve", "--config", cfgPath))
		waitHTTP(t, "http://"+admin+"/healthz")
	}
	start()

	// The client keeps the X-Warden-Request-Id of every answer it received
	// in full.
	// One client per worker: smithy-go v1.28.9 shares one event-stream
	// decoder buffer between a client's concurrent streams (a data race).
	newClient := func() *bedrockruntime.Client {
		return bedrockruntime.New(bedrockruntime.Options{Region: "us-east-1", BaseEndpoint: aws.String("http://" + ep), RetryMaxAttempts: 1,
			HTTPClient: bedrocktest.BufferedClient(nil), Credentials: credentials.NewStaticCredentialsProvider("AKIAAPP", "x", "")})
	}
	var mu sync.Mutex
	succeeded := map[string]bool{}
	var attempted, failed atomic.Int64
	idOf := func(md middleware.Metadata) string {
		if raw, ok := awsmiddleware.GetRawResponse(md).(*smithyhttp.Response); ok {
			return raw.Header.Get("X-Warden-Request-Id")
		}
		return ""
	}
	call := func(ctx context.Context, client *bedrockruntime.Client, i int) {
		attempted.Add(1)
		model := aws.String("amazon.nova-lite-v1:0")
		if i%5 == 0 {
			out, err := client.ConverseStream(ctx, &bedrockruntime.ConverseStreamInput{ModelId: model,
				Messages: []types.Message{{Role: types.ConversationRoleUser, Content: []types.ContentBlock{&types.ContentBlockMemberText{Value: "stream"}}}}})
			if err != nil {
				failed.Add(1)
				return
			}
			for range out.GetStream().Events() {
			}
			if err := out.GetStream().Close(); err != nil || out.GetStream().Err() != nil {
				failed.Add(1)
				return
			}
			mu.Lock()
			succeeded[idOf(out.ResultMetadata)] = true
			mu.Unlock()
			return
		}
		out, err := client.Converse(ctx, &bedrockruntime.ConverseInput{ModelId: model,
			Messages: []types.Message{{Role: types.ConversationRoleUser, Content: []types.ContentBlock{&types.ContentBlockMemberText{Value: "hi"}}}}})
		if err != nil {
			failed.Add(1)
			return
		}
		mu.Lock()
		succeeded[idOf(out.ResultMetadata)] = true
		mu.Unlock()
	}
	ctx, stopLoad := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	var n atomic.Int64
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := newClient()
			for ctx.Err() == nil {
				cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				call(cctx, client, int(n.Add(1)))
				cancel()
			}
		}()
	}
	pause := func() { time.Sleep(400 * time.Millisecond) }
	for range 3 { // the sink goes away and comes back, three times
		pause()
		minio.Stop()
		pause()
		minio.Restart(t)
	}
	pause()
	proc.Load().signal(syscall.SIGKILL) // mid-load, sink up
	killedAt := attempted.Load()
	start()
	pause()
	minio.Stop() // and once more after the restart
	pause()
	minio.Restart(t)
	pause()
	stopLoad()
	wg.Wait()
	// The sink outage after the restart was seen and retried.
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(metrics), `warden_audit_sink_batches_total{result="error",sink="s3"}`) {
		t.Errorf("no failed S3 batches counted during the MinIO outage:\n%s", grepLines(string(metrics), "warden_audit"))
	}
	proc.Load().signal(syscall.SIGTERM) // graceful: final checkpoint, drain

	// Every delivered object, every line, de-duplicated by id.
	objects := minio.Objects(t, "audit", "warden/")
	byID := map[string][]string{}
	lines, checkpoints, incomplete := 0, 0, 0
	for key, body := range objects {
		if !strings.Contains(key, "dt=") || !strings.Contains(key, "/hour=") {
			t.Errorf("object %s is not under dt=/hour= partitions", key)
		}
		sc := bufio.NewScanner(bytes.NewReader(body))
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			l := sc.Text()
			lines++
			var m struct {
				Kind       string `json:"kind"`
				RequestID  string `json:"request_id"`
				Incomplete bool   `json:"incomplete"`
			}
			if err := json.Unmarshal([]byte(l), &m); err != nil {
				t.Fatalf("object %s: %v", key, err)
			}
			if m.Kind != "" {
				checkpoints++
				continue
			}
			if len(byID[m.RequestID]) > 0 && byID[m.RequestID][0] != l {
				t.Errorf("record %s delivered with different contents", m.RequestID)
			}
			byID[m.RequestID] = append(byID[m.RequestID], l)
		}
	}
	dups := 0
	for _, ls := range byID {
		dups += len(ls) - 1
		if strings.Contains(ls[0], `"incomplete":true`) {
			incomplete++
		}
	}
	missing := 0
	for id := range succeeded {
		if len(byID[id]) == 0 {
			missing++
			if missing < 5 {
				t.Errorf("call %s answered the client but has no record in MinIO", id)
			}
		}
	}
	t.Logf("calls: %d attempted (%d before the SIGKILL), %d answered in full, %d failed (during the kill); MinIO: %d objects, %d lines, %d checkpoints, %d unique call records, %d re-delivered duplicates, %d incomplete (recovered after the kill); answered calls without a record: %d",
		attempted.Load(), killedAt, len(succeeded), failed.Load(), len(objects), lines, checkpoints, len(byID), dups, incomplete, missing)
	if missing != 0 || len(succeeded) < 100 {
		t.Fatalf("%d answered calls lack a record (of %d)", missing, len(succeeded))
	}
	if len(byID) < len(succeeded) {
		t.Errorf("fewer records (%d) than answered calls (%d)", len(byID), len(succeeded))
	}

	// The trail in MinIO verifies: one chain across the kill, signed, closed.
	var out, errb bytes.Buffer
	os.Setenv("AWS_ACCESS_KEY_ID", minio.AccessKey)
	os.Setenv("AWS_SECRET_ACCESS_KEY", minio.SecretKey)
	defer os.Unsetenv("AWS_ACCESS_KEY_ID")
	defer os.Unsetenv("AWS_SECRET_ACCESS_KEY")
	if code := run(t.Context(), []string{"audit", "verify", "--key", "@" + filepath.Join(dir, "spool", "signing.pub"),
		"--s3-endpoint", minio.Endpoint, "--s3-region", "us-east-1", "--s3-path-style", "s3://audit/warden/"}, &out, &errb); code != 0 {
		t.Fatalf("audit verify over MinIO: exit %d\n%s%s", code, out.String(), errb.String())
	}
	t.Logf("audit verify: %s", strings.TrimSpace(out.String()))
}
