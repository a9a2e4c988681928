package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"

	"github.com/warden-egress/warden/audit"
	"github.com/warden-egress/warden/bedrock/bedrocktest"
)

// seqSink is an HTTP audit sink that records the chain seqs it received;
// until released it holds every POST, so lines are waiting when SIGTERM
// comes, and then it takes each batch slowly.
type seqSink struct {
	mu      sync.Mutex
	seqs    map[uint64]bool
	release chan struct{}
}

func (s *seqSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	select {
	case <-s.release:
	case <-r.Context().Done():
		return
	}
	time.Sleep(50 * time.Millisecond) // slow, not stuck
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range bytes.Split(bytes.TrimSpace(body), []byte("\n")) {
		if t, err := audit.ParseTrailer(l); err == nil {
			s.seqs[t.Seq] = true
		}
	}
}

// fileSeqs reads the seqs of a file sink's lines.
func fileSeqs(t *testing.T, path string) []uint64 {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []uint64
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		tr, err := audit.ParseTrailer(sc.Bytes())
		if err != nil {
			t.Fatalf("file sink line without a trailer: %v", err)
		}
		out = append(out, tr.Seq)
	}
	return out
}

// finalAuditLine is the shutdown's last audit log line.
func finalAuditLine(t *testing.T, logs string) map[string]any {
	t.Helper()
	var found map[string]any
	for _, l := range strings.Split(logs, "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && strings.HasPrefix(fmt.Sprint(m["msg"]), "audit shutdown") {
			if found != nil {
				t.Fatalf("two final audit lines:\n%s", logs)
			}
			found = m
		}
	}
	if found == nil {
		t.Fatalf("no final audit line in:\n%s", logs)
	}
	return found
}

// TestServeSIGTERMDrain runs `warden serve` as a process, makes calls
// through it and sends SIGTERM: with a slow sink the drain delivers every
// line within the grace period; with a dead sink the final log line and
// the gauges (scraped while the drain runs) report exactly the lines the
// sink lacks — all of them, seq 1 to the chain head, which the file sink
// beside it received.
func TestServeSIGTERMDrain(t *testing.T) {
	for _, tc := range []struct {
		name  string
		dead  bool
		grace string
	}{
		{"slow sink", false, "60s"},
		{"dead sink", true, "3s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			emu := bedrocktest.NewServer(bedrocktest.Config{Credentials: map[string]string{"AKIAWARDENDRAIN00001": "drain-secret"}})
			t.Cleanup(emu.Close)
			sink := &seqSink{seqs: map[uint64]bool{}, release: make(chan struct{})}
			sinkURL := "http://" + freeAddr(t) + "/audit" // nothing listens: dead
			if !tc.dead {
				srv := httptest.NewServer(sink)
				t.Cleanup(srv.Close)
				t.Cleanup(func() { closeOnce(sink.release) })
				sinkURL = srv.URL + "/audit"
			}
			dir := t.TempDir()
			ep, admin := freeAddr(t), freeAddr(t)
			filePath := filepath.Join(dir, "audit.jsonl")
			cfgPath := filepath.Join(dir, "warden.yaml")
			cfg := fmt.Sprintf(`version: 1
listen: {endpoint: %q, admin: %q}
upstream: {region: us-east-1, url: %q, insecure: true}
identity: {static: {app: svc}}
apps:
  - name: svc
    allow_weak_identity: true
    match: {tags: {app: svc}}
    allow: {models: ["amazon.nova-*"], operations: [Converse]}
shutdown: {grace_period: %s}
audit:
  instance: drain-test
  spool: {dir: %q}
  batch: {max_records: 2, max_wait: 10ms, max_backoff: 200ms}
  sinks: [{file: {path: %q}}, {http: {url: %q, timeout: 2s}}]
`, ep, admin, emu.URL, tc.grace, filepath.Join(dir, "spool"), filePath, sinkURL)
			if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
				t.Fatal(err)
			}
			env := []string{"AWS_ACCESS_KEY_ID=AKIAWARDENDRAIN00001", "AWS_SECRET_ACCESS_KEY=drain-secret", "AWS_REGION=us-east-1",
				"AWS_EC2_METADATA_DISABLED=true", "AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null"}
			p := startWardenProc(t, env, "serve", "--config", cfgPath)
			waitHTTP(t, "http://"+admin+"/healthz")

			client := bedrockruntime.New(bedrockruntime.Options{Region: "us-east-1", BaseEndpoint: aws.String("http://" + ep), RetryMaxAttempts: 1,
				HTTPClient: bedrocktest.BufferedClient(nil), Credentials: credentials.NewStaticCredentialsProvider("AKIAAPP", "x", "")})
			const calls = 12
			for i := range calls {
				_, err := client.Converse(t.Context(), &bedrockruntime.ConverseInput{ModelId: aws.String("amazon.nova-lite-v1:0"),
					Messages: []types.Message{{Role: types.ConversationRoleUser, Content: []types.ContentBlock{&types.ContentBlockMemberText{Value: "hi " + strconv.Itoa(i)}}}}})
				if err != nil {
					t.Fatalf("call %d: %v", i, err)
				}
			}
			if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			if tc.dead {
				// While the drain retries the dead sink, /readyz says no and
				// /metrics shows what it lacks: everything up to the head.
				scrapeDuringDrain(t, admin)
			} else {
				closeOnce(sink.release)
			}
			select {
			case <-p.done:
			case <-time.After(2 * time.Minute):
				t.Fatalf("warden did not exit after SIGTERM:\n%s", p.stderr)
			}
			logs := p.stderr.String()
			if code := p.cmd.ProcessState.ExitCode(); code != 0 {
				t.Fatalf("exit %d:\n%s", code, logs)
			}
			all := fileSeqs(t, filePath)
			head := uint64(len(all))
			if head < calls+2 || all[0] != 1 || all[head-1] != head {
				t.Fatalf("file sink seqs %v: want 1..head with %d calls and the start and shutdown checkpoints", all, calls)
			}
			final := finalAuditLine(t, logs)
			if !tc.dead {
				sink.mu.Lock()
				got := len(sink.seqs)
				missing := []uint64{}
				for s := uint64(1); s <= head; s++ {
					if !sink.seqs[s] {
						missing = append(missing, s)
					}
				}
				sink.mu.Unlock()
				if len(missing) > 0 || final["undelivered_lines"] != 0.0 {
					t.Fatalf("slow sink got %d of %d lines (missing %v); final line %v", got, head, missing, final)
				}
				return
			}
			if final["undelivered_lines"] != float64(head) || final["first_seq"] != 1.0 || final["last_seq"] != float64(head) ||
				final["kept_in_spool"] != true || final["level"] != "error" {
				t.Errorf("final line %v, want %d lines, seq 1..%d, kept in the spool", final, head, head)
			}
			sinks, _ := final["sinks"].([]any)
			want := []map[string]any{{"sink": "file", "undelivered_lines": 0.0}, {"sink": "http", "undelivered_lines": float64(head), "first_seq": 1.0, "last_seq": float64(head)}}
			if len(sinks) != 2 || fmt.Sprint(sinks[0]) != fmt.Sprint(want[0]) || fmt.Sprint(sinks[1]) != fmt.Sprint(want[1]) {
				t.Errorf("per-sink leftover %v, want %v", sinks, want)
			}
		})
	}
}

var gaugeLine = regexp.MustCompile(`(?m)^(warden_audit_chain_seq|warden_audit_undelivered_lines|warden_audit_sink_delivered_seq)\{([^}]*)\} (\S+)$`)

// scrapeDuringDrain waits for /readyz to refuse (the shutdown began) and
// checks the gauges then: the dead http sink lacks every line of the
// chain, the file sink none.
func scrapeDuringDrain(t *testing.T, admin string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := http.Get("http://" + admin + "/readyz")
		if err != nil {
			t.Fatalf("admin listener closed before the drain could be seen: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusServiceUnavailable {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("/readyz never refused after SIGTERM")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// The drain may append to the chain (its final checkpoint) just as
	// /readyz turns: read the gauges until the live file sink has caught
	// up with the head, then the dead sink must lack every line of it.
	var vals map[string]string
	var head string
	for {
		vals = drainGauges(t, admin)
		head = vals["warden_audit_chain_seq"]
		if head != "" && head != "0" && vals["warden_audit_sink_delivered_seq/file"] == head {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the file sink never caught up with the chain head during the drain: %v", vals)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if vals["warden_audit_undelivered_lines/http"] != head || vals["warden_audit_sink_delivered_seq/http"] != "0" ||
		vals["warden_audit_undelivered_lines/file"] != "0" {
		t.Errorf("gauges during the drain %v, want the http sink to lack all %s lines and the file sink none", vals, head)
	}
}

// drainGauges reads the audit gauges from /metrics, keyed name or
// name/sink.
func drainGauges(t *testing.T, admin string) map[string]string {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatalf("/metrics during the drain: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	vals := map[string]string{}
	for _, m := range gaugeLine.FindAllStringSubmatch(string(body), -1) {
		sink := regexp.MustCompile(`sink="([^"]*)"`).FindStringSubmatch(m[2])
		key := m[1]
		if sink != nil {
			key += "/" + sink[1]
		}
		vals[key] = m[3]
	}
	return vals
}

func closeOnce(c chan struct{}) {
	select {
	case <-c:
	default:
		close(c)
	}
}
