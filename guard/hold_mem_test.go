package guard

import (
	"bytes"
	"runtime"
	"testing"

	"github.com/warden-egress/warden/bedrock"
)

// streamMemFrames are the events an open stream has seen: the ones
// warden-bench streams sends before it holds a stream open (a message
// start and one delta), or those and 120 more tokens of prose.
func streamMemFrames(t testing.TB, tokens int) []*bedrock.Frame {
	raws := [][]byte{
		bedrock.EncodeEvent("messageStart", []byte(`{"role":"assistant","p":"abcd"}`)),
		bedrock.EncodeEvent("contentBlockDelta", []byte(`{"contentBlockIndex":0,"delta":{"text":"Here is the summary of the review "},"p":"abcd"}`)),
	}
	prose := "The quarterly operations review found that the new onboarding flow reduced support tickets " +
		"noticeably, while the warehouse team asked for clearer guidance on returns. Customers praised the " +
		"faster checkout but several mentioned that the delivery estimates were too optimistic."
	for i := range tokens {
		p := prose[(i*3)%len(prose):]
		raws = append(raws, deltaFrame(t, p[:min(3, len(p))]))
	}
	var fs []*bedrock.Frame
	for _, raw := range raws {
		f, err := bedrock.NewFrameReader(bytes.NewReader(raw)).Next()
		if err != nil {
			t.Fatal(err)
		}
		fs = append(fs, &bedrock.Frame{Raw: raw, Message: f.Message.Clone()})
	}
	return fs
}

// heapPerStream is the Go heap each of n streams made by open holds once
// it has seen frames.
func heapPerStream(n int, open func() any) float64 {
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	keep := make([]any, n)
	for i := range keep {
		keep[i] = open()
	}
	runtime.GC()
	runtime.ReadMemStats(&m1)
	runtime.KeepAlive(keep)
	return (float64(m1.HeapAlloc) - float64(m0.HeapAlloc) - float64(n*16)) / float64(n)
}

// BenchmarkStreamGuardMemoryPerStream is the Go heap the output guard of an
// open stream keeps (every PII type, mask), now ("reused") and as the
// hold-back was before its memory was reused per token ("before",
// hold_ref_test.go): an open stream now keeps its lane's buffer and the
// events it released for reuse. Issue 19 holds 10,000 streams open.
func BenchmarkStreamGuardMemoryPerStream(b *testing.B) {
	gs := testStreamGuard(b, "mask").o.guards
	for _, c := range []struct {
		name   string
		tokens int
	}{{"bench-held", 0}, {"120-tokens", 120}} {
		frames := streamMemFrames(b, c.tokens)
		for _, impl := range []string{"reused", "before"} {
			b.Run(c.name+"/"+impl, func(b *testing.B) {
				open := func() any {
					sg := newStream(bedrock.OpConverseStream, bedrock.FamilyUnknown, gs, false)
					for _, f := range frames {
						if _, err, _ := sg.Next(f); err != nil {
							b.Fatal(err)
						}
					}
					return sg
				}
				if impl == "before" {
					open = func() any {
						sg := newRefStream(bedrock.OpConverseStream, bedrock.FamilyUnknown, gs, false)
						for _, f := range frames {
							if _, err, _ := sg.Next(f); err != nil {
								b.Fatal(err)
							}
						}
						return sg
					}
				}
				var per float64
				for b.Loop() {
					per = heapPerStream(1000, open)
				}
				b.ReportMetric(per, "heap-B/stream")
			})
		}
	}
}
