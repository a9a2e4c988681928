package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"
	"github.com/aws/smithy-go"

	"github.com/warden-egress/warden/authz/budget"
	"github.com/warden-egress/warden/bedrock/bedrocktest"
	"github.com/warden-egress/warden/internal/redistest"
)

// budgetFleetConfig is one `warden serve` of a fleet sharing a Redis
// budget store: one app with a requests-per-minute and a tokens-per-day
// budget.
const budgetFleetConfig = `version: 1
listen: {endpoint: "${EP}", admin: "${ADMIN}"}
upstream: {region: us-east-1, url: "${UPSTREAM}", insecure: true, signing: resign}
identity:
  sources: [static]
  static: {app: chatbot, env: prod}
audit:
  spool: {dir: "${SPOOL}"}
  sinks: [{file: {path: "${AUDIT}"}}]
budgets:
  store: redis
  on_store_error: ${MODE}
  replicas: ${REPLICAS}
  redis: {address: "${REDIS}", timeout: 2s} # generous: a loaded test machine, not latency, is measured here
apps:
  - name: chatbot-prod
    allow_weak_identity: true
    match: {tags: {app: chatbot, env: prod}}
    allow: {models: ["amazon.nova-*"], operations: [Converse]}
    limits: {max_output_tokens: 64, on_exceed: clamp}
    budgets: {requests_per_minute: ${RPM}, tokens_per_day: ${TPD}}
`

// budgetFleet starts n `warden serve` processes of the binary built once
// for the test binary, sharing the redis-server at redisAddr, in front of
// emu.
func budgetFleet(t *testing.T, n int, emu *bedrocktest.Server, redisAddr, mode string, rpm, tpd int) []*fleetWarden {
	t.Helper()
	bin := buildWarden(t)
	dir := t.TempDir()
	env := []string{"AWS_ACCESS_KEY_ID=AKIAWARDENFLEET00001", "AWS_SECRET_ACCESS_KEY=fleet-secret", "AWS_SESSION_TOKEN=",
		"AWS_CONFIG_FILE=" + filepath.Join(dir, "none"), "AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(dir, "none")}
	var fleet []*fleetWarden
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("w%d", i)
		w := &fleetWarden{ns: name, endpoint: freeAddr(t), admin: freeAddr(t), audit: filepath.Join(dir, name+"-audit.jsonl")}
		cfg := strings.NewReplacer("${EP}", w.endpoint, "${ADMIN}", w.admin, "${UPSTREAM}", emu.URL,
			"${SPOOL}", filepath.Join(dir, name+"-spool"), "${AUDIT}", w.audit, "${MODE}", mode, "${REPLICAS}", fmt.Sprint(n),
			"${REDIS}", redisAddr, "${RPM}", fmt.Sprint(rpm), "${TPD}", fmt.Sprint(tpd)).Replace(budgetFleetConfig)
		path := filepath.Join(dir, name+".yaml")
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		w.proc = startProc(t, "warden-"+name, bin, env, "serve", "--config", path)
		fleet = append(fleet, w)
	}
	for _, w := range fleet {
		waitUntil(t, w.ns+" ready", func() bool { code, _ := w.get("/readyz"); return code == 200 })
	}
	return fleet
}

// budgetCall is one Converse through w with the real Go SDK (one attempt:
// the answers are counted, not retried), returning the tokens the answer
// reported.
func (w *fleetWarden) budgetCall(prompt string) (int64, error) {
	c := bedrockruntime.New(bedrockruntime.Options{Region: "us-east-1", BaseEndpoint: aws.String("http://" + w.endpoint),
		Credentials: credentials.NewStaticCredentialsProvider("AKIAAPP", "x", ""), RetryMaxAttempts: 1,
		HTTPClient: bedrocktest.BufferedClient(nil)})
	out, err := c.Converse(context.Background(), &bedrockruntime.ConverseInput{ModelId: aws.String(novaModel),
		Messages: []types.Message{{Role: types.ConversationRoleUser, Content: []types.ContentBlock{&types.ContentBlockMemberText{Value: prompt}}}}})
	if err != nil {
		return 0, err
	}
	if out.Usage == nil {
		return 0, errors.New("an answer without usage")
	}
	return int64(aws.ToInt32(out.Usage.InputTokens) + aws.ToInt32(out.Usage.OutputTokens)), nil
}

func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// answers counts a burst's outcomes by error code ("" for success) and
// the tokens the successful calls reported.
type answers struct {
	mu     sync.Mutex
	codes  map[string]int
	tokens int64
	other  []error
}

func (a *answers) add(tokens int64, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.codes == nil {
		a.codes = map[string]int{}
	}
	code := apiCode(err)
	if err != nil && code == "" {
		a.other = append(a.other, err)
		return
	}
	a.codes[code]++
	a.tokens += tokens
}

// waitForMinuteStart sleeps until a new UTC minute has begun when less
// than margin of the current one is left, so a phase counted in one
// minute stays inside it.
func waitForMinuteStart(margin time.Duration) {
	now := time.Now()
	if end := budget.ResetAt(budget.PeriodMinute, budget.Window(budget.PeriodMinute, now)); end.Sub(now) < margin {
		time.Sleep(end.Sub(now) + 50*time.Millisecond)
	}
}

// TestBudgetFleetProcesses is issue 18's acceptance with every Warden a
// real OS process: two and three `warden serve` processes (one binary,
// built once) share one real redis-server and enforce one app's
// requests_per_minute and tokens_per_day together, driven by the real Go
// SDK through all of them at once.
//
// Minute M: 3×rpm small calls at once, spread over the processes: exactly
// rpm pass (the documented bound for request counts is 0), the rest are
// 429 ThrottlingException, and the tokens they used are within the day.
// Minute M+1: large prompts until the day's tokens are gone: the tokens
// all processes let through never pass tokens_per_day (the documented
// bound is the calls in flight's usage beyond their reservations, 0 here:
// the emulator answers within every reservation), the refusals are 400
// ServiceQuotaExceededException naming the budget, no call is throttled
// (requests_per_minute is far off), and every process's /metrics shows the
// same shared count, equal to what the answers reported.
func TestBudgetFleetProcesses(t *testing.T) {
	t.Parallel() // its minute waits overlap TestBudgetFleetRedisKilled's
	for _, n := range []int{2, 3} {
		t.Run(fmt.Sprintf("%d processes", n), func(t *testing.T) {
			t.Parallel()
			rds := redistest.Start(t)
			emu := bedrocktest.NewServer(bedrocktest.Config{Credentials: map[string]string{"AKIAWARDENFLEET00001": "fleet-secret"}})
			t.Cleanup(emu.Close)
			// A small call reserves 1+64 tokens and uses 1+25; a large one
			// (1500 bytes) reserves 500+64 and uses 375+25. rpm small calls
			// in flight at once reserve 1625 of the day's 2400, so minute M
			// meets only the request limit; in minute M+1 the 1750 tokens
			// left last about four large calls, far below rpm.
			const rpm, tpd = 25, 2400
			fleet := budgetFleet(t, n, emu, rds.Addr, "fail_closed", rpm, tpd)
			waitForMinuteStart(20 * time.Second)
			minute := budget.Window(budget.PeriodMinute, time.Now())

			var m answers
			var wg sync.WaitGroup
			for i := 0; i < 3*rpm; i++ {
				wg.Add(1)
				go func(w *fleetWarden) {
					defer wg.Done()
					m.add(w.budgetCall("hi"))
				}(fleet[i%n])
			}
			wg.Wait()
			if len(m.other) > 0 {
				t.Fatalf("minute M: unexpected answers: %v", m.other)
			}
			if m.codes[""] != rpm || m.codes["ThrottlingException"] != 2*rpm {
				t.Fatalf("minute M, %d processes, requests_per_minute %d: answers %v, want exactly %d passed and %d throttled",
					n, rpm, m.codes, rpm, 2*rpm)
			}
			if budget.Window(budget.PeriodMinute, time.Now()) != minute {
				t.Fatal("minute M's burst crossed into the next minute (the machine is too slow for this test's timing)")
			}
			if got := len(emu.Calls()); got != rpm {
				t.Fatalf("the upstream saw %d calls in minute M, want %d", got, rpm)
			}

			// Minute M+1: the day's tokens run out.
			time.Sleep(time.Until(budget.ResetAt(budget.PeriodMinute, minute)) + 50*time.Millisecond)
			var d answers
			large := strings.Repeat("tokens! ", 1500/8)
			for i := 0; i < 2*n; i++ {
				wg.Add(1)
				go func(w *fleetWarden) {
					defer wg.Done()
					for j := 0; j < 5; j++ {
						tok, err := w.budgetCall(large)
						d.add(tok, err)
						if err != nil && apiCode(err) == "ServiceQuotaExceededException" &&
							(!strings.Contains(err.Error(), "budgets.tokens_per_day") || !strings.Contains(err.Error(), "resets at")) {
							t.Errorf("the quota answer does not name the budget and its reset: %v", err)
						}
					}
				}(fleet[i%n])
			}
			wg.Wait()
			if len(d.other) > 0 {
				t.Fatalf("minute M+1: unexpected answers: %v", d.other)
			}
			used := m.tokens + d.tokens
			t.Logf("%d processes: minute M %v (%d tokens); minute M+1 %v (%d tokens); %d of %d tokens used",
				n, m.codes, m.tokens, d.codes, d.tokens, used, tpd)
			if used > tpd {
				t.Fatalf("%d processes let %d tokens through a %d token day (bound: 0 over)", n, used, tpd)
			}
			if d.codes["ServiceQuotaExceededException"] == 0 || d.codes[""] == 0 {
				t.Fatalf("minute M+1 never ran out of tokens: %v", d.codes)
			}
			if d.codes["ThrottlingException"] != 0 || d.codes[""] >= rpm {
				t.Fatalf("minute M+1 was throttled or passed rpm: %v", d.codes)
			}
			// Each process reads the one shared count: what the answers said.
			for _, w := range fleet {
				series := `warden_budget_used{app="chatbot-prod",budget="tokens_per_day"}`
				waitUntil(t, w.ns+"'s "+series+" = "+fmt.Sprint(used), func() bool { return w.metric(series) == float64(used) })
				// Usage and what remains, per app and budget, on /metrics.
				for series, want := range map[string]float64{
					`warden_budget_limit{app="chatbot-prod",budget="tokens_per_day"}`:      tpd,
					`warden_budget_remaining{app="chatbot-prod",budget="tokens_per_day"}`:  float64(tpd - used),
					`warden_budget_limit{app="chatbot-prod",budget="requests_per_minute"}`: rpm,
					`warden_budget_used{app="chatbot-prod",budget="requests_per_minute"}`:  float64(d.codes[""]),
				} {
					if got := w.metric(series); got != want {
						t.Errorf("%s: %s = %v, want %v", w.ns, series, got, want)
					}
				}
			}
		})
	}
}

// TestBudgetFleetRedisKilled: three `warden serve` processes share a
// redis-server that is killed (SIGKILL) while they serve. fail_closed
// refuses every call of the app with a retryable 503
// ServiceUnavailableException and forwards nothing; fail_open lets each
// process decide on its share, requests_per_minute ÷ 3, so the fleet
// passes at most rpm, each decision counted in warden_budget_fallback_total
// and warden_budget_store_up 0. When Redis returns (empty, as after a crash
// without persistence) every process goes back to the shared count: calls
// pass unflagged and warden_budget_store_up is 1.
func TestBudgetFleetRedisKilled(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"fail_closed", "fail_open"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			rds := redistest.Start(t)
			emu := bedrocktest.NewServer(bedrocktest.Config{Credentials: map[string]string{"AKIAWARDENFLEET00001": "fleet-secret"}})
			t.Cleanup(emu.Close)
			const n, rpm = 3, 9
			fleet := budgetFleet(t, n, emu, rds.Addr, mode, rpm, 1_000_000)
			waitForMinuteStart(30 * time.Second)
			for _, w := range fleet {
				if _, err := w.budgetCall("hi"); err != nil {
					t.Fatalf("%s with Redis up: %v", w.ns, err)
				}
			}
			fallbacks := func() float64 {
				var sum float64
				for _, w := range fleet {
					sum += max(0, w.metric(`warden_budget_fallback_total{app="chatbot-prod"}`))
				}
				return sum
			}
			before := len(emu.Calls())

			rds.Kill()
			var down answers
			var wg sync.WaitGroup
			for i := 0; i < 2*rpm; i++ {
				wg.Add(1)
				go func(w *fleetWarden) {
					defer wg.Done()
					down.add(w.budgetCall("hi"))
				}(fleet[i%n])
			}
			wg.Wait()
			if len(down.other) > 0 {
				t.Fatalf("%s with Redis down: unexpected answers %v", mode, down.other)
			}
			forwarded := len(emu.Calls()) - before
			t.Logf("%s, Redis down: %v, %d forwarded, %v fallback decisions", mode, down.codes, forwarded, fallbacks())
			switch mode {
			case "fail_closed":
				if down.codes["ServiceUnavailableException"] != 2*rpm || forwarded != 0 || fallbacks() != 0 {
					t.Fatalf("fail_closed with Redis down: %v, %d forwarded, %v fallbacks; want every call 503 and nothing forwarded",
						down.codes, forwarded, fallbacks())
				}
			case "fail_open":
				// Each process's share is rpm/3 = 3; each passed one call
				// while Redis was up, which the local count never saw.
				if down.codes[""] != rpm || down.codes["ThrottlingException"] != rpm || forwarded != rpm || fallbacks() != 2*rpm {
					t.Fatalf("fail_open with Redis down: %v, %d forwarded, %v fallbacks; want %d passed (%d per process), %d throttled, every decision a fallback",
						down.codes, forwarded, fallbacks(), rpm, rpm/n, rpm)
				}
			}
			for _, w := range fleet {
				if up := w.metric("warden_budget_store_up"); up != 0 {
					t.Errorf("%s: warden_budget_store_up %v with Redis down", w.ns, up)
				}
			}

			rds.Restart(t)
			flagged := fallbacks()
			for _, w := range fleet {
				for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
					_, err := w.budgetCall("hi")
					if err == nil && w.metric("warden_budget_store_up") == 1 {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("%s: no recovery after Redis returned: %v", w.ns, err)
					}
				}
			}
			if got := fallbacks(); got != flagged {
				// A call may still have been decided locally before the
				// first successful retry; after store_up is 1 none is.
				t.Logf("%v fallback decisions while Redis came back", got-flagged)
			}
			flagged = fallbacks()
			for _, w := range fleet {
				if _, err := w.budgetCall("hi"); err != nil {
					t.Fatalf("%s after recovery: %v", w.ns, err)
				}
			}
			if got := fallbacks(); got != flagged {
				t.Fatalf("%v calls decided locally after Redis returned", got-flagged)
			}
			// The shared count holds again: Redis came back empty, so this
			// minute's count started over at the recovery calls.
			used := fleet[0].metric(`warden_budget_used{app="chatbot-prod",budget="requests_per_minute"}`)
			if used < float64(n) || used > float64(rpm) {
				t.Fatalf("requests_per_minute used %v after recovery, want the recovered calls' (%d..%d) in the shared count", used, n, rpm)
			}
			for _, w := range fleet[1:] {
				if got := w.metric(`warden_budget_used{app="chatbot-prod",budget="requests_per_minute"}`); got != used {
					t.Fatalf("%s reads %v requests used, %s %v: not one shared count", w.ns, got, fleet[0].ns, used)
				}
			}
		})
	}
}
