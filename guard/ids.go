package guard

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"slices"
	"strings"

	"github.com/warden-egress/warden/bedrock"
	"github.com/warden-egress/warden/guard/detect"
)

// Tool-use ids (bedrock.Extracted.IDs: Converse toolUseId, Anthropic tool_use
// id and tool_use_id, Mistral tool_call_id) are chosen by the client or the
// model and travel with the conversation, so a value can ride in one
// ("tooluse_4111111111111111"). A guard with a pii: detector runs on them the
// built-in types that are numbers or keys (detect.IDTypes, restricted to the
// guard's types), with '_' read as a space so a value glued to an id prefix
// still starts a word. Words, injection, email, URL and custom patterns are
// not run on ids: an id is no prose, and a custom pattern written for text
// would break tool calls on ids it happens to match.
//
// The pii: action applies as for text, except that "{TYPE}" is no valid id
// and an id must keep matching its partner: a toolResult's toolUseId must
// equal the toolUseId of the toolUse it answers, in the same request and in
// the next one, which repeats the history. So mask replaces the whole id with
// a keyed hash of it (HMAC-SHA-256 under a random key per compiled guard,
// written in lower-case letters only, so no detector ever matches it, and
// with the id's prefix up to its first '_' when that holds no digit:
// "tooluse_4111111111111111" → "tooluse_qzmc…"). The same id gives the same
// replacement wherever it occurs, so pairs keep matching within a request
// and across requests (a client echoes the masked id the model's answer
// carried; a history that still holds the original is masked again the same
// way while the policy is loaded). The hash is keyed so a masked card
// number cannot be recovered by hashing candidates. Block blocks as for text.

// idScanner returns the scanner a guard with a pii: detector runs on ids,
// or nil when none of its types is a number or key.
func idScanner(types []string) (*detect.Scanner, error) {
	var want []string
	for _, t := range detect.IDTypes() {
		if len(types) == 0 || slices.Contains(types, t) {
			want = append(want, t)
		}
	}
	if len(want) == 0 {
		return nil, nil
	}
	d, err := detect.NewPII(detect.PIIConfig{Types: want})
	if err != nil {
		return nil, err
	}
	return detect.NewScanner(d), nil
}

// newIDKey returns a fresh key for masking ids.
func newIDKey() []byte {
	k := make([]byte, 32)
	_, _ = rand.Read(k) // crypto/rand.Read never fails (Go 1.24+)
	return k
}

// idText is what the detectors read of an id: '_' joins words in ids.
func idText(id string) string { return strings.ReplaceAll(id, "_", " ") }

// maskID returns the replacement of id under key (see above).
func maskID(key []byte, id string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id))
	sum := m.Sum(nil)
	prefix := ""
	if i := strings.IndexByte(id, '_'); i > 0 && i <= 16 && !strings.ContainsAny(id[:i], "0123456789") && isIDWord(id[:i]) {
		prefix = id[:i+1]
	}
	n := 20 // 94 bits
	if prefix == "" && len(id) < n {
		n = max(len(id), 9) // Mistral's tool call ids are 9 characters
	}
	var b strings.Builder
	b.WriteString(prefix)
	for i := 0; i < n; i++ {
		b.WriteByte('a' + sum[i]%26)
	}
	return b.String()
}

func isIDWord(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

// scanIDs runs each guard's id scanner over ids and calls fn for every
// finding with the guard's index and its pii: action.
func scanIDs(gs []*compiled, id string, buf []detect.Finding, fn func(gi int, f detect.Finding, act string)) []detect.Finding {
	text := idText(id)
	for gi, g := range gs {
		if g.ids == nil {
			continue
		}
		_, found := g.ids.ScanAppend(buf[:0], text)
		buf = found
		for _, f := range found {
			fn(gi, f, g.actions[f.Detector])
		}
	}
	return buf
}

// withIDs returns ex with its IDs appended to its Texts, so that a spanEdit
// of index len(ex.Texts)+j rewrites ex.IDs[j] (rewriteSpans).
func withIDs(ex bedrock.Extracted) bedrock.Extracted {
	if len(ex.IDs) == 0 {
		return ex
	}
	ex.Texts = slices.Concat(ex.Texts, ex.IDs)
	return ex
}

// checkIDs runs the output guards over ex's ids: the edits that mask them
// (indices as withIDs numbers them), findings and blocks recorded in o.
func (o *outputScan) checkIDs(ex bedrock.Extracted) []spanEdit {
	var edits []spanEdit
	for j, sp := range ex.IDs {
		var key []byte
		o.buf = scanIDs(o.guards, sp.Text, o.buf, func(gi int, f detect.Finding, act string) {
			switch act {
			case Block:
				o.blockType(gi, f.Type)
				act = o.blockAction()
			case Mask:
				if key == nil {
					key = o.guards[gi].idKey
				}
			}
			o.add(Finding{Guard: o.guards[gi].name, Detector: f.Detector, Type: f.Type, Count: 1, Action: act})
		})
		if key != nil {
			edits = append(edits, spanEdit{len(ex.Texts) + j, maskID(key, sp.Text)})
		}
	}
	return edits
}

// checkIDs scans the ids of one stream event (a contentBlockStart's
// toolUseId, an Anthropic content_block_start's id): it returns the frame to
// go on with and its extraction (f and ex themselves, or the event
// re-encoded with its ids masked and extracted again), or the error that
// stops the stream and its rule.
func (sg *Stream) checkIDs(f *bedrock.Frame, ex bedrock.Extracted) (*bedrock.Frame, bedrock.Extracted, *bedrock.APIError, string) {
	edits := sg.o.checkIDs(ex)
	if msg, rule := sg.o.blocked(); msg != "" && !sg.o.dryRun {
		return nil, ex, bedrock.ModelStreamError("warden: %s; the stream was stopped", msg), rule
	}
	if len(edits) == 0 {
		return f, ex, nil, ""
	}
	m := f.Message
	m.Payload = rewriteSpans(m.Payload, withIDs(ex), edits)
	raw, err := bedrock.EncodeMessage(m)
	if err == nil {
		var nf *bedrock.Frame
		if nf, err = bedrock.NewFrameReader(bytes.NewReader(raw)).Next(); err == nil {
			var nex bedrock.Extracted
			if nex, err = bedrock.ExtractStreamEvent(sg.op, sg.family, nf.EventType(), nf.Message.Payload); err == nil {
				return nf, nex, nil, ""
			}
		}
	}
	return nil, ex, bedrock.InternalServer("warden: re-encoding a masked event failed"), "guards"
}
