package policy

import (
	"bytes"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/warden-egress/warden/bedrock"
)

// CapRequest is what an app's caps look at and may change.
type CapRequest struct {
	Op   bedrock.Operation
	Body []byte
	// Header holds the request's headers (canonical keys); read only:
	// headers to set come back in CapResult.SetHeader.
	Header map[string][]string
	// Extract returns the body's texts and output-token limit
	// (bedrock.ExtractRequest of Body, cached by the caller).
	Extract func() (bedrock.Extracted, error)
	// Passthrough: the call is forwarded with the caller's signature, so
	// neither body nor headers may change.
	Passthrough bool
}

// CapResult is what the caps did: a rewritten body (nil: unchanged),
// headers to set, the rule (and reason) to record, whether a dry-run app's
// call would have been denied, and how many output-token values were
// clamped.
type CapResult struct {
	Body       []byte
	SetHeader  map[string]string
	Rule       string
	Reason     string
	DryRunDeny bool
	Clamped    int
}

// ApplyCaps applies the app's request caps (limits.max_output_tokens,
// max_prompt_chars, on_exceed) and its Bedrock guardrail to a call d
// allowed (or a dry-run app's call d denied). A non-nil error is the answer
// for the caller: nothing is forwarded.
func (a *AppConfig) ApplyCaps(d Decision, req CapRequest) (CapResult, error) {
	var res CapResult
	if err := a.applyLimits(&req, &res); err != nil {
		return res, err
	}
	if err := a.applyCompat(&req, &res); err != nil {
		return res, err
	}
	if a.BedrockGuardrail != nil && (compatKindOf(req.Op) != 0 || anthropicBedrockOnly(req.Op)) {
		// Fail closed: the app requires its guardrail on every inference,
		// and Bedrock documents no way to name one on the OpenAI-compatible
		// and Anthropic APIs (the guardrail header and guardrailConfig are
		// InvokeModel's and Converse's); Anthropic's Bedrock-only sessions
		// and agents run inference Warden cannot see to attach one to.
		res.Rule = "app.bedrock_guardrail"
		return res, bedrock.AccessDenied("warden: app %s must use guardrail %s:%s, which Warden cannot attach to %s calls: Bedrock documents no guardrail setting for that API", a.Name, a.BedrockGuardrail.ID, a.BedrockGuardrail.Version, req.Op)
	}
	if a.BedrockGuardrail != nil {
		why, err := a.attachGuardrail(&req, &res)
		switch {
		case err != nil:
			return res, err
		case why != "" && d.DryRun:
			// Recorded, and the call forwarded as the caller sent it.
			if d.Allow { // a policy denial recorded first keeps its rule and reason
				res.Rule, res.Reason = "app.bedrock_guardrail", why
			}
			res.DryRunDeny = true
		case why != "":
			res.Rule = "app.bedrock_guardrail"
			return res, bedrock.AccessDenied("%s", why)
		}
	}
	return res, nil
}

// This file has an app's request caps (apps[].limits.max_output_tokens,
// max_prompt_chars, on_exceed) to request bodies. It runs after the input
// guards (so a masked body is the one measured) and before metadata
// stamping; like limits.max_body_bytes the caps are limits, not
// authorisations, and hold in dry-run apps too.
//
// max_prompt_chars counts the characters (Unicode code points) of every text
// bedrock.ExtractRequest finds in the body: messages, system prompts, tool
// specs and results, document text, … — the text the guards read.
//
// max_output_tokens reads the output-token limit where the model family
// puts it (bedrock.Extracted.MaxTokens). Above the cap the call is rejected,
// or with on_exceed: clamp the number is rewritten in place to the cap (the
// body is re-signed; config validation keeps clamp away from passthrough).
// A body that repeats the key, or whose value is not a number, is rejected
// either way. A body that sets no limit is left alone (the model's default
// applies), except that a clamping app's Converse and ConverseStream calls
// get inferenceConfig.maxTokens set to the cap. Converse's
// additionalModelRequestFields, passed to the model as they are, are checked
// for the same keys (max_tokens, …) at their top level: above the cap they
// are rejected or clamped like the main value.

// outputTokenKeys are the keys a native body may carry its output-token
// limit under (bedrock's extractor knows where each family puts it; this
// list is for additionalModelRequestFields, which it scans as plain text).
var outputTokenKeys = []string{"max_tokens", "maxTokens", "max_gen_len", "max_new_tokens", "maxTokenCount",
	"max_tokens_to_sample", "max_completion_tokens", "max_output_tokens", "maxOutputTokens"}

// generates says whether op makes the model generate (CountTokens and the
// read-only operations do not: caps do not apply).
func generates(op bedrock.Operation) bool {
	switch op {
	case bedrock.OpInvokeModel, bedrock.OpInvokeModelWithResponseStream, bedrock.OpConverse, bedrock.OpConverseStream,
		bedrock.OpStartAsyncInvoke:
		return true
	}
	return false
}

// Bedrock's guardrail headers (canonical forms) for InvokeModel*.
const (
	guardrailIDHeader      = "X-Amzn-Bedrock-Guardrailidentifier"
	guardrailVersionHeader = "X-Amzn-Bedrock-Guardrailversion"
	guardrailTraceHeader   = "X-Amzn-Bedrock-Trace"
)

// attachGuardrail attaches the app's Bedrock guardrail to the call:
// InvokeModel and InvokeModelWithResponseStream get the guardrail headers
// (r's, which the upstream request copies), Converse and ConverseStream a
// guardrailConfig member in the body, replacing the caller's (its trace and
// streamProcessingMode are kept unless the app sets a trace). Other
// operations are left alone. A call already naming another guardrail or
// version is refused: why is the denial's message and nothing is changed.
// A passthrough call cannot be changed: it passes only if it already names
// the app's guardrail.
func (a *AppConfig) attachGuardrail(req *CapRequest, res *CapResult) (why string, err error) {
	g := a.BedrockGuardrail
	deny := "warden: app " + a.Name + " must use guardrail " + g.ID + ":" + g.Version
	switch req.Op {
	case bedrock.OpInvokeModel, bedrock.OpInvokeModelWithResponseStream:
		ids, vers := req.Header[guardrailIDHeader], req.Header[guardrailVersionHeader]
		if len(ids) > 1 || len(vers) > 1 || len(ids) == 1 && ids[0] != g.ID || len(vers) == 1 && vers[0] != g.Version {
			return deny + " (the call names another)", nil
		}
		if req.Passthrough {
			if len(ids) == 0 || len(vers) == 0 {
				return deny + "; Warden cannot attach it to a call it forwards with the caller's signature", nil
			}
			return "", nil
		}
		res.SetHeader = map[string]string{guardrailIDHeader: g.ID, guardrailVersionHeader: g.Version}
		if g.Trace != "" {
			res.SetHeader[guardrailTraceHeader] = strings.ToUpper(g.Trace)
		}
		return "", nil
	case bedrock.OpConverse, bedrock.OpConverseStream:
		body, named, err := converseGuardrail(req.Body, g)
		switch {
		case err != nil:
			res.Rule = "app.bedrock_guardrail"
			return "", err
		case named != "":
			return deny + " (the call names " + named + ")", nil
		case req.Passthrough:
			// The body cannot change: naming the guardrail is enough
			// (converseGuardrail has checked the rest is unambiguous).
			if ok, _ := converseNamesGuardrail(req.Body, g); !ok {
				return deny + "; Warden cannot attach it to a call it forwards with the caller's signature", nil
			}
			return "", nil
		}
		req.Body, res.Body = body, body
	}
	return "", nil
}

// guardrailConfigFields are guardrailConfig's members in Converse*.
var guardrailConfigFields = []string{"guardrailIdentifier", "guardrailVersion", "trace", "streamProcessingMode"}

// converseGuardrail returns body with its guardrailConfig set to g (added
// before the closing brace when there is none), everything else byte for
// byte. named is "ID:VERSION" when the body names another guardrail (body
// is then nil). A body Warden cannot read surely (not one JSON object, a
// top-level key repeated or misspelt in case, a guardrailConfig that is not
// an object or has unknown or repeated members) is a ValidationException.
func converseGuardrail(body []byte, g *BedrockGuardrailConfig) (out []byte, named string, err error) {
	members, closeAt, err := bedrock.ScanObject(body)
	if err != nil {
		return nil, "", bedrock.Validation("warden: the request body must be a single valid JSON object (%v)", err)
	}
	var cfg *bedrock.Member
	for i := range members {
		m := &members[i]
		if !strings.EqualFold(m.Key, "guardrailConfig") {
			continue
		}
		if cfg != nil {
			return nil, "", bedrock.Validation("warden: the request body repeats the top-level key guardrailConfig (keys are compared ignoring case)")
		}
		if m.Key != "guardrailConfig" {
			return nil, "", bedrock.Validation("warden: the request body has the key %q; spell it guardrailConfig", m.Key)
		}
		cfg = m
	}
	fields := map[string]string{}
	if cfg != nil && string(body[cfg.ValueStart:cfg.ValueEnd]) != "null" {
		inner, _, err := bedrock.ScanObject(body[cfg.ValueStart:cfg.ValueEnd])
		if err != nil {
			return nil, "", bedrock.Validation("warden: guardrailConfig must be an object (%v)", err)
		}
		for _, im := range inner {
			if !slices.Contains(guardrailConfigFields, im.Key) {
				return nil, "", bedrock.Validation("warden: guardrailConfig.%s is not a guardrailConfig field (%s)", im.Key, strings.Join(guardrailConfigFields, ", "))
			}
			if _, dup := fields[im.Key]; dup {
				return nil, "", bedrock.Validation("warden: guardrailConfig repeats %s", im.Key)
			}
			var v string
			if err := json.Unmarshal(body[cfg.ValueStart+im.ValueStart:cfg.ValueStart+im.ValueEnd], &v); err != nil {
				return nil, "", bedrock.Validation("warden: guardrailConfig.%s must be a string", im.Key)
			}
			fields[im.Key] = v
		}
		id, hasID := fields["guardrailIdentifier"]
		ver, hasVer := fields["guardrailVersion"]
		if hasID && id != g.ID || hasVer && ver != g.Version {
			return nil, id + ":" + ver, nil
		}
	}
	val := []byte(`{"guardrailIdentifier":`)
	val = append(val, bedrock.JSONString(g.ID)...)
	val = append(val, `,"guardrailVersion":`...)
	val = append(val, bedrock.JSONString(g.Version)...)
	trace := g.Trace
	if trace == "" {
		trace = fields["trace"]
	}
	if trace != "" {
		val = append(append(val, `,"trace":`...), bedrock.JSONString(trace)...)
	}
	if m, ok := fields["streamProcessingMode"]; ok {
		val = append(append(val, `,"streamProcessingMode":`...), bedrock.JSONString(m)...)
	}
	val = append(val, '}')
	var e tokenEdit
	if cfg != nil {
		e = tokenEdit{cfg.ValueStart, cfg.ValueEnd, val}
	} else {
		open := bytes.IndexByte(body, '{') + 1
		cut := closeAt
		ins := append([]byte(`"guardrailConfig":`), val...)
		if len(members) > 0 {
			cut = open + len(bytes.TrimRight(body[open:closeAt], " \t\r\n"))
			ins = append([]byte{','}, ins...)
		}
		e = tokenEdit{cut, cut, ins}
	}
	return bedrock.ApplyEdits(body, []tokenEdit{e}, func(e tokenEdit) (int, int, []byte) { return e.start, e.end, e.lit }), "", nil
}

// converseNamesGuardrail says whether body's guardrailConfig names g.
func converseNamesGuardrail(body []byte, g *BedrockGuardrailConfig) (bool, error) {
	var v struct {
		GuardrailConfig *struct {
			ID  string `json:"guardrailIdentifier"`
			Ver string `json:"guardrailVersion"`
		} `json:"guardrailConfig"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return false, err
	}
	return v.GuardrailConfig != nil && v.GuardrailConfig.ID == g.ID && v.GuardrailConfig.Ver == g.Version, nil
}

// tokenEdit is one rewrite of the body: [start,end) replaced by lit.
type tokenEdit struct {
	start, end int
	lit        []byte
}

func (a *AppConfig) applyLimits(req *CapRequest, res *CapResult) error {
	lim := a.Limits
	if lim.MaxOutputTokens <= 0 && lim.MaxPromptChars <= 0 || !generates(req.Op) && compatKindOf(req.Op) == 0 || len(bytes.TrimSpace(req.Body)) == 0 {
		return nil
	}
	ex, err := req.Extract()
	if err != nil {
		res.Rule = "app.limits"
		return bedrock.Validation("warden: app %s caps its requests (limits) and the request body could not be read: %v", a.Name, err)
	}
	if lim.MaxPromptChars > 0 {
		var n int64
		for _, sp := range ex.Texts {
			n += int64(utf8.RuneCountInString(sp.Text))
		}
		if n > lim.MaxPromptChars {
			res.Rule = "app.limits.max_prompt_chars"
			return bedrock.Validation("warden: the request holds %d characters of text; app %s allows at most %d (limits.max_prompt_chars)",
				n, a.Name, lim.MaxPromptChars)
		}
	}
	if lim.MaxOutputTokens <= 0 || compatKindOf(req.Op) != 0 {
		return nil // the compat APIs' output keys: applyCompat
	}
	capN := lim.MaxOutputTokens
	clamp := lim.Clamps()
	reject := func(format string, args ...any) error {
		res.Rule = "app.limits.max_output_tokens"
		return bedrock.Validation("warden: "+format+"; app %s allows at most %d output tokens (limits.max_output_tokens)", append(args, a.Name, capN)...)
	}
	var edits []tokenEdit
	switch {
	case ex.MaxTokensPath == "":
	case ex.MaxTokens < 0:
		return reject("%s is not a number", ex.MaxTokensPath)
	case ex.MaxTokens <= capN:
	case ex.MaxTokensCount > 1:
		return reject("the request sets %s %d times (up to %d)", ex.MaxTokensPath, ex.MaxTokensCount, ex.MaxTokens)
	case !clamp || req.Passthrough:
		return reject("the request asks for %d output tokens (%s)", ex.MaxTokens, ex.MaxTokensPath)
	default:
		edits = append(edits, tokenEdit{ex.MaxTokensStart, ex.MaxTokensEnd, strconv.AppendInt(nil, capN, 10)})
	}
	if req.Op == bedrock.OpConverse || req.Op == bedrock.OpConverseStream {
		more, err := converseTokenEdits(req.Body, ex.MaxTokensPath == "" && clamp && !req.Passthrough, clamp && !req.Passthrough, capN, reject)
		if err != nil {
			res.Rule = "app.limits.max_output_tokens"
			return err
		}
		edits = append(edits, more...)
	}
	if len(edits) == 0 {
		return nil
	}
	req.Body = bedrock.ApplyEdits(req.Body, edits, func(e tokenEdit) (int, int, []byte) { return e.start, e.end, e.lit })
	res.Body = req.Body
	res.Clamped += len(edits)
	return nil
}

// converseTokenEdits returns the edits a Converse body needs beyond its
// inferenceConfig.maxTokens: additionalModelRequestFields' output-token keys
// above capN clamped (or, unless clamp, rejected), and, when insert is set,
// inferenceConfig.maxTokens added.
func converseTokenEdits(body []byte, insert, clamp bool, capN int64, reject func(string, ...any) error) ([]tokenEdit, error) {
	members, closeAt, err := bedrock.ScanObject(body)
	if err != nil {
		return nil, bedrock.Validation("warden: the request body must be a single valid JSON object (%v)", err)
	}
	var edits []tokenEdit
	var infer *bedrock.Member
	inferCount := 0
	for i := range members {
		m := &members[i]
		switch {
		case strings.EqualFold(m.Key, "inferenceConfig"):
			inferCount++
			infer = m
		case m.Key == "additionalModelRequestFields":
			v := body[m.ValueStart:m.ValueEnd]
			if len(v) == 0 || v[0] != '{' {
				continue
			}
			inner, _, err := bedrock.ScanObject(v)
			if err != nil {
				return nil, bedrock.Validation("warden: additionalModelRequestFields: %v", err)
			}
			for _, im := range inner {
				if !containsFold(outputTokenKeys, im.Key) {
					continue
				}
				n, ok := tokenCount(v[im.ValueStart:im.ValueEnd])
				switch {
				case !ok:
					return nil, reject("additionalModelRequestFields.%s is not a number", im.Key)
				case n <= capN:
				case !clamp:
					return nil, reject("the request asks for %d output tokens (additionalModelRequestFields.%s)", n, im.Key)
				default:
					edits = append(edits, tokenEdit{m.ValueStart + im.ValueStart, m.ValueStart + im.ValueEnd, strconv.AppendInt(nil, capN, 10)})
				}
			}
		}
	}
	if !insert {
		return edits, nil
	}
	if inferCount > 1 {
		return nil, bedrock.Validation("warden: the request body repeats the top-level key inferenceConfig (keys are compared ignoring case)")
	}
	member := strconv.AppendInt([]byte(`"maxTokens":`), capN, 10)
	if infer == nil {
		open := bytes.IndexByte(body, '{') + 1
		ins := append([]byte(`"inferenceConfig":{`), append(member, '}')...)
		cut := closeAt
		if len(members) > 0 {
			cut = open + len(bytes.TrimRight(body[open:closeAt], " \t\r\n"))
			ins = append([]byte{','}, ins...)
		}
		return append(edits, tokenEdit{cut, cut, ins}), nil
	}
	if infer.Key != "inferenceConfig" {
		return nil, bedrock.Validation("warden: the request body has the key %q; spell it inferenceConfig", infer.Key)
	}
	v := body[infer.ValueStart:infer.ValueEnd]
	inner, closeIn, err := bedrock.ScanObject(v)
	if err != nil {
		return nil, bedrock.Validation("warden: inferenceConfig must be an object (%v)", err)
	}
	cut := infer.ValueStart + closeIn
	if len(inner) > 0 {
		cut = infer.ValueStart + 1 + len(bytes.TrimRight(v[1:closeIn], " \t\r\n"))
		member = append([]byte{','}, member...)
	}
	return append(edits, tokenEdit{cut, cut, member}), nil
}

// tokenCount reads a raw JSON value as a token count: an integer, or a
// number rounded up.
func tokenCount(raw []byte) (int64, bool) {
	if n, err := strconv.ParseInt(string(raw), 10, 64); err == nil {
		return n, true
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil {
		return 0, false
	}
	if f >= 1<<62 {
		return 1 << 62, true
	}
	n := int64(f)
	if float64(n) < f {
		n++
	}
	return n, true
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

// anthropicBedrockOnly reports Anthropic's Bedrock-only APIs (agents,
// sessions, memory stores on bedrock.REGION.amazonaws.com/anthropic).
func anthropicBedrockOnly(op bedrock.Operation) bool {
	return op == bedrock.OpAnthropicAgents || op == bedrock.OpAnthropicSessions || op == bedrock.OpAnthropicMemoryStores
}
