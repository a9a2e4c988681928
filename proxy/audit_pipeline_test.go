package proxy_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"

	"github.com/warden-egress/warden/audit"
	"github.com/warden-egress/warden/audit/audittest"
	"github.com/warden-egress/warden/bedrock/bedrocktest"
)

// intentProbe is an audit writer that remembers, for each call the
// emulator answers, whether Warden had written its intent by then.
type intentProbe struct {
	mu             sync.Mutex
	begun, written int
	beginErr       error
	recs           []audit.Record
}

func (p *intentProbe) Begin(*audit.Record) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.beginErr != nil {
		return p.beginErr
	}
	p.begun++
	return nil
}
func (p *intentProbe) Write(r *audit.Record) {
	p.mu.Lock()
	p.written++
	p.recs = append(p.recs, *r)
	p.mu.Unlock()
}
func (p *intentProbe) Close() error { return nil }
func (p *intentProbe) open() int    { p.mu.Lock(); defer p.mu.Unlock(); return p.begun - p.written }

// startWith runs Warden over emu with the given audit writer.
func startWith(t *testing.T, emu *bedrocktest.Server, policy string, w audit.Writer) *bedrockruntime.Client {
	t.Helper()
	e := &env{emu: emu, cp: newControlPlane(t), writer: w}
	policy = strings.ReplaceAll(policy, "${UPSTREAM}", emu.URL)
	policy = strings.ReplaceAll(policy, "${CONTROL_PLANE}", e.cp.URL)
	e.start(t, policy, "", nil)
	return e.client(t, nil)
}

func TestIntentIsWrittenBeforeForwarding(t *testing.T) {
	probe := &intentProbe{}
	var seen []int
	var mu sync.Mutex
	emu := bedrocktest.NewServer(bedrocktest.Config{Credentials: map[string]string{wardenKey: wardenSecret},
		Reply: func(op, model, prompt string) string {
			mu.Lock()
			seen = append(seen, probe.open())
			mu.Unlock()
			return "ok"
		}})
	t.Cleanup(emu.Close)
	c := startWith(t, emu, basePolicy, probe)
	ctx := context.Background()
	if _, err := c.Converse(ctx, &bedrockruntime.ConverseInput{ModelId: aws.String(haiku), Messages: userMsg("hi")}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if len(seen) != 1 || seen[0] != 1 {
		t.Fatalf("open intents when the upstream answered: %v, want [1]", seen)
	}
	mu.Unlock()

	// A full spool refuses the call with a typed error; nothing goes upstream.
	probe.mu.Lock()
	probe.beginErr = audit.ErrSpoolFull
	probe.mu.Unlock()
	_, err := c.Converse(ctx, &bedrockruntime.ConverseInput{ModelId: aws.String(haiku), Messages: userMsg("hi")})
	var unavailable *types.ServiceUnavailableException
	if !errors.As(err, &unavailable) || !strings.Contains(err.Error(), "audit spool is full") {
		t.Fatalf("with a full spool: %v, want ServiceUnavailableException", err)
	}
	if n := len(emu.Calls()); n != 1 {
		t.Fatalf("the upstream saw %d calls, want only the first", n)
	}
	probe.mu.Lock()
	last := probe.recs[len(probe.recs)-1]
	probe.mu.Unlock()
	if last.Rule != "audit.spool" || last.Status != 503 || last.Decision != "deny" {
		t.Errorf("refused call's record: %+v", last)
	}
}

// Calls through the real pipeline: every record sealed, delivered, with
// the fields its outcome calls for, and the chain verifies.
func TestRecordsThroughThePipeline(t *testing.T) {
	sink := &audittest.Sink{}
	p, err := audit.Open(context.Background(), audit.Options{Dir: t.TempDir(), Instance: "warden-test", Sinks: []audit.Sink{sink},
		BatchWait: time.Millisecond, CheckpointEvery: 3})
	if err != nil {
		t.Fatal(err)
	}
	emu := newEmulator(t)
	policy := strings.Replace(guardPolicy, "${GUARDS}", "[pii-block]", 1)
	c := startWith(t, emu, policy, p)
	ctx := context.Background()
	if _, err := c.Converse(ctx, &bedrockruntime.ConverseInput{ModelId: aws.String(haiku), Messages: userMsg("hello")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Converse(ctx, &bedrockruntime.ConverseInput{ModelId: aws.String("anthropic.claude-3-opus-20240229-v1:0"), Messages: userMsg("hi")}); err == nil {
		t.Fatal("denied model went through")
	}
	if _, err := c.Converse(ctx, &bedrockruntime.ConverseInput{ModelId: aws.String(haiku), Messages: userMsg("my ssn is 123-45-6789")}); err == nil {
		t.Fatal("SSN went through")
	}
	out, err := c.ConverseStream(ctx, &bedrockruntime.ConverseStreamInput{ModelId: aws.String(haiku), Messages: userMsg("stream please")})
	if err != nil {
		t.Fatal(err)
	}
	for range out.GetStream().Events() {
	}
	if err := out.GetStream().Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	lines := sink.Lines()
	var calls []audit.Record
	v := audit.NewVerifier(audit.VerifyOptions{Keys: []string{p.PublicKey()}})
	for _, l := range lines {
		v.Add("sink", []byte(l))
		if strings.Contains(l, `"kind":"checkpoint"`) {
			continue
		}
		r, err := audit.DecodeRecord([]byte(l))
		if err != nil {
			t.Fatal(err)
		}
		calls = append(calls, r)
	}
	if res := v.Finish(); len(res.Problems) != 0 || res.Chains[0].Records != 4 || !res.Chains[0].Final {
		t.Fatalf("chain: %+v", res)
	}
	if len(calls) != 4 {
		t.Fatalf("%d call records, want 4", len(calls))
	}
	for i, want := range []struct {
		op, decision, rule, errType string
		status                      int
		finding                     string
	}{
		{"Converse", "allow", "apps[0]", "", 200, ""},
		{"Converse", "deny", "apps[0].allow.models", "AccessDeniedException", 403, ""},
		{"Converse", "deny", "guards.pii-block", "AccessDeniedException", 403, "US_SOCIAL_SECURITY_NUMBER"},
		{"ConverseStream", "allow", "apps[0]", "", 200, ""},
	} {
		r := calls[i]
		if r.Operation != want.op || r.Decision != want.decision || !strings.HasPrefix(r.Rule, want.rule) || r.ErrorType != want.errType ||
			r.Status != want.status || r.Instance != "warden-test" || r.App != "chatbot-prod" || r.PolicyHash == "" || r.Incomplete ||
			strings.Join(r.WeakTags, ",") != "app,env" {
			t.Errorf("record %d: %+v", i, r)
		}
		if r.ResponseSHA256 == "" {
			t.Errorf("record %d has no response_sha256", i)
		}
		if want.finding != "" && (len(r.Findings) != 1 || r.Findings[0].Type != want.finding || r.Findings[0].Action != "block") {
			t.Errorf("record %d findings: %+v", i, r.Findings)
		}
		if strings.Contains(lines[i], "123-45-6789") {
			t.Errorf("record %d holds the matched value", i)
		}
	}
}
