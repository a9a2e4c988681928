package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"
)

const soakModel = "anthropic.claude-3-5-haiku-20241022-v1:0"

// The kinds of call a worker makes, with their share of the load.
const (
	kindConverse      = "converse"
	kindStream        = "converse-stream"
	kindStreamHangup  = "converse-stream-hangup" // the client goes away after the first event
	kindInvoke        = "invoke-model"
	kindInvokeHangup  = "invoke-stream-hangup" // InvokeModelWithResponseStream, gone after the first chunk
	causeReload       = "reload"
	causeDisconnect   = "disconnect" // by design: the hang-up kinds
	causeSink         = "sink"
	causeOther        = "other"
	disconnectNoEvent = "the stream ended before its first event"
	hangupRecord      = "499 ClientClosedRequest" // how the sink tallies a hung-up call's record
)

var kinds = []struct {
	name   string
	weight int
}{
	{kindConverse, 35},
	{kindStream, 25},
	{kindStreamHangup, 15},
	{kindInvoke, 20},
	{kindInvokeHangup, 5},
}

// Kinds lists the kinds of call in report order.
func Kinds() []string {
	out := make([]string, len(kinds))
	for i, k := range kinds {
		out[i] = k.name
	}
	return out
}

func pickKind(r *rand.Rand) string {
	n := r.IntN(100)
	for _, k := range kinds {
		if n < k.weight {
			return k.name
		}
		n -= k.weight
	}
	return kinds[0].name
}

// classify names why a call failed. Every policy the soak loads allows
// every call it makes and no guard matches its prompts or the emulator's
// answers, so a denial can only come from a reload gone wrong; a refusal
// for the audit spool is the sink outage's. hungUp says the client ended
// the call itself after its first event (by design).
func classify(err error, hungUp bool) string {
	var (
		denied  *types.AccessDeniedException
		unavail *types.ServiceUnavailableException
		mse     *types.ModelStreamErrorException
	)
	switch {
	case hungUp && errors.Is(err, context.Canceled):
		return causeDisconnect
	case errors.As(err, &denied):
		return causeReload
	case errors.As(err, &mse) && strings.Contains(mse.ErrorMessage(), "guard"):
		return causeReload // an output guard mid-stream: policy too
	case errors.As(err, &unavail) && strings.Contains(unavail.ErrorMessage(), "audit"):
		return causeSink
	}
	return causeOther
}

// counters are the calls' outcomes, by kind and cause.
type counters struct {
	mu       sync.Mutex
	ok       map[string]int64
	failed   map[string]map[string]int64 // cause → kind → n
	examples map[string][]string         // cause → first few errors
	calls    atomic.Int64                // every call made (each is one HTTP request: no SDK retries)
}

func newCounters() *counters {
	return &counters{ok: map[string]int64{}, failed: map[string]map[string]int64{}, examples: map[string][]string{}}
}

func (c *counters) record(kind string, err error, hungUp bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err == nil {
		c.ok[kind]++
		return
	}
	cause := classify(err, hungUp)
	if c.failed[cause] == nil {
		c.failed[cause] = map[string]int64{}
	}
	c.failed[cause][kind]++
	if cause != causeDisconnect && len(c.examples[cause]) < 5 {
		c.examples[cause] = append(c.examples[cause], fmt.Sprintf("%s at %s: %v", kind, time.Now().UTC().Format("15:04:05.000"), err))
	}
}

// callStats is a snapshot of the counters.
type callStats struct {
	Calls    int64
	OK       map[string]int64
	Failed   map[string]map[string]int64
	Examples map[string][]string
}

func (s callStats) okTotal() (n int64) {
	for _, v := range s.OK {
		n += v
	}
	return n
}

func (s callStats) failedTotal(cause string) (n int64) {
	for _, v := range s.Failed[cause] {
		n += v
	}
	return n
}

func (c *counters) snapshot() callStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := callStats{Calls: c.calls.Load(), OK: map[string]int64{}, Failed: map[string]map[string]int64{}, Examples: map[string][]string{}}
	for k, v := range c.ok {
		s.OK[k] = v
	}
	for cause, m := range c.failed {
		s.Failed[cause] = map[string]int64{}
		for k, v := range m {
			s.Failed[cause][k] = v
		}
	}
	for k, v := range c.examples {
		s.Examples[k] = append([]string(nil), v...)
	}
	return s
}

// runLoad runs a worker per client until stop closes; each makes calls back to back
// (or as the pacer allows), the kind drawn at random. A call under way when
// stop closes runs to its end, so every call counted reaches Warden and is
// audited; only ctx's end (an interrupted soak) cuts calls short.
func runLoad(ctx context.Context, stop <-chan struct{}, clients []*bedrockruntime.Client, pace <-chan time.Time, c *counters, after func()) {
	var wg sync.WaitGroup
	for w, client := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
			for i := 0; ; i++ {
				if pace != nil {
					select {
					case <-stop:
						return
					case <-pace:
					}
				}
				select {
				case <-stop:
					return
				default:
				}
				if ctx.Err() != nil {
					return
				}
				kind := pickKind(r)
				c.calls.Add(1)
				err, hungUp := call(ctx, client, kind, prompt(w, i))
				if ctx.Err() != nil && err != nil && errors.Is(err, context.Canceled) {
					// The soak was interrupted under this call: neither ok
					// nor a failure.
					continue
				}
				c.record(kind, err, hungUp)
				if after != nil {
					after()
				}
			}
		}()
	}
	wg.Wait()
}

// prompt is an ordinary question of about 1 KB, different each call, with
// nothing a guard would flag.
func prompt(worker, i int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Worker %d, question %d: summarise the following notes about the quarterly planning meeting.", worker, i)
	for j := range 12 {
		fmt.Fprintf(&b, " Item %d: the team reviewed the roadmap, agreed on priorities and scheduled a follow-up.", j)
	}
	return b.String()
}

// call makes one call of the kind. hungUp is true when the client ended a
// hang-up kind's call on purpose after its first event; the error is then
// what the SDK said after the hang-up (context.Canceled or nil).
func call(ctx context.Context, c *bedrockruntime.Client, kind, text string) (err error, hungUp bool) {
	msgs := []types.Message{{Role: types.ConversationRoleUser, Content: []types.ContentBlock{&types.ContentBlockMemberText{Value: text}}}}
	switch kind {
	case kindConverse:
		out, err := c.Converse(ctx, &bedrockruntime.ConverseInput{ModelId: aws.String(soakModel), Messages: msgs})
		if err == nil && out.Output == nil {
			err = errors.New("Converse: no output")
		}
		return err, false
	case kindInvoke:
		body := fmt.Sprintf(`{"anthropic_version":"bedrock-2023-05-31","max_tokens":256,"messages":[{"role":"user","content":%q}]}`, text)
		out, err := c.InvokeModel(ctx, &bedrockruntime.InvokeModelInput{ModelId: aws.String(soakModel), Body: []byte(body),
			ContentType: aws.String("application/json"), Accept: aws.String("application/json")})
		if err == nil && len(out.Body) == 0 {
			err = errors.New("InvokeModel: empty body")
		}
		return err, false
	case kindStream, kindStreamHangup:
		cctx, cancel := context.WithCancel(ctx)
		defer cancel()
		out, err := c.ConverseStream(cctx, &bedrockruntime.ConverseStreamInput{ModelId: aws.String(soakModel), Messages: msgs})
		if err != nil {
			return err, false
		}
		st := out.GetStream()
		return drain(cancel, st.Events(), st.Close, st.Err, kind == kindStreamHangup)
	case kindInvokeHangup:
		cctx, cancel := context.WithCancel(ctx)
		defer cancel()
		body := fmt.Sprintf(`{"anthropic_version":"bedrock-2023-05-31","max_tokens":256,"messages":[{"role":"user","content":%q}]}`, text)
		out, err := c.InvokeModelWithResponseStream(cctx, &bedrockruntime.InvokeModelWithResponseStreamInput{
			ModelId: aws.String(soakModel), Body: []byte(body), ContentType: aws.String("application/json")})
		if err != nil {
			return err, false
		}
		st := out.GetStream()
		return drain(cancel, st.Events(), st.Close, st.Err, true)
	}
	return fmt.Errorf("unknown kind %q", kind), false
}

// drain reads a stream to its end or, with hangUp, cancels the call after
// the first event and reads what is left.
func drain[E any](cancel context.CancelFunc, events <-chan E, closeFn func() error, errFn func() error, hangUp bool) (error, bool) {
	n := 0
	hung := false
	for range events {
		n++
		if hangUp && !hung {
			hung = true
			cancel()
		}
	}
	_ = closeFn()
	err := errFn()
	if hung {
		// Whatever the SDK says after the hang-up (canceled, or nothing
		// if the stream had already ended) is the hang-up.
		if err == nil {
			err = context.Canceled
		}
		return err, true
	}
	if err == nil && n == 0 {
		err = errors.New(disconnectNoEvent)
	}
	return err, false
}
