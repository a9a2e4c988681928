package proxy_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/document"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"
	"github.com/aws/smithy-go"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap/zaptest"

	"github.com/warden-egress/warden/audit"
	"github.com/warden-egress/warden/authz/budget"
	"github.com/warden-egress/warden/bedrock/bedrocktest"
	"github.com/warden-egress/warden/config"
	"github.com/warden-egress/warden/internal/redistest"
	"github.com/warden-egress/warden/proxy"
)

// budgetPolicy is one app with budgets (%s: its budgets) on a Redis
// budget store (${REDIS}, ${MODE}, ${REPLICAS}).
const budgetPolicy = `
version: 1
listen: {endpoint: 127.0.0.1:0}
upstream: {region: us-east-1, url: "${UPSTREAM}", insecure: true, signing: resign}
identity:
  sources: [static]
  static: {app: chatbot, env: prod}
audit:
  prices: {"anthropic.claude-3-5-haiku-*": {input_per_mtok: 1, output_per_mtok: 5}}
budgets:
  store: redis
  on_store_error: ${MODE}
  replicas: ${REPLICAS}
  redis: {address: "${REDIS}", timeout: 2s} # generous: a loaded test machine, not latency, is measured here
apps:
  - name: chatbot-prod
    allow_weak_identity: true
    match: {tags: {app: chatbot, env: prod}}
    allow:
      models: ["anthropic.claude-3-5-haiku-*", "amazon.nova-reel-*"]
      operations: [InvokeModel, InvokeModelWithResponseStream, Converse, ConverseStream, StartAsyncInvoke, GetAsyncInvoke, ListAsyncInvokes]
      async_output_prefixes: ["s3://out/"]
    limits: {max_output_tokens: 64, on_exceed: clamp}
    budgets: %s
`

// replica is one Warden of a fleet sharing a budget store.
type replica struct {
	srv      *proxy.Server
	endpoint string
	audit    *recorder
}

// fleet starts n Wardens in front of one emulator, each with the policy.
func fleet(t *testing.T, n int, policy string, emu *bedrocktest.Server) []*replica {
	t.Helper()
	var out []*replica
	for i := 0; i < n; i++ {
		cfg, err := config.ParseConfig([]byte(strings.ReplaceAll(policy, "${UPSTREAM}", emu.URL)))
		if err != nil {
			t.Fatalf("policy: %v", err)
		}
		r := &replica{audit: newRecorder()}
		r.srv, err = proxy.New(t.Context(), proxy.Options{Config: cfg, Audit: r.audit, Logger: zaptest.NewLogger(t),
			Credentials: credentials.NewStaticCredentialsProvider(wardenKey, wardenSecret, "")})
		if err != nil {
			t.Fatalf("proxy.New: %v", err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go func() { _ = r.srv.ServeEndpoint(ln, nil) }()
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = r.srv.Shutdown(ctx)
		})
		r.endpoint = "http://" + ln.Addr().String()
		out = append(out, r)
	}
	return out
}

func budgetPolicyFor(budgets, redisAddr, mode string, replicas int) string {
	p := fmt.Sprintf(budgetPolicy, budgets)
	p = strings.ReplaceAll(p, "${REDIS}", redisAddr)
	p = strings.ReplaceAll(p, "${MODE}", mode)
	return strings.ReplaceAll(p, "${REPLICAS}", fmt.Sprint(replicas))
}

// sdk is the real Go SDK pointed at a replica; attempts 1 unless a
// retryer is given.
func (r *replica) sdk(retryer aws.Retryer) *bedrockruntime.Client {
	o := bedrockruntime.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(r.endpoint),
		Credentials:      credentials.NewStaticCredentialsProvider(appKey, appSecret, ""),
		RetryMaxAttempts: 1,
		HTTPClient:       bedrocktest.BufferedClient(nil),
	}
	if retryer != nil {
		o.Retryer, o.RetryMaxAttempts = retryer, 0
	}
	return bedrockruntime.New(o)
}

func errorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// awayFromEdge waits, when a window of period p ends within margin, until
// the next one starts: a test that counts one window stays inside it.
func awayFromEdge(p budget.Period, margin time.Duration) {
	now := time.Now()
	if end := budget.ResetAt(p, budget.Window(p, now)); end.Sub(now) < margin {
		time.Sleep(end.Sub(now) + 50*time.Millisecond)
	}
}

// Two and three Wardens sharing one redis-server hold one app's requests
// per minute and tokens per day together: driven at once, the calls they
// forward never pass the limit (the documented bound is 0 requests, and 0
// tokens while each call's usage is within its reservation, as the
// emulator's is), and every refusal is the right answer.
func TestBudgetsHoldAcrossReplicas(t *testing.T) {
	for _, n := range []int{2, 3} {
		t.Run(fmt.Sprintf("%d replicas", n), func(t *testing.T) {
			rds := redistest.Start(t)
			emu := newEmulator(t)
			const rpm = 25
			reps := fleet(t, n, budgetPolicyFor(fmt.Sprintf("{requests_per_minute: %d}", rpm), rds.Addr, "fail_closed", n), emu)

			// Requests per minute: 3×rpm calls at once, spread over the replicas.
			awayFromEdge(budget.PeriodMinute, 15*time.Second)
			var ok, throttled, quota atomic.Int64
			var wg sync.WaitGroup
			for i := 0; i < 3*rpm; i++ {
				wg.Add(1)
				go func(c *bedrockruntime.Client) {
					defer wg.Done()
					_, err := c.Converse(context.Background(), &bedrockruntime.ConverseInput{ModelId: aws.String(haiku), Messages: userMsg("hi")})
					switch code := errorCode(err); {
					case err == nil:
						ok.Add(1)
					case code == "ThrottlingException":
						throttled.Add(1)
					case code == "ServiceQuotaExceededException":
						quota.Add(1)
					default:
						t.Errorf("unexpected answer: %v", err)
					}
				}(reps[i%n].sdk(nil))
			}
			wg.Wait()
			if ok.Load() != rpm || throttled.Load() != 2*rpm {
				t.Fatalf("%d replicas, requests_per_minute %d: %d passed, %d throttled, %d quota; want exactly %d passed",
					n, rpm, ok.Load(), throttled.Load(), quota.Load(), rpm)
			}
			if got := len(emu.Calls()); got != rpm {
				t.Fatalf("the upstream saw %d calls, want %d", got, rpm)
			}
		})
	}
}

// tokensPerDayAcross drives calls through every replica until the day's
// tokens are gone, and returns the tokens the upstream reported for the
// calls that passed (from the replicas' audit records).
func TestTokensPerDayAcrossReplicas(t *testing.T) {
	for _, n := range []int{2, 3} {
		t.Run(fmt.Sprintf("%d replicas", n), func(t *testing.T) {
			rds := redistest.Start(t)
			emu := newEmulator(t)
			const tpd = 1500
			reps := fleet(t, n, budgetPolicyFor(fmt.Sprintf("{tokens_per_day: %d}", tpd), rds.Addr, "fail_closed", n), emu)
			awayFromEdge(budget.PeriodDay, time.Minute)

			var quota atomic.Int64
			var wg sync.WaitGroup
			const workers = 6
			for w := 0; w < workers; w++ {
				wg.Add(1)
				go func(c *bedrockruntime.Client) {
					defer wg.Done()
					for i := 0; i < 30; i++ {
						_, err := c.Converse(context.Background(), &bedrockruntime.ConverseInput{ModelId: aws.String(haiku),
							Messages: userMsg(strings.Repeat("tokens ", 20))})
						switch code := errorCode(err); {
						case err == nil:
						case code == "ServiceQuotaExceededException":
							quota.Add(1)
							if !strings.Contains(err.Error(), "budgets.tokens_per_day") || !strings.Contains(err.Error(), "resets at") {
								t.Errorf("quota answer does not name the budget and its reset: %v", err)
							}
						default:
							t.Errorf("unexpected answer: %v", err)
						}
					}
				}(reps[w%n].sdk(nil))
			}
			wg.Wait()
			var used int64
			var passed int
			for _, r := range reps {
				r.srv.WaitBudgets()
				for _, rec := range r.audit.snapshot() {
					if rec.Decision == audit.DecisionAllow && rec.Status == 200 {
						used += rec.Usage.Input + rec.Usage.Output
						passed++
					}
				}
			}
			if used > tpd {
				t.Fatalf("%d replicas used %d tokens of a %d token day", n, used, tpd)
			}
			if quota.Load() == 0 || passed == 0 {
				t.Fatalf("the budget never ran out (%d passed, %d refused)", passed, quota.Load())
			}
			// The store holds what was used, as settled from the answers.
			if got := budgetGauge(t, reps[0].srv, "warden_budget_used", "tokens_per_day"); got != float64(used) {
				t.Fatalf("warden_budget_used{tokens_per_day} = %v, the calls used %d", got, used)
			}
			t.Logf("%d replicas: %d calls passed using %d of %d tokens; %d refused", n, passed, used, tpd, quota.Load())
		})
	}
}

// budgetGauge reads one of the budget gauges of app chatbot-prod.
func budgetGauge(t *testing.T, s *proxy.Server, name, kind string) float64 {
	t.Helper()
	mfs, err := s.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if label(m, "budget") == kind && label(m, "app") == "chatbot-prod" {
				return m.GetGauge().GetValue()
			}
		}
	}
	t.Fatalf("no %s{budget=%q}", name, kind)
	return 0
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// A streamed call settles from its final usage event; one cut before it
// settles its prompt's estimate and the text it relayed.
func TestBudgetStreamSettles(t *testing.T) {
	rds := redistest.Start(t)
	emu := newEmulator(t)
	reps := fleet(t, 1, budgetPolicyFor("{tokens_per_day: 100000, concurrent_streams: 1}", rds.Addr, "fail_closed", 1), emu)
	r := reps[0]
	c := r.sdk(nil)
	awayFromEdge(budget.PeriodDay, time.Minute)
	prompt := "stream please, and count what you send"
	streamText := func() (string, error) {
		out, err := c.ConverseStream(context.Background(), &bedrockruntime.ConverseStreamInput{ModelId: aws.String(haiku), Messages: userMsg(prompt)})
		if err != nil {
			return "", err
		}
		var text strings.Builder
		for ev := range out.GetStream().Events() {
			if d, ok := ev.(*types.ConverseStreamOutputMemberContentBlockDelta); ok {
				if tx, ok := d.Value.Delta.(*types.ContentBlockDeltaMemberText); ok {
					text.WriteString(tx.Value)
				}
			}
		}
		return text.String(), out.GetStream().Err()
	}
	if _, err := streamText(); err != nil {
		t.Fatal(err)
	}
	// The client may see the stream's end before Warden finishes the
	// call: its record is written after the settle has started, so wait
	// for the record, then for the settle.
	rec := r.audit.wait(t, 1)[0]
	r.srv.WaitBudgets()
	if !rec.Usage.Known {
		t.Fatal("the stream's record has no usage")
	}
	full := rec.Usage.Input + rec.Usage.Output
	if got := budgetGauge(t, r.srv, "warden_budget_used", "tokens_per_day"); got != float64(full) {
		t.Fatalf("after a whole stream: %v tokens used, its usage event said %d", got, full)
	}
	if got := budgetGauge(t, r.srv, "warden_budget_used", "concurrent_streams"); got != 0 {
		t.Fatalf("%v streams still held after the stream ended", got)
	}

	// Cut after two events: no usage event ever comes.
	emu.Inject(bedrocktest.Fault{Op: "ConverseStream", ResetAfterEvents: 3})
	text, err := streamText()
	if err == nil {
		t.Fatal("the cut stream ended cleanly")
	}
	r.audit.wait(t, 2)
	r.srv.WaitBudgets()
	cut := budget.EstimateTokens(len(prompt)) + budget.EstimateTokens(len(text))
	if got := budgetGauge(t, r.srv, "warden_budget_used", "tokens_per_day"); got != float64(full+cut) {
		t.Fatalf("after a cut stream: %v tokens used, want %d + %d (prompt estimate + %d bytes of text relayed)", got, full, cut, len(text))
	}
	if got := budgetGauge(t, r.srv, "warden_budget_used", "concurrent_streams"); got != 0 {
		t.Fatalf("%v streams still held after a cut stream", got)
	}
}

// The real Go SDK with its standard retry policy: a budget error is one
// attempt (400, not retried); a throttle is retried as the SDK's policy
// says (3 attempts).
func TestBudgetSDKAttempts(t *testing.T) {
	rds := redistest.Start(t)
	emu := newEmulator(t)
	awayFromEdge(budget.PeriodMinute, 15*time.Second)
	reps := fleet(t, 1, budgetPolicyFor("{requests_per_minute: 1, tokens_per_day: 150}", rds.Addr, "fail_closed", 1), emu)
	r := reps[0]
	// The SDK's standard retryer, with its backoff shortened for the test.
	std := retry.AddWithMaxBackoffDelay(retry.NewStandard(), 10*time.Millisecond)
	c := r.sdk(std)
	ctx := context.Background()
	// 150 tokens: a call reserves ~1 + 64; the second call's settles leave
	// the third without room.
	long := strings.Repeat("x", 120)
	if _, err := c.Converse(ctx, &bedrockruntime.ConverseInput{ModelId: aws.String(haiku), Messages: userMsg(long)}); err != nil {
		t.Fatal(err)
	}
	r.audit.wait(t, 1) // written after its settle started
	r.srv.WaitBudgets()
	before := len(r.audit.snapshot())
	_, err := c.Converse(ctx, &bedrockruntime.ConverseInput{ModelId: aws.String(haiku), Messages: userMsg(strings.Repeat("y", 300))})
	if code := errorCode(err); code != "ServiceQuotaExceededException" {
		t.Fatalf("over the day's tokens: %v, want ServiceQuotaExceededException", err)
	}
	if got := len(r.audit.wait(t, before+1)) - before; got != 1 {
		t.Fatalf("a budget error took %d attempts, want 1", got)
	}
	// requests_per_minute 1: the first call took it (the refused one took nothing).
	before = len(r.audit.snapshot())
	_, err = c.Converse(ctx, &bedrockruntime.ConverseInput{ModelId: aws.String(haiku), Messages: userMsg("hi")})
	if code := errorCode(err); code != "ThrottlingException" {
		t.Fatalf("over requests_per_minute: %v, want ThrottlingException", err)
	}
	time.Sleep(100 * time.Millisecond)
	if got := len(r.audit.snapshot()) - before; got != std.MaxAttempts() {
		t.Fatalf("a throttle took %d attempts, want the SDK's %d", got, std.MaxAttempts())
	}
}

// Redis killed mid-test: fail_closed refuses (503, retryable) and
// fail_open decides on each replica's share with flagged records; both
// come back to the shared budget when Redis returns.
func TestBudgetRedisKilled(t *testing.T) {
	for _, mode := range []string{"fail_closed", "fail_open"} {
		t.Run(mode, func(t *testing.T) {
			rds := redistest.Start(t)
			emu := newEmulator(t)
			const rpm = 8
			reps := fleet(t, 2, budgetPolicyFor(fmt.Sprintf("{requests_per_minute: %d}", rpm), rds.Addr, mode, 2), emu)
			awayFromEdge(budget.PeriodMinute, 20*time.Second)
			call := func(r *replica) error {
				_, err := r.sdk(nil).Converse(context.Background(), &bedrockruntime.ConverseInput{ModelId: aws.String(haiku), Messages: userMsg("hi")})
				return err
			}
			if err := call(reps[0]); err != nil {
				t.Fatal(err)
			}
			rds.Kill()
			passed := 0
			for i := 0; i < 2*rpm; i++ {
				err := call(reps[i%2])
				switch code := errorCode(err); {
				case err == nil:
					passed++
				case mode == "fail_closed" && code == "ServiceUnavailableException":
				case mode == "fail_open" && code == "ThrottlingException":
				default:
					t.Fatalf("%s with Redis down: %v", mode, err)
				}
			}
			flagged := 0
			for _, r := range reps {
				for _, rec := range r.audit.snapshot() {
					if rec.BudgetFallback {
						flagged++
					}
				}
			}
			switch mode {
			case "fail_closed":
				if passed != 0 || flagged != 0 {
					t.Fatalf("fail_closed: %d passed, %d flagged with Redis down", passed, flagged)
				}
			case "fail_open":
				if passed != rpm || flagged != 2*rpm { // rpm/2 per replica, every decision flagged
					t.Fatalf("fail_open: %d passed (want %d: %d per replica), %d flagged (want %d)", passed, rpm, rpm/2, flagged, 2*rpm)
				}
			}
			rds.Restart(t)
			deadline := time.Now().Add(10 * time.Second)
			for _, r := range reps {
				for {
					err := call(r)
					recs := r.audit.snapshot()
					if err == nil && !recs[len(recs)-1].BudgetFallback {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("no recovery after Redis returned: %v", err)
					}
					time.Sleep(200 * time.Millisecond)
				}
			}
		})
	}
}

// Async job ownership lives in the shared store: a job started through one
// replica is readable through another, and still not by another app.
func TestAsyncOwnershipAcrossReplicas(t *testing.T) {
	rds := redistest.Start(t)
	emu := newEmulator(t)
	reps := fleet(t, 2, budgetPolicyFor("{requests_per_minute: 1000}", rds.Addr, "fail_closed", 2), emu)
	ctx := context.Background()
	out, err := reps[0].sdk(nil).StartAsyncInvoke(ctx, &bedrockruntime.StartAsyncInvokeInput{
		ModelId:    aws.String("amazon.nova-reel-v1:0"),
		ModelInput: document.NewLazyDocument(map[string]any{"taskType": "TEXT_VIDEO", "textToVideoParams": map[string]any{"text": "a cat"}}),
		OutputDataConfig: &types.AsyncInvokeOutputDataConfigMemberS3OutputDataConfig{
			Value: types.AsyncInvokeS3OutputDataConfig{S3Uri: aws.String("s3://out/x/")}},
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := reps[1].sdk(nil).GetAsyncInvoke(ctx, &bedrockruntime.GetAsyncInvokeInput{InvocationArn: out.InvocationArn})
	if err != nil {
		t.Fatalf("GetAsyncInvoke through the other replica: %v", err)
	}
	if aws.ToString(got.InvocationArn) != aws.ToString(out.InvocationArn) {
		t.Fatalf("got %s", aws.ToString(got.InvocationArn))
	}
	list, err := reps[1].sdk(nil).ListAsyncInvokes(ctx, &bedrockruntime.ListAsyncInvokesInput{})
	if err != nil || len(list.AsyncInvokeSummaries) != 1 {
		t.Fatalf("ListAsyncInvokes through the other replica: %v %v", list, err)
	}
	// A fresh ARN no replica saw started is still denied.
	_, err = reps[1].sdk(nil).GetAsyncInvoke(ctx, &bedrockruntime.GetAsyncInvokeInput{InvocationArn: aws.String(aws.ToString(out.InvocationArn) + "x")})
	if code := errorCode(err); code != "AccessDeniedException" {
		t.Fatalf("unknown job: %v", err)
	}
}

// snapshot returns the records written so far.
func (r *recorder) snapshot() []audit.Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]audit.Record(nil), r.recs...)
}

// The real JS SDK (v3, its standard retry strategy with maxAttempts 3): a
// budget error is one attempt; a throttle is retried to its maxAttempts.
// Warden's records count the attempts that reached it, and the SDK's own
// $metadata.attempts agrees.
func TestJSSDKBudgetAttempts(t *testing.T) {
	dir := jsClientDir(t)
	rds := redistest.Start(t)
	emu := newEmulator(t)
	awayFromEdge(budget.PeriodMinute, 20*time.Second)
	r := fleet(t, 1, budgetPolicyFor("{requests_per_minute: 1, tokens_per_day: 150}", rds.Addr, "fail_closed", 1), emu)[0]
	env := []string{"WARDEN_JS_MAX_ATTEMPTS=3"}
	res := runJSEnv(t, dir, r.endpoint, appKey, appSecret, env, "converse", haiku, strings.Repeat("x", 120))
	if !res.OK {
		t.Fatalf("first call: %+v", res)
	}
	r.audit.wait(t, 1) // written after its settle started
	r.srv.WaitBudgets()
	before := len(r.audit.snapshot())
	res = runJSEnv(t, dir, r.endpoint, appKey, appSecret, env, "converse", haiku, strings.Repeat("y", 300))
	if res.OK || res.Name != "ServiceQuotaExceededException" || res.Status != 400 || res.Attempts != 1 {
		t.Fatalf("over the day's tokens: %+v, want ServiceQuotaExceededException (400) after 1 attempt", res)
	}
	if got := len(r.audit.wait(t, before+1)) - before; got != 1 {
		t.Fatalf("a budget error reached Warden %d times, want 1", got)
	}
	before = len(r.audit.snapshot())
	res = runJSEnv(t, dir, r.endpoint, appKey, appSecret, env, "converse", haiku, "hi")
	if res.OK || res.Name != "ThrottlingException" || res.Status != 429 || res.Attempts != 3 {
		t.Fatalf("over requests_per_minute: %+v, want ThrottlingException after the SDK's 3 attempts", res)
	}
	if got := len(r.audit.wait(t, before+3)) - before; got != 3 {
		t.Fatalf("a throttle reached Warden %d times, want 3", got)
	}
}
