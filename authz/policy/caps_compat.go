package policy

import (
	"strconv"
	"strings"

	"github.com/warden-egress/warden/bedrock"
)

// The OpenAI-compatible and Anthropic Messages bodies: what every call gets
// (usage always reported, nothing stored where another app could read it
// through Warden's single role) and the app's output cap on the keys those
// APIs use.
//
//	chat completions   max_tokens, max_completion_tokens, n; stream_options.include_usage forced when streaming; store:true → false
//	responses          max_output_tokens; store forced false; previous_response_id and background refused
//	messages           max_tokens
//
// A body that repeats one of these keys, spells one in another case, or
// holds a value of the wrong type is refused: Bedrock might read it
// differently from Warden.

// compatKeys are the top-level keys Warden reads or writes, per operation kind.
var (
	chatKeys     = []string{"max_tokens", "max_completion_tokens", "n", "stream", "stream_options", "store"}
	responseKeys = []string{"max_output_tokens", "stream", "store", "previous_response_id", "background", "conversation"}
	messageKeys  = []string{"max_tokens", "stream"}
)

type compatKind int

const (
	kindChat compatKind = iota + 1
	kindResponses
	kindMessages
)

func compatKindOf(op bedrock.Operation) compatKind {
	switch op {
	case bedrock.OpOpenAIChatCompletions, bedrock.OpMantleChatCompletions:
		return kindChat
	case bedrock.OpOpenAIResponses, bedrock.OpMantleResponses:
		return kindResponses
	case bedrock.OpMantleMessages:
		return kindMessages
	}
	return 0
}

// applyCompat rewrites a compat body as the rules above say.
func (a *AppConfig) applyCompat(req *CapRequest, res *CapResult) error {
	kind := compatKindOf(req.Op)
	if kind == 0 {
		return nil
	}
	bad := func(format string, args ...any) error {
		res.Rule = "app.limits"
		return bedrock.Validation("warden: "+format, args...)
	}
	members, closeAt, err := bedrock.ScanObject(req.Body)
	if err != nil {
		return bad("the %s body must be a single valid JSON object (%v)", req.Op, err)
	}
	keys := map[compatKind][]string{kindChat: chatKeys, kindResponses: responseKeys, kindMessages: messageKeys}[kind]
	val := map[string]*bedrock.Member{}
	for i := range members {
		m := &members[i]
		for _, k := range keys {
			if !strings.EqualFold(m.Key, k) {
				continue
			}
			if m.Key != k {
				return bad("the %s body has the key %q; spell it %s", req.Op, m.Key, k)
			}
			if val[k] != nil {
				return bad("the %s body repeats the key %s", req.Op, k)
			}
			val[k] = m
		}
	}
	raw := func(k string) string {
		if m := val[k]; m != nil {
			return string(req.Body[m.ValueStart:m.ValueEnd])
		}
		return ""
	}
	isBool := func(k string) bool { v := raw(k); return v == "" || v == "true" || v == "false" || v == "null" }
	for _, k := range []string{"stream", "store", "background"} {
		if !isBool(k) {
			return bad("%s must be true or false", k)
		}
	}
	var edits []tokenEdit
	added := 0
	add := func(k, v string) { // a new member before the closing brace
		cut := closeAt
		for cut > 0 && strings.ContainsRune(" \t\r\n", rune(req.Body[cut-1])) {
			cut--
		}
		lit := `"` + k + `":` + v
		if len(members) > 0 || added > 0 {
			lit = "," + lit
		}
		added++
		edits = append(edits, tokenEdit{cut, cut, []byte(lit)})
	}
	set := func(k, v string) { m := val[k]; edits = append(edits, tokenEdit{m.ValueStart, m.ValueEnd, []byte(v)}) }
	fixed := func(what string) error {
		if req.Passthrough {
			res.Rule = "app.limits"
			return bedrock.AccessDenied("warden: %s; Warden cannot change a call it forwards with the caller's signature", what)
		}
		return nil
	}

	switch kind {
	case kindResponses:
		if v := raw("previous_response_id"); v != "" && v != "null" || raw("conversation") != "" && raw("conversation") != "null" {
			res.Rule = "app.limits"
			return bedrock.AccessDenied("warden: previous_response_id and conversation are refused: Warden stores no response (store is forced false), and another app's stored conversation must not be reachable through Warden")
		}
		if raw("background") == "true" {
			res.Rule = "app.limits"
			return bedrock.AccessDenied("warden: background responses are refused: they are stored and fetched later, which Warden does not allow")
		}
		switch raw("store") {
		case "false":
		case "":
			if err := fixed("store must be false"); err != nil {
				return err
			}
			add("store", "false")
		default:
			if err := fixed("store must be false"); err != nil {
				return err
			}
			set("store", "false")
		}
	case kindChat:
		if raw("store") == "true" {
			if err := fixed("store must be false"); err != nil {
				return err
			}
			set("store", "false")
		}
		if raw("stream") == "true" && !includesUsage(req.Body, val["stream_options"]) {
			// Usage is always recorded: the stream's last chunk carries it.
			if req.Passthrough {
				break // recorded without usage: the body cannot change
			}
			if val["stream_options"] != nil {
				set("stream_options", `{"include_usage":true}`)
			} else {
				add("stream_options", `{"include_usage":true}`)
			}
		}
	}

	if capN := a.Limits.MaxOutputTokens; capN > 0 {
		clamp := a.Limits.Clamps() && !req.Passthrough
		capKeys := map[compatKind][]string{kindChat: {"max_tokens", "max_completion_tokens"}, kindResponses: {"max_output_tokens"}, kindMessages: {"max_tokens"}}[kind]
		clamped := 0
		for _, k := range capKeys {
			v := raw(k)
			if v == "" || v == "null" {
				continue
			}
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				res.Rule = "app.limits.max_output_tokens"
				return bedrock.Validation("warden: %s is not a whole number; app %s allows at most %d output tokens (limits.max_output_tokens)", k, a.Name, capN)
			}
			if n <= capN {
				continue
			}
			if !clamp {
				res.Rule = "app.limits.max_output_tokens"
				return bedrock.Validation("warden: the request asks for %d output tokens (%s); app %s allows at most %d output tokens (limits.max_output_tokens)", n, k, a.Name, capN)
			}
			set(k, strconv.FormatInt(capN, 10))
			clamped++
		}
		if kind == kindChat {
			// n answers multiply the output: one answer under a cap.
			if v := raw("n"); v != "" && v != "null" && v != "1" {
				if !clamp {
					res.Rule = "app.limits.max_output_tokens"
					return bedrock.Validation("warden: the request asks for n=%s answers; app %s caps output tokens (limits.max_output_tokens), so one answer at most", v, a.Name)
				}
				set("n", "1")
				clamped++
			}
		}
		if clamp && (kind == kindChat && raw("max_tokens") == "" && raw("max_completion_tokens") == "" || kind == kindResponses && raw("max_output_tokens") == "") {
			// No limit sent: the model's default might exceed the cap.
			k := "max_completion_tokens"
			if kind == kindResponses {
				k = "max_output_tokens"
			}
			add(k, strconv.FormatInt(capN, 10))
			clamped++
		}
		res.Clamped += clamped
	}
	if len(edits) == 0 {
		return nil
	}
	req.Body = bedrock.ApplyEdits(req.Body, edits, func(e tokenEdit) (int, int, []byte) { return e.start, e.end, e.lit })
	res.Body = req.Body
	return nil
}

// includesUsage reports stream_options.include_usage: true.
func includesUsage(body []byte, m *bedrock.Member) bool {
	if m == nil {
		return false
	}
	inner, _, err := bedrock.ScanObject(body[m.ValueStart:m.ValueEnd])
	if err != nil {
		return false
	}
	seen := 0
	ok := false
	for _, im := range inner {
		if strings.EqualFold(im.Key, "include_usage") {
			seen++
			ok = im.Key == "include_usage" && string(body[m.ValueStart+im.ValueStart:m.ValueStart+im.ValueEnd]) == "true"
		}
	}
	return seen == 1 && ok
}
