package guard

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"maps"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/aws/smithy-go/eventstream"

	"github.com/warden-egress/warden/bedrock"
)

// Review tests of the stream hold-back's reuse of its memory (branch
// stream30: hold.go, output.go, bedrock.EventExtractor). The reference
// tests hand the Stream a fresh frame per event; the proxy hands it the
// frames of one FrameReader, whose buffer (Raw, payload, headers) the next
// frame overwrites, and the server-sent event reader reuses its raw and
// data buffers too. These tests feed the Stream that way, scribbling over
// the frame after each call, with what genHold leaves out: exceptions,
// frames of other message types and events that are not JSON in the middle
// of a stream, events with a varying number of texts (one, then many: the
// event's own span, then its more, then a map of lanes), long runs without
// a space cut at the hold bound with runes on the cut, and the smallest
// max_hold_bytes. The Stream must send, mask and block exactly what the
// reference does.

// review30Event renders the review's extra event kinds for a wire, or
// falls back to holdWire.render.
func review30Render(t testing.TB, w holdWire, ev holdEvent) (raw []byte, name string, data []byte) {
	switch ev.kind {
	case "other": // a frame that is neither an event nor an exception
		if w.sse {
			return []byte(": keep-alive\n\n"), "", nil
		}
		b, err := bedrock.EncodeMessage(eventstream.Message{Headers: eventstream.Headers{
			{Name: bedrock.HeaderMessageType, Value: eventstream.StringValue("ping")},
		}, Payload: []byte(ev.piece)})
		if err != nil {
			t.Fatal(err)
		}
		return b, "", nil
	case "notjson":
		if w.sse {
			data = []byte("{" + ev.piece)
			return []byte("event: content_block_delta\ndata: " + string(data) + "\n\n"), "content_block_delta", data
		}
		data = []byte("{" + ev.piece)
		return bedrock.EncodeEvent("contentBlockDelta", data), "contentBlockDelta", data
	case "multi": // ConverseStream: the delta's text and strings at many paths
		extra := strings.Split(ev.piece, "\x00")
		data = mustJSON(t, map[string]any{"contentBlockIndex": 0, "delta": map[string]any{"text": extra[0]}, "extra": extra[1:]})
		return bedrock.EncodeEvent("contentBlockDelta", data), "contentBlockDelta", data
	}
	return w.render(t, ev)
}

// review30Long are runs without a space the hold bound cuts (a tool input,
// a base64 blob, a URL), with runes of two to four bytes where a cut falls.
var review30Long = []string{
	strings.Repeat("é", 70) + "4111111111111111" + strings.Repeat("x", 50),
	strings.Repeat("ab😀", 40) + "jo.smith@example.com" + strings.Repeat("€", 30),
	base64.StdEncoding.EncodeToString([]byte(strings.Repeat("card 4111 1111 1111 1111 and more ", 6))),
	"https://example.com/" + strings.Repeat("a/", 60) + "?ssn=123-45-6789&k=AKIAIOSFODNN7EXAMPLE",
	strings.Repeat("x", 63) + "’" + strings.Repeat("y", 63) + "–" + "123-45-6789",
}

// genReview30 is genHold with the review's events put in anywhere.
func genReview30(r *rand.Rand, w holdWire) []holdEvent {
	base := genHold(r)
	var evs []holdEvent
	for i, ev := range base {
		if i > 0 && r.IntN(6) == 0 {
			switch k := r.IntN(5); {
			case k == 0:
				evs = append(evs, holdEvent{kind: "exception", piece: fill(r, "upstream hiccup near %s")})
			case k == 1:
				evs = append(evs, holdEvent{kind: "other", piece: "{}"})
			case k == 2:
				evs = append(evs, holdEvent{kind: "notjson", piece: "not json " + fill(r, "%s")})
			case k == 3 && w.op == bedrock.OpConverseStream:
				// one event's texts at 1 to 14 paths
				n := 1 + r.IntN(14)
				parts := make([]string, n)
				for j := range parts {
					parts[j] = split(r, fill(r, holdTexts[r.IntN(len(holdTexts))]))[0]
				}
				evs = append(evs, holdEvent{kind: "multi", piece: strings.Join(parts, "\x00")})
			default:
				for _, p := range split(r, review30Long[r.IntN(len(review30Long))]) {
					evs = append(evs, holdEvent{kind: "piece", lane: holdLane(r.IntN(3)), piece: p})
				}
			}
		}
		evs = append(evs, ev)
	}
	return evs
}

// review30Guards add the smallest hold bound to holdGuards.
var review30Guards = append(holdGuards[:len(holdGuards):len(holdGuards)], struct {
	name   string
	cfgs   []Config
	dryRun bool
}{"mask, smallest hold", []Config{{PII: &PIIConfig{Action: Mask}, MaxHoldBytes: MinMaxHoldBytes}}, false})

// checkReview30 feeds evs to a Stream the way the proxy does (one
// FrameReader, or reused server-sent event buffers, scribbled over after
// each call) and to the reference with a fresh frame per event, and fails
// on the first difference.
func checkReview30(t *testing.T, w holdWire, gs []*compiled, dryRun bool, evs []holdEvent) {
	t.Helper()
	sg := newStream(w.op, w.family, gs, dryRun)
	ref := newRefStream(w.op, w.family, gs, dryRun)
	var stream []byte
	raws := make([][]byte, len(evs))
	names := make([]string, len(evs))
	datas := make([][]byte, len(evs))
	for i, ev := range evs {
		raws[i], names[i], datas[i] = review30Render(t, w, ev)
		stream = append(stream, raws[i]...)
	}
	fr := bedrock.NewFrameReader(bytes.NewReader(stream))
	var rawBuf, dataBuf []byte
	fail := func(i int, got []byte, gotErr *bedrock.APIError, gotRule string, want []byte, wantErr *bedrock.APIError, wantRule string) bool {
		t.Helper()
		if !bytes.Equal(got, want) || (gotErr == nil) != (wantErr == nil) || gotRule != wantRule ||
			gotErr != nil && (gotErr.Status != wantErr.Status || gotErr.Type != wantErr.Type) {
			t.Fatalf("%s, event %d of %+v:\ngot  %q, %v, %q\nwant %q, %v, %q", w.name, i, evs, got, gotErr, gotRule, want, wantErr, wantRule)
		}
		return gotErr != nil
	}
	stopped := false
	for i := range evs {
		var got, want []byte
		var gotErr, wantErr *bedrock.APIError
		var gotRule, wantRule string
		if w.sse {
			rawBuf, dataBuf = append(rawBuf[:0], raws[i]...), append(dataBuf[:0], datas[i]...)
			var data []byte
			if datas[i] != nil {
				data = dataBuf
			}
			got, gotErr, gotRule = sg.NextSSE(rawBuf, names[i], data)
			got = bytes.Clone(got)
			for k := range rawBuf {
				rawBuf[k] = '#'
			}
			for k := range dataBuf {
				dataBuf[k] = '#'
			}
			want, wantErr, wantRule = ref.NextSSE(raws[i], names[i], datas[i])
		} else {
			f, err := fr.Next()
			if err != nil {
				t.Fatalf("frame %d: %v", i, err)
			}
			got, gotErr, gotRule = sg.Next(f)
			got = bytes.Clone(got)
			for k := range f.Raw {
				f.Raw[k] = '#'
			}
			f2, err := bedrock.NewFrameReader(bytes.NewReader(raws[i])).Next()
			if err != nil {
				t.Fatal(err)
			}
			want, wantErr, wantRule = ref.Next(f2)
		}
		if stopped = fail(i, got, gotErr, gotRule, want, wantErr, wantRule); stopped {
			break
		}
	}
	if !stopped {
		got, gotErr, gotRule := sg.End()
		got = bytes.Clone(got)
		want, wantErr, wantRule := ref.End()
		fail(len(evs), got, gotErr, gotRule, want, wantErr, wantRule)
		if _, err := fr.Next(); !w.sse && err != io.EOF {
			t.Fatalf("frames left after the stream: %v", err)
		}
	}
	if g, r := foundSet(sg.Outcome().Findings), foundSet(ref.Outcome().Findings); !maps.Equal(g, r) {
		t.Fatalf("%s, %+v: findings %v, want %v", w.name, evs, g, r)
	}
	if len(sg.spareEvents) > maxSpareEvents || len(sg.spareLanes) > maxSpareLanes {
		t.Fatalf("%d spare events, %d spare lanes kept", len(sg.spareEvents), len(sg.spareLanes))
	}
	for _, h := range sg.spareEvents {
		if cap(h.raw) > maxSpareBytes || cap(h.payload) > maxSpareBytes {
			t.Fatalf("a spare event keeps %d raw bytes, %d payload bytes", cap(h.raw), cap(h.payload))
		}
	}
}

// TestReview30StreamReusedFrames: the Stream fed as the proxy feeds it,
// with the review's events anywhere, matches the reference.
func TestReview30StreamReusedFrames(t *testing.T) {
	n := 40
	if testing.Short() || holdRace {
		n = 10
	}
	for _, hg := range review30Guards {
		gs := compileHold(t, hg.cfgs)
		for _, w := range holdWires {
			t.Run(hg.name+"/"+w.name, func(t *testing.T) {
				for seed := range uint64(n) {
					r := rand.New(rand.NewPCG(seed, 30))
					checkReview30(t, w, gs, hg.dryRun, genReview30(r, w))
				}
			})
		}
	}
}

// FuzzReview30Stream is TestReview30StreamReusedFrames for any seed, guard
// set and wire.
func FuzzReview30Stream(f *testing.F) {
	for i := range 8 {
		f.Add(uint64(3000+i), uint8(i), uint8(i/2))
	}
	f.Fuzz(func(t *testing.T, seed uint64, gi, wi uint8) {
		hg := review30Guards[int(gi)%len(review30Guards)]
		w := holdWires[int(wi)%len(holdWires)]
		r := rand.New(rand.NewPCG(seed, 30))
		checkReview30(t, w, compileHold(t, hg.cfgs), hg.dryRun, genReview30(r, w))
	})
}

// TestReview30StreamNormalisesAcrossTokens: each token's text is
// normalised on its own, and the lane's text (their concatenation) is
// normalised again by the scan, which composes what a token boundary cut:
// "e" then U+0301 is "é", a Hangul leading consonant then a vowel one
// syllable, "ê" then U+0323 "ệ". The findings' offsets are then into a
// shorter text than the lane's; a mask placed by them must still cover the
// whole value (no digit of a card left out) and leave valid UTF-8, and a
// block must stop the stream. Found in review (the hold-back has done
// this since before issue 19): the card's last digit, or three, were sent.
func TestReview30StreamNormalisesAcrossTokens(t *testing.T) {
	stop := bedrock.EncodeEvent("contentBlockStop", []byte(`{"contentBlockIndex":0}`))
	card := "4111 1111 1111 1111"
	for _, pieces := range [][]string{
		{"caf", "e", "\u0301 card " + card + " end"},
		{"cafe", "\u0301 card " + card + " end"},
		// The value found starting in the decided tail (widened) when
		// nothing past it is decided yet: its placeholder goes with
		// the mask recorded later.
		{"cafe", "\u0301\u0301\u0301 card ", card, " end"},
		{"\u1100", "\u1161 " + card + " end"},
		{"\u1100", "\u1161", "\u11a8 " + card + " end"},
		{"x ê", "\u0323 and ", "A", "\u030a: " + card},
		{"e", "\u0301 e", "\u0301 e", "\u0301 " + card[:9], card[9:] + " ok"},
		{"plain ", card, " end"}, // no composition: the mask as before
	} {
		t.Run(strings.Join(pieces, "|"), func(t *testing.T) {
			frames := make([][]byte, 0, len(pieces)+1)
			for _, p := range pieces {
				frames = append(frames, deltaFrame(t, p))
			}
			frames = append(frames, stop)
			released, err := feed(t, testStreamGuard(t, "mask", "CREDIT_DEBIT_CARD_NUMBER"), frames...)
			if err != nil {
				t.Fatal(err)
			}
			var out strings.Builder
			for _, r := range released {
				for _, s := range r {
					if !strings.HasPrefix(s, "<") {
						out.WriteString(s)
					}
				}
			}
			got := out.String()
			if !utf8.ValidString(got) || strings.ContainsAny(got, "0123456789") || !strings.Contains(got, "{CREDIT_DEBIT_CARD_NUMBER}") {
				t.Errorf("sent %q: want the card masked whole, valid UTF-8", got)
			}
			if _, err := feed(t, testStreamGuard(t, "block", "CREDIT_DEBIT_CARD_NUMBER"), frames...); err == nil {
				t.Errorf("the block guard did not stop the stream")
			}
		})
	}
}

// TestReview30StreamMaskNoLeak: text full of what composes across a token
// boundary (combining marks, Hangul jamo) around values, cut into tokens
// anywhere between runes, under a masking guard: no digit of a value and
// no part of an address is ever sent, and what is sent is valid UTF-8.
func TestReview30StreamMaskNoLeak(t *testing.T) {
	pieces := []string{"e", "\u0301", "\u0323", "ê", "A", "\u030a", "\u1100", "\u1161", "\u11a8", "o", "\u0308", " ", " ", "word ",
		"café ", "\u0301\u0301", "x"}
	values := []string{"4111 1111 1111 1111", "123-45-6789", "jo.smith@example.com", "+1 (555) 010-9999"}
	stop := bedrock.EncodeEvent("contentBlockStop", []byte(`{"contentBlockIndex":0}`))
	r := rand.New(rand.NewPCG(36, 37))
	for range 400 {
		var b strings.Builder
		for range 1 + r.IntN(4) {
			b.WriteString(joinRandomPieces(r, pieces, r.IntN(12)))
			b.WriteString(" " + values[r.IntN(len(values))] + ". ")
		}
		b.WriteString(joinRandomPieces(r, pieces, r.IntN(6)))
		text := b.String()
		frames := [][]byte{}
		for _, p := range splitRunes(r, text) {
			frames = append(frames, deltaFrame(t, p))
		}
		frames = append(frames, stop)
		released, err := feed(t, testStreamGuard(t, "mask"), frames...)
		if err != nil {
			t.Fatal(err)
		}
		var out strings.Builder
		for _, rel := range released {
			for _, s := range rel {
				if !strings.HasPrefix(s, "<") {
					out.WriteString(s)
				}
			}
		}
		got := out.String()
		if !utf8.ValidString(got) || strings.ContainsAny(got, "0123456789@") || strings.Contains(got, "example") {
			t.Fatalf("%q sent as %q", text, got)
		}
	}
}

func joinRandomPieces(r *rand.Rand, pieces []string, n int) string {
	var b strings.Builder
	for range n {
		b.WriteString(pieces[r.IntN(len(pieces))])
	}
	return b.String()
}

// splitRunes cuts s into tokens of 1 to 3 runes (a base and its combining
// mark may go to different tokens).
func splitRunes(r *rand.Rand, s string) []string {
	var out []string
	for s != "" {
		n := 0
		for range 1 + r.IntN(3) {
			if n < len(s) {
				_, sz := utf8.DecodeRuneInString(s[n:])
				n += sz
			}
		}
		out, s = append(out, s[:n]), s[n:]
	}
	return out
}

// TestReview30StreamToolInputNoLeak is TestReview30StreamMaskNoLeak for a
// tool-use input: JSON text whose combining marks and jamo come raw or
// escaped ("\u0301"), cut into fragments anywhere (escapes too), decoded
// across the cuts before the scan.
func TestReview30StreamToolInputNoLeak(t *testing.T) {
	pieces := []string{"e", "\u0301", `\u0301`, "\u0323", "ê", "A", `\u030a`, "\u1100", `\u1161`, "\u11a8", " ", "word ", `\"`, "x"}
	values := []string{"4111 1111 1111 1111", "123-45-6789", "jo.smith@example.com", `jo.smith\u0040example.com`}
	stop := bedrock.EncodeEvent("contentBlockStop", []byte(`{"contentBlockIndex":1}`))
	r := rand.New(rand.NewPCG(38, 39))
	for range 300 {
		var b strings.Builder
		b.WriteString(`{"q":"`)
		for range 1 + r.IntN(3) {
			b.WriteString(joinRandomPieces(r, pieces, r.IntN(10)))
			b.WriteString(" " + values[r.IntN(len(values))] + ". ")
		}
		b.WriteString(joinRandomPieces(r, pieces, r.IntN(5)) + `"}`)
		text := b.String()
		sg := testStreamGuard(t, "mask")
		var out []byte
		var cuts []string
		for text != "" { // fragments of 1 to 5 bytes, cut anywhere between runes
			n := min(len(text), 1+r.IntN(5))
			for n < len(text) && !utf8.RuneStart(text[n]) {
				n++
			}
			cuts, text = append(cuts, text[:n]), text[n:]
		}
		for _, p := range append(cuts, "") {
			raw := stop
			if p != "" {
				raw = toolFrame(t, p)
			}
			f, err := bedrock.NewFrameReader(bytes.NewReader(raw)).Next()
			if err != nil {
				t.Fatal(err)
			}
			o, apiErr, _ := sg.Next(f)
			if apiErr != nil {
				t.Fatal(apiErr)
			}
			out = append(out, o...)
		}
		o, apiErr, _ := sg.End()
		if apiErr != nil {
			t.Fatal(apiErr)
		}
		out = append(out, o...)
		got := toolInputs(t, out)
		var dec struct{ Q string }
		if err := json.Unmarshal([]byte(got), &dec); err != nil {
			t.Fatalf("%q sent as %q: not JSON: %v", cuts, got, err)
		}
		if !utf8.ValidString(dec.Q) || strings.ContainsAny(dec.Q, "0123456789@") || strings.Contains(dec.Q, "example") {
			t.Fatalf("%q sent as %q", strings.Join(cuts, ""), got)
		}
	}
}

// TestReview30StreamEscapeCutThrice: a tool input's escape cut into three
// fragments or more ("\\" | "u" | "00" | "40…"), inside a value a guard
// masks. Only the fragment before the one that completes the escape used
// to be held for the rune (its span's end moved past it): the ones before
// it kept their bytes of the escape unmasked, and the answer's tool input
// was no longer JSON ("{EMAIL}\u. "). Found in review (predates issue 19).
func TestReview30StreamEscapeCutThrice(t *testing.T) {
	stop := bedrock.EncodeEvent("contentBlockStop", []byte(`{"contentBlockIndex":1}`))
	for _, cuts := range [][]string{
		{`{"q":"x `, `jo.smith\`, `u`, `00`, `40example.com`, `. "}`},
		{`{"q":"x jo.smith`, `\`, `u`, `0`, `0`, `4`, `0example.com. "}`},
		{`{"q":"x jo.smith\u`, `00`, `40example.com. "}`},
		{`{"q":"4111 1111 \`, `u`, `0031`, `111 1111 \ud83d`, `\`, `ude00 ok"}`},
		{`{"q":"4111 1111 1111 111\`, `u`, `0`, `031 \ud83d\`, `u`, `de00 ok"}`},
		{`{"q":"jo.smith\u0040example.com \`, `u`, `00`, `e9 ok"}`}, // the escape after the value
	} {
		t.Run(strings.Join(cuts, "|"), func(t *testing.T) {
			sg := testStreamGuard(t, "mask")
			var out []byte
			for _, raw := range append(slicesMap(cuts, func(p string) []byte { return toolFrame(t, p) }), stop) {
				f, err := bedrock.NewFrameReader(bytes.NewReader(raw)).Next()
				if err != nil {
					t.Fatal(err)
				}
				o, apiErr, _ := sg.Next(f)
				if apiErr != nil {
					t.Fatal(apiErr)
				}
				out = append(out, o...)
			}
			o, _, _ := sg.End()
			got := toolInputs(t, append(out, o...))
			var dec struct{ Q string }
			if err := json.Unmarshal([]byte(got), &dec); err != nil {
				t.Fatalf("sent %q: not JSON: %v", got, err)
			}
			if strings.ContainsAny(dec.Q, "0123456789@") || strings.Contains(dec.Q, "example") || !strings.Contains(dec.Q, "}") {
				t.Fatalf("sent %q (%q)", got, dec.Q)
			}
		})
	}
}

func slicesMap(ss []string, f func(string) []byte) [][]byte {
	out := make([][]byte, len(ss))
	for i, s := range ss {
		out[i] = f(s)
	}
	return out
}
